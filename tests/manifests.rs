//! Static checks of the cluster manifests (`deploy/`, `runtime-class/`) against each other
//! and against `spin.toml`. No cluster is needed: every rule here is about what the files
//! say.
//!
//! - Every YAML document parses.
//! - Core kinds deserialize into their k8s-openapi types and serialize back to the same
//!   JSON: a field the type does not know (a typo, a field of another kind) would be dropped
//!   and is reported. The CRD kinds (SpinApp, SpinAppExecutor, Broker, Trigger, the
//!   Kustomization) and the pod-gateway Helm values go through typed structs with
//!   `deny_unknown_fields` that name the fields this project uses, with their types.
//! - The set is consistent: every name referenced exists; every Spin variable is fed to the
//!   SpinApp and nothing else is; the Role grants what the code calls and nothing more; the
//!   namespace the component writes to is the one the gateways route.
//!
//! Each consistency rule is a function that returns the problems it finds. Next to the test
//! that runs it on the real files, a test breaks a copy of the files in memory and asserts
//! that the rule reports it, so no rule can silently stop checking.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, EnvVarSource, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use podgateway_client_provisioner::config::Config;

/// The verbs the component uses on core `pods` (`POST .../pods` and, after a 409,
/// `GET .../pods/{name}`), as the code declares them: deploy/rbac.yaml must grant exactly
/// these. When the code starts to list or delete pods, it adds the verb there and this test
/// asks for it in the Role.
const COMPONENT_POD_VERBS: [&str; 2] = podgateway_client_provisioner::kube::POD_VERBS;

/// The label every pod-gateway webhook selects namespaces by (`routed-gateway: "true"`).
const ROUTED_LABEL: &str = "routed-gateway";
/// The CloudEvent type the component consumes.
const PENDING_TYPE: &str = "io.podgateway.client.pending";
/// Where every pod with a ServiceAccount gets the cluster CA.
const SERVICE_ACCOUNT_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
/// The keys Kubernetes fills in a `kubernetes.io/service-account-token` Secret.
const SERVICE_ACCOUNT_TOKEN_KEYS: [&str; 3] = ["token", "ca.crt", "namespace"];
/// The RuntimeClass handler the node installer registers (runtime-class/README.md).
const SHIM_HANDLER: &str = "spin";
/// The folders whose YAML files are Kubernetes manifests (or Helm values / kustomization).
const MANIFEST_DIRS: [&str; 2] = ["deploy", "runtime-class"];

// ---------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------

/// One YAML document of a manifest file.
#[derive(Clone, Debug)]
struct Doc {
    file: String,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }
    fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or("")
    }
    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }
    fn namespace(&self) -> Option<&str> {
        self.value["metadata"]["namespace"].as_str()
    }
    fn describe(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{} {}/{} ({})", self.kind(), ns, self.name(), self.file),
            None => format!("{} {} ({})", self.kind(), self.name(), self.file),
        }
    }
}

/// Everything the checks look at, as plain data so that tests can break a copy of it.
#[derive(Clone, Debug)]
struct Manifests {
    /// Kubernetes objects of deploy/ and runtime-class/, in file order.
    docs: Vec<Doc>,
    /// pod-gateway Helm values, by file name.
    helm_values: BTreeMap<String, Value>,
    /// deploy/kustomization.yaml.
    kustomization: Value,
    /// spin.toml.
    spin: toml::Table,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn is_helm_values(file: &str) -> bool {
    file.ends_with("-values.yaml")
}

/// The YAML files of the manifest folders, as `folder/name`, sorted.
fn yaml_files() -> Vec<String> {
    let mut files = Vec::new();
    for dir in MANIFEST_DIRS {
        let entries = fs::read_dir(root().join(dir)).unwrap_or_else(|e| panic!("reading {dir}/: {e}"));
        for entry in entries {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".yaml") || name.ends_with(".yml") {
                files.push(format!("{dir}/{name}"));
            }
        }
    }
    files.sort();
    files
}

/// Parses every document of a YAML text; `Err` names the document that does not parse.
fn parse_yaml_documents(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|e| format!("document {index}: {e}"))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn load() -> Manifests {
    let mut docs = Vec::new();
    let mut helm_values = BTreeMap::new();
    let mut kustomization = Value::Null;
    for file in yaml_files() {
        let text = fs::read_to_string(root().join(&file)).unwrap();
        let values = parse_yaml_documents(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        if is_helm_values(&file) {
            assert_eq!(values.len(), 1, "{file}: one document of Helm values");
            helm_values.insert(file, values.into_iter().next().unwrap());
        } else if file == "deploy/kustomization.yaml" {
            kustomization = values.into_iter().next().unwrap_or(Value::Null);
        } else {
            docs.extend(values.into_iter().map(|value| Doc { file: file.clone(), value }));
        }
    }
    let spin = fs::read_to_string(root().join("spin.toml")).unwrap().parse::<toml::Table>().unwrap();
    Manifests { docs, helm_values, kustomization, spin }
}

// ---------------------------------------------------------------------------------------
// Typed views of the CRD kinds and the Helm values: the fields this project uses. A field
// that is not here is refused; add it here (with the type the CRD gives it) to use it.
// ---------------------------------------------------------------------------------------

/// `core.spinkube.dev/v1alpha1` SpinApp (Spin Operator v0.6).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SpinApp {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: SpinAppSpec,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SpinAppSpec {
    image: String,
    executor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    replicas: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enable_autoscaling: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_account_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<SpinAppResources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime_config: Option<SpinAppRuntimeConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    variables: Vec<SpinVar>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SpinAppResources {
    #[serde(skip_serializing_if = "Option::is_none")]
    limits: Option<BTreeMap<String, Quantity>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    requests: Option<BTreeMap<String, Quantity>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SpinAppRuntimeConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    load_from_secret: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SpinVar {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_from: Option<EnvVarSource>,
}

/// `core.spinkube.dev/v1alpha1` SpinAppExecutor.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SpinAppExecutor {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: SpinAppExecutorSpec,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SpinAppExecutorSpec {
    create_deployment: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    deployment_config: Option<ExecutorDeploymentConfig>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ExecutorDeploymentConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime_class_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spin_image: Option<String>,
    #[serde(rename = "installDefaultCACerts", skip_serializing_if = "Option::is_none")]
    install_default_ca_certs: Option<bool>,
    #[serde(rename = "caCertSecret", skip_serializing_if = "Option::is_none")]
    ca_cert_secret: Option<String>,
}

/// `eventing.knative.dev/v1` Broker.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Broker {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    #[serde(default)]
    spec: BrokerSpec,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct BrokerSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<KReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery: Option<DeliverySpec>,
}

/// Knative's delivery spec, without `timeout` and `retryAfterMax`: both are refused by the
/// Knative webhook unless a feature flag is enabled in config-features (broker.yaml).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DeliverySpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    retry: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backoff_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backoff_delay: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dead_letter_sink: Option<Destination>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Destination {
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    reference: Option<KReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KReference {
    api_version: String,
    kind: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
}

/// `eventing.knative.dev/v1` Trigger.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Trigger {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: TriggerSpec,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TriggerSpec {
    broker: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    filter: Option<TriggerFilter>,
    subscriber: Destination,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery: Option<DeliverySpec>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TriggerFilter {
    attributes: BTreeMap<String, String>,
}

/// `kustomize.config.k8s.io/v1beta1` Kustomization: only plain resources, so that what
/// `kubectl apply -k deploy/` applies is exactly what these tests check.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Kustomization {
    api_version: String,
    kind: String,
    resources: Vec<String>,
}

/// Values of the angelnu/pod-gateway chart (7.x; the keys used here exist since 6.5).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct PodGatewayValues {
    #[serde(default)]
    routed_namespaces: Vec<String>,
    webhook: PodGatewayWebhook,
    #[serde(rename = "DNS", skip_serializing_if = "Option::is_none")]
    dns: Option<String>,
    #[serde(rename = "DNSPolicy", skip_serializing_if = "Option::is_none")]
    dns_policy: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    settings: BTreeMap<PodGatewaySetting, Value>,
}

