//! Self-tests of the fake kube-apiserver in the test harness: every rule it implements, with
//! the exact status code and `metav1.Status` body, as the real server answers (the facts, and
//! where they come from, are in the documentation of `tests/harness/src/fake_kube/mod.rs`).

mod admission;
mod kubelet;
mod token_review;
mod updates;

use podgateway_test_harness::http_client::{Response, send_blocking};
use podgateway_test_harness::{FakeKube, Fault};
use serde_json::{Value, json};

const SUBDOMAIN_RULE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_RULE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const NAME_PART_RULE: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_RULE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

pub(crate) fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "podgateway-client"}},
        "spec": {"containers": [{"name": "client", "image": "alpine/curl", "command": ["sleep", "infinity"]}]}
    })
}

pub(crate) fn call(
    kube: &FakeKube,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if let Some(auth) = &auth {
        all.push(("authorization", auth));
    }
    send_blocking(method, &format!("{}{path}", kube.url()), &all, body.to_vec()).expect("the fake answers")
}

pub(crate) fn create(kube: &FakeKube, ns: &str, query: &str, body: &Value) -> Response {
    create_as(kube, Some(FakeKube::TOKEN), ns, query, &serde_json::to_vec(body).unwrap())
}

pub(crate) fn create_as(
    kube: &FakeKube,
    token: Option<&str>,
    ns: &str,
    query: &str,
    body: &[u8],
) -> Response {
    let path = format!("/api/v1/namespaces/{ns}/pods{query}");
    call(kube, "POST", &path, token, &[("content-type", "application/json")], body)
}

pub(crate) fn get(kube: &FakeKube, path: &str) -> Response {
    call(kube, "GET", path, Some(FakeKube::TOKEN), &[], b"")
}

/// The real server's answer to a method a resource does not serve.
pub(crate) fn method_not_allowed() -> Value {
    status(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        Some(json!({})),
    )
}

pub(crate) fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code});
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

#[track_caller]
pub(crate) fn assert_status(resp: &Response, expected: Value) {
    let code = expected["code"].as_u64().unwrap() as u16;
    assert_eq!(resp.status, code, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.json(), expected);
}

pub(crate) fn invalid_pod(name: &str, causes: &[(&str, &str, &str)]) -> Value {
    let messages: Vec<String> = causes.iter().map(|(_, field, msg)| format!("{field}: {msg}")).collect();
    let joined = if messages.len() == 1 { messages[0].clone() } else { format!("[{}]", messages.join(", ")) };
    let causes: Vec<Value> = causes
        .iter()
        .map(|(reason, field, msg)| json!({"reason": reason, "message": msg, "field": field}))
        .collect();
    let mut details = json!({"kind": "Pod", "causes": causes});
    if !name.is_empty() {
        details["name"] = json!(name);
    }
    status(422, "Invalid", &format!("Pod {name:?} is invalid: {joined}"), Some(details))
}

// ---- create: success and defaults ----

