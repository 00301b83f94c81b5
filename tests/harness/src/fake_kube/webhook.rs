//! The pod-gateway admission webhook, as the fake kube-apiserver calls it on pod CREATE (dry
//! runs too: its `sideEffects` is `None`). One [`PodGatewayWebhook`] per pod-gateway release.
//!
//! What it does follows angelnu/gateway-admision-controller v3.10–v3.12
//! (`internal/mutation/gatewayPodMutator.go`) with the flags chart angelnu/pod-gateway passes
//! it, and how the apiserver calls it follows `apiserver/pkg/admission/plugin/webhook`:
//!
//! - The chart's MutatingWebhookConfiguration (named like the release) holds one webhook,
//!   `<release>.svc.cluster.local`, for pods in namespaces labelled `<label>: "true"`, served
//!   at `https://<release>-webhook.<namespace>.svc:8080/wh/mutating/setgateway`, with no
//!   `failurePolicy`, which the API defaults to `Fail`. Configurations are called in name
//!   order, each on the previous one's output.
//! - Decision: start from `--setGatewayDefault`; a pod label `--setGatewayLabel` makes it
//!   `value == --setGatewayLabelValue`, or `ParseBool(value)` without a label value (an
//!   unparsable value fails the webhook with HTTP 500); the annotation is read the same way
//!   afterwards and wins.
//! - A routed pod gets, appended: DNS (`dnsConfig.nameservers` replaced by the DNS IPs, with
//!   `dnsPolicy: None` also the webhook's search domains and options, then `dnsPolicy`); the
//!   init container `gateway-init` after the pod's own init containers; `gateway-sidecar` at
//!   the end of `containers`, or with `--sidecarAsInit` (v3.12.0+) after `gateway-init` in
//!   `initContainers` with `restartPolicy: Always`; the volume `gateway-configmap`. Both
//!   containers carry env `gateway` (the `--gateway` flag, the gateway Service's DNS name),
//!   `DNS`, `DNS_ips`, `K8S_DNS_ips`. Nothing is checked for an earlier mutation.
//! - A webhook that cannot be called fails the create with 500 `InternalError` under `Fail`;
//!   under `Ignore` the pod is admitted unchanged.

use serde_json::{Map, Value, json};

use super::status::{Reply, Status};

/// What the API server does when the webhook cannot be called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    Fail,
    Ignore,
}

/// One pod-gateway release's admission webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct PodGatewayWebhook {
    /// The Helm release, which the chart also uses as its full name: `pod-gateway-foo`.
    pub release: String,
    /// The release's namespace.
    pub namespace: String,
    /// Namespaces with this label set to `"true"` are routed (`webhook.namespaceSelector`).
    pub namespace_label: String,
    pub gateway_default: bool,
    pub annotation: String,
    pub annotation_value: Option<String>,
    /// Empty: no label mode.
    pub label: String,
    pub label_value: Option<String>,
    /// The `gateway` env value: the gateway Service's DNS name.
    pub address: String,
    pub sidecar_as_init: bool,
    /// The tunnel's DNS server (`DNS`); empty: the pod's DNS is left as it is.
    pub dns: String,
    /// `DNSPolicy`; empty: not set.
    pub dns_policy: String,
    pub failure_policy: FailurePolicy,
    /// Whether the webhook's pod answers.
    pub up: bool,
}

const INIT_IMAGE: &str = "ghcr.io/angelnu/pod-gateway:v1.13.0";
/// The nameserver of the webhook pod's own /etc/resolv.conf (kind's cluster DNS).
const CLUSTER_DNS: &str = "10.96.0.10";

impl PodGatewayWebhook {
    /// The release `pod-gateway-<gateway>` of chart 7.1.x in `gateway-system`, configured as
    /// `deploy/` configures it (annotation mode, `setGateway: <gateway>`, no default, no label,
    /// DNS through the tunnel, the chart's `failurePolicy`: `Fail`), but with the chart's
    /// classic sidecar: `deploy/` turns on `sidecarAsInit`, which scenarios set themselves.
    pub fn chart_7(gateway: &str) -> Self {
        let release = format!("pod-gateway-{gateway}");
        Self {
            address: format!("{release}-main.gateway-system.svc.cluster.local"),
            release,
            namespace: "gateway-system".into(),
            namespace_label: "routed-gateway".into(),
            gateway_default: false,
            annotation: "setGateway".into(),
            annotation_value: Some(gateway.into()),
            label: String::new(),
            label_value: None,
            sidecar_as_init: false,
            dns: "172.16.0.1".into(),
            dns_policy: "None".into(),
            failure_policy: FailurePolicy::Fail,
            up: true,
        }
    }

    fn name(&self) -> String {
        format!("{}.svc.cluster.local", self.release)
    }

    /// Whether the webhook is called for a pod in a namespace with these labels.
    fn selects(&self, namespace_labels: Option<&Map<String, Value>>) -> bool {
        namespace_labels.and_then(|labels| labels.get(&self.namespace_label)) == Some(&json!("true"))
    }

