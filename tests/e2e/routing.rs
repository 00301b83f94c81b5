//! Routed or nothing: a client pod exists only if the pod-gateway webhook routed it. Each
//! scenario runs with `routing_guard` `gate` (the pod is held back by a scheduling gate until
//! it is seen routed) and `delete` (an unrouted pod is deleted right after it is created),
//! under every host of the suite.

use podgateway_test_harness::fake_kube::FailurePolicy;
use podgateway_test_harness::{Fault, Runtime};
use serde_json::{Value, json};

use crate::world::*;

const GUARDS: [&str; 2] = ["gate", "delete"];
const GATE: &str = "podgateway.io/routing-check";

fn world(runtime: &Runtime, guard: &str, variables: &[(&str, &str)]) -> World {
    let mut all = vec![("routing_guard", guard)];
    all.extend_from_slice(variables);
    World::new(runtime, &all)
}

/// What a not-routed pod's failure says, after the reason.
fn not_routed_message(message: &str, guard: &str, reason: &str) {
    let when = if guard == "gate" { "before anything ran in it" } else { "right after it was created" };
    assert!(
        message.starts_with(&format!("pod default/{POD_42} was not routed through gateway ")),
        "{message}"
    );
    assert!(message.contains(reason), "{guard}: {message}");
    assert!(message.contains(&format!("it was deleted {when}")), "{guard}: {message}");
    assert!(
        message.ends_with(
            "and that its webhook is running (with failurePolicy Ignore a webhook that is down admits pods unrouted)"
        ),
        "{message}"
    );
}

/// The create (with the gate in `gate` mode), then the DELETE of that very pod: by its uid.
fn assert_created_then_deleted(world: &World, guard: &str) {
    let requests = world.kube.requests();
    assert_eq!(calls(&world.kube), [call("POST", 201), call("DELETE", 200)], "{guard}");
    let created = requests[0].answer_json().expect("the admitted pod");
    let gates = &requests[0].json().unwrap()["spec"]["schedulingGates"];
    assert_eq!(*gates, if guard == "gate" { json!([{"name": GATE}]) } else { Value::Null }, "{guard}");
    let delete = &requests[1];
    assert_eq!(delete.path, format!("/api/v1/namespaces/default/pods/{POD_42}"));
    let options = delete.json().expect("DeleteOptions");
    assert_eq!(options["preconditions"]["uid"], created["metadata"]["uid"], "{guard}: {options}");
    assert_eq!(options["gracePeriodSeconds"], 0);
    assert!(world.stored_pods().is_empty(), "{guard}: nothing is left behind");
}

