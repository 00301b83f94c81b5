//! The client pod: the operator's template with what the component owns set on it. It is
//! annotated (and, in label mode, labelled) for the gateway's admission webhook, marked with
//! the event it was made for, carries that event as a file every container can read (the
//! Knative JobSink contract: `K_EVENT_PATH`), runs the configured client container, and with
//! `routing_guard = gate` is held back from every node by a scheduling gate until its routing
//! has been checked.

use serde_json::{Map, Value, json};

use crate::config::{Config, RoutingGuard};
use crate::identity::EventKey;
use crate::json::{as_object, list_at, object_at};
use crate::kube::responses::PodView;
use crate::pod::event_file::{EVENT_ANNOTATION, add_event_file};
use crate::pod::name::pod_name;
use crate::pod::routing::ROUTING_GATE;
use crate::pod::template::{APP_NAME_LABEL, CLIENT_CONTAINER, MANAGED_BY_LABEL};

/// Carries the gateway on every pod, whatever the admission webhook is configured to read.
pub const GATEWAY_LABEL: &str = "podgateway.io/gateway";
pub const EVENT_SOURCE_ANNOTATION: &str = "podgateway.io/event-source";
pub const EVENT_ID_ANNOTATION: &str = "podgateway.io/event-id";
/// The pending event's optional `message`, kept on the pod for whoever looks at it.
pub const REQUEST_MESSAGE_ANNOTATION: &str = "podgateway.io/request-message";
/// Kubernetes' limit on a pod's annotations, keys and values together
/// (apimachinery `TotalAnnotationSizeLimitB`).
pub const MAX_ANNOTATION_BYTES: usize = 256 * 1024;
/// What the pod's restart policy is when neither `client_restart_policy` nor the template says.
const DEFAULT_RESTART_POLICY: &str = "Never";

/// A pending event that passed every check: the pod can be created.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRequest {
    pub event: EventKey,
    pub gateway: String,
    pub message: Option<String>,
    /// The client container's `args`, from the event (only with `allow_event_args`).
    pub args: Option<Vec<String>>,
    /// The triggering event as structured JSON.
    pub event_json: String,
}

/// Whether `pod` is a client pod of this provisioner: in the client namespace and labelled
/// as managed by it.
pub fn is_client_pod(pod: &PodView, client_namespace: &str) -> bool {
    pod.metadata.namespace == client_namespace
        && pod.metadata.labels.get(MANAGED_BY_LABEL.0).map(String::as_str) == Some(MANAGED_BY_LABEL.1)
}

/// The pod to create; `Err` when the event does not fit in its annotations.
pub fn client_pod(config: &Config, request: &ClientRequest) -> Result<Value, String> {
    let mut pod = config.pod_template.pod().clone();
    let root = as_object(&mut pod);
    root.insert("apiVersion".into(), json!("v1"));
    root.insert("kind".into(), json!("Pod"));
    set_metadata(object_at(root, "metadata"), config, request)?;
    let spec = object_at(root, "spec");
    set_spec(spec, config);
    set_client_container(spec, config, request);
    add_event_file(spec);
    Ok(pod)
}

fn set_metadata(
    meta: &mut Map<String, Value>,
    config: &Config,
    request: &ClientRequest,
) -> Result<(), String> {
    meta.insert("name".into(), json!(pod_name(&config.client_name_prefix, &request.event)));
    meta.insert("namespace".into(), json!(config.client_namespace));
    let gateway = &request.gateway;
    let labels = object_at(meta, "labels");
    for (key, value) in [APP_NAME_LABEL, MANAGED_BY_LABEL, (GATEWAY_LABEL, gateway)] {
        labels.insert(key.into(), json!(value));
    }
    if let Some(label) = &config.gateway_label {
        labels.insert(label.clone(), json!(gateway));
    }
    let annotations = object_at(meta, "annotations");
    annotations.insert(config.gateway_annotation.clone(), json!(gateway));
    annotations.insert(EVENT_SOURCE_ANNOTATION.into(), json!(request.event.source));
    annotations.insert(EVENT_ID_ANNOTATION.into(), json!(request.event.id));
    if let Some(message) = request.message.as_ref().filter(|message| !message.is_empty()) {
        annotations.insert(REQUEST_MESSAGE_ANNOTATION.into(), json!(message));
    }
    annotations.insert(EVENT_ANNOTATION.into(), json!(request.event_json));
    let size: usize =
        annotations.iter().map(|(key, value)| key.len() + value.as_str().map_or(0, str::len)).sum();
    if size > MAX_ANNOTATION_BYTES {
        return Err(format!(
            "the event is too large for its pod: with it ({} bytes as JSON) the pod's annotations would be {size} \
             bytes, and Kubernetes allows {MAX_ANNOTATION_BYTES} in all",
            request.event_json.len()
        ));
    }
    Ok(())
}

