//! The namespace the component writes to is the one the gateways route, and the gateways
//! (pod-gateway Helm values) match what the component writes on its pods.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::crds::{PodGatewaySetting, PodGatewayValues};
use crate::load::{Doc, HelmRelease, Manifests};

/// The label every pod-gateway webhook selects namespaces by (`routed-gateway: "true"`).
pub const ROUTED_LABEL: &str = "routed-gateway";
/// The chart's default `gatewayLabel` and `gatewayAnnotation`.
const CHART_DEFAULT_KEY: &str = "setGateway";

/// A setting of the component's ConfigMap, empty when it is not there (check_config_values
/// reports that).
fn setting(config: &BTreeMap<String, String>, key: &str) -> String {
    config.get(key).cloned().unwrap_or_default()
}

/// The pod-gateway values, by file; none is a problem.
fn gateways(m: &Manifests, problems: &mut Vec<String>) -> Vec<(String, PodGatewayValues)> {
    let gateways = m.helm(problems);
    if gateways.is_empty() {
        problems.push("no pod-gateway values (deploy/pod-gateway-*-values.yaml)".into());
    }
    gateways
}

/// The gateway a values file routes to: its webhook's annotation value.
fn gateway_name(values: &PodGatewayValues) -> Option<String> {
    values.webhook.gateway_annotation_value.clone().filter(|v| !v.is_empty())
}

/// Exactly the client namespace is labelled for the gateways, and the SpinApp does not run
/// there.
pub fn check_routed_namespace(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(client_namespace) = m.client_namespace(&mut problems) else { return problems };
    let routed: Vec<&str> = m
        .of_kind("Namespace")
        .filter(|d| d.value["metadata"]["labels"][ROUTED_LABEL].as_str() == Some("true"))
        .map(Doc::name)
        .collect();
    if routed != [client_namespace.as_str()] {
        problems.push(format!(
            "exactly the client namespace {client_namespace} must be labelled {ROUTED_LABEL}: \"true\"; labelled: {routed:?}"
        ));
    }
    if let Some((app_doc, _)) = m.spin_app(&mut problems)
        && app_doc.namespace() == Some(client_namespace.as_str())
    {
        problems.push("the SpinApp must not run in the routed client namespace".into());
    }
    problems
}

/// Every gateway's webhook looks at the client namespace, by its label, and routes only the
/// pods that carry the annotation the component writes.
pub fn check_gateway_webhooks(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((config_doc, config)) = m.component_config(&mut problems) else { return problems };
    let client_namespace = setting(&config, "client_namespace");
    let annotation = setting(&config, "gateway_annotation");
    for (file, values) in gateways(m, &mut problems) {
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
        let webhook_annotation =
            webhook.gateway_annotation.clone().unwrap_or_else(|| CHART_DEFAULT_KEY.into());
        if webhook_annotation != annotation {
            problems.push(format!(
                "{file}: webhook.gatewayAnnotation {webhook_annotation} but the component writes {annotation} \
                 ({})",
                config_doc.describe()
            ));
        }
    }
    problems
}

/// Every gateway has a name of its own, which its file is named after; allowed_gateways
/// lists only those names.
pub fn check_gateway_names(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((_, config)) = m.component_config(&mut problems) else { return problems };
    let mut names = BTreeSet::new();
    for (file, values) in gateways(m, &mut problems) {
        let Some(name) = gateway_name(&values) else {
            problems.push(format!("{file}: webhook.gatewayAnnotationValue must name the gateway"));
            continue;
        };
        if !names.insert(name.clone()) {
            problems.push(format!("{file}: two gateways are named {name}"));
        }
        if !file.ends_with(&format!("pod-gateway-{name}-values.yaml")) {
            problems.push(format!("{file}: holds gateway {name}; name it pod-gateway-{name}-values.yaml"));
        }
    }
    let allowed = setting(&config, "allowed_gateways");
    let allowed: BTreeSet<&str> = allowed.split(',').map(str::trim).filter(|g| !g.is_empty()).collect();
    for gateway in allowed {
        if !names.contains(gateway) {
            problems.push(format!("allowed_gateways lists {gateway}, but no pod-gateway values route it"));
        }
    }
    problems
}

/// Every gateway's webhook reads the gateway label the way the component writes it: the
/// component's label with the gateway's name as a string, or no label at all.
pub fn check_gateway_labels(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((_, config)) = m.component_config(&mut problems) else { return problems };
    let component_label = setting(&config, "gateway_label");
    for (file, values) in gateways(m, &mut problems) {
        // A gateway without a name is reported by check_gateway_names.
        let Some(name) = gateway_name(&values) else { continue };
        let webhook_label = values.webhook.gateway_label.clone().unwrap_or_else(|| CHART_DEFAULT_KEY.into());
        let label_value = values.webhook.gateway_label_value.clone().unwrap_or_default();
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
    }
    problems
}

