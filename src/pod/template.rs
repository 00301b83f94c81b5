//! The operator's pod template (`client_pod_template`): a JSON Pod that every client pod
//! starts from (resources, env, security context, service account, scheduling, volumes,
//! more containers, …). It is checked when the configuration loads, so that a template the
//! API would refuse, or one that takes what the component owns, answers 500 before any call.

use serde_json::{Map, Value};

use crate::json;
use crate::pod::schema::{self, POD};

/// The template when none is set: one container running `sleep infinity` in `alpine/curl`.
pub const BUILT_IN: &str =
    r#"{"spec":{"containers":[{"name":"client","image":"alpine/curl","command":["sleep","infinity"]}]}}"#;
/// The container the component configures, and adds when the template has none.
pub const CLIENT_CONTAINER: &str = "client";
/// Labels and annotations with this prefix are the component's.
pub const OWN_PREFIX: &str = "podgateway.io/";
/// Labels the component sets on every client pod.
pub const APP_NAME_LABEL: (&str, &str) = ("app.kubernetes.io/name", "podgateway-client");
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "podgateway-client-provisioner");
/// Names the pod-gateway webhook gives the containers it injects.
const GATEWAY_CONTAINERS: [&str; 2] = ["gateway-init", "gateway-sidecar"];

/// A template that passed every check: `{"metadata": {"labels", "annotations"}, "spec"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct PodTemplate(Value);

/// What the template may not set, besides the component's own labels and annotations.
pub struct Owned<'a> {
    pub gateway_annotation: &'a str,
    pub gateway_label: Option<&'a str>,
    /// Env vars the component sets in the containers.
    pub env: &'a [&'a str],
    /// The volume the component adds, and where it mounts it in every container.
    pub volume: &'a str,
    pub mount_path: &'a str,
}

impl PodTemplate {
    /// Reads and checks a template; `text` empty means [`BUILT_IN`].
    pub fn parse(text: &str, allow_init_containers: bool, owned: &Owned) -> Result<Self, String> {
        let text = if text.is_empty() { BUILT_IN } else { text };
        let value: Value = serde_json::from_str(text).map_err(|error| format!("is not JSON: {error}"))?;
        let Value::Object(mut pod) = value else {
            return Err(format!("must be a JSON object (a Pod), not {}", json::kind(&value)));
        };
        // apiVersion and kind may be given, as they are in a Pod manifest.
        for (key, expected) in [("apiVersion", "v1"), ("kind", "Pod")] {
            match pod.remove(key) {
                None => {}
                Some(Value::String(given)) if given == expected => {}
                Some(other) => return Err(format!("{key} must be {expected:?}, not {other}")),
            }
        }
        if let Some(key) = pod.keys().find(|key| !["metadata", "spec"].contains(&key.as_str())) {
            return Err(format!(
                "{key} cannot be set: a template sets metadata.labels, metadata.annotations and spec"
            ));
        }
        let value = Value::Object(pod);
        schema::check(&value, POD, "")?;
        if let Some(key) = value["metadata"]
            .as_object()
            .and_then(|m| m.keys().find(|k| !["labels", "annotations"].contains(&k.as_str())))
        {
            return Err(format!(
                "metadata.{key} cannot be set: only metadata.labels and metadata.annotations come from the template"
            ));
        }
        check_owned_keys(&value["metadata"], owned)?;
        check_spec(&value["spec"], allow_init_containers, owned)?;
        Ok(Self(value))
    }

    /// The template's JSON.
    pub fn pod(&self) -> &Value {
        &self.0
    }

    /// The template's `client` container, if it has one.
    pub fn client_container(&self) -> Option<&Map<String, Value>> {
        containers(&self.0["spec"], "containers")
            .find(|c| c["name"] == CLIENT_CONTAINER)
            .and_then(Value::as_object)
    }
}

fn containers<'a>(spec: &'a Value, list: &str) -> impl Iterator<Item = &'a Value> {
    spec[list].as_array().into_iter().flatten()
}

fn check_owned_keys(metadata: &Value, owned: &Owned) -> Result<(), String> {
    let own_label = |key: &str| {
        key.starts_with(OWN_PREFIX)
            || key == APP_NAME_LABEL.0
            || key == MANAGED_BY_LABEL.0
            || Some(key) == owned.gateway_label
    };
    let own_annotation = |key: &str| key.starts_with(OWN_PREFIX) || key == owned.gateway_annotation;
    for (map, is_own) in [("labels", &own_label as &dyn Fn(&str) -> bool), ("annotations", &own_annotation)] {
        if let Some(key) = metadata[map].as_object().and_then(|m| m.keys().find(|key| is_own(key))) {
            return Err(format!("metadata.{map}[{key:?}] is the component's to set"));
        }
    }
    Ok(())
}

