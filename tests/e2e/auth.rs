//! Only allowed senders: with `auth_audience` set, a request needs a bearer token that the
//! API server authenticates for that audience (TokenReview) from a subject that
//! `auth_allowed_senders` allows, before its event is read; a verified token is remembered in
//! Spin's key-value store. The fake API server issues service-account tokens as the
//! TokenRequest API does (Knative's Trigger ServiceAccounts) and reviews them as the real one.

use std::time::{Duration, SystemTime};

use podgateway_test_harness::http_client::Response;
use podgateway_test_harness::{FakeKube, Fault, Runtime};
use serde_json::{Value, json};

use crate::world::*;

const AUDIENCE: &str = "podgateway-client-provisioner";
const NAMESPACE: &str = "podgateway-system";
/// The OIDC ServiceAccount Knative makes for the Trigger `client-provisioner`.
const TRIGGER_SA: &str = "client-provisioner-oidc-eventing.knative.dev-trigger";
const REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

fn subject(service_account: &str) -> String {
    format!("system:serviceaccount:{NAMESPACE}:{service_account}")
}

/// Authentication on, allowing the Trigger's ServiceAccount.
fn world(runtime: &Runtime, variables: &[(&str, &str)]) -> World {
    let allowed = subject(TRIGGER_SA);
    let mut all = vec![("auth_audience", AUDIENCE), ("auth_allowed_senders", allowed.as_str())];
    all.extend_from_slice(variables);
    World::new(runtime, &all)
}

fn trigger_token(kube: &FakeKube) -> String {
    kube.issue_token(NAMESPACE, TRIGGER_SA, &[AUDIENCE], Duration::from_secs(3600))
}

fn pending_with(world: &World, id: &str, token: &str) -> Response {
    let authorization = format!("Bearer {token}");
    let mut headers = binary(id, PENDING);
    headers.push(("authorization", &authorization));
    world.post(&headers, r#"{"gateway_name":"foo"}"#)
}

fn paths(world: &World) -> Vec<(String, String, u16)> {
    world
        .kube
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.path.clone(), r.status.unwrap_or_default()))
        .collect()
}

fn review(status: u16) -> (String, String, u16) {
    ("POST".into(), REVIEWS.into(), status)
}

fn pods(method: &str, status: u16) -> (String, String, u16) {
    let path = if method == "POST" {
        "/api/v1/namespaces/default/pods".to_owned()
    } else {
        format!("/api/v1/namespaces/default/pods/{POD_42}")
    };
    (method.into(), path, status)
}

