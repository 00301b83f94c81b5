//! The client pod's shape: annotated (and, in label mode, labelled) for the gateway's
//! admission webhook, marked with the event it was made for, and running the configured
//! client container.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSchedulingGate, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::config::{Config, RoutingGuard};
use crate::identity::EventKey;
use crate::pod::name::pod_name;
use crate::pod::routing::ROUTING_GATE;

pub const CONTAINER_NAME: &str = "client";
pub const APP_NAME_LABEL: (&str, &str) = ("app.kubernetes.io/name", "podgateway-client");
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "podgateway-client-provisioner");
/// Carries the gateway on every pod, whatever the admission webhook is configured to read.
pub const GATEWAY_LABEL: &str = "podgateway.io/gateway";
pub const EVENT_SOURCE_ANNOTATION: &str = "podgateway.io/event-source";
pub const EVENT_ID_ANNOTATION: &str = "podgateway.io/event-id";
/// The pending event's optional `message`, kept on the pod for whoever looks at it.
pub const REQUEST_MESSAGE_ANNOTATION: &str = "podgateway.io/request-message";

/// A pending event that passed every check: the pod can be created.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRequest {
    pub event: EventKey,
    pub gateway: String,
    pub message: Option<String>,
}

/// The client pod: annotated (and, in label mode, labelled) for the gateway's admission
/// webhook, marked with the event it was made for, and, with `routing_guard = gate`, held
/// back from every node by a scheduling gate until its routing has been checked.
pub fn client_pod(config: &Config, request: &ClientRequest) -> Pod {
    let mut labels = string_map([
        (APP_NAME_LABEL.0, APP_NAME_LABEL.1),
        (MANAGED_BY_LABEL.0, MANAGED_BY_LABEL.1),
        (GATEWAY_LABEL, &request.gateway),
    ]);
    if let Some(label) = &config.gateway_label {
        labels.insert(label.clone(), request.gateway.clone());
    }
    let mut annotations = string_map([
        (&config.gateway_annotation, &request.gateway),
        (EVENT_SOURCE_ANNOTATION, &request.event.source),
        (EVENT_ID_ANNOTATION, &request.event.id),
    ]);
    if let Some(message) = request.message.as_ref().filter(|message| !message.is_empty()) {
        annotations.insert(REQUEST_MESSAGE_ANNOTATION.to_owned(), message.clone());
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(&config.client_name_prefix, &request.event)),
            namespace: Some(config.client_namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: CONTAINER_NAME.to_owned(),
                image: Some(config.client_image.clone()),
                command: (!config.client_command.is_empty()).then(|| config.client_command.clone()),
                ..Container::default()
            }],
            active_deadline_seconds: config.active_deadline_seconds,
            scheduling_gates: (config.routing_guard == RoutingGuard::Gate)
                .then(|| vec![PodSchedulingGate { name: ROUTING_GATE.to_owned() }]),
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// A map of the entries, later ones winning. Inserting one by one rather than
/// `BTreeMap::from`, which sorts its array first and so links a sort: 2.3 KB of the `.wasm`.
fn string_map<const N: usize>(entries: [(&str, &str); N]) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (key, value) in entries {
        map.insert(key.to_owned(), value.to_owned());
    }
    map
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::tests::load_with;
    use serde_json::json;

    pub(crate) fn request(gateway: &str) -> ClientRequest {
        ClientRequest {
            event: EventKey { source: "urn:test".into(), id: "42".into() },
            gateway: gateway.into(),
            message: None,
        }
    }

    #[test]
    fn the_exact_pod_for_the_defaults() {
        let config = load_with(&[]).unwrap();
        let pod = serde_json::to_value(client_pod(&config, &request("foo"))).unwrap();
        assert_eq!(
            pod,
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
                        "podgateway.io/event-id": "42",
                        "podgateway.io/event-source": "urn:test",
                        "setGateway": "foo"
                    }
                },
                "spec": {
                    "containers": [{"name": "client", "image": "alpine/curl", "command": ["sleep", "infinity"]}],
                    "schedulingGates": [{"name": "podgateway.io/routing-check"}]
                }
            })
        );
    }

    #[test]
    fn the_exact_pod_with_every_option() {
        let config = load_with(&[
            ("client_namespace", "vpn"),
            ("client_image", "busybox:1.37"),
            ("client_command", "[]"),
            ("client_name_prefix", "c"),
            ("gateway_annotation", "example.com/gw"),
            ("gateway_label", "setGateway"),
            ("client_active_deadline_seconds", "600"),
            ("routing_guard", "delete"),
        ])
        .unwrap();
        let mut with_message = request("bar");
        with_message.message = Some("for the nightly crawl".into());
        let pod = serde_json::to_value(client_pod(&config, &with_message)).unwrap();
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
                        "podgateway.io/event-id": "42",
                        "podgateway.io/event-source": "urn:test",
                        "podgateway.io/request-message": "for the nightly crawl"
                    }
                },
                "spec": {
                    "activeDeadlineSeconds": 600,
                    "containers": [{"name": "client", "image": "busybox:1.37"}]
                }
            })
        );
    }
}