#[test]
fn create_answers_201_with_the_defaulted_pod_and_stores_it() {
    let kube = FakeKube::start();
    let resp = create(&kube, "default", "?fieldManager=podgateway", &pod("p1"));
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let created = resp.json();
    let meta = &created["metadata"];
    assert_eq!(created["kind"], "Pod");
    assert_eq!(meta["name"], "p1");
    assert_eq!(meta["namespace"], "default");
    assert_eq!(meta["uid"].as_str().unwrap().len(), 36);
    assert!(meta["resourceVersion"].as_str().unwrap().parse::<u64>().is_ok());
    assert!(meta["creationTimestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(meta["managedFields"][0]["manager"], "podgateway");
    assert_eq!(meta["managedFields"][0]["operation"], "Update");
    assert_eq!(meta["managedFields"][0]["fieldsV1"]["f:metadata"]["f:labels"]["f:app"], json!({}));
    let spec = &created["spec"];
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["containers"][0]["imagePullPolicy"], "Always");
    assert_eq!(spec["containers"][0]["terminationMessagePath"], "/dev/termination-log");
    assert!(spec["volumes"][0]["name"].as_str().unwrap().starts_with("kube-api-access-"));
    assert_eq!(spec["tolerations"].as_array().unwrap().len(), 2);
    assert_eq!(created["status"], json!({"phase": "Pending", "qosClass": "BestEffort"}));
    assert_eq!(kube.pods("default"), std::slice::from_ref(&created));
    assert_eq!(kube.pod("default", "p1"), Some(created));
}

#[test]
fn image_pull_policy_follows_the_image_tag() {
    let kube = FakeKube::start();
    for (name, image, policy) in [
        ("a", "alpine/curl:8.5.0", "IfNotPresent"),
        ("b", "alpine/curl:latest", "Always"),
        ("c", "curl@sha256:0123", "IfNotPresent"),
    ] {
        let mut p = pod(name);
        p["spec"]["containers"][0]["image"] = json!(image);
        let resp = create(&kube, "default", "", &p);
        assert_eq!(resp.json()["spec"]["containers"][0]["imagePullPolicy"], policy, "{image}");
    }
}

#[test]
fn qos_class_follows_resources() {
    let kube = FakeKube::start();
    let mut p = pod("burstable");
    p["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "10m"}});
    assert_eq!(create(&kube, "default", "", &p).json()["status"]["qosClass"], "Burstable");
    let mut p = pod("guaranteed");
    p["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "10m", "memory": "16Mi"}});
    assert_eq!(create(&kube, "default", "", &p).json()["status"]["qosClass"], "Guaranteed");
}

#[test]
fn field_manager_defaults_to_the_user_agent_up_to_the_first_slash() {
    let kube = FakeKube::start();
    let body = serde_json::to_vec(&pod("p1")).unwrap();
    let resp = call(
        &kube,
        "POST",
        "/api/v1/namespaces/default/pods",
        Some(FakeKube::TOKEN),
        &[("content-type", "application/json"), ("user-agent", "provisioner/0.1 (wasm32)")],
        &body,
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(resp.json()["metadata"]["managedFields"][0]["manager"], "provisioner");
}

#[test]
fn generate_name_gets_a_random_suffix() {
    let kube = FakeKube::start();
    let p = json!({"metadata": {"generateName": "client-"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
    let resp = create(&kube, "default", "", &p);
    assert_eq!(resp.status, 201, "{}", resp.text());
    let name = resp.json()["metadata"]["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("client-") && name.len() == "client-".len() + 5, "{name}");
}

#[test]
fn missing_content_type_means_json_and_other_types_get_415() {
    let kube = FakeKube::start();
    let body = serde_json::to_vec(&pod("p1")).unwrap();
    let resp = call(&kube, "POST", "/api/v1/namespaces/default/pods", Some(FakeKube::TOKEN), &[], &body);
    assert_eq!(resp.status, 201, "{}", resp.text());
    let resp = call(
        &kube,
        "POST",
        "/api/v1/namespaces/default/pods",
        Some(FakeKube::TOKEN),
        &[("content-type", "text/plain")],
        &body,
    );
    assert_status(
        &resp,
        status(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf",
            None,
        ),
    );
}

// ---- authentication and authorization ----

#[test]
fn a_bad_token_is_401_unauthorized() {
    let kube = FakeKube::start();
    let resp = create_as(&kube, Some("wrong"), "default", "", b"not even json");
    assert_status(&resp, status(401, "Unauthorized", "Unauthorized", None));
}

#[test]
fn no_token_is_system_anonymous_and_gets_403() {
    let kube = FakeKube::start();
    let message = r#"pods is forbidden: User "system:anonymous" cannot create resource "pods" in API group "" in the namespace "default""#;
    let expected = status(403, "Forbidden", message, Some(json!({"kind": "pods"})));
    assert_status(&create_as(&kube, None, "default", "", b"{}"), expected.clone());
    // A non-bearer Authorization header is not a token either.
    let resp = call(
        &kube,
        "POST",
        "/api/v1/namespaces/default/pods",
        None,
        &[("authorization", "Basic dXNlcjpwYXNz")],
        b"{}",
    );
    assert_status(&resp, expected);
}

#[test]
fn permissions_are_per_user_verb_and_namespace() {
    let kube = FakeKube::start();
    kube.add_namespace("clients");
    kube.add_token("narrow", "system:serviceaccount:ns:sa");
    kube.grant("system:serviceaccount:ns:sa", &["create"], Some("clients"));
    let narrow = |method: &str, path: &str, body: &[u8]| {
        call(&kube, method, path, Some("narrow"), &[("content-type", "application/json")], body)
    };
    let body = serde_json::to_vec(&pod("p1")).unwrap();

    assert_eq!(narrow("POST", "/api/v1/namespaces/clients/pods", &body).status, 201);
    let denied = |verb: &str, ns: &str, name: Option<&str>| {
        let prefix = name.map_or("pods".to_owned(), |n| format!("pods {n:?}"));
        let mut details = json!({"kind": "pods"});
        if let Some(n) = name {
            details["name"] = json!(n);
        }
        let message = format!(
            r#"{prefix} is forbidden: User "system:serviceaccount:ns:sa" cannot {verb} resource "pods" in API group "" in the namespace "{ns}""#
        );
        status(403, "Forbidden", &message, Some(details))
    };
    assert_status(
        &narrow("POST", "/api/v1/namespaces/default/pods", &body),
        denied("create", "default", None),
    );
    assert_status(
        &narrow("GET", "/api/v1/namespaces/clients/pods/p1", b""),
        denied("get", "clients", Some("p1")),
    );
    assert_status(&narrow("GET", "/api/v1/namespaces/clients/pods", b""), denied("list", "clients", None));
    assert_status(
        &narrow("DELETE", "/api/v1/namespaces/clients/pods/p1", b""),
        denied("delete", "clients", Some("p1")),
    );

    kube.revoke("system:serviceaccount:ns:sa");
    assert_status(
        &narrow("POST", "/api/v1/namespaces/clients/pods", &body),
        denied("create", "clients", None),
    );
}

// ---- namespaces (admission) ----

#[test]
fn a_missing_namespace_is_404() {
    let kube = FakeKube::start();
    let resp = create(&kube, "nope", "", &pod("p1"));
    assert_status(
        &resp,
        status(
            404,
            "NotFound",
            r#"namespaces "nope" not found"#,
            Some(json!({"name": "nope", "kind": "namespaces"})),
        ),
    );
}

#[test]
fn a_terminating_namespace_is_403() {
    let kube = FakeKube::start();
    kube.terminate_namespace("going");
    let resp = create(&kube, "going", "", &pod("p1"));
    assert_status(
        &resp,
        status(
            403,
            "Forbidden",
            r#"pods "p1" is forbidden: unable to create new content in namespace going because it is being terminated"#,
            Some(json!({
                "name": "p1",
                "kind": "pods",
                "causes": [{"reason": "NamespaceTerminating", "message": "namespace going is being terminated", "field": "metadata.namespace"}]
            })),
        ),
    );
    kube.remove_namespace("going");
    assert_eq!(create(&kube, "going", "", &pod("p1")).status, 404);
}

// ---- body decoding (400) ----

fn unrecognized(why: &str, summary: &str) -> Value {
    let message = format!(
        "the object provided is unrecognized (must be of type Pod): couldn't get version/kind; json parse error: {why} ({summary})"
    );
    status(400, "BadRequest", &message, None)
}

#[test]
fn a_body_that_is_not_json_is_400() {
    let kube = FakeKube::start();
    let resp = create_as(&kube, Some(FakeKube::TOKEN), "default", "", b"{not json");
    assert_status(&resp, unrecognized("key must be a string at line 1 column 2", "{not json"));
    let resp = create_as(&kube, Some(FakeKube::TOKEN), "default", "", b"");
    assert_status(&resp, unrecognized("unexpected end of JSON input", "<empty>"));
    let resp = create_as(&kube, Some(FakeKube::TOKEN), "default", "", b"[]");
    let why = r#"json: cannot unmarshal array into Go value of type struct { APIVersion string "json:\"apiVersion,omitempty\""; Kind string "json:\"kind,omitempty\"" }"#;
    assert_status(&resp, unrecognized(why, "5b5d"));
}

#[test]
fn another_kind_or_version_is_400() {
    let kube = FakeKube::start();
    let mut service = pod("p1");
    service["kind"] = json!("Service");
    assert_status(
        &create(&kube, "default", "", &service),
        status(
            400,
            "BadRequest",
            r#"Service in version "v1" cannot be handled as a Pod: converting (v1.Service) to (core.Pod): unknown conversion"#,
            None,
        ),
    );
    let mut apps = pod("p1");
    apps["apiVersion"] = json!("apps/v1");
    assert_status(
        &create(&kube, "default", "", &apps),
        status(
            400,
            "BadRequest",
            r#"Pod in version "v1" cannot be handled as a Pod: no kind "Pod" is registered for version "apps/v1" in scheme "pkg/api/legacyscheme/scheme.go:30""#,
            None,
        ),
    );
}

#[test]
fn a_field_of_the_wrong_type_is_400() {
    let kube = FakeKube::start();
    let mut p = pod("p1");
    p["spec"]["activeDeadlineSeconds"] = json!("60");
    assert_status(
        &create(&kube, "default", "", &p),
        status(
            400,
            "BadRequest",
            r#"Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field PodSpec.spec.activeDeadlineSeconds of type int64"#,
            None,
        ),
    );
}

#[test]
fn a_namespace_that_differs_from_the_url_is_400() {
    let kube = FakeKube::start();
    let mut p = pod("p1");
    p["metadata"]["namespace"] = json!("other");
    assert_status(
        &create(&kube, "default", "", &p),
        status(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
            None,
        ),
    );
}

#[test]
fn unknown_fields_warn_by_default_and_fail_when_strict() {
    let kube = FakeKube::start();
    let mut p = pod("p1");
    p["spec"]["containers"][0]["imagePolicy"] = json!("Always");
    let resp = create(&kube, "default", "", &p);
    assert_eq!(resp.status, 201);
    assert_eq!(resp.header("warning"), Some(r#"299 - "unknown field \"spec.containers[0].imagePolicy\"""#));
    assert_eq!(
        kube.requests().last().unwrap().warnings,
        [r#"299 - "unknown field \"spec.containers[0].imagePolicy\"""#]
    );
    let resp = create(&kube, "default", "?fieldValidation=Strict", &p);
    assert_status(
        &resp,
        status(
            400,
            "BadRequest",
            r#"strict decoding error: unknown field "spec.containers[0].imagePolicy""#,
            None,
        ),
    );
    let resp = create(&kube, "default", "?fieldValidation=Ignore", &pod("p2"));
    assert_eq!((resp.status, resp.header("warning")), (201, None));
}

// ---- CreateOptions (422) ----

fn invalid_options(causes: &[(&str, &str, &str)]) -> Value {
    let messages: Vec<String> = causes.iter().map(|(_, field, msg)| format!("{field}: {msg}")).collect();
    let joined = if messages.len() == 1 { messages[0].clone() } else { format!("[{}]", messages.join(", ")) };
    let causes: Vec<Value> = causes
        .iter()
        .map(|(reason, field, msg)| json!({"reason": reason, "message": msg, "field": field}))
        .collect();
    status(
        422,
        "Invalid",
        &format!(r#"CreateOptions.meta.k8s.io "" is invalid: {joined}"#),
        Some(json!({"group": "meta.k8s.io", "kind": "CreateOptions", "causes": causes})),
    )
}

#[test]
fn dry_run_accepts_only_all() {
    let kube = FakeKube::start();
    let resp = create(&kube, "default", "?dryRun=true", &pod("p1"));
    assert_status(
        &resp,
        invalid_options(&[(
            "FieldValueNotSupported",
            "dryRun",
            r#"Unsupported value: ["true"]: supported values: "All""#,
        )]),
    );
}

#[test]
fn field_manager_must_be_short_and_printable() {
    let kube = FakeKube::start();
    let long = "m".repeat(129);
    let resp = create(&kube, "default", &format!("?fieldManager={long}"), &pod("p1"));
    assert_status(
        &resp,
        invalid_options(&[("FieldValueTooLong", "fieldManager", "Too long: may not be more than 128 bytes")]),
    );
    assert_eq!(create(&kube, "default", &format!("?fieldManager={}", &long[..128]), &pod("p1")).status, 201);

    let resp = create(&kube, "default", "?fieldManager=a%01b&dryRun=Some", &pod("p2"));
    assert_status(
        &resp,
        invalid_options(&[
            (
                "FieldValueInvalid",
                "fieldManager",
                r#"Invalid value: "a\x01b": invalid character U+0001 (at position 1)"#,
            ),
            ("FieldValueNotSupported", "dryRun", r#"Unsupported value: ["Some"]: supported values: "All""#),
        ]),
    );
}

#[test]
fn field_validation_accepts_ignore_warn_strict() {
    let kube = FakeKube::start();
    let resp = create(&kube, "default", "?fieldValidation=Loud", &pod("p1"));
    assert_status(
        &resp,
        invalid_options(&[(
            "FieldValueNotSupported",
            "fieldValidation",
            r#"Unsupported value: "Loud": supported values: "Ignore", "Strict", "Warn""#,
        )]),
    );
}

// ---- pod validation (422) ----

#[test]
fn a_bad_pod_name_is_422_invalid() {
    let kube = FakeKube::start();
    let resp = create(&kube, "default", "", &pod("Bad_Name"));
    let msg = format!(r#"Invalid value: "Bad_Name": {SUBDOMAIN_RULE}"#);
    assert_status(&resp, invalid_pod("Bad_Name", &[("FieldValueInvalid", "metadata.name", &msg)]));

    let long = "a".repeat(254);
    let resp = create(&kube, "default", "", &pod(&long));
    let msg = format!("Invalid value: {long:?}: must be no more than 253 characters");
    assert_status(&resp, invalid_pod(&long, &[("FieldValueInvalid", "metadata.name", &msg)]));
    assert_eq!(create(&kube, "default", "", &pod(&"a".repeat(253))).status, 201);
}

#[test]
fn a_pod_without_name_or_containers_gets_every_cause_joined() {
    let kube = FakeKube::start();
    let p = json!({"metadata": {}, "spec": {"containers": []}});
    let resp = create(&kube, "default", "", &p);
    assert_status(
        &resp,
        invalid_pod(
            "",
            &[
                ("FieldValueRequired", "metadata.name", "Required value: name or generateName is required"),
                ("FieldValueRequired", "spec.containers", "Required value"),
            ],
        ),
    );
}

#[test]
fn labels_and_annotations_are_validated() {
    let kube = FakeKube::start();
    let mut p = pod("p1");
    p["metadata"]["labels"] = json!({"bad key": "ok", "good": "-bad-value-"});
    p["metadata"]["annotations"] = json!({"/x": "v"});
    let resp = create(&kube, "default", "", &p);
    assert_status(
        &resp,
        invalid_pod(
            "p1",
            &[
                (
                    "FieldValueInvalid",
                    "metadata.labels",
                    &format!(r#"Invalid value: "bad key": {NAME_PART_RULE}"#),
                ),
                (
                    "FieldValueInvalid",
                    "metadata.labels",
                    &format!(r#"Invalid value: "-bad-value-": {LABEL_VALUE_RULE}"#),
                ),
                (
                    "FieldValueInvalid",
                    "metadata.annotations",
                    r#"Invalid value: "/x": prefix part must be non-empty"#,
                ),
            ],
        ),
    );
}

#[test]
fn annotations_may_not_exceed_256_kib_in_total() {
    let kube = FakeKube::start();
    let mut p = pod("p1");
    p["metadata"]["annotations"] = json!({"a": "x".repeat(262_143)});
    assert_eq!(create(&kube, "default", "", &p).status, 201, "exactly 262144 bytes is fine");
    let mut p = pod("p2");
    p["metadata"]["annotations"] = json!({"a": "x".repeat(262_144)});
    let resp = create(&kube, "default", "", &p);
    assert_status(
        &resp,
        invalid_pod(
            "p2",
            &[("FieldValueTooLong", "metadata.annotations", "Too long: may not be more than 262144 bytes")],
        ),
    );
}

#[test]
fn containers_are_validated() {
    let kube = FakeKube::start();
    let mut p = pod("p1");
    p["spec"]["containers"] = json!([
        {"name": "Client", "image": "alpine/curl"},
        {"name": "c", "image": ""},
        {"name": "c", "image": " alpine"},
    ]);
    let resp = create(&kube, "default", "", &p);
    assert_status(
        &resp,
        invalid_pod(
            "p1",
            &[
                (
                    "FieldValueInvalid",
                    "spec.containers[0].name",
                    &format!(r#"Invalid value: "Client": {LABEL_RULE}"#),
                ),
                ("FieldValueRequired", "spec.containers[1].image", "Required value"),
                ("FieldValueDuplicate", "spec.containers[2].name", r#"Duplicate value: "c""#),
                (
                    "FieldValueInvalid",
                    "spec.containers[2].image",
                    r#"Invalid value: " alpine": must not have leading or trailing whitespace"#,
                ),
            ],
        ),
    );
}

#[test]
fn spec_policies_and_deadline_are_validated() {
    let kube = FakeKube::start();
    let mut p = pod("p1");
    p["spec"]["restartPolicy"] = json!("Sometimes");
    p["spec"]["activeDeadlineSeconds"] = json!(0);
    p["spec"]["containers"][0]["imagePullPolicy"] = json!("Maybe");
    let resp = create(&kube, "default", "", &p);
    assert_status(
        &resp,
        invalid_pod(
            "p1",
            &[
                (
                    "FieldValueNotSupported",
                    "spec.containers[0].imagePullPolicy",
                    r#"Unsupported value: "Maybe": supported values: "Always", "IfNotPresent", "Never""#,
                ),
                (
                    "FieldValueNotSupported",
                    "spec.restartPolicy",
                    r#"Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never""#,
                ),
                (
                    "FieldValueInvalid",
                    "spec.activeDeadlineSeconds",
                    "Invalid value: 0: must be between 1 and 2147483647, inclusive",
                ),
            ],
        ),
    );
}

// ---- storage, dry run ----

#[test]
fn an_existing_name_is_409_already_exists() {
    let kube = FakeKube::start();
    let foreign = kube.seed_pod("default", json!({"metadata": {"name": "p1", "labels": {"owner": "someone-else"}}, "spec": {"containers": [{"name": "x", "image": "nginx"}]}}));
    let resp = create(&kube, "default", "", &pod("p1"));
    assert_status(
        &resp,
        status(
            409,
            "AlreadyExists",
            r#"pods "p1" already exists"#,
            Some(json!({"name": "p1", "kind": "pods"})),
        ),
    );
    assert_eq!(kube.pods("default"), std::slice::from_ref(&foreign), "the foreign pod is untouched");
    assert_eq!(get(&kube, "/api/v1/namespaces/default/pods/p1").json(), foreign);
}

#[test]
fn dry_run_all_runs_every_check_but_stores_nothing() {
    let kube = FakeKube::start();
    let resp = create(&kube, "default", "?dryRun=All&fieldManager=fm", &pod("p1"));
    assert_eq!(resp.status, 201, "{}", resp.text());
    let answered = resp.json();
    assert!(answered["metadata"]["uid"].is_string() && answered["metadata"]["creationTimestamp"].is_string());
    assert!(answered["metadata"].get("resourceVersion").is_none(), "{answered}");
    assert!(kube.pods("default").is_empty());

    assert_eq!(create(&kube, "default", "?dryRun=All", &pod("Bad_Name")).status, 422);
    assert_eq!(create(&kube, "nope", "?dryRun=All", &pod("p1")).status, 404);
    kube.seed_pod("default", pod("p1"));
    assert_eq!(create(&kube, "default", "?dryRun=All", &pod("p1")).status, 409);
}

#[test]
fn checks_run_in_the_apiservers_order() {
    let kube = FakeKube::start();
    kube.terminate_namespace("going");
    kube.seed_pod("default", pod("taken"));
    kube.add_token("nobody", "system:serviceaccount:x:nobody");
    let bad_pod = serde_json::to_vec(&pod("Bad_Name")).unwrap();
    // authentication before everything
    assert_eq!(create_as(&kube, Some("wrong"), "nope", "?dryRun=x", b"{").status, 401);
    // authorization before CreateOptions
    assert_eq!(create_as(&kube, Some("nobody"), "nope", "?dryRun=x", b"{").status, 403);
    // CreateOptions before decoding (pkg/endpoints/handlers/create.go validates them first)
    assert_eq!(create_as(&kube, Some(FakeKube::TOKEN), "nope", "?dryRun=x", b"{").status, 422);
    // decoding before admission
    assert_eq!(create_as(&kube, Some(FakeKube::TOKEN), "nope", "", b"{").status, 400);
    // CreateOptions before admission
    assert_eq!(create_as(&kube, Some(FakeKube::TOKEN), "nope", "?dryRun=x", &bad_pod).status, 422);
    // admission before validation
    assert_eq!(create_as(&kube, Some(FakeKube::TOKEN), "nope", "", &bad_pod).status, 404);
    assert_eq!(create_as(&kube, Some(FakeKube::TOKEN), "going", "", &bad_pod).status, 403);
    // validation before storage
    let mut taken = pod("taken");
    taken["spec"]["containers"] = json!([]);
    assert_eq!(create(&kube, "default", "", &taken).status, 422);
    assert_eq!(create(&kube, "default", "", &pod("taken")).status, 409);
}

// ---- get, list, delete ----

#[test]
fn get_of_a_missing_pod_is_404() {
    let kube = FakeKube::start();
    let resp = get(&kube, "/api/v1/namespaces/default/pods/p1");
    assert_status(
        &resp,
        status(404, "NotFound", r#"pods "p1" not found"#, Some(json!({"name": "p1", "kind": "pods"}))),
    );
}

#[test]
fn list_filters_by_label_and_field_selectors() {
    let kube = FakeKube::start();
    for (name, app, tier) in [("a", "x", "1"), ("b", "x", "2"), ("c", "y", "1")] {
        let mut p = pod(name);
        p["metadata"]["labels"] = json!({"app": app, "tier": tier});
        assert_eq!(create(&kube, "default", "", &p).status, 201);
    }
    let names = |query: &str| -> Vec<String> {
        let resp = get(&kube, &format!("/api/v1/namespaces/default/pods{query}"));
        assert_eq!(resp.status, 200, "{}", resp.text());
        let list = resp.json();
        assert_eq!((list["kind"].as_str(), list["apiVersion"].as_str()), (Some("PodList"), Some("v1")));
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(""), ["a", "b", "c"]);
    assert_eq!(names("?labelSelector=app%3Dx"), ["a", "b"]);
    assert_eq!(names("?labelSelector=app%3Dx%2Ctier%3D2"), ["b"]);
    assert_eq!(names("?labelSelector=app!%3Dx"), ["c"]);
    assert_eq!(names("?labelSelector=tier+in+(2,3)"), ["b"]);
    assert_eq!(names("?labelSelector=!missing"), ["a", "b", "c"]);
    assert_eq!(names("?fieldSelector=metadata.name%3Dc"), ["c"]);
    let items = get(&kube, "/api/v1/namespaces/default/pods").json()["items"].clone();
    assert!(items[0].get("kind").is_none(), "list items carry no kind");
    assert_eq!(get(&kube, "/api/v1/namespaces/elsewhere/pods").json()["items"], json!([]));
    assert_status(
        &get(&kube, "/api/v1/namespaces/default/pods?fieldSelector=spec.color%3Dred"),
        status(400, "BadRequest", "field label not supported: spec.color", None),
    );
}

#[test]
fn delete_answers_with_the_pod_and_removes_it() {
    let kube = FakeKube::start();
    let created = create(&kube, "default", "", &pod("p1")).json();
    let del = |query: &str| {
        call(
            &kube,
            "DELETE",
            &format!("/api/v1/namespaces/default/pods/p1{query}"),
            Some(FakeKube::TOKEN),
            &[],
            b"",
        )
    };
    // An unscheduled pod goes at once; the answer is the pod as deleted (marked so, with no
    // grace period: pod storage's CheckGracefulDelete gives none to a pod on no node).
    let as_deleted = |resp: &Response| {
        let mut pod = resp.json();
        let meta = pod["metadata"].as_object_mut().unwrap();
        assert!(meta.remove("deletionTimestamp").unwrap().as_str().unwrap().ends_with('Z'));
        assert_eq!(meta.remove("deletionGracePeriodSeconds"), Some(json!(0)));
        pod
    };
    let resp = del("?dryRun=All");
    assert_eq!((resp.status, as_deleted(&resp)), (200, created.clone()));
    assert_eq!(kube.pods("default").len(), 1, "dry run keeps it");
    let resp = del("");
    assert_eq!((resp.status, as_deleted(&resp)), (200, created));
    assert!(kube.pods("default").is_empty());
    assert_status(
        &del(""),
        status(404, "NotFound", r#"pods "p1" not found"#, Some(json!({"name": "p1", "kind": "pods"}))),
    );
}

#[test]
fn unknown_paths_are_404_and_other_methods_405() {
    let kube = FakeKube::start();
    assert_status(
        &get(&kube, "/api/v1/namespaces/default/services"),
        status(404, "NotFound", "the server could not find the requested resource", Some(json!({}))),
    );
    let resp = call(&kube, "PUT", "/api/v1/namespaces/default/pods", Some(FakeKube::TOKEN), &[], b"{}");
    assert_status(&resp, method_not_allowed());
}

// ---- fault injection ----

#[test]
fn too_many_requests_is_plain_text_with_retry_after() {
    let kube = FakeKube::start();
    kube.inject(Fault::TooManyRequests { retry_after_seconds: 3 }, 2);
    for _ in 0..2 {
        let resp = create(&kube, "default", "", &pod("p1"));
        assert_eq!(resp.status, 429);
        assert_eq!(resp.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(resp.header("retry-after"), Some("3"));
        assert_eq!(resp.text(), "Too many requests, please try again later.\n");
    }
    assert_eq!(create(&kube, "default", "", &pod("p1")).status, 201, "only the next 2 requests fail");
}

#[test]
fn server_timeout_is_500_with_retry_after() {
    let kube = FakeKube::start();
    kube.inject(Fault::ServerTimeout { retry_after_seconds: 2 }, 1);
    let resp = create(&kube, "default", "", &pod("p1"));
    assert_eq!(resp.header("retry-after"), Some("2"));
    assert_status(
        &resp,
        status(
            500,
            "ServerTimeout",
            "The create operation against pods could not be completed at this time, please try again.",
            Some(json!({"name": "create", "kind": "pods", "retryAfterSeconds": 2})),
        ),
    );
}

#[test]
fn internal_error_service_unavailable_and_timeout() {
    let kube = FakeKube::start();
    kube.inject(Fault::InternalError("etcdserver: leader changed".into()), 1);
    kube.inject(Fault::ServiceUnavailable, 1);
    kube.inject(Fault::GatewayTimeout, 1);
    assert_status(
        &create(&kube, "default", "", &pod("p1")),
        status(
            500,
            "InternalError",
            "Internal error occurred: etcdserver: leader changed",
            Some(json!({"causes": [{"message": "etcdserver: leader changed"}]})),
        ),
    );
    assert_status(
        &create(&kube, "default", "", &pod("p1")),
        status(503, "ServiceUnavailable", "the server is currently unable to handle the request", None),
    );
    let resp = create(&kube, "default", "", &pod("p1"));
    assert_eq!(resp.header("retry-after"), None);
    assert_status(
        &resp,
        status(
            504,
            "Timeout",
            "Timeout: request did not complete within requested timeout - context deadline exceeded",
            Some(json!({})),
        ),
    );
    assert!(kube.pods("default").is_empty(), "faulted requests store nothing");
}

#[test]
fn slow_answers_then_answers_normally() {
    let kube = FakeKube::start();
    kube.inject(Fault::Slow(std::time::Duration::from_millis(200)), 1);
    kube.set_latency(std::time::Duration::from_millis(10));
    assert_eq!(create(&kube, "default", "", &pod("p1")).status, 201);
    assert_eq!(kube.pods("default").len(), 1);
}

#[test]
fn a_dropped_connection_gets_no_answer() {
    let kube = FakeKube::start();
    kube.inject(Fault::DropConnection, 1);
    let body = serde_json::to_vec(&pod("p1")).unwrap();
    let url = format!("{}/api/v1/namespaces/default/pods", kube.url());
    let auth = format!("Bearer {}", FakeKube::TOKEN);
    let result = send_blocking("POST", &url, &[("authorization", &auth)], body);
    assert!(result.is_err(), "{result:?}");
    assert_eq!(kube.requests()[0].status, None);
    assert!(kube.pods("default").is_empty());
}

// ---- recording ----

#[test]
fn requests_are_recorded() {
    let kube = FakeKube::start();
    create(&kube, "default", "?fieldManager=podgateway&dryRun=All", &pod("p1"));
    get(&kube, "/api/v1/namespaces/default/pods/p1");
    let requests = kube.take_requests();
    assert_eq!(requests.len(), 2);
    let post = &requests[0];
    assert_eq!((post.method.as_str(), post.path.as_str()), ("POST", "/api/v1/namespaces/default/pods"));
    assert_eq!(post.query, "fieldManager=podgateway&dryRun=All");
    assert_eq!(post.query_param("dryRun").as_deref(), Some("All"));
    assert_eq!(post.header("authorization"), Some("Bearer fake-kube-token"));
    assert_eq!(post.json(), Some(pod("p1")));
    assert_eq!(post.status, Some(201));
    assert_eq!((requests[1].method.as_str(), requests[1].status), ("GET", Some(404)));
    assert!(kube.requests().is_empty(), "take_requests drains");
}

#[test]
fn volumes_get_the_apis_defaults() {
    let kube = FakeKube::start();
    let mut with_volumes = pod("p1");
    with_volumes["spec"]["volumes"] = json!([
        {"name": "event", "downwardAPI": {"items": [{"path": "e", "fieldRef": {"fieldPath": "metadata.annotations['a']"}}]}},
        {"name": "config", "configMap": {"name": "c"}},
        {"name": "mode", "secret": {"secretName": "s", "defaultMode": 256}},
        {"name": "scratch", "emptyDir": {}}
    ]);
    let volumes = create(&kube, "default", "", &with_volumes).json()["spec"]["volumes"].clone();
    assert_eq!(
        volumes[0],
        json!({"name": "event", "downwardAPI": {"items": [{"path": "e", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations['a']"}}], "defaultMode": 420}})
    );
    assert_eq!(volumes[1]["configMap"]["defaultMode"], 420);
    assert_eq!(volumes[2]["secret"]["defaultMode"], 256, "a mode given stays");
    assert_eq!(volumes[3], json!({"name": "scratch", "emptyDir": {}}));
}