/// The keys of the chart's `settings` (its settings.sh).
#[derive(Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
enum PodGatewaySetting {
    NOT_ROUTED_TO_GATEWAY_CIDRS,
    VXLAN_ID,
    VXLAN_IP_NETWORK,
    VXLAN_GATEWAY_FIRST_DYNAMIC_IP,
    VPN_INTERFACE,
    VPN_BLOCK_OTHER_TRAFFIC,
    VPN_TRAFFIC_PORT,
    VPN_LOCAL_CIDRS,
    DNS_LOCAL_CIDRS,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PodGatewayWebhook {
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace_selector: Option<NamespaceSelectorValues>,
    /// Chart default: true.
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway_default: Option<bool>,
    /// Chart default: "setGateway".
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway_label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway_label_value: Option<String>,
    /// Chart default: "setGateway".
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway_annotation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway_annotation_value: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct NamespaceSelectorValues {
    #[serde(rename = "type")]
    selector_type: String,
    label: String,
}

/// One `[[client_tls]]` entry of Spin's runtime config (spin-factor-outbound-networking).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // every field is read by serde's deny_unknown_fields, not all by checks
struct ClientTls {
    component_ids: Vec<String>,
    hosts: Vec<String>,
    ca_use_webpki_roots: Option<bool>,
    ca_roots_file: Option<String>,
    client_cert_file: Option<String>,
    client_private_key_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeConfigToml {
    #[serde(default)]
    client_tls: Vec<ClientTls>,
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Deserializes into `T`, serializes back and compares with the original: anything `T`
/// does not know is dropped on the way and reported as unknown.
fn round_trip<T: DeserializeOwned + Serialize>(value: &Value) -> Result<T, String> {
    let typed: T = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut lost = Vec::new();
    diff(value, &back, "", &mut lost);
    if lost.is_empty() { Ok(typed) } else { Err(format!("unknown or changed fields: {}", lost.join(", "))) }
}

/// The paths where `original` has something that `back` lacks or has differently.
fn diff(original: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
    match (original, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let here = format!("{path}.{key}");
                match b.get(key) {
                    Some(other) => diff(value, other, &here, out),
                    None => out.push(here),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a != b => out.push(format!("{path} ({a} became {b})")),
        _ => {}
    }
}

fn typed<T: DeserializeOwned>(doc: &Doc) -> Result<T, String> {
    serde_json::from_value(doc.value.clone()).map_err(|e| format!("{}: {e}", doc.describe()))
}

impl Manifests {
    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Doc> + 'a {
        self.docs.iter().filter(move |d| d.kind() == kind)
    }

    fn find(&self, kind: &str, namespace: Option<&str>, name: &str) -> Option<&Doc> {
        self.docs.iter().find(|d| d.kind() == kind && d.name() == name && d.namespace() == namespace)
    }

    /// The typed objects of a kind, with the problems of those that do not parse.
    fn all<T: DeserializeOwned>(&self, kind: &str, problems: &mut Vec<String>) -> Vec<(Doc, T)> {
        self.of_kind(kind)
            .filter_map(|d| match typed::<T>(d) {
                Ok(t) => Some((d.clone(), t)),
                Err(e) => {
                    problems.push(e);
                    None
                }
            })
            .collect()
    }

    /// The single SpinApp (the component).
    fn spin_app(&self, problems: &mut Vec<String>) -> Option<(Doc, SpinApp)> {
        let mut apps = self.all::<SpinApp>("SpinApp", problems);
        if apps.len() != 1 {
            problems.push(format!("expected exactly one SpinApp, found {}", apps.len()));
            return None;
        }
        apps.pop()
    }

    /// The ConfigMap the SpinApp reads its variables from, as key → value.
    fn component_config(&self, problems: &mut Vec<String>) -> Option<(Doc, BTreeMap<String, String>)> {
        let (app_doc, app) = self.spin_app(problems)?;
        let names: BTreeSet<&str> = app
            .spec
            .variables
            .iter()
            .filter_map(|v| v.value_from.as_ref()?.config_map_key_ref.as_ref())
            .map(|r| r.name.as_str())
            .collect();
        if names.len() != 1 {
            problems.push(format!(
                "the SpinApp should read its settings from one ConfigMap, reads from {names:?}"
            ));
            return None;
        }
        let name = names.into_iter().next().unwrap();
        let Some(doc) = self.find("ConfigMap", app_doc.namespace(), name) else {
            problems.push(format!(
                "ConfigMap {name} (SpinApp variables) does not exist in {:?}",
                app_doc.namespace()
            ));
            return None;
        };
        let map: ConfigMap = typed(doc).map_err(|e| problems.push(e)).ok()?;
        Some((doc.clone(), map.data.unwrap_or_default()))
    }

    /// The namespace the component creates client Pods in (config: client_namespace).
    fn client_namespace(&self, problems: &mut Vec<String>) -> Option<String> {
        let (doc, config) = self.component_config(problems)?;
        let value = config.get("client_namespace").cloned();
        if value.is_none() {
            problems.push(format!("{}: no client_namespace key", doc.describe()));
        }
        value
    }

    /// Spin variables: name → its declaration in spin.toml's `[variables]`.
    fn spin_variables(&self) -> BTreeMap<String, toml::Table> {
        self.spin
            .get("variables")
            .and_then(toml::Value::as_table)
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.as_table().cloned().unwrap_or_default())).collect())
            .unwrap_or_default()
    }

    /// The ids of spin.toml's components.
    fn spin_component_ids(&self) -> BTreeSet<String> {
        self.spin
            .get("component")
            .and_then(toml::Value::as_table)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn helm(&self, problems: &mut Vec<String>) -> Vec<(String, PodGatewayValues)> {
        let mut out = Vec::new();
        for (file, value) in &self.helm_values {
            match round_trip::<PodGatewayValues>(value) {
                Ok(v) => out.push((file.clone(), v)),
                Err(e) => problems.push(format!("{file}: {e}")),
            }
        }
        out
    }
}

/// The host of a URL such as `https://kubernetes.default.svc:443/prefix`.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    (!host.is_empty()).then_some(host)
}

/// Seconds of a simple ISO-8601 duration such as `PT1S`, `PT0.5S`, `PT1M30S`.
fn iso8601_seconds(duration: &str) -> Option<f64> {
    let mut rest = duration.strip_prefix("PT")?;
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (number, unit_and_rest) = rest.split_at(end);
        let number: f64 = number.parse().ok()?;
        let mut chars = unit_and_rest.chars();
        total += number
            * match chars.next()? {
                'H' => 3600.0,
                'M' => 60.0,
                'S' => 1.0,
                _ => return None,
            };
        rest = chars.as_str();
    }
    Some(total)
}

// ---------------------------------------------------------------------------------------
// The rules. Each returns the problems it finds; an empty list means the rule holds.
// ---------------------------------------------------------------------------------------