fn set_spec(spec: &mut Map<String, Value>, config: &Config) {
    match &config.client_restart_policy {
        Some(policy) => {
            spec.insert("restartPolicy".into(), json!(policy));
        }
        None => {
            spec.entry("restartPolicy").or_insert(json!(DEFAULT_RESTART_POLICY));
        }
    }
    if let Some(seconds) = config.active_deadline_seconds {
        spec.insert("activeDeadlineSeconds".into(), json!(seconds));
    }
    if config.routing_guard == RoutingGuard::Gate {
        spec.insert("schedulingGates".into(), json!([{"name": ROUTING_GATE}]));
    }
}

/// The `client` container (added when the template has none): the configured image and
/// command when set, the event's args when given, the event's identity in its env.
fn set_client_container(spec: &mut Map<String, Value>, config: &Config, request: &ClientRequest) {
    let containers = list_at(spec, "containers");
    let at = match containers.iter().position(|c| c["name"] == CLIENT_CONTAINER) {
        Some(at) => at,
        None => {
            containers.push(json!({"name": CLIENT_CONTAINER}));
            containers.len() - 1
        }
    };
    let client = as_object(&mut containers[at]);
    if let Some(image) = &config.client_image {
        client.insert("image".into(), json!(image));
    }
    match config.client_command.as_deref() {
        Some([]) => {
            client.remove("command");
        }
        Some(command) => {
            client.insert("command".into(), json!(command));
        }
        None => {}
    }
    if let Some(args) = &request.args {
        client.insert("args".into(), json!(args));
    }
    let env = list_at(client, "env");
    env.push(json!({"name": "PODGATEWAY_GATEWAY", "value": request.gateway}));
    env.push(json!({"name": "PODGATEWAY_EVENT_ID", "value": request.event.id}));
    env.push(json!({"name": "PODGATEWAY_EVENT_SOURCE", "value": request.event.source}));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::tests::load_with;
    use crate::pod::event_file::EVENT_PATH;

    /// The pending event of the reference event (source `urn:test`, id `42`) for `gateway`.
    pub(crate) fn request(gateway: &str) -> ClientRequest {
        ClientRequest {
            event: EventKey { source: "urn:test".into(), id: "42".into() },
            gateway: gateway.into(),
            message: None,
            args: None,
            event_json: r#"{"specversion":"1.0","id":"42"}"#.into(),
        }
    }

    fn pod_of(variables: &[(&'static str, &str)], request: &ClientRequest) -> Value {
        client_pod(&load_with(variables).unwrap(), request).unwrap()
    }

    fn client_env(gateway: &str) -> Value {
        json!([{"name": "PODGATEWAY_GATEWAY", "value": gateway}, {"name": "PODGATEWAY_EVENT_ID", "value": "42"},
               {"name": "PODGATEWAY_EVENT_SOURCE", "value": "urn:test"}, {"name": "K_EVENT_PATH", "value": EVENT_PATH}])
    }

    const EVENT_MOUNT: &str = "/etc/podgateway-event";

    fn event_mount() -> Value {
        json!({"name": "podgateway-event", "mountPath": EVENT_MOUNT, "readOnly": true})
    }

    fn event_volume() -> Value {
        json!({"name": "podgateway-event",
               "downwardAPI": {"items": [{"path": "event", "fieldRef": {"fieldPath": "metadata.annotations['podgateway.io/event']"}}]}})
    }

    #[test]
    fn the_exact_pod_for_the_defaults() {
        assert_eq!(
            pod_of(&[], &request("foo")),
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "podgateway-client-7678b351e70b8efde9a6",
                    "namespace": "default",
                    "labels": {
                        "app.kubernetes.io/managed-by": "podgateway-client-provisioner",
                        "app.kubernetes.io/name": "podgateway-client",
                        "podgateway.io/gateway": "foo"
                    },
                    "annotations": {
                        "podgateway.io/event": r#"{"specversion":"1.0","id":"42"}"#,
                        "podgateway.io/event-id": "42",
                        "podgateway.io/event-source": "urn:test",
                        "setGateway": "foo"
                    }
                },
                "spec": {
                    "containers": [{"name": "client", "image": "alpine/curl", "command": ["sleep", "infinity"],
                                    "env": client_env("foo"), "volumeMounts": [event_mount()]}],
                    "restartPolicy": "Never",
                    "schedulingGates": [{"name": "podgateway.io/routing-check"}],
                    "volumes": [event_volume()]
                }
            })
        );
    }

    #[test]
    fn the_exact_pod_with_every_option() {
        let mut with_message = request("bar");
        with_message.message = Some("for the nightly crawl".into());
        with_message.args = Some(vec!["https://example.com".into()]);
        let pod = pod_of(
            &[
                ("client_namespace", "vpn"),
                ("client_image", "busybox:1.37"),
                ("client_command", "[]"),
                ("client_name_prefix", "c"),
                ("gateway_annotation", "example.com/gw"),
                ("gateway_label", "setGateway"),
                ("client_active_deadline_seconds", "600"),
                ("client_restart_policy", "OnFailure"),
                ("routing_guard", "delete"),
            ],
            &with_message,
        );
        assert_eq!(
            pod,
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "c-7678b351e70b8efde9a6",
                    "namespace": "vpn",
                    "labels": {
                        "app.kubernetes.io/managed-by": "podgateway-client-provisioner",
                        "app.kubernetes.io/name": "podgateway-client",
                        "podgateway.io/gateway": "bar",
                        "setGateway": "bar"
                    },
                    "annotations": {
                        "example.com/gw": "bar",
                        "podgateway.io/event": r#"{"specversion":"1.0","id":"42"}"#,
                        "podgateway.io/event-id": "42",
                        "podgateway.io/event-source": "urn:test",
                        "podgateway.io/request-message": "for the nightly crawl"
                    }
                },
                "spec": {
                    "activeDeadlineSeconds": 600,
                    "containers": [{"name": "client", "image": "busybox:1.37", "args": ["https://example.com"],
                                    "env": client_env("bar"), "volumeMounts": [event_mount()]}],
                    "restartPolicy": "OnFailure",
                    "volumes": [event_volume()]
                }
            })
        );
    }

    const TEMPLATE: &str = r#"{
        "metadata": {"labels": {"team": "crawl"}, "annotations": {"owner": "ops"}},
        "spec": {
            "serviceAccountName": "crawler", "restartPolicy": "OnFailure", "activeDeadlineSeconds": 300,
            "nodeSelector": {"kubernetes.io/arch": "amd64"},
            "volumes": [{"name": "cache", "emptyDir": {}}],
            "initContainers": [{"name": "warm", "image": "busybox"}],
            "containers": [
                {"name": "client", "image": "crawler:1", "command": ["crawl"], "args": ["--depth", "1"],
                 "env": [{"name": "LOG", "value": "info"}], "resources": {"limits": {"memory": "256Mi"}},
                 "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]},
                {"name": "metrics", "image": "exporter:1"}
            ]
        }
    }"#;

    fn templated(variables: &[(&'static str, &str)], request: &ClientRequest) -> Value {
        let mut all = vec![("client_pod_template", TEMPLATE), ("allow_template_init_containers", "true")];
        all.extend_from_slice(variables);
        pod_of(&all, request)
    }

    #[test]
    fn the_template_is_kept_and_the_component_adds_what_it_owns() {
        let pod = templated(&[], &request("foo"));
        assert_eq!(pod["metadata"]["labels"]["team"], "crawl");
        assert_eq!(pod["metadata"]["labels"]["podgateway.io/gateway"], "foo");
        assert_eq!(pod["metadata"]["annotations"]["owner"], "ops");
        assert_eq!(pod["metadata"]["annotations"]["setGateway"], "foo");
        let spec = &pod["spec"];
        assert_eq!(
            (&spec["serviceAccountName"], &spec["nodeSelector"]),
            (&json!("crawler"), &json!({"kubernetes.io/arch": "amd64"}))
        );
        assert_eq!(spec["volumes"], json!([{"name": "cache", "emptyDir": {}}, event_volume()]));
        let client = &spec["containers"][0];
        assert_eq!(client["resources"], json!({"limits": {"memory": "256Mi"}}));
        assert_eq!(client["env"][0], json!({"name": "LOG", "value": "info"}));
        assert_eq!(client["env"].as_array().unwrap()[1..], client_env("foo").as_array().unwrap()[..]);
        assert_eq!(client["volumeMounts"], json!([{"name": "cache", "mountPath": "/cache"}, event_mount()]));
        // Every container, init containers too, can read the event.
        for container in [&spec["containers"][1], &spec["initContainers"][0]] {
            assert_eq!(
                container["env"],
                json!([{"name": "K_EVENT_PATH", "value": EVENT_PATH}]),
                "{container}"
            );
            assert_eq!(container["volumeMounts"], json!([event_mount()]), "{container}");
        }
    }

    /// The precedence table of the README, one row each.
    #[test]
    fn what_sets_each_field_of_the_client_container_and_the_spec() {
        let client = |pod: &Value| pod["spec"]["containers"][0].clone();
        let plain = templated(&[], &request("foo"));
        // image: client_image, else the template's.
        assert_eq!(client(&plain)["image"], "crawler:1");
        assert_eq!(
            client(&templated(&[("client_image", "crawler:2")], &request("foo")))["image"],
            "crawler:2"
        );
        // command: client_command, else the template's; [] leaves the image's entrypoint.
        assert_eq!(client(&plain)["command"], json!(["crawl"]));
        assert_eq!(
            client(&templated(&[("client_command", r#"["run"]"#)], &request("foo")))["command"],
            json!(["run"])
        );
        assert_eq!(client(&templated(&[("client_command", "[]")], &request("foo"))).get("command"), None);
        // args: the event's (when allowed), else the template's.
        assert_eq!(client(&plain)["args"], json!(["--depth", "1"]));
        let mut with_args = request("foo");
        with_args.args = Some(vec!["https://example.com".into()]);
        assert_eq!(client(&templated(&[], &with_args))["args"], json!(["https://example.com"]));
        // restartPolicy: client_restart_policy, else the template's, else Never.
        assert_eq!(plain["spec"]["restartPolicy"], "OnFailure");
        assert_eq!(
            templated(&[("client_restart_policy", "Never")], &request("foo"))["spec"]["restartPolicy"],
            "Never"
        );
        assert_eq!(pod_of(&[], &request("foo"))["spec"]["restartPolicy"], "Never");
        // activeDeadlineSeconds: client_active_deadline_seconds, else the template's.
        assert_eq!(plain["spec"]["activeDeadlineSeconds"], 300);
        assert_eq!(
            templated(&[("client_active_deadline_seconds", "60")], &request("foo"))["spec"]["activeDeadlineSeconds"],
            60
        );
        // schedulingGates: the component's, with routing_guard gate only.
        assert_eq!(plain["spec"]["schedulingGates"], json!([{"name": "podgateway.io/routing-check"}]));
        assert_eq!(
            templated(&[("routing_guard", "off")], &request("foo"))["spec"].get("schedulingGates"),
            None
        );
    }

    #[test]
    fn a_template_without_a_client_container_gets_one() {
        let template = r#"{"spec": {"containers": [{"name": "sidecar", "image": "s:1"}]}}"#;
        let pod = pod_of(&[("client_pod_template", template), ("client_image", "c:1")], &request("foo"));
        let names: Vec<&Value> =
            pod["spec"]["containers"].as_array().unwrap().iter().map(|c| &c["name"]).collect();
        assert_eq!(names, [&json!("sidecar"), &json!("client")]);
        assert_eq!(pod["spec"]["containers"][1]["image"], "c:1");
    }

    #[test]
    fn an_event_too_large_for_the_annotations_is_refused() {
        let mut large = request("foo");
        large.event_json = "x".repeat(MAX_ANNOTATION_BYTES);
        let error = client_pod(&load_with(&[]).unwrap(), &large).unwrap_err();
        assert!(error.starts_with("the event is too large for its pod: with it (262144 bytes as JSON) the pod's annotations would be 262"), "{error}");
        assert!(error.ends_with("bytes, and Kubernetes allows 262144 in all"), "{error}");
        // Just within: taken.
        let overhead =
            client_pod(&load_with(&[]).unwrap(), &request("foo")).unwrap()["metadata"]["annotations"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| k.len() + v.as_str().unwrap().len())
                .sum::<usize>()
                - request("foo").event_json.len();
        large.event_json = "x".repeat(MAX_ANNOTATION_BYTES - overhead);
        assert!(client_pod(&load_with(&[]).unwrap(), &large).is_ok());
    }
}
