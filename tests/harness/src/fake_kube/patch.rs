//! `PATCH .../pods/{name}` with a strategic merge patch, and the pod update rules the fake
//! enforces (apimachinery `strategicpatch`, `pkg/apis/core/validation` `ValidatePodUpdate`):
//!
//! - Maps merge key by key; `null` removes a key. Lists with a patch merge key
//!   (`containers`, `initContainers`, `volumes`, `env` by `name`, `schedulingGates` by `name`)
//!   merge entry by entry, and `{"$patch": "delete", <key>: …}` removes the entry with that
//!   key; other lists are replaced.
//! - `metadata.uid` cannot change: `metadata.uid: Invalid value: "<uid>": field is immutable`
//!   (a uid in a patch is therefore a precondition; a matching one is accepted silently).
//! - Scheduling gates can only be removed: `spec.schedulingGates[i].name: Forbidden: only
//!   deletion is allowed, but found new scheduling gate '<gate>'`.
//! - Of the rest of the spec, the fake lets only images and `activeDeadlineSeconds` change.

use serde_json::{Map, Value};

use super::status::{FieldError, Reply, Status};

/// The merge key of the pod's lists that have one.
fn merge_key(list: &str) -> Option<&'static str> {
    match list {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "schedulingGates"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        _ => None,
    }
}

/// Applies a strategic merge patch to `target`.
pub(super) fn strategic_merge(target: &mut Value, patch: &Value) {
    let (Value::Object(target_map), Value::Object(patch_map)) = (&mut *target, patch) else {
        *target = patch.clone();
        return;
    };
    for (key, patch_value) in patch_map {
        match (patch_value, merge_key(key)) {
            (Value::Null, _) => {
                target_map.remove(key);
            }
            (Value::Array(items), Some(merge_key)) => {
                let slot = target_map.entry(key.clone()).or_insert_with(|| Value::Array(Vec::new()));
                merge_list(slot, items, merge_key);
            }
            (Value::Object(_), _) => {
                let slot = target_map.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
                strategic_merge(slot, patch_value);
            }
            _ => {
                target_map.insert(key.clone(), patch_value.clone());
            }
        }
    }
}

fn merge_list(slot: &mut Value, items: &[Value], merge_key: &str) {
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    let Some(list) = slot.as_array_mut() else { return };
    for item in items {
        let key = &item[merge_key];
        let position = list.iter().position(|existing| &existing[merge_key] == key);
        match (item.get("$patch").and_then(Value::as_str), position) {
            (Some("delete"), Some(at)) => {
                list.remove(at);
            }
            (Some("delete"), None) => {}
            (_, Some(at)) => strategic_merge(&mut list[at], item),
            (_, None) => list.push(item.clone()),
        }
    }
}

/// Go writes a pod spec's empty lists as nothing (`omitempty`); only `containers` is always
/// there. A patch that empties a list leaves no key behind.
pub(super) fn drop_empty_lists(pod: &mut Value) {
    if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
        spec.retain(|key, value| key == "containers" || value.as_array().is_none_or(|list| !list.is_empty()));
    }
}

/// `ValidatePodUpdate` for what the fake lets change; `Err` is the 422.
pub(super) fn validate_update(old: &Value, new: &Value) -> Result<(), Reply> {
    let name = old["metadata"]["name"].as_str().unwrap_or_default();
    let mut errors = Vec::new();
    if new["metadata"]["uid"] != old["metadata"]["uid"] {
        errors.push(FieldError::invalid(
            "metadata.uid",
            new["metadata"]["uid"].clone(),
            "field is immutable",
        ));
    }
    let gates = |pod: &Value| -> Vec<String> {
        pod["spec"]["schedulingGates"]
            .as_array()
            .map(|gates| gates.iter().filter_map(|g| g["name"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let old_gates = gates(old);
    for (i, gate) in gates(new).iter().enumerate().filter(|(_, gate)| !old_gates.contains(gate)) {
        errors.push(FieldError::forbidden(
            format!("spec.schedulingGates[{i}].name"),
            format!("only deletion is allowed, but found new scheduling gate '{gate}'"),
        ));
    }
    if comparable_spec(old) != comparable_spec(new) {
        errors.push(FieldError::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,\
             `spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),\
             `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
    if errors.is_empty() { Ok(()) } else { Err(Status::invalid("", "Pod", name, &errors).reply()) }
}

/// The spec without what an update may change.
fn comparable_spec(pod: &Value) -> Value {
    let mut spec = pod["spec"].clone();
    if let Some(spec) = spec.as_object_mut() {
        spec.remove("schedulingGates");
        spec.remove("activeDeadlineSeconds");
        for list in ["containers", "initContainers"] {
            for container in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(container) = container.as_object_mut() {
                    container.remove("image");
                }
            }
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_gate_is_removed_by_its_name_and_the_others_stay() {
        let mut pod = json!({"metadata": {"uid": "u"}, "spec": {"schedulingGates": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}});
        strategic_merge(
            &mut pod,
            &json!({"metadata": {"uid": "u"}, "spec": {"schedulingGates": [{"$patch": "delete", "name": "b"}]}}),
        );
        assert_eq!(pod["spec"]["schedulingGates"], json!([{"name": "a"}, {"name": "c"}]));
    }

    #[test]
    fn maps_merge_and_null_removes() {
        let mut pod = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        strategic_merge(&mut pod, &json!({"metadata": {"labels": {"a": null, "c": "3"}}}));
        assert_eq!(pod["metadata"]["labels"], json!({"b": "2", "c": "3"}));
    }

    #[test]
    fn a_uid_or_a_new_gate_is_refused() {
        let old =
            json!({"metadata": {"name": "p", "uid": "u"}, "spec": {"schedulingGates": [{"name": "a"}]}});
        let mut new = old.clone();
        new["metadata"]["uid"] = json!("v");
        new["spec"]["schedulingGates"] = json!([{"name": "a"}, {"name": "z"}]);
        let reply = validate_update(&old, &new).unwrap_err();
        let status: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!((reply.code, &status["code"]), (422, &json!(422)));
        assert_eq!(
            status["message"],
            "Pod \"p\" is invalid: [metadata.uid: Invalid value: \"v\": field is immutable, spec.schedulingGates[1].name: Forbidden: only deletion is allowed, but found new scheduling gate 'z']"
        );
        let mut removed = old.clone();
        removed["spec"]["schedulingGates"] = json!([]);
        assert!(validate_update(&old, &removed).is_ok());
    }
}