/// Every document is a Kubernetes object of a kind this project deploys; core kinds
/// round-trip through k8s-openapi and CRD kinds through the typed structs above.
fn check_known_kinds_and_fields(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    for doc in &m.docs {
        let result = match (doc.api_version(), doc.kind()) {
            ("v1", "Namespace") => round_trip::<Namespace>(&doc.value).map(drop),
            ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(&doc.value).map(drop),
            ("v1", "Secret") => round_trip::<Secret>(&doc.value).map(drop),
            ("v1", "ConfigMap") => round_trip::<ConfigMap>(&doc.value).map(drop),
            ("v1", "Service") => round_trip::<Service>(&doc.value).map(drop),
            ("apps/v1", "Deployment") => round_trip::<Deployment>(&doc.value).map(drop),
            ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(&doc.value).map(drop),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
                round_trip::<RoleBinding>(&doc.value).map(drop)
            }
            ("node.k8s.io/v1", "RuntimeClass") => round_trip::<RuntimeClass>(&doc.value).map(drop),
            ("core.spinkube.dev/v1alpha1", "SpinApp") => round_trip::<SpinApp>(&doc.value).map(drop),
            ("core.spinkube.dev/v1alpha1", "SpinAppExecutor") => {
                round_trip::<SpinAppExecutor>(&doc.value).map(drop)
            }
            ("eventing.knative.dev/v1", "Broker") => round_trip::<Broker>(&doc.value).map(drop),
            ("eventing.knative.dev/v1", "Trigger") => round_trip::<Trigger>(&doc.value).map(drop),
            (_, "ClusterRole" | "ClusterRoleBinding") => {
                Err("no cluster-wide RBAC: the component only needs a namespaced Role".into())
            }
            (api_version, kind) => Err(format!("unexpected kind {kind} ({api_version})")),
        };
        if let Err(e) = result {
            problems.push(format!("{}: {e}", doc.describe()));
        }
        if doc.name().is_empty() {
            problems.push(format!("{}: no metadata.name", doc.describe()));
        }
        let cluster_scoped = matches!(doc.kind(), "Namespace" | "RuntimeClass");
        if cluster_scoped == doc.namespace().is_some() {
            problems.push(format!(
                "{}: {}",
                doc.describe(),
                if cluster_scoped {
                    "cluster-scoped, must not have a namespace"
                } else {
                    "needs metadata.namespace"
                }
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for doc in &m.docs {
        if !seen.insert((doc.kind().to_owned(), doc.namespace().map(str::to_owned), doc.name().to_owned())) {
            problems.push(format!("{} is defined twice", doc.describe()));
        }
    }
    problems
}

/// The SpinApp runs on the shim: executor → RuntimeClass → handler `spin`; every namespace
/// used exists.
fn check_executor_chain(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((app_doc, app)) = m.spin_app(&mut problems) else { return problems };
    let Some(executor_doc) = m.find("SpinAppExecutor", app_doc.namespace(), &app.spec.executor) else {
        problems.push(format!(
            "SpinApp executor `{}` is not a SpinAppExecutor in namespace {:?} (executors are namespaced)",
            app.spec.executor,
            app_doc.namespace()
        ));
        return problems;
    };
    let executor: SpinAppExecutor = match typed(executor_doc) {
        Ok(e) => e,
        Err(e) => return vec![e],
    };
    if !executor.spec.create_deployment {
        problems.push(format!("{}: createDeployment must be true", executor_doc.describe()));
    }
    let class = executor.spec.deployment_config.as_ref().and_then(|c| c.runtime_class_name.as_deref());
    match class.and_then(|name| m.find("RuntimeClass", None, name)) {
        None => problems.push(format!(
            "{}: runtimeClassName {class:?} is not a RuntimeClass of runtime-class/",
            executor_doc.describe()
        )),
        Some(class_doc) => {
            if let Ok(class) = typed::<RuntimeClass>(class_doc)
                && class.handler != SHIM_HANDLER
            {
                problems.push(format!(
                    "{}: handler `{}`, but the node installer registers `{SHIM_HANDLER}`",
                    class_doc.describe(),
                    class.handler
                ));
            }
        }
    }
    if app.spec.replicas.is_some() && app.spec.enable_autoscaling == Some(true) {
        problems.push("SpinApp: replicas cannot be set with enableAutoscaling".into());
    }
    let image = &app.spec.image;
    let tag = image.rsplit_once('/').map_or(image.as_str(), |(_, last)| last).split_once(':').map(|(_, t)| t);
    if !matches!(tag, Some(t) if !t.is_empty() && t != "latest") && !image.contains('@') {
        problems
            .push(format!("SpinApp image `{image}` needs a version tag (a moved tag is not pulled again)"));
    }
    for doc in &m.docs {
        if let Some(ns) = doc.namespace()
            && m.find("Namespace", None, ns).is_none()
        {
            problems.push(format!("{}: namespace {ns} is not in deploy/namespace.yaml", doc.describe()));
        }
    }
    problems
}

/// Every Spin variable is fed to the SpinApp from the ConfigMap or a Secret, nothing that
/// spin.toml does not declare is, and the referenced keys exist.
fn check_variables(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((app_doc, app)) = m.spin_app(&mut problems) else { return problems };
    let declared = m.spin_variables();
    let ns = app_doc.namespace();
    let mut provided = BTreeSet::new();
    let mut config_keys_used = BTreeSet::new();
    for var in &app.spec.variables {
        if !provided.insert(var.name.clone()) {
            problems.push(format!("SpinApp variable {} is set twice", var.name));
        }
        let Some(declaration) = declared.get(&var.name) else {
            problems.push(format!("SpinApp variable {} is not a variable of spin.toml", var.name));
            continue;
        };
        let secret = declaration.get("secret").and_then(toml::Value::as_bool) == Some(true);
        let source = var.value_from.as_ref();
        match (
            &var.value,
            source.and_then(|s| s.config_map_key_ref.as_ref()),
            source.and_then(|s| s.secret_key_ref.as_ref()),
        ) {
            (None, Some(cm), None) => {
                if secret {
                    problems.push(format!(
                        "SpinApp variable {} is secret in spin.toml but read from ConfigMap {}",
                        var.name, cm.name
                    ));
                }
                if cm.optional == Some(true) {
                    problems.push(format!(
                        "SpinApp variable {}: the ConfigMap key must not be optional",
                        var.name
                    ));
                }
                match m.find("ConfigMap", ns, &cm.name).map(typed::<ConfigMap>) {
                    None => problems.push(format!("SpinApp variable {}: no ConfigMap {}", var.name, cm.name)),
                    Some(Err(e)) => problems.push(e),
                    Some(Ok(map)) => {
                        if !map.data.unwrap_or_default().contains_key(&cm.key) {
                            problems.push(format!(
                                "SpinApp variable {}: ConfigMap {} has no key {}",
                                var.name, cm.name, cm.key
                            ));
                        }
                        config_keys_used.insert((cm.name.clone(), cm.key.clone()));
                    }
                }
            }
            (None, None, Some(sk)) => match m.find("Secret", ns, &sk.name).map(typed::<Secret>) {
                None => problems.push(format!("SpinApp variable {}: no Secret {}", var.name, sk.name)),
                Some(Err(e)) => problems.push(e),
                Some(Ok(secret)) => {
                    let filled_by_kubernetes = secret.type_.as_deref()
                        == Some("kubernetes.io/service-account-token")
                        && SERVICE_ACCOUNT_TOKEN_KEYS.contains(&sk.key.as_str());
                    let has_key = secret.data.as_ref().is_some_and(|d| d.contains_key(&sk.key))
                        || secret.string_data.as_ref().is_some_and(|d| d.contains_key(&sk.key));
                    if !filled_by_kubernetes && !has_key {
                        problems.push(format!(
                            "SpinApp variable {}: Secret {} has no key {}",
                            var.name, sk.name, sk.key
                        ));
                    }
                }
            },
            _ => problems.push(format!(
                "SpinApp variable {}: set it with exactly one valueFrom.configMapKeyRef or secretKeyRef",
                var.name
            )),
        }
    }
    for (name, declaration) in &declared {
        let required = declaration.get("required").and_then(toml::Value::as_bool) == Some(true)
            || declaration.get("default").is_none();
        if !provided.contains(name) {
            if required {
                problems.push(format!(
                    "spin.toml variable {name} has no default and the SpinApp does not set it"
                ));
            } else {
                problems.push(format!(
                    "spin.toml variable {name} is not set by the SpinApp: add it to config.yaml and spinapp.yaml \
                     so that every setting is in one place"
                ));
            }
        }
    }
    // A key of the component's ConfigMap that no variable reads is a setting that does nothing.
    if let Some((doc, config)) = m.component_config(&mut problems) {
        for key in config.keys() {
            if !config_keys_used.contains(&(doc.name().to_owned(), key.clone())) {
                problems.push(format!("{}: key {key} is not read by any SpinApp variable", doc.describe()));
            }
        }
    }
    problems
}

/// The values of the component's ConfigMap are ones the component accepts: they go through
/// the component's own configuration loader (the token comes from a Secret, not from here).
fn check_config_values(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((doc, config)) = m.component_config(&mut problems) else { return problems };
    let loaded = Config::load(|name| match name {
        "k8s_token" => Ok("token-from-the-secret".into()),
        _ => config.get(name).cloned().ok_or_else(|| format!("no key {name} in the ConfigMap")),
    });
    match loaded {
        Err(error) => problems.push(format!("{}: {error}", doc.describe())),
        Ok(_) if !config.get("k8s_api_url").is_some_and(|url| url.trim().starts_with("https://")) => {
            problems.push(format!("{}: k8s_api_url: must be an https:// URL in the cluster", doc.describe()));
        }
        Ok(_) => {}
    }
    problems
}

/// The SpinApp's ServiceAccount, its token Secret and the runtime config exist and fit.
fn check_identity_and_tls(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((app_doc, app)) = m.spin_app(&mut problems) else { return problems };
    let ns = app_doc.namespace();
    let Some(account) = app.spec.service_account_name.as_deref() else {
        problems.push("SpinApp: serviceAccountName must be set (the Role is bound to it)".into());
        return problems;
    };
    if m.find("ServiceAccount", ns, account).is_none() {
        problems.push(format!("SpinApp serviceAccountName {account} is not a ServiceAccount in {ns:?}"));
    }
    // The token variable must come from a token Secret of that very ServiceAccount.
    let token_secret = app
        .spec
        .variables
        .iter()
        .find(|v| v.name == "k8s_token")
        .and_then(|v| v.value_from.as_ref()?.secret_key_ref.as_ref());
    match token_secret {
        None => problems.push("SpinApp variable k8s_token must come from a Secret".into()),
        Some(sk) => {
            if sk.key != "token" {
                problems.push(format!("k8s_token must read key `token` of {}, reads {}", sk.name, sk.key));
            }
            if let Some(Ok(secret)) = m.find("Secret", ns, &sk.name).map(typed::<Secret>) {
                if secret.type_.as_deref() != Some("kubernetes.io/service-account-token") {
                    problems.push(format!(
                        "Secret {} must be of type kubernetes.io/service-account-token",
                        sk.name
                    ));
                }
                let named = secret
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("kubernetes.io/service-account.name"));
                if named.map(String::as_str) != Some(account) {
                    problems.push(format!(
                        "Secret {}: annotation kubernetes.io/service-account.name is {named:?}, \
                         the SpinApp runs as {account}",
                        sk.name
                    ));
                }
            }
        }
    }
    // Runtime config: a Secret with runtime-config.toml that trusts the cluster CA for the
    // API host, for the component of spin.toml.
    let Some(secret_name) = app.spec.runtime_config.as_ref().and_then(|r| r.load_from_secret.as_deref())
    else {
        problems.push("SpinApp: runtimeConfig.loadFromSecret must name the runtime config Secret".into());
        return problems;
    };
    let Some(Ok(secret)) = m.find("Secret", ns, secret_name).map(typed::<Secret>) else {
        problems.push(format!("runtimeConfig.loadFromSecret {secret_name} is not a Secret in {ns:?}"));
        return problems;
    };
    let text =
        secret.string_data.as_ref().and_then(|d| d.get("runtime-config.toml").cloned()).or_else(|| {
            let bytes = secret.data.as_ref()?.get("runtime-config.toml")?;
            String::from_utf8(bytes.0.clone()).ok()
        });
    let Some(text) = text else {
        problems.push(format!("Secret {secret_name} has no key runtime-config.toml"));
        return problems;
    };
    let runtime_config: RuntimeConfigToml = match toml::from_str(&text) {
        Ok(c) => c,
        Err(e) => {
            problems.push(format!("Secret {secret_name}: runtime-config.toml: {e}"));
            return problems;
        }
    };
    let api_url = m.component_config(&mut problems).and_then(|(_, c)| c.get("k8s_api_url").cloned());
    let api_host = api_url.as_deref().and_then(url_host).unwrap_or("").to_owned();
    let components = m.spin_component_ids();
    let trusting = runtime_config.client_tls.iter().find(|t| t.hosts.contains(&api_host));
    match trusting {
        None => problems.push(format!(
            "runtime-config.toml: no [[client_tls]] for the API host `{api_host}` (k8s_api_url {api_url:?})"
        )),
        Some(tls) => {
            if !tls.component_ids.iter().any(|id| components.contains(id)) {
                problems.push(format!(
                    "runtime-config.toml: component_ids {:?} name none of spin.toml's components {components:?}",
                    tls.component_ids
                ));
            }
            if tls.ca_roots_file.as_deref() != Some(SERVICE_ACCOUNT_CA) {
                problems.push(format!("runtime-config.toml: ca_roots_file must be {SERVICE_ACCOUNT_CA}"));
            }
        }
    }
    for tls in &runtime_config.client_tls {
        for id in &tls.component_ids {
            if !components.contains(id) {
                problems.push(format!("runtime-config.toml: component id {id} is not in spin.toml"));
            }
        }
        for host in &tls.hosts {
            if host.contains("://") || host.contains('/') {
                problems.push(format!("runtime-config.toml: hosts takes host names, not `{host}`"));
            }
        }
    }
    problems
}

/// The Role grants exactly the verbs the component uses on pods, in the client namespace,
/// to the SpinApp's ServiceAccount.
fn check_rbac(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let client_namespace = m.client_namespace(&mut problems);
    let app = m.spin_app(&mut problems);
    let roles = m.all::<Role>("Role", &mut problems);
    let [(role_doc, role)] = roles.as_slice() else {
        problems.push(format!("expected exactly one Role, found {}", roles.len()));
        return problems;
    };
    if role_doc.namespace() != client_namespace.as_deref() {
        problems.push(format!(
            "Role {} is in {:?}, the component creates pods in {client_namespace:?}",
            role_doc.name(),
            role_doc.namespace()
        ));
    }
    let expected: BTreeSet<String> = COMPONENT_POD_VERBS.iter().map(|v| v.to_string()).collect();
    let rules = role.rules.clone().unwrap_or_default();
    if rules.len() != 1 {
        problems.push(format!("Role {}: expected one rule (pods), found {}", role_doc.name(), rules.len()));
    }
    for rule in &rules {
        let groups = rule.api_groups.clone().unwrap_or_default();
        let resources = rule.resources.clone().unwrap_or_default();
        let verbs: BTreeSet<String> = rule.verbs.iter().cloned().collect();
        if groups != [""] || resources != ["pods"] {
            problems.push(format!(
                "Role {}: grants {resources:?} in API groups {groups:?}; the component only uses core pods",
                role_doc.name()
            ));
        }
        if verbs != expected {
            problems.push(format!(
                "Role {}: grants verbs {verbs:?}, the component uses exactly {expected:?}",
                role_doc.name()
            ));
        }
        if rule.resource_names.is_some() || rule.non_resource_urls.is_some() {
            problems
                .push(format!("Role {}: resourceNames / nonResourceURLs are not expected", role_doc.name()));
        }
    }
    let bindings = m.all::<RoleBinding>("RoleBinding", &mut problems);
    let account = app.as_ref().and_then(|(_, a)| a.spec.service_account_name.clone());
    let app_namespace = app.as_ref().and_then(|(d, _)| d.namespace().map(str::to_owned));
    let bound = bindings.iter().any(|(doc, binding)| {
        doc.namespace() == role_doc.namespace()
            && binding.role_ref.kind == "Role"
            && binding.role_ref.api_group == "rbac.authorization.k8s.io"
            && binding.role_ref.name == role_doc.name()
            && binding.subjects.iter().flatten().any(|s| {
                s.kind == "ServiceAccount"
                    && Some(&s.name) == account.as_ref()
                    && s.namespace.as_ref() == app_namespace.as_ref()
            })
    });
    if !bound {
        problems.push(format!(
            "no RoleBinding in {:?} binds Role {} to ServiceAccount {app_namespace:?}/{account:?}",
            role_doc.namespace(),
            role_doc.name()
        ));
    }
    for (doc, binding) in &bindings {
        if binding.role_ref.kind != "Role"
            || m.find("Role", doc.namespace(), &binding.role_ref.name).is_none()
        {
            problems.push(format!("{}: roleRef is not a Role of these manifests", doc.describe()));
        }
    }
    problems
}

/// The Broker, the Triggers and the player are wired to each other and to the SpinApp, and
/// the delivery spec fits the component's status codes.
fn check_eventing(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let app = m.spin_app(&mut problems);
    let brokers = m.all::<Broker>("Broker", &mut problems);
    let triggers = m.all::<Trigger>("Trigger", &mut problems);
    // A reference to a Service: one of the manifests' Services, or the one the operator
    // makes for the SpinApp (same name and namespace).
    let resolves = |reference: &KReference, from: &Doc| -> bool {
        let ns = reference.namespace.as_deref().or(from.namespace());
        reference.api_version == "v1"
            && reference.kind == "Service"
            && (m.find("Service", ns, &reference.name).is_some()
                || app.as_ref().is_some_and(|(d, _)| d.name() == reference.name && d.namespace() == ns))
    };
    for (doc, broker) in &brokers {
        let Some(delivery) = &broker.spec.delivery else {
            problems.push(format!("{}: needs a delivery spec (retries, dead-letter sink)", doc.describe()));
            continue;
        };
        if !matches!(delivery.retry, Some(r) if r >= 1) {
            problems.push(format!(
                "{}: delivery.retry must be at least 1 (503 means: try again)",
                doc.describe()
            ));
        }
        if delivery.backoff_policy.as_deref() != Some("exponential") {
            problems.push(format!("{}: delivery.backoffPolicy should be exponential", doc.describe()));
        }
        if !matches!(delivery.backoff_delay.as_deref().and_then(iso8601_seconds), Some(s) if s > 0.0) {
            problems.push(format!(
                "{}: delivery.backoffDelay {:?} is not an ISO-8601 duration such as PT1S",
                doc.describe(),
                delivery.backoff_delay
            ));
        }
        match delivery.dead_letter_sink.as_ref().and_then(|d| d.reference.as_ref()) {
            Some(reference) if resolves(reference, doc) => {}
            other => problems.push(format!(
                "{}: deadLetterSink {other:?} is not a Service of these manifests",
                doc.describe()
            )),
        }
    }
    let mut component_triggers = 0;
    for (doc, trigger) in &triggers {
        if m.find("Broker", doc.namespace(), &trigger.spec.broker).is_none() {
            problems.push(format!("{}: broker {} does not exist", doc.describe(), trigger.spec.broker));
        }
        let Some(reference) = &trigger.spec.subscriber.reference else {
            problems.push(format!("{}: subscriber must be a ref", doc.describe()));
            continue;
        };
        if !resolves(reference, doc) {
            problems.push(format!(
                "{}: subscriber {reference:?} is not a Service of these manifests",
                doc.describe()
            ));
        }
        let to_app = app.as_ref().is_some_and(|(app_doc, _)| {
            reference.kind == "Service"
                && reference.name == app_doc.name()
                && reference.namespace.as_deref().or(doc.namespace()) == app_doc.namespace()
        });
        if to_app {
            component_triggers += 1;
            let attributes = trigger.spec.filter.as_ref().map(|f| f.attributes.clone()).unwrap_or_default();
            let expected = BTreeMap::from([("type".to_owned(), PENDING_TYPE.to_owned())]);
            if attributes != expected {
                problems.push(format!(
                    "{}: the component's Trigger must filter exactly type: {PENDING_TYPE}, filters {attributes:?}",
                    doc.describe()
                ));
            }
        }
    }
    if component_triggers != 1 {
        problems.push(format!(
            "expected one Trigger whose subscriber is the SpinApp's Service, found {component_triggers}"
        ));
    }
    // The player sends to the Broker's ingress.
    for (doc, deployment) in m.all::<Deployment>("Deployment", &mut problems) {
        let containers =
            deployment.spec.as_ref().and_then(|s| s.template.spec.as_ref()).map(|s| s.containers.clone());
        for container in containers.into_iter().flatten() {
            for env in container.env.iter().flatten().filter(|e| e.name == "BROKER_URI") {
                let uri = env.value.clone().unwrap_or_default();
                let known = brokers.iter().any(|(b, _)| {
                    uri == format!(
                        "http://broker-ingress.knative-eventing.svc.cluster.local/{}/{}",
                        b.namespace().unwrap_or(""),
                        b.name()
                    )
                });
                if !known {
                    problems.push(format!(
                        "{}: BROKER_URI {uri} is not the ingress of a Broker here",
                        doc.describe()
                    ));
                }
            }
        }
    }
    // Services select the pods of a Deployment here, on a port those pods have.
    for (doc, service) in m.all::<Service>("Service", &mut problems) {
        let spec = service.spec.unwrap_or_default();
        let selector = spec.selector.unwrap_or_default();
        let target = m.all::<Deployment>("Deployment", &mut Vec::new()).into_iter().find(|(d, dep)| {
            let labels = dep
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|md| md.labels.clone())
                .unwrap_or_default();
            d.namespace() == doc.namespace()
                && !selector.is_empty()
                && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        });
        let Some((_, deployment)) = target else {
            problems.push(format!("{}: selects no Deployment of these manifests", doc.describe()));
            continue;
        };
        let port_names: BTreeSet<String> = deployment
            .spec
            .and_then(|s| s.template.spec)
            .map(|s| s.containers)
            .into_iter()
            .flatten()
            .flat_map(|c| c.ports.unwrap_or_default())
            .filter_map(|p| p.name)
            .collect();
        for port in spec.ports.unwrap_or_default() {
            if let Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name)) =
                &port.target_port
                && !port_names.contains(name)
            {
                problems.push(format!("{}: targetPort {name} is not a container port", doc.describe()));
            }
        }
    }
    problems
}