fn assert_unauthenticated(response: &Response, reason: &str, token_given: bool) {
    assert_eq!(response.status, 401, "{}", response.text());
    let challenge = if token_given { r#"Bearer error="invalid_token""# } else { "Bearer" };
    assert_eq!(response.header("www-authenticate"), Some(challenge));
    assert_eq!(response.json(), json!({"error": format!("unauthenticated: {reason}")}));
}

fn without_a_valid_token_nothing_reaches_the_pod_api(runtime: &Runtime) {
    let world = world(runtime, &[]);
    assert_unauthenticated(
        &world.pending("42", r#"{"gateway_name":"foo"}"#),
        "the request has no Authorization header; send Authorization: Bearer <token>",
        false,
    );
    assert_unauthenticated(
        &pending_with(&world, "42", "garbage"),
        "the bearer token is not a JWT (header.payload.signature, base64url)",
        true,
    );
    let hour = Duration::from_secs(3600);
    let expired = world.kube.issue_token_valid_between(
        NAMESPACE,
        TRIGGER_SA,
        &[AUDIENCE],
        SystemTime::now() - 2 * hour,
        SystemTime::now() - hour,
    );
    let response = pending_with(&world, "42", &expired);
    assert_eq!(response.status, 401);
    assert!(
        response.json()["error"].as_str().unwrap().starts_with("unauthenticated: the token expired "),
        "{}",
        response.text()
    );
    let elsewhere = world.kube.issue_token(
        NAMESPACE,
        TRIGGER_SA,
        &["https://kubernetes.default.svc.cluster.local"],
        hour,
    );
    assert_unauthenticated(
        &pending_with(&world, "42", &elsewhere),
        &format!(
            "the token is not for audience {AUDIENCE} (its aud: [\"https://kubernetes.default.svc.cluster.local\"])"
        ),
        true,
    );
    assert!(world.kube.requests().is_empty(), "turned away without an API call");

    // A token that looks right but that the API server did not issue: the review refuses it.
    let issued = trigger_token(&world.kube);
    let forged = format!("{}.Zm9yZ2Vk", issued.rsplit_once('.').unwrap().0);
    let response = pending_with(&world, "42", &forged);
    assert_eq!(response.status, 401, "{}", response.text());
    assert!(
        response.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("unauthenticated: the token was not accepted: ")
    );
    assert_eq!(paths(&world), [review(201)]);
    let logs = world.logs();
    assert!(logs.iter().all(|log| log["outcome"] == "rejected" && log["status"] == 401), "{logs:?}");
    assert!(logs.iter().all(|log| !log.to_string().contains(&issued[..40])), "no token in the logs");
}

fn an_allowed_sender_is_served_and_its_token_reviewed_once(runtime: &Runtime) {
    let world = world(runtime, &[]);
    let token = trigger_token(&world.kube);
    assert_eq!(assert_reply(&pending_with(&world, "42", &token), DONE), done_data(POD_42, "42", "foo"));
    assert_reply(&pending_with(&world, "43", &token), DONE);
    let calls = paths(&world);
    assert_eq!(calls[..3], [review(201), pods("POST", 201), pods("PATCH", 200)]);
    assert_eq!(
        calls.iter().filter(|call| call.1 == REVIEWS).count(),
        1,
        "the second event's token was remembered: {calls:?}"
    );
    let review_request = &world.kube.requests()[0];
    assert_eq!(review_request.json().unwrap()["spec"], json!({"token": token, "audiences": [AUDIENCE]}));
    let logs = world.logs();
    assert_eq!(logs[0]["sender"], subject(TRIGGER_SA));
    assert_eq!(logs[0]["api_status"], json!([201, 201, 200]));
    assert_eq!(logs[1]["api_status"], json!([201, 200]));
}

fn another_sender_is_forbidden(runtime: &Runtime) {
    let world = world(runtime, &[]);
    let token = world.kube.issue_token(NAMESPACE, "intruder", &[AUDIENCE], Duration::from_secs(3600));
    let response = pending_with(&world, "42", &token);
    assert_eq!(response.status, 403, "{}", response.text());
    assert_eq!(
        response.json(),
        json!({"error": format!("{} may not send events here (auth_allowed_senders)", subject("intruder"))})
    );
    assert_eq!(paths(&world), [review(201)]);
    // Any ServiceAccount of the namespace, by prefix.
    let world = World::new(
        runtime,
        &[("auth_audience", AUDIENCE), ("auth_allowed_senders", "system:serviceaccount:podgateway-system:*")],
    );
    let token = world.kube.issue_token(NAMESPACE, "intruder", &[AUDIENCE], Duration::from_secs(3600));
    assert_reply(&pending_with(&world, "42", &token), DONE);
}

fn without_the_cache_every_event_is_reviewed(runtime: &Runtime) {
    let world = world(runtime, &[("auth_cache_seconds", "0")]);
    // The API server remembers a successful review for 10 s; revocation is seen after that.
    world.kube.set_token_cache_ttl(Duration::ZERO);
    let token = trigger_token(&world.kube);
    assert_reply(&pending_with(&world, "42", &token), DONE);
    assert_reply(&pending_with(&world, "43", &token), DONE);
    assert_eq!(paths(&world).iter().filter(|call| call.1 == REVIEWS).count(), 2);
    // And a ServiceAccount deleted meanwhile is refused at once (revocation).
    world.kube.delete_service_account(NAMESPACE, TRIGGER_SA);
    let response = pending_with(&world, "44", &token);
    assert_eq!(response.status, 401, "{}", response.text());
}

fn a_store_the_component_may_not_open_means_reviewing_every_event(runtime: &Runtime) {
    let allowed = subject(TRIGGER_SA);
    let variables = [("auth_audience", AUDIENCE), ("auth_allowed_senders", allowed.as_str())];
    let world = World::with_key_value_stores(runtime, &variables, &[]);
    let token = trigger_token(&world.kube);
    assert_reply(&pending_with(&world, "42", &token), DONE);
    assert_reply(&pending_with(&world, "43", &token), DONE);
    assert_eq!(paths(&world).iter().filter(|call| call.1 == REVIEWS).count(), 2);
    let warnings = &world.logs()[0]["warnings"];
    assert!(
        warnings[0].as_str().unwrap().starts_with("cannot read the key-value store, verifying the token: cannot open the key-value store `default`: "),
        "{warnings}"
    );
}

fn a_review_that_fails_is_retried_or_names_what_to_fix(runtime: &Runtime) {
    let world = world(runtime, &[]);
    let token = trigger_token(&world.kube);
    world.kube.inject(Fault::TooManyRequests { retry_after_seconds: 3 }, 1);
    let response = pending_with(&world, "42", &token);
    assert_eq!((response.status, response.header("retry-after")), (503, Some("3")), "{}", response.text());
    assert_eq!(world.logs()[0]["outcome"], "retry");
    assert_reply(&pending_with(&world, "42", &token), DONE);

    // The component's own permission to review tokens missing: its deployment is wrong.
    let world = world_without_token_reviews(runtime);
    let token = trigger_token(&world.kube);
    let response = pending_with(&world, "42", &token);
    assert_eq!(response.status, 500, "{}", response.text());
    let error = response.json()["error"].as_str().unwrap().to_owned();
    assert!(error.starts_with("the Kubernetes API refused to review the sender's token: 403 Forbidden: tokenreviews.authentication.k8s.io is forbidden"), "{error}");
    assert!(error.contains("bind the ClusterRole of deploy/rbac.yaml"), "{error}");
    assert_eq!(paths(&world), [review(403)]);
}

fn world_without_token_reviews(runtime: &Runtime) -> World {
    let world = world(runtime, &[]);
    world.kube.revoke(FakeKube::USER);
    world.kube.grant(FakeKube::USER, &podgateway_client_provisioner::kube::POD_VERBS, Some("default"));
    world
}

fn with_authentication_off_a_token_changes_nothing(runtime: &Runtime) {
    let world = World::new(runtime, &[]);
    let token = trigger_token(&world.kube);
    assert_reply(&pending_with(&world, "42", &token), DONE);
    assert_reply(&world.pending("43", r#"{"gateway_name":"foo"}"#), DONE);
    assert!(paths(&world).iter().all(|call| call.1 != REVIEWS));
    assert_eq!(world.logs()[0]["sender"], Value::Null);
}

crate::scenarios!(
    without_a_valid_token_nothing_reaches_the_pod_api,
    an_allowed_sender_is_served_and_its_token_reviewed_once,
    another_sender_is_forbidden,
    without_the_cache_every_event_is_reviewed,
    a_store_the_component_may_not_open_means_reviewing_every_event,
    a_review_that_fails_is_retried_or_names_what_to_fix,
    with_authentication_off_a_token_changes_nothing,
);