/// Every gateway has a tunnel of its own (VXLAN id and network), and its DNS server is the
/// tunnel's gateway address.
pub fn check_gateway_tunnels(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let mut tunnels = BTreeSet::new();
    for (file, values) in gateways(m, &mut problems) {
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
    problems
}

/// The chart versions from which the gateway Service is `<fullname>-main` and the webhook's
/// `gateway` points at it (7.0.0–7.0.2 point at `<fullname>`, which no longer exists).
const MAIN_SUFFIX_SINCE: (u32, u32, u32) = (7, 0, 3);

fn chart_version(version: &str) -> Option<(u32, u32, u32)> {
    let mut parts = version.trim_start_matches('v').split('.').map(|part| part.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

/// The gateway Service a release's webhook injects as `gateway` (chart templates
/// `pod-gateway.gateway`, bjw-s `fullname`): `<fullname>[-main].<namespace>.svc.cluster.local`.
fn gateway_service(release: &HelmRelease) -> Result<String, String> {
    let version =
        chart_version(&release.version).ok_or(format!("chart version {:?} is not x.y.z", release.version))?;
    let fullname = if release.name.contains("pod-gateway") {
        release.name.clone()
    } else {
        format!("{}-pod-gateway", release.name)
    };
    match version {
        (7, 0, 0..=2) => Err(format!(
            "chart {} points the webhook at a Service that does not exist; use 7.0.3 or later",
            release.version
        )),
        v if v >= MAIN_SUFFIX_SINCE => Ok(format!("{fullname}-main.{}.svc.cluster.local", release.namespace)),
        _ => Ok(format!("{fullname}.{}.svc.cluster.local", release.namespace)),
    }
}

/// gateway_address_template names, for every gateway, the Service its release's webhook puts
/// in the injected containers' `gateway`, so that the component checks the real address.
pub fn check_gateway_address_template(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((_, config)) = m.component_config(&mut problems) else { return problems };
    let template = setting(&config, "gateway_address_template");
    if template.is_empty() {
        problems
            .push("gateway_address_template is empty: routed pods' gateway addresses go unchecked".into());
    }
    for (file, values) in gateways(m, &mut problems) {
        let Some(release) = m.helm_releases.get(&file) else {
            problems.push(format!("{file}: no `helm upgrade --install <release> <chart> --version … --namespace …` in its header"));
            continue;
        };
        if release.chart != "angelnu/pod-gateway" {
            problems.push(format!("{file}: installs chart {}, not angelnu/pod-gateway", release.chart));
        }
        let (Some(gateway), Ok(address)) = (gateway_name(&values), gateway_service(release)) else {
            if let Err(problem) = gateway_service(release) {
                problems.push(format!("{file}: {problem}"));
            }
            continue;
        };
        let rendered = template.replace("{gateway}", &gateway);
        if !template.is_empty() && rendered != address {
            problems.push(format!(
                "{file}: gateway_address_template gives {rendered} for gateway {gateway}, but release {} \
                 (chart {}) routes through {address}",
                release.name, release.version
            ));
        }
    }
    problems
}

/// The first chart version whose default webhook image (v3.12.0) has `--sidecarAsInit`; 6.6.0
/// has the value but still ships v3.10.0, which lacks the flag.
const NATIVE_SIDECAR_SINCE: (u32, u32, u32) = (6, 6, 1);

/// The gateways run their sidecar as a native sidecar, so that a client pod whose containers
/// end can complete (a classic sidecar keeps it running), on a chart that supports it.
pub fn check_native_sidecar(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    for (file, values) in gateways(m, &mut problems) {
        if values.webhook.sidecar_as_init != Some(true) {
            problems.push(format!(
                "{file}: webhook.sidecarAsInit must be true: with the classic sidecar a finished client pod keeps running"
            ));
        }
        let version = m.helm_releases.get(&file).and_then(|release| chart_version(&release.version));
        if version.is_none_or(|version| version < NATIVE_SIDECAR_SINCE) {
            problems.push(format!(
                "{file}: webhook.sidecarAsInit needs chart 6.6.1 or later (webhook image v3.12.0), installed: {:?}",
                m.helm_releases.get(&file).map(|release| &release.version)
            ));
        }
    }
    problems
}