/// The namespace the component writes to is the one the gateways route, and the gateways
/// match what the component writes on its pods.
fn check_gateway_routing(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((config_doc, config)) = m.component_config(&mut problems) else { return problems };
    let client_namespace = config.get("client_namespace").cloned().unwrap_or_default();
    let routed: Vec<&Doc> = m
        .of_kind("Namespace")
        .filter(|d| d.value["metadata"]["labels"][ROUTED_LABEL].as_str() == Some("true"))
        .collect();
    if routed.iter().map(|d| d.name()).collect::<Vec<_>>() != [client_namespace.as_str()] {
        problems.push(format!(
            "exactly the client namespace {client_namespace} must be labelled {ROUTED_LABEL}: \"true\"; labelled: {:?}",
            routed.iter().map(|d| d.name()).collect::<Vec<_>>()
        ));
    }
    if let Some((app_doc, _)) = m.spin_app(&mut problems)
        && app_doc.namespace() == Some(client_namespace.as_str())
    {
        problems.push("the SpinApp must not run in the routed client namespace".into());
    }
    let annotation = config.get("gateway_annotation").cloned().unwrap_or_default();
    let component_label = config.get("gateway_label").cloned().unwrap_or_default();
    let allowed: BTreeSet<String> = config
        .get("allowed_gateways")
        .map(|v| v.split(',').map(str::trim).filter(|g| !g.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    let gateways = m.helm(&mut problems);
    if gateways.is_empty() {
        problems.push("no pod-gateway values (deploy/pod-gateway-*-values.yaml)".into());
    }
    let mut names = BTreeSet::new();
    let mut tunnels = BTreeSet::new();
    for (file, values) in &gateways {
        let webhook = &values.webhook;
        if !values.routed_namespaces.contains(&client_namespace) {
            problems.push(format!(
                "{file}: routed_namespaces does not list the client namespace {client_namespace}"
            ));
        }
        match &webhook.namespace_selector {
            Some(s) if s.selector_type == "label" && s.label == ROUTED_LABEL => {}
            other => problems.push(format!(
                "{file}: webhook.namespaceSelector must be {{type: label, label: {ROUTED_LABEL}}}, is {other:?}"
            )),
        }
        if webhook.gateway_default != Some(false) {
            problems.push(format!(
                "{file}: webhook.gatewayDefault must be false, or every pod gets this gateway"
            ));
        }
        let webhook_annotation = webhook.gateway_annotation.clone().unwrap_or_else(|| "setGateway".into());
        if webhook_annotation != annotation {
            problems.push(format!(
                "{file}: webhook.gatewayAnnotation {webhook_annotation} but the component writes {annotation} \
                 ({})",
                config_doc.describe()
            ));
        }
        let Some(name) = webhook.gateway_annotation_value.clone().filter(|v| !v.is_empty()) else {
            problems.push(format!("{file}: webhook.gatewayAnnotationValue must name the gateway"));
            continue;
        };
        if !names.insert(name.clone()) {
            problems.push(format!("{file}: two gateways are named {name}"));
        }
        if !file.ends_with(&format!("pod-gateway-{name}-values.yaml")) {
            problems.push(format!("{file}: holds gateway {name}; name it pod-gateway-{name}-values.yaml"));
        }
        let webhook_label = webhook.gateway_label.clone().unwrap_or_else(|| "setGateway".into());
        let label_value = webhook.gateway_label_value.clone().unwrap_or_default();
        if !webhook_label.is_empty() && label_value.is_empty() {
            problems.push(format!(
                "{file}: webhook.gatewayLabel {webhook_label} without gatewayLabelValue parses the label as a \
                 boolean (a pod labelled with a gateway name makes the webhook fail): set gatewayLabel: \"\""
            ));
        }
        if !component_label.is_empty() && (webhook_label != component_label || label_value != name) {
            problems.push(format!(
                "{file}: the component labels pods {component_label}=<gateway>; the webhook must use that \
                 label with gatewayLabelValue {name}"
            ));
        }
        let network = values.settings.get(&PodGatewaySetting::VXLAN_IP_NETWORK).and_then(Value::as_str);
        let id = values.settings.get(&PodGatewaySetting::VXLAN_ID).map(Value::to_string);
        if let (Some(network), Some(dns)) = (network, &values.dns)
            && *dns != format!("{network}.1")
        {
            problems.push(format!("{file}: DNS {dns} must be the tunnel's gateway address {network}.1"));
        }
        if !tunnels.insert((id.clone(), network.map(str::to_owned))) {
            problems.push(format!(
                "{file}: VXLAN_ID/VXLAN_IP_NETWORK {id:?}/{network:?} used by another gateway"
            ));
        }
    }
    for gateway in &allowed {
        if !names.contains(gateway) {
            problems.push(format!("allowed_gateways lists {gateway}, but no pod-gateway values route it"));
        }
    }
    problems
}

/// `kubectl apply -k deploy/` applies exactly the manifests of deploy/.
fn check_kustomization(m: &Manifests) -> Vec<String> {
    let kustomization: Kustomization = match round_trip(&m.kustomization) {
        Ok(k) => k,
        Err(e) => return vec![format!("deploy/kustomization.yaml: {e}")],
    };
    let listed: BTreeSet<String> = kustomization.resources.iter().map(|r| format!("deploy/{r}")).collect();
    let manifests: BTreeSet<String> =
        m.docs.iter().filter(|d| d.file.starts_with("deploy/")).map(|d| d.file.clone()).collect();
    let mut problems = Vec::new();
    for file in manifests.difference(&listed) {
        problems.push(format!("deploy/kustomization.yaml does not list {file}"));
    }
    for file in listed.difference(&manifests) {
        problems.push(format!("deploy/kustomization.yaml lists {file}, which is not a manifest of deploy/"));
    }
    if kustomization.resources.len() != listed.len() {
        problems.push("deploy/kustomization.yaml lists a file twice".into());
    }
    problems
}

type Rule = fn(&Manifests) -> Vec<String>;

/// Every consistency rule, run together by `all_rules_hold_together`.
const RULES: [(&str, Rule); 10] = [
    ("known kinds and fields", check_known_kinds_and_fields),
    ("executor chain", check_executor_chain),
    ("variables", check_variables),
    ("config values", check_config_values),
    ("identity and TLS", check_identity_and_tls),
    ("RBAC", check_rbac),
    ("eventing", check_eventing),
    ("gateway routing", check_gateway_routing),
    ("kustomization", check_kustomization),
    ("no cluster-wide RBAC", check_no_cluster_rbac),
];

/// No ClusterRole or ClusterRoleBinding anywhere (also refused as an unknown kind).
fn check_no_cluster_rbac(m: &Manifests) -> Vec<String> {
    m.docs
        .iter()
        .filter(|d| d.kind().starts_with("Cluster"))
        .map(|d| format!("{}: no cluster-wide RBAC", d.describe()))
        .collect()
}

fn assert_holds(rule: Rule) {
    let problems = rule(&load());
    assert!(problems.is_empty(), "problems:\n  {}", problems.join("\n  "));
}

/// Breaks a copy of the manifests and returns what the rule reports.
fn broken(rule: Rule, mutate: impl FnOnce(&mut Manifests)) -> Vec<String> {
    let mut m = load();
    mutate(&mut m);
    rule(&m)
}

/// Asserts that the rule reports the breakage with a message containing `expected`.
fn assert_catches(rule: Rule, expected: &str, mutate: impl FnOnce(&mut Manifests)) {
    let problems = broken(rule, mutate);
    assert!(
        problems.iter().any(|p| p.contains(expected)),
        "expected a problem containing {expected:?}, got {problems:#?}"
    );
}

fn doc_mut<'a>(m: &'a mut Manifests, kind: &str, name: &str) -> &'a mut Value {
    &mut m
        .docs
        .iter_mut()
        .find(|d| d.kind() == kind && d.name() == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
        .value
}

fn spin_app_mut(m: &mut Manifests) -> &mut Value {
    &mut m.docs.iter_mut().find(|d| d.kind() == "SpinApp").expect("a SpinApp").value
}

fn config_mut(m: &mut Manifests) -> &mut Value {
    &mut m
        .docs
        .iter_mut()
        .find(|d| d.kind() == "ConfigMap" && d.value["data"].get("client_namespace").is_some())
        .expect("the component's ConfigMap")
        .value["data"]
}

fn variable_mut<'a>(m: &'a mut Manifests, name: &str) -> &'a mut Value {
    spin_app_mut(m)["spec"]["variables"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no SpinApp variable {name}"))
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn every_yaml_document_parses() {
    let files = yaml_files();
    assert!(files.len() >= 10, "manifests missing: {files:?}");
    for file in &files {
        let text = fs::read_to_string(root().join(file)).unwrap();
        let docs = parse_yaml_documents(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!docs.is_empty(), "{file}: no document");
        if !is_helm_values(file) {
            for doc in &docs {
                assert!(doc["apiVersion"].is_string() && doc["kind"].is_string(), "{file}: {doc}");
            }
        }
    }
    assert!(parse_yaml_documents("a: [1, 2\n").is_err(), "a broken document must not parse");
    // The manifests as a whole: what the other tests read.
    let m = load();
    for kind in ["Namespace", "ServiceAccount", "Secret", "Role", "RoleBinding", "ConfigMap", "SpinApp"] {
        assert!(m.of_kind(kind).next().is_some(), "no {kind}");
    }
    for kind in ["SpinAppExecutor", "RuntimeClass", "Broker", "Trigger", "Deployment", "Service"] {
        assert!(m.of_kind(kind).next().is_some(), "no {kind}");
    }
    assert_eq!(m.helm_values.len(), 2, "two pod-gateway values files (foo, bar)");
}

#[test]
fn core_kinds_are_k8s_openapi_objects_and_crd_kinds_have_the_expected_fields() {
    assert_holds(check_known_kinds_and_fields);
}

#[test]
fn an_unknown_field_in_a_core_kind_is_caught() {
    assert_catches(check_known_kinds_and_fields, "spec.replica", |m| {
        doc_mut(m, "Deployment", "cloudevents-player")["spec"]["replica"] = json!(1);
    });
    assert_catches(check_known_kinds_and_fields, "rules[0].verb", |m| {
        doc_mut(m, "Role", "client-provisioner")["rules"][0]["verb"] = json!(["list"]);
    });
    assert_catches(check_known_kinds_and_fields, "metadata.label", |m| {
        doc_mut(m, "Namespace", "podgateway-clients")["metadata"]["label"] = json!({"a": "b"});
    });
}

#[test]
fn an_unknown_or_mistyped_field_in_a_crd_kind_is_caught() {
    assert_catches(check_known_kinds_and_fields, "serviceAccount", |m| {
        spin_app_mut(m)["spec"]["serviceAccount"] = json!("client-provisioner");
    });
    assert_catches(check_known_kinds_and_fields, "invalid type: string \"two\"", |m| {
        spin_app_mut(m)["spec"]["replicas"] = json!("two");
    });
    assert_catches(check_known_kinds_and_fields, "runtimeClass", |m| {
        doc_mut(m, "SpinAppExecutor", "containerd-shim-spin")["spec"]["deploymentConfig"]["runtimeClass"] =
            json!("wasmtime-spin-v2");
    });
    assert_catches(check_known_kinds_and_fields, "retryAfterMax", |m| {
        doc_mut(m, "Broker", "podgateway")["spec"]["delivery"]["retryAfterMax"] = json!("PT30S");
    });
    assert_catches(check_known_kinds_and_fields, "filters", |m| {
        doc_mut(m, "Trigger", "client-provisioner")["spec"]["filters"] = json!([]);
    });
}

#[test]
fn a_cluster_role_or_an_unexpected_kind_is_caught() {
    let cluster_role = |m: &mut Manifests| {
        m.docs.push(Doc {
            file: "deploy/rbac.yaml".into(),
            value: json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                          "metadata": {"name": "x"}, "rules": []}),
        });
    };
    assert_catches(check_known_kinds_and_fields, "no cluster-wide RBAC", cluster_role);
    assert_catches(check_no_cluster_rbac, "no cluster-wide RBAC", cluster_role);
    assert_catches(check_known_kinds_and_fields, "unexpected kind", |m| {
        m.docs.push(Doc {
            file: "deploy/x.yaml".into(),
            value: json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": "podgateway-system"}}),
        });
    });
    assert_catches(check_known_kinds_and_fields, "defined twice", |m| {
        let copy = m.docs.iter().find(|d| d.kind() == "ConfigMap").unwrap().clone();
        m.docs.push(copy);
    });
}

