//! Typed views of the CRD kinds, the Helm values and Spin's runtime config: the fields this
//! project uses. A field that is not here is refused (`deny_unknown_fields`, and
//! `round_trip` for what serde would drop silently); add it here (with the type the CRD
//! gives it) to use it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::EnvVarSource;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Deserializes into `T`, serializes back and compares with the original: anything `T`
/// does not know is dropped on the way and reported as unknown.
pub fn round_trip<T: DeserializeOwned + Serialize>(value: &Value) -> Result<T, String> {
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

/// `core.spinkube.dev/v1alpha1` SpinApp (Spin Operator v0.6).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SpinApp {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: SpinAppSpec,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SpinAppSpec {
    pub image: String,
    pub executor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_autoscaling: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<SpinAppResources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<SpinAppRuntimeConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<SpinVar>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpinAppResources {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<BTreeMap<String, Quantity>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<BTreeMap<String, Quantity>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SpinAppRuntimeConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_from_secret: Option<String>,
    /// Ignored by the operator when `loadFromSecret` is set (spin-operator
    /// internal/runtimeconfig/runtime_config.go).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_value_stores: Vec<SpinAppKeyValueStore>,
}

/// A `runtimeConfig.keyValueStores` entry: a `[key_value_store.<name>]` table of the runtime
/// config the operator writes.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpinAppKeyValueStore {
    pub name: String,
    #[serde(rename = "type")]
    pub store_type: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<Value>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SpinVar {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// `core.spinkube.dev/v1alpha1` SpinAppExecutor.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SpinAppExecutor {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: SpinAppExecutorSpec,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SpinAppExecutorSpec {
    pub create_deployment: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_config: Option<ExecutorDeploymentConfig>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecutorDeploymentConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spin_image: Option<String>,
    #[serde(rename = "installDefaultCACerts", skip_serializing_if = "Option::is_none")]
    pub install_default_ca_certs: Option<bool>,
    #[serde(rename = "caCertSecret", skip_serializing_if = "Option::is_none")]
    pub ca_cert_secret: Option<String>,
}

/// `eventing.knative.dev/v1` Broker.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Broker {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: BrokerSpec,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<KReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

/// Knative's delivery spec, without `timeout` and `retryAfterMax`: both are refused by the
/// Knative webhook unless a feature flag is enabled in config-features (broker.yaml).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeliverySpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_delay: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_sink: Option<Destination>,
}

/// Knative's duckv1 Destination (knative.dev/pkg apis/duck/v1/destination.go), without
/// `CACerts`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<KReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// The OIDC audience a sender with `authentication-oidc` enabled asks a token for; for
    /// a target that is no Addressable (a v1 Service) the only place it can come from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `eventing.knative.dev/v1` Trigger.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Trigger {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: TriggerSpec,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    pub broker: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<TriggerFilter>,
    pub subscriber: Destination,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerFilter {
    pub attributes: BTreeMap<String, String>,
}

/// `sources.knative.dev/v1` ApiServerSource (knative/eventing
/// config/core/resources/apiserversource.yaml, pkg/apis/sources/v1/apiserver_types.go).
/// Without `owner`, `ceOverrides` and `filters` (the last needs a feature flag).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiServerSource {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: ApiServerSourceSpec,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiServerSourceSpec {
    /// `Reference` (the default) or `Resource`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Knative's default: `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    pub resources: Vec<ApiServerResource>,
    /// None: the source's own namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    pub sink: Destination,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiServerResource {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// `eventing.knative.dev/v1beta2` EventType, the version Knative stores (eventtypes.yaml
/// says why not v1beta3). Without `schemaData` and the deprecated `broker`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EventType {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: EventTypeSpec,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventTypeSpec {
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<KReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `eventing.knative.dev/v1alpha1` EventPolicy (Knative Eventing 1.15+; knative/eventing
/// config/core/resources/eventpolicy.yaml, pkg/apis/eventing/v1alpha1/eventpolicy_types.go):
/// who may send to the receivers of `to`. Without `to[].selector` and `filters` (1.16+).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EventPolicy {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: EventPolicySpec,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventPolicySpec {
    /// Empty: every receiver in the policy's namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<EventPolicyTo>,
    /// Empty: nobody.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<EventPolicyFrom>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventPolicyTo {
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<EventPolicyToReference>,
}

/// A receiver in the policy's own namespace: the CRD has no `namespace` here (the API
/// server would drop one silently).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EventPolicyToReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

/// One allowed sender: a `ref` to an object whose OIDC ServiceAccount Knative resolves, or
/// a `sub`ject (exact, or ending in `*`: any suffix). Knative takes exactly one of them.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventPolicyFrom {
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<KReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
}

/// `kustomize.config.k8s.io/v1beta1` Kustomization: only plain resources, so that what
/// `kubectl apply -k deploy/` applies is exactly what these tests check.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Kustomization {
    pub api_version: String,
    pub kind: String,
    pub resources: Vec<String>,
}

/// Values of the angelnu/pod-gateway chart (7.x; the keys used here exist since 6.5).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PodGatewayValues {
    #[serde(default)]
    pub routed_namespaces: Vec<String>,
    pub webhook: PodGatewayWebhook,
    #[serde(rename = "DNS", skip_serializing_if = "Option::is_none")]
    pub dns: Option<String>,
    #[serde(rename = "DNSPolicy", skip_serializing_if = "Option::is_none")]
    pub dns_policy: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<PodGatewaySetting, Value>,
}

/// The keys of the chart's `settings` (its settings.sh).
#[derive(Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum PodGatewaySetting {
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
pub struct PodGatewayWebhook {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<NamespaceSelectorValues>,
    /// Chart default: true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_default: Option<bool>,
    /// Chart default: "setGateway".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_label_value: Option<String>,
    /// Chart default: "setGateway".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_annotation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_annotation_value: Option<String>,
    /// The gateway sidecar as a native sidecar (an init container with `restartPolicy:
    /// Always`); chart 6.6.0+, and a webhook image of v3.12.0 or later.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sidecar_as_init: Option<bool>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceSelectorValues {
    #[serde(rename = "type")]
    pub selector_type: String,
    pub label: String,
}

/// One `[[client_tls]]` entry of Spin's runtime config (spin-factor-outbound-networking).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // every field is read by serde's deny_unknown_fields, not all by checks
pub struct ClientTls {
    pub component_ids: Vec<String>,
    pub hosts: Vec<String>,
    pub ca_use_webpki_roots: Option<bool>,
    pub ca_roots_file: Option<String>,
    pub client_cert_file: Option<String>,
    pub client_private_key_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfigToml {
    #[serde(default)]
    pub client_tls: Vec<ClientTls>,
    /// `[key_value_store.<label>]` tables; their keys depend on the store's `type`.
    #[serde(default)]
    pub key_value_store: BTreeMap<String, toml::Table>,
}