    /// The webhook's decision; `Err` is the message of its HTTP 500.
    fn routes(&self, pod: &Value) -> Result<bool, String> {
        let mut route = self.gateway_default;
        let metadata = &pod["metadata"];
        for (key, wanted, map) in [
            (&self.label, &self.label_value, "labels"),
            (&self.annotation, &self.annotation_value, "annotations"),
        ] {
            let Some(value) =
                metadata[map].get(key.as_str()).and_then(Value::as_str).filter(|_| !key.is_empty())
            else {
                continue;
            };
            route = match wanted {
                Some(wanted) => value == wanted,
                None => parse_bool(value).map_err(|error| format!("could not mutate object: {error}"))?,
            };
        }
        Ok(route)
    }

    fn mutate(&self, pod: &mut Value, namespace: &str) {
        let spec = super::pod::object_at(pod, "spec");
        if !self.dns.is_empty() {
            let mut dns_config = Map::from_iter([("nameservers".to_owned(), json!([self.dns]))]);
            if self.dns_policy == "None" {
                dns_config.insert(
                    "searches".into(),
                    json!([format!("{namespace}.svc.cluster.local"), "svc.cluster.local", "cluster.local"]),
                );
                dns_config.insert("options".into(), json!([{"name": "ndots", "value": "5"}]));
            }
            spec.insert("dnsConfig".into(), Value::Object(dns_config));
        }
        if !self.dns_policy.is_empty() {
            spec.insert("dnsPolicy".into(), json!(self.dns_policy));
        }
        push(spec, "initContainers", self.container("gateway-init", "/bin/client_init.sh"));
        let mut sidecar = self.container("gateway-sidecar", "/bin/client_sidecar.sh");
        if self.sidecar_as_init {
            sidecar["restartPolicy"] = json!("Always");
            push(spec, "initContainers", sidecar);
        } else {
            push(spec, "containers", sidecar);
        }
        push(
            spec,
            "volumes",
            json!({"name": "gateway-configmap", "configMap": {"name": self.release, "defaultMode": 511}}),
        );
    }

    fn container(&self, name: &str, command: &str) -> Value {
        let env: Vec<Value> = [
            ("gateway", self.address.as_str()),
            ("DNS", self.dns.as_str()),
            ("DNS_ips", self.dns.as_str()),
            ("K8S_DNS_ips", CLUSTER_DNS),
        ]
        .iter()
        // An empty value is left out of the JSON (omitempty).
        .map(
            |(name, value)| {
                if value.is_empty() { json!({"name": name}) } else { json!({"name": name, "value": value}) }
            },
        )
        .collect();
        json!({
            "name": name,
            "image": INIT_IMAGE,
            "command": [command],
            "env": env,
            "resources": {},
            "volumeMounts": [{"name": "gateway-configmap", "readOnly": true, "mountPath": "/config"}],
            "imagePullPolicy": "IfNotPresent",
            "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}, "runAsUser": 0, "runAsNonRoot": false}
        })
    }

    /// Why the API server could not call it, in the words of its dispatcher.
    fn call_error(&self, detail: &str) -> String {
        format!("failed calling webhook {:?}: failed to call webhook: {detail}", self.name())
    }

    fn url(&self) -> String {
        format!(
            "https://{}-webhook.{}.svc:8080/wh/mutating/setgateway?timeout=5s",
            self.release, self.namespace
        )
    }
}

fn push(spec: &mut Map<String, Value>, list: &str, item: Value) {
    let slot = spec.entry(list).or_insert_with(|| json!([]));
    if !slot.is_array() {
        *slot = json!([]);
    }
    if let Some(items) = slot.as_array_mut() {
        items.push(item);
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {value:?}: invalid syntax")),
    }
}

/// Runs the webhooks that select the pod's namespace, in configuration-name order. `Err` is
/// the API server's answer when a webhook that fails closed could not be called.
pub(super) fn admit(
    webhooks: &[PodGatewayWebhook],
    namespace_labels: Option<&Map<String, Value>>,
    namespace: &str,
    pod: &mut Value,
) -> Result<(), Reply> {
    let mut ordered: Vec<&PodGatewayWebhook> =
        webhooks.iter().filter(|hook| hook.selects(namespace_labels)).collect();
    ordered.sort_by(|a, b| a.release.cmp(&b.release));
    for hook in ordered {
        let decision = if hook.up {
            hook.routes(pod).map_err(|message| {
                let body = json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
                    "response": {"uid": "", "allowed": false, "status": {"metadata": {}, "status": "Failure", "message": message}}});
                hook.call_error(&format!(
                    "an error on the server ({:?}) has prevented the request from succeeding",
                    body.to_string()
                ))
            })
        } else {
            Err(hook.call_error(&format!(
                "Post {:?}: dial tcp 10.96.84.17:8080: connect: connection refused",
                hook.url()
            )))
        };
        match (decision, hook.failure_policy) {
            (Ok(true), _) => hook.mutate(pod, namespace),
            (Ok(false), _) | (Err(_), FailurePolicy::Ignore) => {}
            (Err(error), FailurePolicy::Fail) => return Err(Status::internal_error(&error).reply()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_bool_is_gos() {
        assert_eq!(parse_bool("T"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert_eq!(parse_bool("yes"), Err(r#"strconv.ParseBool: parsing "yes": invalid syntax"#.into()));
    }
}