#[test]
fn no_cluster_wide_rbac() {
    assert_holds(check_no_cluster_rbac);
}

#[test]
fn the_spin_app_runs_on_the_shim_executor_and_its_runtime_class() {
    assert_holds(check_executor_chain);
}

#[test]
fn a_broken_executor_chain_is_caught() {
    assert_catches(check_executor_chain, "is not a SpinAppExecutor", |m| {
        spin_app_mut(m)["spec"]["executor"] = json!("containerd-shim-spn");
    });
    assert_catches(check_executor_chain, "is not a SpinAppExecutor", |m| {
        doc_mut(m, "SpinAppExecutor", "containerd-shim-spin")["metadata"]["namespace"] = json!("default");
    });
    assert_catches(check_executor_chain, "is not a RuntimeClass", |m| {
        doc_mut(m, "SpinAppExecutor", "containerd-shim-spin")["spec"]["deploymentConfig"]["runtimeClassName"] =
            json!("wasmtime-spin");
    });
    assert_catches(check_executor_chain, "handler", |m| {
        doc_mut(m, "RuntimeClass", "wasmtime-spin-v2")["handler"] = json!("spin-v2");
    });
    assert_catches(check_executor_chain, "version tag", |m| {
        spin_app_mut(m)["spec"]["image"] = json!("localhost:5001/podgateway-client-provisioner:latest");
    });
    assert_catches(check_executor_chain, "not in deploy/namespace.yaml", |m| {
        doc_mut(m, "Broker", "podgateway")["metadata"]["namespace"] = json!("podgateway");
    });
}

