//! The pod-gateway admission webhook in the fake: what it adds to a routed pod, when it routes
//! one, and what the API server answers when it cannot be called.

use podgateway_test_harness::{FailurePolicy, FakeKube, PodGatewayWebhook};
use serde_json::{Value, json};

use crate::{assert_status, create, pod, status};

const FOO: &str = "pod-gateway-foo-main.gateway-system.svc.cluster.local";

/// `default` routed by the releases of `foo` and `bar`.
fn routed() -> FakeKube {
    let kube = FakeKube::start();
    kube.label_namespace("default", "routed-gateway", "true");
    kube.add_webhook(PodGatewayWebhook::chart_7("foo"));
    kube.add_webhook(PodGatewayWebhook::chart_7("bar"));
    kube
}

fn annotated(name: &str, gateway: &str) -> Value {
    let mut pod = pod(name);
    pod["metadata"]["annotations"] = json!({"setGateway": gateway});
    pod
}

fn injected(name: &str, command: &str) -> Value {
    json!({
        "name": name, "image": "ghcr.io/angelnu/pod-gateway:v1.13.0", "command": [command],
        "env": [{"name": "gateway", "value": FOO}, {"name": "DNS", "value": "172.16.0.1"},
                {"name": "DNS_ips", "value": "172.16.0.1"}, {"name": "K8S_DNS_ips", "value": "10.96.0.10"}],
        "resources": {},
        "volumeMounts": [{"name": "gateway-configmap", "readOnly": true, "mountPath": "/config"}],
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}, "runAsUser": 0, "runAsNonRoot": false},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File"
    })
}

/// The containers as the webhook left them, without what the ServiceAccount plugin adds.
fn without_token_mount(mut container: Value) -> Value {
    if let Some(mounts) = container["volumeMounts"].as_array_mut() {
        mounts.retain(|m| m["name"].as_str().is_none_or(|n| !n.starts_with("kube-api-access-")));
    }
    container
}

#[test]
fn a_routed_pod_gets_the_init_container_the_sidecar_the_volume_and_dns() {
    let kube = routed();
    let resp = create(&kube, "default", "", &annotated("p1", "foo"));
    assert_eq!(resp.status, 201, "{}", resp.text());
    let created = resp.json();
    let spec = &created["spec"];
    assert_eq!(spec["initContainers"].as_array().unwrap().len(), 1);
    assert_eq!(
        without_token_mount(spec["initContainers"][0].clone()),
        injected("gateway-init", "/bin/client_init.sh")
    );
    assert_eq!(spec["containers"][0]["name"], "client");
    assert_eq!(
        without_token_mount(spec["containers"][1].clone()),
        injected("gateway-sidecar", "/bin/client_sidecar.sh")
    );
    let volumes = spec["volumes"].as_array().unwrap();
    assert!(volumes.contains(
        &json!({"name": "gateway-configmap", "configMap": {"name": "pod-gateway-foo", "defaultMode": 511}})
    ));
    assert_eq!(spec["dnsPolicy"], "None");
    assert_eq!(
        spec["dnsConfig"],
        json!({"nameservers": ["172.16.0.1"], "searches": ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"],
               "options": [{"name": "ndots", "value": "5"}]})
    );
    assert_eq!(kube.pod("default", "p1").unwrap(), created, "the mutated pod is stored");
}

