//! The client's whole life as events: Knative's ApiServerSource reports each change of a
//! client pod, the component answers `ready`, `finished` (and deletes the finished pod) or
//! `gone`; `release` gives a client back. The fake API server plays the scheduler and the
//! kubelet, so the pods sent are the stored ones, as the source would send them.

use podgateway_test_harness::http_client::Response;
use podgateway_test_harness::{Fault, Runtime};
use serde_json::{Value, json};

use crate::world::*;

/// A world whose gateways inject native sidecars (`webhook.sidecarAsInit`, as `deploy/`) or
/// classic ones, with a client pod of the reference event created and started.
fn running_client(runtime: &Runtime, native_sidecar: bool) -> (World, Value) {
    let world = World::new(runtime, &[]);
    for gateway in ["foo", "bar"] {
        world.kube.update_webhook(&format!("pod-gateway-{gateway}"), |w| w.sidecar_as_init = native_sidecar);
    }
    assert_reply(&world.pending("42", r#"{"gateway_name":"foo"}"#), DONE);
    let pod = world.kube.start_pod("default", POD_42).expect("the released pod starts");
    world.kube.take_requests();
    (world, pod)
}

fn lifecycle_reply(response: &Response, event_type: &str) -> (String, Value) {
    let data = assert_reply(response, event_type);
    assert_eq!(response.header("ce-subject"), Some(POD_42));
    (response.header("ce-id").unwrap().to_owned(), data)
}

/// What every lifecycle event says of the client.
fn identity() -> Value {
    json!({"pod_name": POD_42, "namespace": "default", "gateway_name": "foo",
           "request_id": "42", "request_source": "urn:test"})
}

fn with(mut base: Value, more: Value) -> Value {
    base.as_object_mut().unwrap().extend(more.as_object().unwrap().clone());
    base
}

fn a_client_is_seen_from_ready_to_finished_and_nothing_is_left(runtime: &Runtime) {
    let (world, running) = running_client(runtime, true);
    let (ready_id, ready) = lifecycle_reply(&world.pod_change(POD_UPDATED, "e-1", &running), READY);
    let started_at = &running["status"]["containerStatuses"][0]["state"]["running"]["startedAt"];
    assert_eq!(
        ready,
        with(
            identity(),
            json!({"gateway_address": address_of("foo"), "pod_ip": running["status"]["podIP"],
                               "node_name": "kind-worker", "started_at": started_at,
                               "message": "The client runs behind gateway foo."})
        )
    );
    // The source sends every update; each says the same with the same id.
    let (again_id, _) = lifecycle_reply(&world.pod_change(POD_UPDATED, "e-2", &running), READY);
    assert_eq!(again_id, ready_id);
    assert!(world.kube.requests().is_empty(), "ready needs no API call");

    let ended = world.kube.end_container("default", POD_42, "client", 0).expect("the client ends");
    assert_eq!(ended["status"]["phase"], "Succeeded");
    let (finished_id, finished) = lifecycle_reply(&world.pod_change(POD_UPDATED, "e-3", &ended), FINISHED);
    let finished_at = &ended["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"];
    assert_eq!(
        finished,
        with(
            identity(),
            json!({"phase": "Succeeded", "exit_code": 0, "reason": "Completed", "finished_at": finished_at,
                               "pod_deleted": true,
                               "message": "The client finished with exit code 0 (Completed); its pod is deleted."})
        )
    );
    assert_ne!(finished_id, ready_id);
    let requests = world.kube.take_requests();
    assert_eq!(
        requests.iter().map(|r| (r.method.as_str(), r.status)).collect::<Vec<_>>(),
        [("DELETE", Some(200))]
    );
    assert_eq!(requests[0].path, format!("/api/v1/namespaces/default/pods/{POD_42}"));
    assert_eq!(requests[0].json().unwrap(), json!({"preconditions": {"uid": ended["metadata"]["uid"]}}));
    assert!(world.stored_pods().is_empty(), "a finished client leaves nothing behind");

    // The source then reports the deletion: the same event, no second DELETE.
    let (deleted_id, deleted) = lifecycle_reply(&world.pod_change(POD_DELETED, "e-4", &ended), FINISHED);
    assert_eq!((deleted_id, deleted), (finished_id, finished));
    assert!(world.kube.requests().is_empty());
    let outcomes: Vec<(Value, Value)> =
        world.logs().iter().map(|l| (l["event_type"].clone(), l["outcome"].clone())).collect();
    assert_eq!(
        outcomes[1..],
        [
            (json!(POD_UPDATED), json!("done")),
            (json!(POD_UPDATED), json!("done")),
            (json!(POD_UPDATED), json!("done")),
            (json!(POD_DELETED), json!("done"))
        ]
    );
}

fn a_classic_sidecar_pod_is_reaped_once_its_client_ends(runtime: &Runtime) {
    let (world, _) = running_client(runtime, false);
    let ended = world.kube.end_container("default", POD_42, "client", 3).expect("the client ends");
    assert_eq!(ended["status"]["phase"], "Running", "the classic sidecar keeps it running");
    let (id, finished) = lifecycle_reply(&world.pod_change(POD_UPDATED, "e-1", &ended), FINISHED);
    assert_eq!(
        (&finished["phase"], &finished["exit_code"], &finished["reason"]),
        (&json!("Running"), &json!(3), &json!("Error"))
    );
    assert_eq!(calls(&world.kube), [call("DELETE", 200)]);
    // Graceful: the pod is being deleted while its sidecar stops; that update says the same.
    let deleting = world.kube.pod("default", POD_42).expect("being deleted");
    assert!(deleting["metadata"]["deletionTimestamp"].is_string());
    world.kube.take_requests();
    let (again, _) = lifecycle_reply(&world.pod_change(POD_UPDATED, "e-2", &deleting), FINISHED);
    world.kube.finish_deletion("default", POD_42);
    let (deleted, _) = lifecycle_reply(&world.pod_change(POD_DELETED, "e-3", &deleting), FINISHED);
    assert_eq!((again, deleted), (id.clone(), id));
    assert!(world.kube.requests().is_empty(), "no second DELETE");
    assert!(world.stored_pods().is_empty());
}

fn a_client_deleted_before_it_finished_is_gone(runtime: &Runtime) {
    let (world, running) = running_client(runtime, true);
    let (_, gone) = lifecycle_reply(&world.pod_change(POD_DELETED, "e-1", &running), GONE);
    assert_eq!(
        gone,
        with(
            identity(),
            json!({"phase": "Running", "reason": null,
                               "message": "The client's pod was deleted before it finished."})
        )
    );
    assert!(world.kube.requests().is_empty());
}

fn changes_of_other_pods_or_of_nothing_new_are_acknowledged(runtime: &Runtime) {
    let (world, running) = running_client(runtime, true);
    let stranger = world.kube.seed_pod(
        "default",
        json!({"metadata": {"name": "db-0", "uid": "u-db"},
        "spec": {"containers": [{"name": "db", "image": "postgres"}]}}),
    );
    let mut pending = running.clone();
    pending["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
    for (pod, why) in [
        (stranger, "pod default/db-0 is not a client pod of this provisioner".to_owned()),
        (pending, format!("pod default/{POD_42}: it is Pending")),
    ] {
        let response = world.pod_change(POD_UPDATED, "e-1", &pod);
        assert_eq!((response.status, response.text()), (204, String::new()));
        let log = world.logs().last().unwrap().clone();
        assert_eq!((&log["outcome"], &log["message"]), (&json!("ignored"), &json!(why)));
    }
    assert!(world.kube.requests().is_empty());
    // ApiServerSource in Reference mode: another type, not handled.
    let reference = world.post(&binary("e-2", "dev.knative.apiserver.ref.update"), "{}");
    assert_eq!(reference.status, 204);
}

fn a_reap_that_cannot_be_made_now_is_retried(runtime: &Runtime) {
    let (world, _) = running_client(runtime, true);
    let ended = world.kube.end_container("default", POD_42, "client", 0).unwrap();
    world.kube.inject_on("DELETE", Fault::ServiceUnavailable, 1);
    let response = world.pod_change(POD_UPDATED, "e-1", &ended);
    assert_eq!(response.status, 503, "{}", response.text());
    assert!(
        response.json()["error"]
            .as_str()
            .unwrap()
            .starts_with(&format!("the Kubernetes API could not delete pod default/{POD_42} for now: 503"))
    );
    // Redelivered: done.
    lifecycle_reply(&world.pod_change(POD_UPDATED, "e-1", &ended), FINISHED);
    assert!(world.stored_pods().is_empty());
}

fn release(world: &World, id: &str, data: Value) -> Response {
    world.post(&binary(id, RELEASE), &data.to_string())
}

fn a_client_is_released_by_its_name_or_by_its_request(runtime: &Runtime) {
    let world = World::new(runtime, &[]);
    assert_reply(&world.pending("42", r#"{"gateway_name":"foo"}"#), DONE);
    let other = assert_reply(&world.pending("43", r#"{"gateway_name":"bar"}"#), DONE)["pod_name"]
        .as_str()
        .unwrap()
        .to_owned();
    world.kube.take_requests();

    let done = assert_reply(&release(&world, "r-1", json!({"pod_name": POD_42})), RELEASE_DONE);
    assert_eq!(
        done,
        json!({"pod_name": POD_42, "namespace": "default", "gateway_name": "foo",
               "message": format!("The client was released: its pod default/{POD_42} was deleted."),
               "request_id": "r-1", "request_source": "urn:test"})
    );
    let by_request = assert_reply(
        &release(&world, "r-2", json!({"request_source": "urn:test", "request_id": "43"})),
        RELEASE_DONE,
    );
    assert_eq!((&by_request["pod_name"], &by_request["gateway_name"]), (&json!(other), &json!("bar")));
    assert_eq!(
        calls(&world.kube),
        [call("GET", 200), call("DELETE", 200), call("GET", 200), call("DELETE", 200)]
    );
    assert!(world.stored_pods().is_empty());

    // Again: released already.
    world.kube.take_requests();
    let again = assert_reply(&release(&world, "r-3", json!({"pod_name": POD_42})), RELEASE_DONE);
    assert_eq!(
        again["message"],
        format!("There is no pod default/{POD_42}: the client was released already.")
    );
    assert_eq!(calls(&world.kube), [call("GET", 404)]);
}

fn a_pod_that_is_not_a_client_is_not_released(runtime: &Runtime) {
    let world = World::new(runtime, &[]);
    world.kube.seed_pod(
        "default",
        json!({"metadata": {"name": "db-0", "labels": {"app": "db"}},
        "spec": {"containers": [{"name": "db", "image": "postgres"}]}}),
    );
    let failed = assert_reply(&release(&world, "r-1", json!({"pod_name": "db-0"})), RELEASE_FAILED);
    assert_eq!(
        failed["message"],
        "pod default/db-0 is not a client of this provisioner (it has no label \
         app.kubernetes.io/managed-by=podgateway-client-provisioner); nothing was deleted"
    );
    assert_eq!(calls(&world.kube), [call("GET", 200)]);
    assert_eq!(world.stored_pods().len(), 1);
    // A request that names nothing: failed, no API call.
    world.kube.take_requests();
    let failed = assert_reply(&release(&world, "r-2", json!({"pod_name": "Db_0"})), RELEASE_FAILED);
    assert_eq!(failed["message"], "`pod_name` \"Db_0\" is not a pod name");
    assert!(world.kube.requests().is_empty());
}

fn a_release_that_cannot_be_made_now_is_retried(runtime: &Runtime) {
    let world = World::new(runtime, &[]);
    assert_reply(&world.pending("42", r#"{"gateway_name":"foo"}"#), DONE);
    world.kube.inject(Fault::TooManyRequests { retry_after_seconds: 2 }, 1);
    let response = release(&world, "r-1", json!({"pod_name": POD_42}));
    assert_eq!(response.status, 503, "{}", response.text());
    assert_eq!(response.header("retry-after"), Some("2"));
    assert_reply(&release(&world, "r-1", json!({"pod_name": POD_42})), RELEASE_DONE);
    assert!(world.stored_pods().is_empty());
}

crate::scenarios!(
    a_client_is_seen_from_ready_to_finished_and_nothing_is_left,
    a_classic_sidecar_pod_is_reaped_once_its_client_ends,
    a_client_deleted_before_it_finished_is_gone,
    changes_of_other_pods_or_of_nothing_new_are_acknowledged,
    a_reap_that_cannot_be_made_now_is_retried,
    a_client_is_released_by_its_name_or_by_its_request,
    a_pod_that_is_not_a_client_is_not_released,
    a_release_that_cannot_be_made_now_is_retried,
);