fn routed_pods_run_and_the_reply_names_the_gateway_address(runtime: &Runtime) {
    for guard in GUARDS {
        let world = world(runtime, guard, &[]);
        let response = world.pending("42", r#"{"gateway_name":"foo"}"#);
        assert_eq!(assert_reply(&response, DONE), done_data(POD_42, "42", "foo"), "{guard}");
        let expected = if guard == "gate" {
            vec![call("POST", 201), call("PATCH", 200)]
        } else {
            vec![call("POST", 201)]
        };
        assert_eq!(calls(&world.kube), expected, "{guard}");
        let pod = &world.stored_pods()[0];
        assert_eq!(pod["spec"].get("schedulingGates"), None, "{guard}: the gate is gone");
        assert_eq!(pod["spec"]["initContainers"][0]["name"], "gateway-init");
        assert_eq!(pod["spec"]["containers"][1]["name"], "gateway-sidecar");
        if guard == "gate" {
            // The gate went from that pod (the uid is in the patch), and no other gate with it.
            let patch = world.kube.requests()[1].json().unwrap();
            let uid = &world.kube.requests()[0].answer_json().unwrap()["metadata"]["uid"];
            assert_eq!(
                patch,
                json!({"metadata": {"uid": uid}, "spec": {"schedulingGates": [{"$patch": "delete", "name": GATE}]}})
            );
            assert_eq!(
                world.kube.requests()[1].header("content-type"),
                Some("application/strategic-merge-patch+json")
            );
        }
        let log = &world.logs()[0];
        assert_eq!(log["api_status"], if guard == "gate" { json!([201, 200]) } else { json!([201]) });
    }
}

fn a_namespace_the_webhooks_do_not_select_gets_its_pod_deleted(runtime: &Runtime) {
    for guard in GUARDS {
        let world = world(runtime, guard, &[]);
        world.kube.label_namespace("default", "routed-gateway", "false");
        let message = failed_message(&world.pending("42", r#"{"gateway_name":"foo"}"#), json!("foo"));
        not_routed_message(
            &message,
            guard,
            "it has no gateway-init init container: no pod-gateway webhook mutated it",
        );
        assert!(
            message.contains("check that namespace default has the label routed-gateway=true"),
            "{message}"
        );
        assert_created_then_deleted(&world, guard);
    }
}

fn a_gateway_without_a_webhook_gets_its_pod_deleted(runtime: &Runtime) {
    for guard in GUARDS {
        let world = world(runtime, guard, &[]);
        let message = failed_message(&world.pending("42", r#"{"gateway_name":"baz"}"#), json!("baz"));
        not_routed_message(&message, guard, "no pod-gateway webhook mutated it");
        assert!(message.contains("a pod-gateway release has gatewayAnnotationValue baz"), "{message}");
        assert_created_then_deleted(&world, guard);
    }
}

fn a_webhook_that_is_down_fails_closed_or_its_pod_is_deleted(runtime: &Runtime) {
    for guard in GUARDS {
        // The chart's failurePolicy (Fail): the create fails, the broker retries.
        let world = world(runtime, guard, &[]);
        world.kube.update_webhook("pod-gateway-foo", |hook| hook.up = false);
        let response = world.pending("42", r#"{"gateway_name":"foo"}"#);
        assert_eq!(response.status, 503, "{}", response.text());
        let error = response.json()["error"].as_str().unwrap().to_owned();
        assert!(
            error.contains(
                "500 InternalError: Internal error occurred: failed calling webhook \"pod-gateway-foo.svc.cluster.local\""
            ),
            "{error}"
        );
        assert!(world.stored_pods().is_empty());
        assert_eq!(calls(&world.kube), [call("POST", 500)]);

        // Ignore (an operator's change): admitted unrouted, then deleted.
        let world = self::world(runtime, guard, &[]);
        world.kube.update_webhook("pod-gateway-foo", |hook| {
            hook.up = false;
            hook.failure_policy = FailurePolicy::Ignore;
        });
        let message = failed_message(&world.pending("42", r#"{"gateway_name":"foo"}"#), json!("foo"));
        not_routed_message(&message, guard, "no pod-gateway webhook mutated it");
        assert_created_then_deleted(&world, guard);
    }
}

fn the_native_sidecar_layout_is_routed(runtime: &Runtime) {
    for guard in GUARDS {
        let world = world(runtime, guard, &[]);
        world.kube.update_webhook("pod-gateway-foo", |hook| hook.sidecar_as_init = true);
        let response = world.pending("42", r#"{"gateway_name":"foo"}"#);
        assert_eq!(assert_reply(&response, DONE), done_data(POD_42, "42", "foo"), "{guard}");
        let pod = &world.stored_pods()[0];
        let inits = pod["spec"]["initContainers"].as_array().unwrap();
        let names: Vec<&str> = inits.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["gateway-init", "gateway-sidecar"]);
        assert_eq!(inits[1]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["containers"].as_array().unwrap().len(), 1, "only the client");
    }
}

fn an_address_other_than_the_template_gets_its_pod_deleted(runtime: &Runtime) {
    // Chart 6.x named the gateway Service without -main; the releases here are 7.x.
    let template = "pod-gateway-{gateway}.gateway-system.svc.cluster.local";
    for guard in GUARDS {
        let world = world(runtime, guard, &[("gateway_address_template", template)]);
        let message = failed_message(&world.pending("42", r#"{"gateway_name":"foo"}"#), json!("foo"));
        not_routed_message(
            &message,
            guard,
            &format!(
                "it is routed through {}, not through pod-gateway-foo.gateway-system.svc.cluster.local \
                 (gateway_address_template)",
                address_of("foo")
            ),
        );
        assert_created_then_deleted(&world, guard);
    }
    // The template that matches the releases: routed.
    let world = World::new(
        runtime,
        &[("gateway_address_template", "pod-gateway-{gateway}-main.gateway-system.svc.cluster.local")],
    );
    assert_eq!(
        assert_reply(&world.pending("42", r#"{"gateway_name":"bar"}"#), DONE),
        done_data(POD_42, "42", "bar")
    );
}

fn a_delete_that_fails_for_now_is_retried_and_the_retry_finishes_the_job(runtime: &Runtime) {
    for guard in GUARDS {
        let world = world(runtime, guard, &[]);
        world.kube.label_namespace("default", "routed-gateway", "false");
        world.kube.inject_on("DELETE", Fault::ServiceUnavailable, 1);
        let response = world.pending("42", r#"{"gateway_name":"foo"}"#);
        assert_eq!(response.status, 503, "{guard}: {}", response.text());
        assert!(
            response.json()["error"].as_str().unwrap().starts_with(&format!(
                "the Kubernetes API could not delete pod default/{POD_42} for now: 503 ServiceUnavailable"
            )),
            "{}",
            response.text()
        );
        let left = &world.stored_pods()[0];
        if guard == "gate" {
            assert_eq!(left["spec"]["schedulingGates"], json!([{"name": GATE}]), "it stays held back");
        }
        // The redelivery meets the unrouted pod made for this event and deletes it.
        let message = failed_message(&world.pending("42", r#"{"gateway_name":"foo"}"#), json!("foo"));
        assert!(message.contains("it was deleted"), "{message}");
        assert!(world.stored_pods().is_empty());
        assert_eq!(
            calls(&world.kube),
            [
                call("POST", 201),
                call("DELETE", 503),
                call("POST", 409),
                call("GET", 200),
                call("DELETE", 200)
            ]
        );
    }
}

/// A pod made for this event by an older release (no check): the redelivery deletes it.
fn a_redelivery_meeting_an_unrouted_pod_of_its_event_deletes_it(runtime: &Runtime) {
    for guard in GUARDS {
        let world = world(runtime, guard, &[]);
        let seeded = world.kube.seed_pod(
            "default",
            json!({"metadata": {"name": POD_42, "annotations": {"podgateway.io/event-source": "urn:test",
                   "podgateway.io/event-id": "42", "setGateway": "foo"}},
                   "spec": {"containers": [{"name": "client", "image": "alpine/curl"}]}}),
        );
        let message = failed_message(&world.pending("42", r#"{"gateway_name":"foo"}"#), json!("foo"));
        assert!(
            message
                .contains("it was deleted now; nothing held it back, so it may have run unrouted until then"),
            "{guard}: {message}"
        );
        assert_eq!(calls(&world.kube), [call("POST", 409), call("GET", 200), call("DELETE", 200)]);
        let options = world.kube.requests()[2].json().unwrap();
        assert_eq!(options["preconditions"]["uid"], seeded["metadata"]["uid"]);
        assert!(world.stored_pods().is_empty());
    }
}

fn a_gate_removal_that_fails_for_now_is_retried_and_the_retry_releases_the_pod(runtime: &Runtime) {
    let world = world(runtime, "gate", &[]);
    world.kube.inject_on("PATCH", Fault::ServiceUnavailable, 1);
    let response = world.pending("42", r#"{"gateway_name":"foo"}"#);
    assert_eq!(response.status, 503, "{}", response.text());
    assert!(
        response.json()["error"].as_str().unwrap().starts_with(&format!(
            "the Kubernetes API could not remove the routing gate of pod default/{POD_42} for now: 503"
        )),
        "{}",
        response.text()
    );
    assert_eq!(world.stored_pods()[0]["spec"]["schedulingGates"], json!([{"name": GATE}]));
    let again = world.pending("42", r#"{"gateway_name":"foo"}"#);
    assert_eq!(assert_reply(&again, DONE), done_data(POD_42, "42", "foo"));
    assert_eq!(
        calls(&world.kube),
        [call("POST", 201), call("PATCH", 503), call("POST", 409), call("GET", 200), call("PATCH", 200)]
    );
    assert_eq!(world.stored_pods()[0]["spec"].get("schedulingGates"), None);
}

/// A routed pod still gated (made in `gate` mode, its delivery cut short): in either mode the
/// redelivery releases it.
fn a_redelivery_meeting_a_gated_routed_pod_releases_it(runtime: &Runtime) {
    for guard in GUARDS {
        let world = world(runtime, guard, &[]);
        let mut pod = routed_pod_of_42("foo");
        pod["spec"]["schedulingGates"] = json!([{"name": GATE}]);
        world.kube.seed_pod("default", pod);
        let response = world.pending("42", r#"{"gateway_name":"foo"}"#);
        assert_eq!(assert_reply(&response, DONE), done_data(POD_42, "42", "foo"), "{guard}");
        assert_eq!(calls(&world.kube), [call("POST", 409), call("GET", 200), call("PATCH", 200)]);
        assert_eq!(world.stored_pods()[0]["spec"].get("schedulingGates"), None);
    }
}

/// The pod of the reference event as the foo webhook leaves it.
fn routed_pod_of_42(gateway: &str) -> Value {
    let injected = |name: &str| {
        json!({"name": name, "image": "ghcr.io/angelnu/pod-gateway:v1.13.0",
               "env": [{"name": "gateway", "value": address_of(gateway)}]})
    };
    json!({
        "metadata": {"name": POD_42, "annotations": {"podgateway.io/event-source": "urn:test",
                     "podgateway.io/event-id": "42", "setGateway": gateway}},
        "spec": {"initContainers": [injected("gateway-init")],
                 "containers": [{"name": "client", "image": "alpine/curl"}, injected("gateway-sidecar")]}
    })
}

fn a_dry_run_says_whether_the_pod_would_be_routed(runtime: &Runtime) {
    for guard in GUARDS {
        let world = world(runtime, guard, &[("dry_run", "true")]);
        let data = assert_reply(&world.pending("42", r#"{"gateway_name":"foo"}"#), DONE);
        assert_eq!(data["gateway_address"], address_of("foo"));
        assert_eq!(
            data["message"],
            "A pod-gateway client would have been scheduled (dry run: nothing was created)."
        );
        let message = failed_message(&world.pending("43", r#"{"gateway_name":"baz"}"#), json!("baz"));
        assert!(message.contains("would not be routed through gateway baz"), "{message}");
        assert!(message.contains("(dry run: nothing was created)"), "{message}");
        // Two dry-run creates, nothing patched, deleted or stored.
        assert_eq!(calls(&world.kube), [call("POST", 201), call("POST", 201)]);
        assert!(world.kube.requests().iter().all(|r| r.query_param("dryRun").as_deref() == Some("All")));
        assert!(world.stored_pods().is_empty());
    }
}

fn with_the_guard_off_nothing_is_checked(runtime: &Runtime) {
    let world = world(runtime, "off", &[]);
    world.kube.label_namespace("default", "routed-gateway", "false");
    let mut expected = done_data(POD_42, "42", "foo");
    expected["gateway_address"] = Value::Null;
    assert_eq!(assert_reply(&world.pending("42", r#"{"gateway_name":"foo"}"#), DONE), expected);
    assert_eq!(calls(&world.kube), [call("POST", 201)]);
    let pod = &world.stored_pods()[0];
    assert_eq!(pod["spec"].get("schedulingGates"), None);
    assert_eq!(pod["spec"].get("initContainers"), None, "unrouted, as the operator chose");
}

crate::scenarios!(
    routed_pods_run_and_the_reply_names_the_gateway_address,
    a_namespace_the_webhooks_do_not_select_gets_its_pod_deleted,
    a_gateway_without_a_webhook_gets_its_pod_deleted,
    a_webhook_that_is_down_fails_closed_or_its_pod_is_deleted,
    the_native_sidecar_layout_is_routed,
    an_address_other_than_the_template_gets_its_pod_deleted,
    a_delete_that_fails_for_now_is_retried_and_the_retry_finishes_the_job,
    a_redelivery_meeting_an_unrouted_pod_of_its_event_deletes_it,
    a_gate_removal_that_fails_for_now_is_retried_and_the_retry_releases_the_pod,
    a_redelivery_meeting_a_gated_routed_pod_releases_it,
    a_dry_run_says_whether_the_pod_would_be_routed,
    with_the_guard_off_nothing_is_checked,
);