#[test]
fn every_spin_variable_is_fed_from_the_config_map_or_the_token_secret() {
    assert_holds(check_variables);
}

#[test]
fn a_variable_mismatch_with_spin_toml_is_caught() {
    assert_catches(check_variables, "is not a variable of spin.toml", |m| {
        variable_mut(m, "dry_run")["name"] = json!("dryrun");
    });
    assert_catches(check_variables, "has no default and the SpinApp does not set it", |m| {
        let mut required = toml::Table::new();
        required.insert("required".into(), toml::Value::Boolean(true));
        m.spin["variables"].as_table_mut().unwrap().insert("gateway_namespace".into(), required.into());
    });
    assert_catches(check_variables, "is not set by the SpinApp", |m| {
        spin_app_mut(m)["spec"]["variables"].as_array_mut().unwrap().retain(|v| v["name"] != "client_image");
    });
    assert_catches(check_variables, "has no key", |m| {
        variable_mut(m, "client_image")["valueFrom"]["configMapKeyRef"]["key"] = json!("client-image");
    });
    assert_catches(check_variables, "no ConfigMap", |m| {
        variable_mut(m, "client_image")["valueFrom"]["configMapKeyRef"]["name"] = json!("other-config");
    });
    assert_catches(check_variables, "is secret in spin.toml but read from ConfigMap", |m| {
        variable_mut(m, "k8s_token")["valueFrom"] =
            json!({"configMapKeyRef": {"name": "client-provisioner-config", "key": "k8s_api_url"}});
    });
    assert_catches(check_variables, "exactly one valueFrom", |m| {
        *variable_mut(m, "client_image") = json!({"name": "client_image", "value": "alpine/curl"});
    });
    assert_catches(check_variables, "is not read by any SpinApp variable", |m| {
        config_mut(m)["client_imagee"] = json!("alpine/curl");
    });
    assert_catches(check_variables, "no Secret", |m| {
        variable_mut(m, "k8s_token")["valueFrom"]["secretKeyRef"]["name"] = json!("client-provisioner-tokn");
    });
}

