//! Crawler jobs: the client pod is the operator's (a template), knows its event (the JobSink
//! file contract and env vars), and takes per-event arguments where that is allowed.

use podgateway_test_harness::Runtime;
use serde_json::{Value, json};

use crate::world::*;

/// A crawler's template: resources, env, a service account, a restart policy.
fn crawler_template() -> String {
    json!({
        "metadata": {"labels": {"team": "crawl"}},
        "spec": {
            "serviceAccountName": "crawler",
            "restartPolicy": "Never",
            "containers": [{
                "name": "client", "image": "ghcr.io/example/crawler:1.4",
                "command": ["crawl"],
                "env": [{"name": "CRAWL_DEPTH", "value": "2"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
            }]
        }
    })
    .to_string()
}

fn client(pod: &Value) -> &Value {
    &pod["spec"]["containers"][0]
}

fn a_template_with_resources_and_env_shapes_the_pod(runtime: &Runtime) {
    let world = World::new(runtime, &[("client_pod_template", &crawler_template())]);
    assert_reply(&world.pending("42", r#"{"gateway_name":"foo"}"#), DONE);
    let pod = &world.stored_pods()[0];
    let client = client(pod);
    assert_eq!(client["image"], "ghcr.io/example/crawler:1.4");
    assert_eq!(client["command"], json!(["crawl"]));
    assert_eq!(
        client["resources"],
        json!({"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}})
    );
    let env: Vec<(&str, &str)> = client["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|var| (var["name"].as_str().unwrap(), var["value"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        env,
        [
            ("CRAWL_DEPTH", "2"),
            ("PODGATEWAY_GATEWAY", "foo"),
            ("PODGATEWAY_EVENT_ID", "42"),
            ("PODGATEWAY_EVENT_SOURCE", "urn:test"),
            ("K_EVENT_PATH", "/etc/podgateway-event/event"),
        ]
    );
    assert_eq!(pod["spec"]["serviceAccountName"], "crawler");
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    assert_eq!(pod["metadata"]["labels"]["team"], "crawl");
    assert_eq!(pod["metadata"]["labels"]["podgateway.io/gateway"], "foo");
    let create = &world.kube.requests()[0];
    assert!(create.warnings.is_empty(), "the API knows every field: {:?}", create.warnings);
}

/// The event file: what the downward API volume shows is the annotation, the whole event.
fn the_event_reaches_the_pod_as_the_event_that_was_sent(runtime: &Runtime) {
    let world = World::new(runtime, &[]);
    let event = json!({
        "specversion": "1.0", "id": "42", "source": "urn:test", "type": PENDING, "subject": "crawl/1",
        "time": "2026-12-01T08:00:00Z", "datacontenttype": "application/json", "traceparent": "00-0af7-b7ad-01",
        "data": {"gateway_name": "foo", "message": "nightly", "depth": 2}
    });
    let response = world.post(&[("content-type", "application/cloudevents+json")], &event.to_string());
    assert_reply(&response, DONE);
    let pod = &world.stored_pods()[0];
    let annotation =
        pod["metadata"]["annotations"]["podgateway.io/event"].as_str().expect("the event annotation");
    assert_eq!(serde_json::from_str::<Value>(annotation).unwrap(), event);
    assert_eq!(
        pod["spec"]["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "podgateway-event").unwrap()
            ["downwardAPI"],
        json!({"items": [{"path": "event", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations['podgateway.io/event']"}}],
               "defaultMode": 420}),
        "as the API defaults it"
    );
    let mounts = client(pod)["volumeMounts"].as_array().unwrap();
    assert!(mounts.contains(
        &json!({"name": "podgateway-event", "mountPath": "/etc/podgateway-event", "readOnly": true})
    ));
}

fn an_event_may_bring_args_where_they_are_allowed(runtime: &Runtime) {
    let data = r#"{"gateway_name":"foo","args":["https://example.com","--max-pages=10"]}"#;
    let world =
        World::new(runtime, &[("allow_event_args", "true"), ("client_pod_template", &crawler_template())]);
    assert_reply(&world.pending("42", data), DONE);
    assert_eq!(client(&world.stored_pods()[0])["args"], json!(["https://example.com", "--max-pages=10"]));

    let world = World::new(runtime, &[]);
    let message = failed_message(&world.pending("42", data), json!("foo"));
    assert_eq!(message, "this provisioner takes no `args` from events (allow_event_args is false)");
    assert!(world.kube.requests().is_empty());
}

fn an_event_too_large_for_its_pod_is_failed_and_nothing_is_created(runtime: &Runtime) {
    let world = World::new(runtime, &[]);
    // Within the component's 256 KiB body limit; with the event in the annotations, past the
    // API's 262,144 bytes of annotations.
    let message = "m".repeat(200_000);
    let response = world.pending("42", &json!({"gateway_name": "foo", "message": message}).to_string());
    let message = failed_message(&response, json!("foo"));
    assert!(message.starts_with("the event is too large for its pod: with it ("), "{message}");
    assert!(message.ends_with("bytes, and Kubernetes allows 262144 in all"), "{message}");
    assert!(world.kube.requests().is_empty(), "refused before the API");
}

fn a_template_the_component_cannot_use_answers_500(runtime: &Runtime) {
    let template = r#"{"spec": {"containers": [{"name": "client", "image": "c", "imagePolicy": "Always"}]}}"#;
    let world = World::new(runtime, &[("client_pod_template", template)]);
    let response = world.pending("42", r#"{"gateway_name":"foo"}"#);
    assert_eq!(response.status, 500, "{}", response.text());
    assert_eq!(
        response.json()["error"],
        r#"Spin variable `client_pod_template`: unknown field "spec.containers[0].imagePolicy""#
    );
    assert!(world.kube.requests().is_empty());
}

crate::scenarios!(
    a_template_with_resources_and_env_shapes_the_pod,
    the_event_reaches_the_pod_as_the_event_that_was_sent,
    an_event_may_bring_args_where_they_are_allowed,
    an_event_too_large_for_its_pod_is_failed_and_nothing_is_created,
    a_template_the_component_cannot_use_answers_500,
);
