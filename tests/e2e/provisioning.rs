//! The provisioning scenarios: a pending event in, a pod and a reply out, and every way that
//! can go wrong, under each host of the suite.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use podgateway_test_harness::http_client::Response;
use podgateway_test_harness::{FakeKube, Fault, Runtime};
use serde_json::{Value, json};

use crate::world::*;

fn a_binary_mode_pending_event_creates_the_pod_and_replies_done(runtime: &Runtime) {
    let world = World::new(runtime, &[]);
    let response = world.pending("42", r#"{"gateway_name":"foo"}"#);
    let data = assert_reply(&response, DONE);
    assert_eq!(data, done_data(POD_42, "42", "foo"));
    assert_eq!(response.header("ce-subject"), Some(POD_42));

    let pods = world.stored_pods();
    assert_eq!(pods.len(), 1);
    let pod = &pods[0];
    assert_eq!(pod["metadata"]["name"], POD_42);
    let mut annotations = strings(&pod["metadata"]["annotations"]);
    let event = annotations.remove("podgateway.io/event").expect("the event annotation");
    assert_eq!(
        serde_json::from_str::<Value>(&event).unwrap(),
        json!({"specversion": "1.0", "id": "42", "source": "urn:test", "type": PENDING,
               "datacontenttype": "application/json", "data": {"gateway_name": "foo"}})
    );
    assert_eq!(
        annotations,
        BTreeMap::from([
            ("setGateway".into(), "foo".into()),
            ("podgateway.io/event-source".into(), "urn:test".into()),
            ("podgateway.io/event-id".into(), "42".into()),
        ])
    );
    assert_eq!(
        strings(&pod["metadata"]["labels"]),
        BTreeMap::from([
            ("app.kubernetes.io/name".into(), "podgateway-client".into()),
            ("app.kubernetes.io/managed-by".into(), "podgateway-client-provisioner".into()),
            ("podgateway.io/gateway".into(), "foo".into()),
        ])
    );
    let containers = pod["spec"]["containers"].as_array().unwrap();
    // The client, and the sidecar the pod-gateway webhook of foo added.
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0]["name"], "client");
    assert_eq!(containers[1]["name"], "gateway-sidecar");
    assert_eq!(containers[0]["image"], "alpine/curl");
    assert_eq!(containers[0]["command"], json!(["sleep", "infinity"]));
    assert_eq!(pod["spec"].get("activeDeadlineSeconds"), None);
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    assert_eq!(pod["metadata"]["managedFields"][0]["manager"], "podgateway-client-provisioner");

    let requests = world.kube.requests();
    assert_eq!(
        calls(&world.kube),
        [call("POST", 201), call("PATCH", 200)],
        "create, then release the routing gate"
    );
    let create = &requests[0];
    assert_eq!((create.method.as_str(), create.path.as_str()), ("POST", "/api/v1/namespaces/default/pods"));
    assert_eq!(create.header("authorization"), Some(&*format!("Bearer {}", FakeKube::TOKEN)));
    assert_eq!(create.query_param("fieldManager").as_deref(), Some("podgateway-client-provisioner"));
    assert_eq!(create.query_param("dryRun"), None);
    assert_eq!(create.status, Some(201));
    assert!(create.warnings.is_empty(), "the pod has no unknown fields: {:?}", create.warnings);

    let logs = world.logs();
    assert_eq!(logs.len(), 1);
    let log = &logs[0];
    assert_eq!(
        (log["event_id"].as_str(), log["event_type"].as_str(), log["outcome"].as_str()),
        (Some("42"), Some(PENDING), Some("done"))
    );
    assert_eq!((log["pod"].as_str(), log["namespace"].as_str()), (Some(POD_42), Some("default")));
    assert_eq!(log["api_status"], json!([201, 200]));
    assert!(log["elapsed_ms"].is_u64());
    assert!(!world.raw_logs().concat().contains(FakeKube::TOKEN), "the token is never logged");
}