#[test]
fn the_configured_values_are_accepted_by_the_component() {
    assert_holds(check_config_values);
}

#[test]
fn a_bad_configured_value_is_caught() {
    assert_catches(check_config_values, "client_command", |m| {
        config_mut(m)["client_command"] = json!("sleep infinity");
    });
    assert_catches(check_config_values, "k8s_timeout_seconds", |m| {
        config_mut(m)["k8s_timeout_seconds"] = json!("10s");
    });
    assert_catches(check_config_values, "dry_run", |m| config_mut(m)["dry_run"] = json!("yes"));
    assert_catches(check_config_values, "k8s_api_url", |m| {
        config_mut(m)["k8s_api_url"] = json!("kubernetes.default.svc");
    });
    assert_catches(check_config_values, "client_active_deadline_seconds", |m| {
        config_mut(m)["client_active_deadline_seconds"] = json!("-1");
    });
}

#[test]
fn the_token_comes_from_the_spin_apps_service_account_and_the_api_ca_is_trusted() {
    assert_holds(check_identity_and_tls);
}

#[test]
fn a_broken_identity_or_tls_setup_is_caught() {
    assert_catches(check_identity_and_tls, "is not a ServiceAccount", |m| {
        spin_app_mut(m)["spec"]["serviceAccountName"] = json!("default-sa");
    });
    assert_catches(check_identity_and_tls, "service-account.name", |m| {
        doc_mut(m, "Secret", "client-provisioner-token")["metadata"]["annotations"]["kubernetes.io/service-account.name"] =
            json!("default");
    });
    assert_catches(check_identity_and_tls, "kubernetes.io/service-account-token", |m| {
        doc_mut(m, "Secret", "client-provisioner-token")["type"] = json!("Opaque");
    });
    assert_catches(check_identity_and_tls, "no [[client_tls]] for the API host", |m| {
        config_mut(m)["k8s_api_url"] = json!("https://kubernetes.default.svc.cluster.local");
    });
    assert_catches(check_identity_and_tls, "name none of spin.toml's components", |m| {
        let rc = &mut doc_mut(m, "Secret", "client-provisioner-runtime-config")["stringData"]["runtime-config.toml"];
        *rc = json!(rc.as_str().unwrap().replace("\"client-provisioner\"", "\"provisioner\""));
    });
    assert_catches(check_identity_and_tls, "runtime-config.toml", |m| {
        let rc = &mut doc_mut(m, "Secret", "client-provisioner-runtime-config")["stringData"]["runtime-config.toml"];
        *rc = json!(rc.as_str().unwrap().replace("ca_roots_file", "ca_root_file"));
    });
    assert_catches(check_identity_and_tls, "is not a Secret", |m| {
        spin_app_mut(m)["spec"]["runtimeConfig"]["loadFromSecret"] = json!("runtime-config");
    });
}

#[test]
fn the_role_grants_exactly_what_the_component_calls_in_the_client_namespace() {
    assert_holds(check_rbac);
}