fn check_spec(spec: &Value, allow_init_containers: bool, owned: &Owned) -> Result<(), String> {
    if spec.get("schedulingGates").is_some_and(|gates| !gates.is_null()) {
        return Err("spec.schedulingGates is the component's to set (routing_guard)".into());
    }
    let init_containers = containers(spec, "initContainers").count();
    if init_containers > 0 && !allow_init_containers {
        return Err(
            "spec.initContainers run before the gateway's init container builds the tunnel, with plain \
             cluster egress; set allow_template_init_containers=true to allow them"
                .into(),
        );
    }
    for list in ["initContainers", "containers"] {
        for (i, container) in containers(spec, list).enumerate() {
            let name = container["name"].as_str().unwrap_or_default();
            if GATEWAY_CONTAINERS.contains(&name) {
                return Err(format!(
                    "spec.{list}[{i}] is named {name}, as the pod-gateway webhook names what it injects"
                ));
            }
            if let Some(var) = container["env"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|var| owned.env.contains(&var["name"].as_str().unwrap_or_default()))
            {
                return Err(format!(
                    "spec.{list}[{i}].env sets {}, which is the component's to set",
                    var["name"]
                ));
            }
            if container["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["mountPath"] == owned.mount_path)
            {
                return Err(format!(
                    "spec.{list}[{i}] mounts something at {}, where the component mounts the event",
                    owned.mount_path
                ));
            }
        }
    }
    if containers(spec, "volumes").any(|volume| volume["name"] == owned.volume) {
        return Err(format!("spec.volumes has a volume named {}, which is the component's", owned.volume));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) const OWNED: Owned = Owned {
        gateway_annotation: "setGateway",
        gateway_label: Some("gateway"),
        env: &["K_EVENT_PATH", "PODGATEWAY_GATEWAY"],
        volume: "podgateway-event",
        mount_path: "/etc/podgateway-event",
    };

    fn problem(template: Value) -> String {
        PodTemplate::parse(&template.to_string(), false, &OWNED).unwrap_err()
    }

    #[test]
    fn no_template_is_the_built_in_one() {
        let template = PodTemplate::parse("", false, &OWNED).unwrap();
        assert_eq!(
            template.pod(),
            &json!({"spec": {"containers": [{"name": "client", "image": "alpine/curl", "command": ["sleep", "infinity"]}]}})
        );
        assert_eq!(template.client_container().unwrap()["image"], "alpine/curl");
    }

    #[test]
    fn a_template_of_many_fields_is_taken() {
        let template = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"labels": {"team": "crawl"}, "annotations": {"owner": "ops"}},
            "spec": {"serviceAccountName": "crawler", "restartPolicy": "Never",
                     "containers": [{"name": "client", "resources": {"limits": {"memory": "256Mi"}}},
                                    {"name": "metrics", "image": "exporter:1"}]}
        });
        let parsed = PodTemplate::parse(&template.to_string(), false, &OWNED).unwrap();
        assert_eq!(parsed.pod()["spec"]["serviceAccountName"], "crawler");
        assert_eq!(parsed.pod().get("apiVersion"), None);
    }

    #[test]
    fn every_template_error_is_named() {
        let cases: Vec<(Value, &str)> = vec![
            (json!([]), "must be a JSON object (a Pod), not an array"),
            (json!({"kind": "Deployment"}), "kind must be \"Pod\", not \"Deployment\""),
            (
                json!({"status": {}}),
                "status cannot be set: a template sets metadata.labels, metadata.annotations and spec",
            ),
            (
                json!({"spec": {"containers": [{"name": "client", "imagePolicy": "Always"}]}}),
                "unknown field \"spec.containers[0].imagePolicy\"",
            ),
            (
                json!({"spec": {"restartPolicy": 1}}),
                "spec.restartPolicy: a number where a string is expected",
            ),
            (
                json!({"metadata": {"name": "x"}}),
                "metadata.name cannot be set: only metadata.labels and metadata.annotations come from the template",
            ),
            (
                json!({"metadata": {"labels": {"podgateway.io/gateway": "x"}}}),
                "metadata.labels[\"podgateway.io/gateway\"] is the component's to set",
            ),
            (
                json!({"metadata": {"labels": {"app.kubernetes.io/managed-by": "x"}}}),
                "metadata.labels[\"app.kubernetes.io/managed-by\"] is the component's to set",
            ),
            (
                json!({"metadata": {"labels": {"gateway": "x"}}}),
                "metadata.labels[\"gateway\"] is the component's to set",
            ),
            (
                json!({"metadata": {"annotations": {"setGateway": "x"}}}),
                "metadata.annotations[\"setGateway\"] is the component's to set",
            ),
            (
                json!({"spec": {"schedulingGates": [{"name": "x"}]}}),
                "spec.schedulingGates is the component's to set (routing_guard)",
            ),
            (
                json!({"spec": {"containers": [{"name": "gateway-sidecar"}]}}),
                "spec.containers[0] is named gateway-sidecar, as the pod-gateway webhook names what it injects",
            ),
            (
                json!({"spec": {"containers": [{"name": "c", "env": [{"name": "K_EVENT_PATH", "value": "/x"}]}]}}),
                "spec.containers[0].env sets \"K_EVENT_PATH\", which is the component's to set",
            ),
            (
                json!({"spec": {"volumes": [{"name": "podgateway-event", "emptyDir": {}}]}}),
                "spec.volumes has a volume named podgateway-event, which is the component's",
            ),
            (
                json!({"spec": {"containers": [{"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/etc/podgateway-event"}]}]}}),
                "spec.containers[0] mounts something at /etc/podgateway-event, where the component mounts the event",
            ),
        ];
        for (template, expected) in cases {
            assert_eq!(problem(template.clone()), expected, "{template}");
        }
        assert!(PodTemplate::parse("{not json", false, &OWNED).unwrap_err().starts_with("is not JSON: "));
    }

    #[test]
    fn init_containers_only_when_allowed() {
        let template = json!({"spec": {"initContainers": [{"name": "fetch", "image": "busybox"}], "containers": [{"name": "client", "image": "c"}]}});
        assert!(
            problem(template.clone())
                .starts_with("spec.initContainers run before the gateway's init container builds the tunnel")
        );
        assert!(PodTemplate::parse(&template.to_string(), true, &OWNED).is_ok());
        let gateway_init = json!({"spec": {"initContainers": [{"name": "gateway-init", "image": "x"}]}});
        assert_eq!(
            PodTemplate::parse(&gateway_init.to_string(), true, &OWNED).unwrap_err(),
            "spec.initContainers[0] is named gateway-init, as the pod-gateway webhook names what it injects"
        );
    }
}
