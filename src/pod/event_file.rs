//! The triggering event inside the pod, as Knative's JobSink hands it to its Jobs: the whole
//! event, structured JSON, in a file whose path every container finds in `K_EVENT_PATH`.
//! The event is kept in a pod annotation and shown as a file by a `downwardAPI` volume, which
//! takes no permission beyond creating the pod.

use serde_json::{Map, Value, json};

use crate::json::{as_object, list_at};

/// The whole triggering event, structured JSON, which the event volume shows as a file.
pub const EVENT_ANNOTATION: &str = "podgateway.io/event";
pub const EVENT_VOLUME: &str = "podgateway-event";
pub const EVENT_DIR: &str = "/etc/podgateway-event";
/// Where every container finds the event (`K_EVENT_PATH`).
pub const EVENT_PATH: &str = "/etc/podgateway-event/event";
/// The env vars the component sets: `K_EVENT_PATH` in every container, the rest in `client`.
pub const OWNED_ENV: [&str; 4] =
    ["K_EVENT_PATH", "PODGATEWAY_GATEWAY", "PODGATEWAY_EVENT_ID", "PODGATEWAY_EVENT_SOURCE"];

/// The event annotation as a file in every container, and `K_EVENT_PATH` pointing at it.
pub fn add_event_file(spec: &mut Map<String, Value>) {
    let field_path = format!("metadata.annotations['{EVENT_ANNOTATION}']");
    list_at(spec, "volumes").push(json!({
        "name": EVENT_VOLUME,
        "downwardAPI": {"items": [{"path": "event", "fieldRef": {"fieldPath": field_path}}]}
    }));
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else { continue };
        for container in containers.iter_mut() {
            let container = as_object(container);
            list_at(container, "env").push(json!({"name": "K_EVENT_PATH", "value": EVENT_PATH}));
            list_at(container, "volumeMounts")
                .push(json!({"name": EVENT_VOLUME, "mountPath": EVENT_DIR, "readOnly": true}));
        }
    }
}