#[test]
fn a_role_granting_more_or_less_or_elsewhere_is_caught() {
    assert_catches(check_rbac, "grants verbs", |m| {
        doc_mut(m, "Role", "client-provisioner")["rules"][0]["verbs"] = json!(["create", "get", "list"]);
    });
    assert_catches(check_rbac, "grants verbs", |m| {
        doc_mut(m, "Role", "client-provisioner")["rules"][0]["verbs"] = json!(["create"]);
    });
    assert_catches(check_rbac, "only uses core pods", |m| {
        doc_mut(m, "Role", "client-provisioner")["rules"][0]["resources"] = json!(["pods", "secrets"]);
    });
    assert_catches(check_rbac, "expected one rule", |m| {
        let rules = doc_mut(m, "Role", "client-provisioner")["rules"].as_array_mut().unwrap();
        rules.push(json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}));
    });
    assert_catches(check_rbac, "the component creates pods in", |m| {
        doc_mut(m, "Role", "client-provisioner")["metadata"]["namespace"] = json!("podgateway-system");
    });
    assert_catches(check_rbac, "binds Role", |m| {
        doc_mut(m, "RoleBinding", "client-provisioner")["subjects"][0]["namespace"] =
            json!("podgateway-clients");
    });
    assert_catches(check_rbac, "binds Role", |m| {
        spin_app_mut(m)["spec"]["serviceAccountName"] = json!("other");
    });
}

#[test]
fn broker_triggers_and_player_are_wired_to_the_component() {
    assert_holds(check_eventing);
}

#[test]
fn broken_eventing_wiring_is_caught() {
    assert_catches(check_eventing, "subscriber", |m| {
        doc_mut(m, "Trigger", "client-provisioner")["spec"]["subscriber"]["ref"]["name"] =
            json!("provisioner");
    });
    assert_catches(check_eventing, "must filter exactly type", |m| {
        doc_mut(m, "Trigger", "client-provisioner")["spec"]["filter"]["attributes"]["type"] =
            json!("io.podgateway.client.pending.v1");
    });
    assert_catches(check_eventing, "broker podgateway-broker does not exist", |m| {
        doc_mut(m, "Trigger", "client-provisioner")["spec"]["broker"] = json!("podgateway-broker");
    });
    assert_catches(check_eventing, "deadLetterSink", |m| {
        doc_mut(m, "Broker", "podgateway")["spec"]["delivery"]["deadLetterSink"]["ref"]["name"] =
            json!("event-display");
    });
    assert_catches(check_eventing, "delivery.retry", |m| {
        doc_mut(m, "Broker", "podgateway")["spec"]["delivery"]["retry"] = json!(0);
    });
    assert_catches(check_eventing, "backoffDelay", |m| {
        doc_mut(m, "Broker", "podgateway")["spec"]["delivery"]["backoffDelay"] = json!("1s");
    });
    assert_catches(check_eventing, "BROKER_URI", |m| {
        let env = &mut doc_mut(m, "Deployment", "cloudevents-player")["spec"]["template"]["spec"]["containers"]
            [0]["env"];
        env[1]["value"] = json!("http://broker-ingress.knative-eventing.svc.cluster.local/default/default");
    });
    assert_catches(check_eventing, "selects no Deployment", |m| {
        doc_mut(m, "Service", "cloudevents-player")["spec"]["selector"] = json!({"app": "player"});
    });
    assert_catches(check_eventing, "expected one Trigger", |m| {
        doc_mut(m, "Trigger", "client-provisioner")["spec"]["subscriber"]["ref"]["name"] =
            json!("cloudevents-player");
    });
}

#[test]
fn the_component_writes_to_the_namespace_the_gateways_route() {
    assert_holds(check_gateway_routing);
}

#[test]
fn routing_mismatches_are_caught() {
    assert_catches(check_gateway_routing, "must be labelled", |m| {
        config_mut(m)["client_namespace"] = json!("podgateway-system");
    });
    assert_catches(check_gateway_routing, "must be labelled", |m| {
        doc_mut(m, "Namespace", "podgateway-clients")["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove(ROUTED_LABEL);
    });
    assert_catches(check_gateway_routing, "routed_namespaces", |m| {
        m.helm_values.get_mut("deploy/pod-gateway-foo-values.yaml").unwrap()["routed_namespaces"] =
            json!(["default"]);
    });
    assert_catches(check_gateway_routing, "gatewayAnnotation", |m| {
        config_mut(m)["gateway_annotation"] = json!("podgateway.io/gateway");
    });
    assert_catches(check_gateway_routing, "gatewayDefault", |m| {
        m.helm_values.get_mut("deploy/pod-gateway-bar-values.yaml").unwrap()["webhook"]["gatewayDefault"] =
            json!(true);
    });
    assert_catches(check_gateway_routing, "two gateways are named foo", |m| {
        m.helm_values.get_mut("deploy/pod-gateway-bar-values.yaml").unwrap()["webhook"]["gatewayAnnotationValue"] =
            json!("foo");
    });
    assert_catches(check_gateway_routing, "allowed_gateways lists baz", |m| {
        config_mut(m)["allowed_gateways"] = json!("foo,bar,baz");
    });
    assert_catches(check_gateway_routing, "parses the label as a", |m| {
        m.helm_values.get_mut("deploy/pod-gateway-foo-values.yaml").unwrap()["webhook"]
            .as_object_mut()
            .unwrap()
            .remove("gatewayLabel");
    });
    assert_catches(check_gateway_routing, "the component labels pods", |m| {
        config_mut(m)["gateway_label"] = json!("setGateway");
    });
    assert_catches(check_gateway_routing, "deploy/pod-gateway-foo-values.yaml", |m| {
        m.helm_values.get_mut("deploy/pod-gateway-foo-values.yaml").unwrap()["routed_namespace"] = json!([]);
    });
    assert_catches(check_gateway_routing, "used by another gateway", |m| {
        let bar = m.helm_values.get_mut("deploy/pod-gateway-bar-values.yaml").unwrap();
        bar["settings"]["VXLAN_ID"] = json!(42);
        bar["settings"]["VXLAN_IP_NETWORK"] = json!("172.16.0");
        bar["DNS"] = json!("172.16.0.1");
    });
    assert_catches(check_gateway_routing, "must not run in the routed client namespace", |m| {
        spin_app_mut(m)["metadata"]["namespace"] = json!("podgateway-clients");
        doc_mut(m, "ConfigMap", "client-provisioner-config")["metadata"]["namespace"] =
            json!("podgateway-clients");
    });
}

#[test]
fn kustomize_applies_every_manifest_of_deploy() {
    assert_holds(check_kustomization);
}

#[test]
fn a_kustomization_missing_a_file_is_caught() {
    assert_catches(check_kustomization, "does not list deploy/trigger.yaml", |m| {
        m.kustomization["resources"].as_array_mut().unwrap().retain(|r| r != "trigger.yaml");
    });
    assert_catches(check_kustomization, "lists deploy/service.yaml", |m| {
        m.kustomization["resources"].as_array_mut().unwrap().push(json!("service.yaml"));
    });
    assert_catches(check_kustomization, "unknown field `namespace`", |m| {
        m.kustomization["namespace"] = json!("podgateway-system");
    });
}

#[test]
fn all_rules_hold_together() {
    // Every rule on the real files in one list: the summary to read first when something
    // is off (each rule also has its own test, and a test that breaks it).
    let m = load();
    let problems: Vec<String> = RULES
        .iter()
        .flat_map(|(name, rule)| rule(&m).into_iter().map(move |p| format!("[{name}] {p}")))
        .collect();
    assert!(problems.is_empty(), "problems:\n  {}", problems.join("\n  "));
}

#[test]
fn helpers_read_urls_and_durations() {
    assert_eq!(url_host("https://kubernetes.default.svc"), Some("kubernetes.default.svc"));
    assert_eq!(url_host("https://kubernetes.default.svc:443/x"), Some("kubernetes.default.svc"));
    assert_eq!(url_host("http://127.0.0.1:8001/"), Some("127.0.0.1"));
    assert_eq!(url_host("kubernetes.default.svc"), None);
    assert_eq!(iso8601_seconds("PT1S"), Some(1.0));
    assert_eq!(iso8601_seconds("PT0.5S"), Some(0.5));
    assert_eq!(iso8601_seconds("PT1M30S"), Some(90.0));
    assert_eq!(iso8601_seconds("1s"), None);
    assert_eq!(iso8601_seconds("PT"), None);
}
