//! The scheduler and kubelet the fake plays: a started pod's status has the shape of a real
//! one, and a container that ends is restarted or not, and the phase set, by the kubelet's rules.

use podgateway_test_harness::FakeKube;
use podgateway_test_harness::fake_kube::PodGatewayWebhook;
use serde_json::{Value, json};

use crate::{create, pod};

/// A routed pod in `default` (webhook `foo`, classic or native sidecar) with `restart_policy`.
fn routed(kube: &FakeKube, native_sidecar: bool, restart_policy: &str) -> Value {
    kube.label_namespace("default", "routed-gateway", "true");
    let mut webhook = PodGatewayWebhook::chart_7("foo");
    webhook.sidecar_as_init = native_sidecar;
    kube.add_webhook(webhook);
    let mut client = pod("p1");
    client["metadata"]["annotations"] = json!({"setGateway": "foo"});
    client["spec"]["restartPolicy"] = json!(restart_policy);
    let created = create(kube, "default", "", &client);
    assert_eq!(created.status, 201, "{}", created.text());
    created.json()
}

fn names_and_states(statuses: &Value) -> Vec<(String, String)> {
    statuses
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["state"].as_object().unwrap().keys().next().unwrap().clone(),
            )
        })
        .collect()
}

fn pair(name: &str, state: &str) -> (String, String) {
    (name.to_owned(), state.to_owned())
}

#[test]
fn a_started_pod_runs_its_init_containers_then_everything() {
    let kube = FakeKube::start();
    routed(&kube, true, "Never");
    let pod = kube.start_pod("default", "p1").expect("started");
    let status = &pod["status"];
    assert_eq!(pod["spec"]["nodeName"], "kind-worker");
    assert_eq!(status["phase"], "Running");
    let conditions: Vec<(&str, &str)> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        conditions,
        [
            ("PodReadyToStartContainers", "True"),
            ("Initialized", "True"),
            ("Ready", "True"),
            ("ContainersReady", "True"),
            ("PodScheduled", "True")
        ]
    );
    assert_eq!(
        names_and_states(&status["initContainerStatuses"]),
        [pair("gateway-init", "terminated"), pair("gateway-sidecar", "running")]
    );
    assert_eq!(status["initContainerStatuses"][0]["state"]["terminated"]["reason"], "Completed");
    assert_eq!(names_and_states(&status["containerStatuses"]), [pair("client", "running")]);
    let client = &status["containerStatuses"][0];
    assert_eq!(
        (&client["ready"], &client["started"], &client["restartCount"]),
        (&json!(true), &json!(true), &json!(0))
    );
    for field in ["hostIP", "podIP", "startTime"] {
        assert!(status[field].is_string(), "{field}");
    }
    assert_eq!(kube.pod("default", "p1").unwrap(), pod, "stored");
}

#[test]
fn a_gated_pod_is_not_scheduled() {
    let kube = FakeKube::start();
    let mut gated = pod("p1");
    gated["spec"]["schedulingGates"] = json!([{"name": "podgateway.io/routing-check"}]);
    create(&kube, "default", "", &gated);
    assert_eq!(kube.start_pod("default", "p1"), None);
    assert_eq!(kube.pod("default", "p1").unwrap()["status"]["phase"], "Pending");
}

#[test]
fn a_client_that_ends_with_restart_policy_never_completes_the_pod() {
    for (exit_code, phase, reason) in [(0, "Succeeded", "Completed"), (1, "Failed", "Error")] {
        let kube = FakeKube::start();
        routed(&kube, true, "Never");
        kube.start_pod("default", "p1");
        let pod = kube.end_container("default", "p1", "client", exit_code).expect("ended");
        let status = &pod["status"];
        assert_eq!(status["phase"], phase);
        let client = &status["containerStatuses"][0];
        assert_eq!(client["state"]["terminated"]["exitCode"], exit_code);
        assert_eq!(client["state"]["terminated"]["reason"], reason);
        assert_eq!(client["ready"], false);
        // The native sidecar is stopped after the client.
        assert_eq!(
            names_and_states(&status["initContainerStatuses"])[1],
            pair("gateway-sidecar", "terminated")
        );
        let ready = status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!((&ready["status"], &ready["reason"]), (&json!("False"), &json!("PodCompleted")));
    }
}

#[test]
fn a_classic_sidecar_keeps_the_pod_running() {
    let kube = FakeKube::start();
    routed(&kube, false, "Never");
    kube.start_pod("default", "p1");
    let pod = kube.end_container("default", "p1", "client", 0).expect("ended");
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(
        names_and_states(&pod["status"]["containerStatuses"]),
        [pair("client", "terminated"), pair("gateway-sidecar", "running")]
    );
    let ready = pod["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("ContainersNotReady"))
    );
}

#[test]
fn a_client_is_restarted_as_its_restart_policy_says() {
    for (policy, exit_code) in [("OnFailure", 2), ("Always", 0)] {
        let kube = FakeKube::start();
        routed(&kube, true, policy);
        kube.start_pod("default", "p1");
        let pod = kube.end_container("default", "p1", "client", exit_code).expect("ended");
        let client = &pod["status"]["containerStatuses"][0];
        assert_eq!(pod["status"]["phase"], "Running", "{policy}");
        assert!(client["state"]["running"].is_object(), "{policy}");
        assert_eq!(client["restartCount"], 1);
        assert_eq!(client["lastState"]["terminated"]["exitCode"], exit_code);
    }
    let kube = FakeKube::start();
    routed(&kube, true, "OnFailure");
    kube.start_pod("default", "p1");
    assert_eq!(kube.end_container("default", "p1", "client", 0).unwrap()["status"]["phase"], "Succeeded");
}
