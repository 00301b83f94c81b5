//! Changing and deleting pods in the fake: strategic merge patches of the scheduling gates,
//! the update rules, `DELETE` preconditions and grace periods, and faults on one method.

use podgateway_test_harness::{FakeKube, Fault};
use serde_json::{Value, json};

use crate::{assert_status, call, create, pod, status};

const GATE: &str = "podgateway.io/routing-check";

fn gated(kube: &FakeKube) -> Value {
    let mut pod = pod("p1");
    pod["spec"]["schedulingGates"] = json!([{"name": "other.example/gate"}, {"name": GATE}]);
    create(kube, "default", "", &pod).json()
}

fn patch(
    kube: &FakeKube,
    content_type: &str,
    body: &Value,
) -> podgateway_test_harness::http_client::Response {
    let body = body.to_string();
    call(
        kube,
        "PATCH",
        "/api/v1/namespaces/default/pods/p1",
        Some(FakeKube::TOKEN),
        &[("content-type", content_type)],
        body.as_bytes(),
    )
}

const SMP: &str = "application/strategic-merge-patch+json";

fn remove_gate(uid: &Value) -> Value {
    json!({"metadata": {"uid": uid}, "spec": {"schedulingGates": [{"$patch": "delete", "name": GATE}]}})
}

#[test]
fn a_strategic_merge_patch_removes_one_gate_by_name() {
    let kube = FakeKube::start();
    let created = gated(&kube);
    let resp = patch(&kube, SMP, &remove_gate(&created["metadata"]["uid"]));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let patched = resp.json();
    assert_eq!(
        patched["spec"]["schedulingGates"],
        json!([{"name": "other.example/gate"}]),
        "the other gate stays"
    );
    assert_ne!(patched["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"]);
    assert_eq!(kube.pod("default", "p1").unwrap(), patched);
    // The last gate gone: no schedulingGates key at all (Go's omitempty).
    let last = json!({"spec": {"schedulingGates": [{"$patch": "delete", "name": "other.example/gate"}]}});
    assert_eq!(patch(&kube, SMP, &last).json()["spec"].get("schedulingGates"), None);
}

#[test]
fn a_patch_with_another_uid_or_a_new_gate_is_422() {
    let kube = FakeKube::start();
    gated(&kube);
    let cause = |field: &str, message: &str, reason: &str| json!({"reason": reason, "message": message, "field": field});
    assert_status(
        &patch(&kube, SMP, &remove_gate(&json!("newer-uid"))),
        status(
            422,
            "Invalid",
            r#"Pod "p1" is invalid: metadata.uid: Invalid value: "newer-uid": field is immutable"#,
            Some(
                json!({"name": "p1", "kind": "Pod", "causes": [cause("metadata.uid", r#"Invalid value: "newer-uid": field is immutable"#, "FieldValueInvalid")]}),
            ),
        ),
    );
    let add = json!({"spec": {"schedulingGates": [{"name": "new.example/gate"}]}});
    assert_status(
        &patch(&kube, SMP, &add),
        status(
            422,
            "Invalid",
            r#"Pod "p1" is invalid: spec.schedulingGates[2].name: Forbidden: only deletion is allowed, but found new scheduling gate 'new.example/gate'"#,
            Some(
                json!({"name": "p1", "kind": "Pod", "causes": [cause("spec.schedulingGates[2].name", "Forbidden: only deletion is allowed, but found new scheduling gate 'new.example/gate'", "FieldValueForbidden")]}),
            ),
        ),
    );
    assert_eq!(
        kube.pod("default", "p1").unwrap()["spec"]["schedulingGates"].as_array().unwrap().len(),
        2,
        "unchanged"
    );
}

#[test]
fn patching_a_missing_pod_is_404_and_other_patch_types_415() {
    let kube = FakeKube::start();
    assert_status(
        &patch(&kube, SMP, &json!({})),
        status(404, "NotFound", r#"pods "p1" not found"#, Some(json!({"name": "p1", "kind": "pods"}))),
    );
    gated(&kube);
    assert_eq!(patch(&kube, "application/json", &json!({})).status, 415);
}

fn delete(kube: &FakeKube, body: &Value) -> podgateway_test_harness::http_client::Response {
    let body = body.to_string();
    call(
        kube,
        "DELETE",
        "/api/v1/namespaces/default/pods/p1",
        Some(FakeKube::TOKEN),
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
}

#[test]
fn a_delete_precondition_on_another_uid_is_409() {
    let kube = FakeKube::start();
    let created = create(&kube, "default", "", &pod("p1")).json();
    let uid = created["metadata"]["uid"].as_str().unwrap();
    assert_status(
        &delete(&kube, &json!({"preconditions": {"uid": "older-uid"}})),
        status(
            409,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on Pod \"p1\": the UID in the precondition (older-uid) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
            ),
            Some(json!({"name": "p1", "kind": "Pod"})),
        ),
    );
    assert_eq!(kube.pods("default").len(), 1, "not deleted");
    let resp = delete(&kube, &json!({"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["metadata"]["uid"], uid);
    assert!(kube.pods("default").is_empty());
}

#[test]
fn a_pod_on_a_node_is_marked_and_goes_when_its_grace_period_is_over() {
    let kube = FakeKube::start();
    let mut on_node = pod("p1");
    on_node["spec"]["nodeName"] = json!("node-1");
    create(&kube, "default", "", &on_node);
    let resp = delete(&kube, &json!({}));
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.json()["metadata"]["deletionGracePeriodSeconds"],
        30,
        "spec.terminationGracePeriodSeconds"
    );
    assert!(
        kube.pod("default", "p1").unwrap()["metadata"]["deletionTimestamp"].is_string(),
        "still there, being deleted"
    );
    kube.finish_deletion("default", "p1");
    assert!(kube.pods("default").is_empty());
    // With gracePeriodSeconds 0 it goes at once.
    create(&kube, "default", "", &on_node);
    assert_eq!(
        delete(&kube, &json!({"gracePeriodSeconds": 0})).json()["metadata"]["deletionGracePeriodSeconds"],
        0
    );
    assert!(kube.pods("default").is_empty());
}

#[test]
fn a_fault_for_one_method_waits_for_a_request_of_that_method() {
    let kube = FakeKube::start();
    kube.inject_on("DELETE", Fault::ServiceUnavailable, 1);
    assert_eq!(create(&kube, "default", "", &pod("p1")).status, 201, "a POST is answered as usual");
    assert_eq!(delete(&kube, &json!({})).status, 503);
    assert_eq!(delete(&kube, &json!({})).status, 200);
}