fn a_structured_mode_pending_event_is_handled_the_same(runtime: &Runtime) {
    let world = World::new(runtime, &[]);
    let event = json!({
        "specversion": "1.0", "id": "42", "source": "urn:test", "type": PENDING,
        "datacontenttype": "application/json", "data": {"gateway_name": "bar"}
    });
    let response =
        world.post(&[("content-type", "application/cloudevents+json; charset=utf-8")], &event.to_string());
    assert_eq!(assert_reply(&response, DONE), done_data(POD_42, "42", "bar"));
    assert_eq!(world.stored_pods()[0]["metadata"]["annotations"]["setGateway"], "bar");
}

fn percent_encoded_attributes_are_decoded(runtime: &Runtime) {
    let world = World::new(runtime, &[]);
    let mut headers = binary("id%20%C3%A9", PENDING);
    headers[2] = ("ce-source", "urn:caf%C3%A9");
    let data = assert_reply(&world.post(&headers, r#"{"gateway_name":"foo"}"#), DONE);
    assert_eq!(
        (data["request_id"].as_str(), data["request_source"].as_str()),
        (Some("id é"), Some("urn:café"))
    );
    let annotations = strings(&world.stored_pods()[0]["metadata"]["annotations"]);
    assert_eq!(annotations["podgateway.io/event-source"], "urn:café");
    assert_eq!(annotations["podgateway.io/event-id"], "id é");
}

fn configured_pods_carry_every_setting(runtime: &Runtime) {
    let world = World::new(
        runtime,
        &[
            ("client_image", "busybox:1.37"),
            ("client_command", r#"["sh","-c","wget -qO- ifconfig.me; sleep 600"]"#),
            ("client_name_prefix", "vpn"),
            ("gateway_label", "setGateway"),
            ("client_active_deadline_seconds", "900"),
        ],
    );
    let response = world.pending("42", r#"{"gateway_name":"foo","message":"nightly crawl"}"#);
    let data = assert_reply(&response, DONE);
    assert_eq!(data["pod_name"], "vpn-7678b351e70b8efde9a6");
    let pod = &world.stored_pods()[0];
    assert_eq!(pod["metadata"]["labels"]["setGateway"], "foo");
    assert_eq!(pod["metadata"]["annotations"]["podgateway.io/request-message"], "nightly crawl");
    assert_eq!(pod["spec"]["activeDeadlineSeconds"], 900);
    assert_eq!(pod["spec"]["containers"][0]["image"], "busybox:1.37");
    assert_eq!(
        pod["spec"]["containers"][0]["command"],
        json!(["sh", "-c", "wget -qO- ifconfig.me; sleep 600"])
    );
}

fn a_redelivered_event_finds_its_pod(runtime: &Runtime) {
    let world = World::new(runtime, &[]);
    let first = world.pending("42", r#"{"gateway_name":"foo"}"#);
    let again = world.pending("42", r#"{"gateway_name":"foo"}"#);
    assert_eq!(assert_reply(&first, DONE), assert_reply(&again, DONE));
    assert_eq!(first.header("ce-id"), again.header("ce-id"));
    assert_eq!(world.stored_pods().len(), 1);
    assert_eq!(
        calls(&world.kube),
        [call("POST", 201), call("PATCH", 200), call("POST", 409), call("GET", 200)]
    );
    assert_eq!(world.logs()[1]["api_status"], json!([409, 200]));
}

/// Spin keeps outbound connections open across requests and instances; so does the host,
/// and a connection the API server drops is not used again.
fn api_calls_reuse_one_kept_alive_connection(runtime: &Runtime) {
    let world = World::new(runtime, &[]);
    for id in ["42", "42", "43"] {
        assert_reply(&world.pending(id, r#"{"gateway_name":"foo"}"#), DONE);
    }
    world.kube.inject(Fault::DropConnection, 1);
    assert_eq!(world.pending("44", r#"{"gateway_name":"foo"}"#).status, 503);
    assert_reply(&world.pending("44", r#"{"gateway_name":"foo"}"#), DONE);

    let calls: Vec<_> =
        world.kube.requests().iter().map(|r| (r.method.clone(), r.status, r.connection)).collect();
    let call = |method: &str, status, connection| (method.to_owned(), status, connection);
    assert_eq!(
        calls,
        [
            call("POST", Some(201), 1),
            call("PATCH", Some(200), 1),
            call("POST", Some(409), 1),
            call("GET", Some(200), 1),
            call("POST", Some(201), 1),
            call("PATCH", Some(200), 1),
            call("POST", None, 1),
            call("POST", Some(201), 2),
            call("PATCH", Some(200), 2),
        ]
    );
}

fn ten_concurrent_deliveries_make_one_pod(runtime: &Runtime) {
    let world = World::new(runtime, &[]);
    let responses: Vec<Response> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            (0..10).map(|_| scope.spawn(|| world.pending("42", r#"{"gateway_name":"foo"}"#))).collect();
        handles.into_iter().map(|handle| handle.join().unwrap()).collect()
    });
    for response in &responses {
        assert_eq!(assert_reply(response, DONE), done_data(POD_42, "42", "foo"));
        assert_eq!(response.header("ce-id"), responses[0].header("ce-id"));
    }
    assert_eq!(world.stored_pods().len(), 1);
    let created = world.kube.requests().iter().filter(|r| r.status == Some(201)).count();
    assert_eq!(created, 1);
}

fn distinct_events_make_distinct_pods(runtime: &Runtime) {
    let world = World::new(runtime, &[]);
    let first = assert_reply(&world.pending("a", r#"{"gateway_name":"foo"}"#), DONE);
    let second = assert_reply(&world.pending("b", r#"{"gateway_name":"foo"}"#), DONE);
    assert_ne!(first["pod_name"], second["pod_name"]);
    let mut names: Vec<_> = world.stored_pods().iter().map(|p| p["metadata"]["name"].clone()).collect();
    names.sort_by_key(|name| name.to_string());
    let mut expected = vec![first["pod_name"].clone(), second["pod_name"].clone()];
    expected.sort_by_key(|name| name.to_string());
    assert_eq!(names, expected);
}

fn bad_gateway_requests_are_failed_without_an_api_call(runtime: &Runtime) {
    let world = World::new(runtime, &[("allowed_gateways", "foo,bar")]);
    let cases: [(&str, Value, &str); 6] = [
        (r#"{"message":"hi"}"#, Value::Null, "the event data has no `gateway_name`"),
        (r#"{"gateway_name":""}"#, json!(""), "`gateway_name` is empty"),
        (
            r#"{"gateway_name":"foo bar"}"#,
            json!("foo bar"),
            "`gateway_name` \"foo bar\" is not a valid gateway name",
        ),
        (
            r#"{"gateway_name":"baz"}"#,
            json!("baz"),
            "gateway `baz` is not allowed here; allowed gateways: bar, foo",
        ),
        ("gateway foo", Value::Null, "data is not valid JSON"),
        (r#"["foo"]"#, Value::Null, "data must be a JSON object"),
    ];
    for (data, gateway, expected) in cases {
        let message = failed_message(&world.pending("42", data), gateway);
        assert!(message.starts_with(expected), "{data}: {message}");
    }
    assert!(world.kube.requests().is_empty());
    assert!(world.logs().iter().all(|log| log["outcome"] == "failed" && log["api_status"] == json!([])));
}

fn api_refusals_are_failed_with_the_api_reason(runtime: &Runtime) {
    let world = World::new(runtime, &[("k8s_token", "wrong-token")]);
    let message = failed_message(&world.pending("42", r#"{"gateway_name":"foo"}"#), json!("foo"));
    assert_eq!(
        message,
        format!(
            "the Kubernetes API refused to create pod default/{POD_42}: 401 Unauthorized: Unauthorized; \
             check k8s_token (the component's service-account token)"
        )
    );

    let world = World::new(runtime, &[]);
    world.kube.revoke(FakeKube::USER);
    world.kube.grant(FakeKube::USER, &["get"], Some("default"));
    let message = failed_message(&world.pending("42", r#"{"gateway_name":"foo"}"#), json!("foo"));
    assert!(
        message.contains(&format!(
            "403 Forbidden: pods is forbidden: User \"{}\" cannot create resource \"pods\" in API group \"\" in the namespace \"default\"",
            FakeKube::USER
        )),
        "{message}"
    );

    // With rights in every namespace the request passes authorization and meets admission.
    let world = World::new(runtime, &[("client_namespace", "missing")]);
    world.kube.grant(FakeKube::USER, &["create", "get"], None);
    let message = failed_message(&world.pending("42", r#"{"gateway_name":"foo"}"#), json!("foo"));
    assert!(
        message.contains("404 NotFound: namespaces \"missing\" not found; check client_namespace"),
        "{message}"
    );
    assert!(world.stored_pods().is_empty());
}

fn an_invalid_pod_is_failed_with_the_api_causes(runtime: &Runtime) {
    // A template label value the API refuses (a label value has at most 63 characters).
    let template = json!({"metadata": {"labels": {"team": "t".repeat(64)}}, "spec": {"containers": [{"name": "client", "image": "alpine/curl"}]}});
    let world = World::new(runtime, &[("client_pod_template", &template.to_string())]);
    let response = world.pending("42", r#"{"gateway_name":"foo"}"#);
    let message = failed_message(&response, json!("foo"));
    assert!(message.contains("422 Invalid: Pod \""), "{message}");
    assert!(message.contains("metadata.labels: Invalid value: \"tttt"), "{message}");
    assert!(message.ends_with(
        "check client_pod_template, client_image, client_command, client_name_prefix, gateway_annotation and gateway_label"
    ));
    assert!(world.stored_pods().is_empty());
}

fn a_foreign_pod_with_the_same_name_is_a_failure(runtime: &Runtime) {
    let world = World::new(runtime, &[]);
    world.kube.seed_pod(
        "default",
        json!({"metadata": {"name": POD_42, "annotations": {"podgateway.io/event-source": "urn:elsewhere",
               "podgateway.io/event-id": "42"}},
               "spec": {"containers": [{"name": "c", "image": "nginx"}]}}),
    );
    let message = failed_message(&world.pending("42", r#"{"gateway_name":"foo"}"#), json!("foo"));
    assert!(
        message
            .starts_with(&format!("pod default/{POD_42} already exists and was not created for this event"))
    );
    assert_eq!(
        world.stored_pods()[0]["spec"]["containers"][0]["image"],
        "nginx",
        "the foreign pod is untouched"
    );
}

/// A transient failure answers 503 (with the API's Retry-After when it gave one); the
/// broker's redelivery then succeeds, and there is one pod.
fn assert_retried_then_done(world: &World, expected_retry_after: Option<&str>, expected_message: &str) {
    let response = world.pending("42", r#"{"gateway_name":"foo"}"#);
    assert_eq!(response.status, 503, "{}", response.text());
    assert_eq!(response.header("retry-after"), expected_retry_after);
    assert_eq!(response.header("ce-type"), None);
    let error = response.json()["error"].as_str().unwrap().to_owned();
    assert!(error.contains(expected_message) && error.ends_with("; redeliver the event later"), "{error}");

    let redelivered = world.pending("42", r#"{"gateway_name":"foo"}"#);
    assert_eq!(assert_reply(&redelivered, DONE), done_data(POD_42, "42", "foo"));
    assert_eq!(world.stored_pods().len(), 1);
}

fn too_many_requests_is_retried_with_retry_after(runtime: &Runtime) {
    let world = World::new(runtime, &[]);
    world.kube.inject(Fault::TooManyRequests { retry_after_seconds: 3 }, 1);
    assert_retried_then_done(
        &world,
        Some("3"),
        "429 TooManyRequests: Too many requests, please try again later.",
    );
}

fn server_timeout_is_retried_with_retry_after(runtime: &Runtime) {
    let world = World::new(runtime, &[]);
    world.kube.inject(Fault::ServerTimeout { retry_after_seconds: 2 }, 1);
    assert_retried_then_done(&world, Some("2"), "500 ServerTimeout: The create operation against pods");
}

fn internal_errors_and_unavailable_are_retried(runtime: &Runtime) {
    let world = World::new(runtime, &[]);
    world.kube.inject(Fault::InternalError("etcd is down".into()), 1);
    assert_retried_then_done(&world, None, "500 InternalError: Internal error occurred: etcd is down");
    let world = World::new(runtime, &[]);
    world.kube.inject(Fault::ServiceUnavailable, 1);
    assert_retried_then_done(&world, None, "503 ServiceUnavailable");
}

fn a_hung_api_is_bounded_by_the_timeout(runtime: &Runtime) {
    let world = World::new(runtime, &[("k8s_timeout_seconds", "1")]);
    world.kube.inject(Fault::Slow(Duration::from_secs(4)), 1);
    let started = Instant::now();
    let response = world.pending("42", r#"{"gateway_name":"foo"}"#);
    assert!(started.elapsed() < Duration::from_secs(4), "answered before the API did");
    assert_eq!(response.status, 503, "{}", response.text());
    assert!(
        response.json()["error"]
            .as_str()
            .unwrap()
            .contains("did not answer within 1 s (k8s_timeout_seconds)")
    );
    // The slow create still lands on the server; the redelivery finds the pod.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        assert_reply(&world.pending("42", r#"{"gateway_name":"foo"}"#), DONE),
        done_data(POD_42, "42", "foo")
    );
    assert_eq!(world.stored_pods().len(), 1);
}

fn a_dropped_connection_is_retried(runtime: &Runtime) {
    let world = World::new(runtime, &[]);
    world.kube.inject(Fault::DropConnection, 1);
    assert_retried_then_done(&world, None, "cannot reach the Kubernetes API at http://127.0.0.1:");
}

fn bad_requests_are_refused_with_a_json_error_and_touch_nothing(runtime: &Runtime) {
    let world = World::new(runtime, &[]);
    let error = |response: &Response, status: u16| -> String {
        assert_eq!(response.status, status, "{}", response.text());
        assert_eq!(response.header("content-type"), Some("application/json"));
        response.json()["error"].as_str().expect("an error message").to_owned()
    };
    let not_an_event = world.post(&[("content-type", "application/json")], r#"{"gateway_name":"foo"}"#);
    assert!(error(&not_an_event, 400).starts_with("not a CloudEvent"));

    let mut missing_source = binary("42", PENDING);
    missing_source.remove(2);
    assert!(error(&world.post(&missing_source, "{}"), 400).contains("Missing required attribute source"));

    let batch = world.post(&[("content-type", "application/cloudevents-batch+json")], "[]");
    assert!(error(&batch, 415).contains("one event per request"));

    let get = world.send("GET", &[], "");
    assert_eq!(error(&get, 405), "method GET is not allowed; POST a CloudEvent");
    assert_eq!(get.header("allow"), Some("POST"));

    let oversized = world.pending("42", &" ".repeat(256 * 1024 + 1));
    assert!(error(&oversized, 413).starts_with("request body is larger than 262144 bytes"));

    let unknown = world.post(&binary("42", "com.example.other"), "{}");
    assert_eq!((unknown.status, unknown.body.len()), (204, 0));

    assert!(world.kube.requests().is_empty());
    let outcomes: Vec<_> =
        world.logs().iter().map(|log| log["outcome"].as_str().unwrap().to_owned()).collect();
    assert_eq!(outcomes, ["rejected", "rejected", "rejected", "rejected", "rejected", "ignored"]);
}

fn bad_variable_values_answer_500_naming_the_variable(runtime: &Runtime) {
    let cases = [
        ("client_command", "sleep infinity", "is not a JSON array of strings"),
        ("dry_run", "yes", "is neither true nor false"),
        ("client_active_deadline_seconds", "an hour", "is not a positive whole number of seconds"),
        ("client_name_prefix", "Clients", "cannot start pod names"),
    ];
    for (variable, value, problem) in cases {
        let world = World::new(runtime, &[(variable, value)]);
        let response = world.pending("42", r#"{"gateway_name":"foo"}"#);
        assert_eq!(response.status, 500, "{variable}: {}", response.text());
        let error = response.json()["error"].as_str().unwrap().to_owned();
        assert!(
            error.starts_with(&format!("Spin variable `{variable}`: `{value}` ")) && error.contains(problem),
            "{error}"
        );
        assert!(world.kube.requests().is_empty());
        assert_eq!(world.logs()[0]["outcome"], "config_error");
    }
}

/// Spin starts with an `allowed_outbound_hosts` entry that its template made invalid (it
/// denies every outbound request then); the component reports the variable itself.
fn a_k8s_api_url_that_is_not_a_url_answers_500(runtime: &Runtime) {
    let world = World::new(runtime, &[("k8s_api_url", "kubernetes.default.svc")]);
    let response = world.pending("42", r#"{"gateway_name":"foo"}"#);
    assert_eq!(response.status, 500);
    assert_eq!(
        response.json()["error"],
        "Spin variable `k8s_api_url`: `kubernetes.default.svc` must start with http:// or https://"
    );
}

fn dry_run_validates_without_storing(runtime: &Runtime) {
    let world = World::new(runtime, &[("dry_run", "true")]);
    let data = assert_reply(&world.pending("42", r#"{"gateway_name":"foo"}"#), DONE);
    assert_eq!(
        data["message"],
        "A pod-gateway client would have been scheduled (dry run: nothing was created)."
    );
    assert_eq!(world.kube.requests()[0].query_param("dryRun").as_deref(), Some("All"));
    assert!(world.stored_pods().is_empty());
}

fn an_api_url_outside_the_allowed_hosts_is_reported_cleanly(runtime: &Runtime) {
    let world = World::with_outbound_hosts(runtime, &["https://kubernetes.default.svc"]);
    let started = Instant::now();
    let response = world.pending("42", r#"{"gateway_name":"foo"}"#);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(response.status, 500, "{}", response.text());
    let error = response.json()["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("k8s_api_url must be listed in the component's allowed_outbound_hosts"),
        "{error}"
    );
    assert!(world.kube.requests().is_empty());
}

crate::scenarios!(
    a_binary_mode_pending_event_creates_the_pod_and_replies_done,
    a_structured_mode_pending_event_is_handled_the_same,
    percent_encoded_attributes_are_decoded,
    configured_pods_carry_every_setting,
    a_redelivered_event_finds_its_pod,
    api_calls_reuse_one_kept_alive_connection,
    ten_concurrent_deliveries_make_one_pod,
    distinct_events_make_distinct_pods,
    bad_gateway_requests_are_failed_without_an_api_call,
    api_refusals_are_failed_with_the_api_reason,
    an_invalid_pod_is_failed_with_the_api_causes,
    a_foreign_pod_with_the_same_name_is_a_failure,
    too_many_requests_is_retried_with_retry_after,
    server_timeout_is_retried_with_retry_after,
    internal_errors_and_unavailable_are_retried,
    a_hung_api_is_bounded_by_the_timeout,
    a_dropped_connection_is_retried,
    bad_requests_are_refused_with_a_json_error_and_touch_nothing,
    bad_variable_values_answer_500_naming_the_variable,
    a_k8s_api_url_that_is_not_a_url_answers_500,
    dry_run_validates_without_storing,
    an_api_url_outside_the_allowed_hosts_is_reported_cleanly,
);