#[test]
fn the_sidecar_as_init_layout_puts_a_native_sidecar_after_gateway_init() {
    let kube = routed();
    kube.update_webhook("pod-gateway-foo", |hook| hook.sidecar_as_init = true);
    let mut pod = annotated("p1", "foo");
    pod["spec"]["initContainers"] = json!([{"name": "own", "image": "busybox:1.37"}]);
    let created = create(&kube, "default", "", &pod).json();
    let names: Vec<&str> = created["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["own", "gateway-init", "gateway-sidecar"], "after the pod's own init containers");
    assert_eq!(created["spec"]["initContainers"][2]["restartPolicy"], "Always");
    assert_eq!(created["spec"]["containers"].as_array().unwrap().len(), 1);
}

#[test]
fn only_selected_namespaces_and_matching_annotations_are_routed() {
    let kube = routed();
    for (pod, why) in
        [(pod("p1"), "no annotation, no default"), (annotated("p2", "baz"), "no release for baz")]
    {
        let created = create(&kube, "default", "", &pod).json();
        assert_eq!(created["spec"].get("initContainers"), None, "{why}");
        assert_eq!(created["spec"]["containers"].as_array().unwrap().len(), 1, "{why}");
    }
    kube.label_namespace("default", "routed-gateway", "false");
    let created = create(&kube, "default", "", &annotated("p3", "foo")).json();
    assert_eq!(created["spec"].get("initContainers"), None, "a namespace the webhooks do not select");
    // gatewayDefault (the chart's default) routes an unannotated pod through every release
    // that has it: each appends its containers (bar first: configurations run in name order),
    // and the second gateway-init is a duplicate that validation refuses.
    let kube = routed();
    for release in ["pod-gateway-foo", "pod-gateway-bar"] {
        kube.update_webhook(release, |hook| hook.gateway_default = true);
    }
    let refused = create(&kube, "default", "", &pod("p4")).json();
    assert_eq!(refused["code"], 422, "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains(r#"spec.initContainers[1].name: Duplicate value: "gateway-init""#), "{message}");
    // One release with the default: routed through it.
    kube.update_webhook("pod-gateway-bar", |hook| hook.gateway_default = false);
    let created = create(&kube, "default", "", &pod("p5")).json();
    assert_eq!(created["spec"]["initContainers"][0]["env"][0]["value"], FOO);
}

#[test]
fn a_dry_run_create_is_mutated_too_and_stores_nothing() {
    let kube = routed();
    let resp = create(&kube, "default", "?dryRun=All", &annotated("p1", "foo"));
    assert_eq!(resp.status, 201);
    assert_eq!(resp.json()["spec"]["initContainers"][0]["name"], "gateway-init");
    assert!(kube.pods("default").is_empty());
}

#[test]
fn a_webhook_that_is_down_fails_the_create_or_is_ignored() {
    let kube = routed();
    kube.update_webhook("pod-gateway-foo", |hook| hook.up = false);
    let message = r#"failed calling webhook "pod-gateway-foo.svc.cluster.local": failed to call webhook: Post "https://pod-gateway-foo-webhook.gateway-system.svc:8080/wh/mutating/setgateway?timeout=5s": dial tcp 10.96.84.17:8080: connect: connection refused"#;
    assert_status(
        &create(&kube, "default", "", &annotated("p1", "foo")),
        status(
            500,
            "InternalError",
            &format!("Internal error occurred: {message}"),
            Some(json!({"causes": [{"message": message}]})),
        ),
    );
    assert!(kube.pods("default").is_empty());
    // Every call goes to every selected webhook: one that is down fails pods of other gateways too.
    assert_eq!(create(&kube, "default", "", &annotated("p2", "bar")).status, 500);
    kube.update_webhook("pod-gateway-foo", |hook| hook.failure_policy = FailurePolicy::Ignore);
    let created = create(&kube, "default", "", &annotated("p3", "foo")).json();
    assert_eq!(created["spec"].get("initContainers"), None, "admitted unchanged");
}

#[test]
fn a_label_the_webhook_cannot_parse_as_a_bool_fails_it() {
    let kube = routed();
    kube.update_webhook("pod-gateway-foo", |hook| hook.label = "setGateway".into());
    let mut pod = pod("p1");
    pod["metadata"]["labels"]["setGateway"] = json!("foo");
    let resp = create(&kube, "default", "", &pod);
    assert_eq!(resp.status, 500);
    let message = resp.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with(
            r#"Internal error occurred: failed calling webhook "pod-gateway-foo.svc.cluster.local": failed to call webhook: an error on the server ("#
        ),
        "{message}"
    );
    assert!(
        message
            .contains(r#"could not mutate object: strconv.ParseBool: parsing \\\"foo\\\": invalid syntax"#),
        "{message}"
    );
}

#[test]
fn a_gated_pod_is_pending_with_the_scheduling_gated_condition() {
    let kube = FakeKube::start();
    let mut pod = pod("p1");
    pod["spec"]["schedulingGates"] = json!([{"name": "podgateway.io/routing-check"}]);
    let created = create(&kube, "default", "", &pod).json();
    assert_eq!(created["status"]["phase"], "Pending");
    let condition = &created["status"]["conditions"][0];
    assert_eq!(
        (&condition["type"], &condition["status"], &condition["reason"], &condition["message"]),
        (
            &json!("PodScheduled"),
            &json!("False"),
            &json!("SchedulingGated"),
            &json!("Scheduling is blocked due to non-empty scheduling gates")
        )
    );
    assert!(condition["lastTransitionTime"].as_str().unwrap().ends_with('Z'));
    let ungated = create(&kube, "default", "", &crate::pod("p2")).json();
    assert_eq!(ungated["status"].get("conditions"), None);
}
