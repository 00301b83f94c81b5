//! TokenReview in the fake: the tokens it issues, and every answer of
//! `POST /apis/authentication.k8s.io/v1/tokenreviews` with its exact status and body (the
//! facts and their sources are in the docs of `tests/harness/src/fake_kube/mod.rs`,
//! "TokenReview and service-account tokens").

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use podgateway_test_harness::http_client::Response;
use podgateway_test_harness::{FakeKube, Fault};
use serde_json::{Value, json};

use crate::{assert_status, call, method_not_allowed, status};

const PATH: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
const AUDIENCE: &str = "podgateway-client-provisioner";
const GROUP: &str = "authentication.k8s.io";
const INVALID: &str = "invalid bearer token";
const HOUR: Duration = Duration::from_secs(3600);

/// A fake where [`FakeKube::USER`] may create TokenReviews (what `system:auth-delegator` gives).
fn reviewer() -> FakeKube {
    let kube = FakeKube::start();
    kube.grant_on(FakeKube::USER, GROUP, "tokenreviews", &["create"], None);
    kube
}

fn post_as(kube: &FakeKube, caller: Option<&str>, query: &str, body: &[u8]) -> Response {
    let headers = [("content-type", "application/json"), ("user-agent", "provisioner/0.1 (wasm32)")];
    call(kube, "POST", &format!("{PATH}{query}"), caller, &headers, body)
}

fn review_body(token: &str, audiences: &[&str]) -> Value {
    let mut body =
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}});
    if !audiences.is_empty() {
        body["spec"]["audiences"] = json!(audiences);
    }
    body
}

/// Reviews `token` for `audiences` as [`FakeKube::USER`]; checks the 201 and returns the body.
fn review(kube: &FakeKube, token: &str, audiences: &[&str]) -> Value {
    let resp = post_as(
        kube,
        Some(FakeKube::TOKEN),
        "",
        &serde_json::to_vec(&review_body(token, audiences)).unwrap(),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    resp.json()
}

/// The review's `metadata` as the field manager leaves it, with its `time` checked and removed.
fn metadata(review: &mut Value) -> Value {
    let entry = &mut review["metadata"]["managedFields"][0];
    let time = entry.as_object_mut().unwrap().remove("time").unwrap();
    assert!(time.as_str().unwrap().ends_with('Z'), "{time}");
    review["metadata"].clone()
}

fn managed(fields: Value) -> Value {
    json!({"creationTimestamp": null, "managedFields": [{"manager": "provisioner", "operation": "Update",
           "apiVersion": "authentication.k8s.io/v1", "fieldsType": "FieldsV1", "fieldsV1": fields}]})
}

/// A failed review's `status`: no `authenticated`, an empty user, the error.
fn failed(error: &str) -> Value {
    json!({"user": {}, "error": error})
}

/// `[invalid bearer token, <error>]`: the loopback authenticator's error, then the chain's.
fn after_loopback(error: &str) -> String {
    format!("[{INVALID}, {error}]")
}

fn decode_segment(segment: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (mut bits, mut count, mut out) = (0u32, 0, Vec::new());
    for c in segment.bytes() {
        let value =
            ALPHABET.iter().position(|a| *a == c).unwrap_or_else(|| panic!("not base64url: {segment}"));
        bits = (bits << 6) | value as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}

fn encode_segment(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The JSON of a token's header and payload.
fn jwt_parts(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let json = |s: &str| serde_json::from_slice::<Value>(&decode_segment(s)).unwrap();
    (json(parts[0]), json(parts[1]))
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

// ---- the tokens ----

#[test]
fn issued_tokens_are_jwts_with_the_token_request_claims() {
    let kube = FakeKube::start();
    let before = unix_now();
    let token = kube.issue_token("eventing", "sender", &[AUDIENCE, "other"], HOUR);
    let parts: Vec<&str> = token.split('.').collect();
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "base64url, no padding");
    assert_eq!(parts[2].len(), 342, "an RS256 signature of a 2048-bit key is 256 bytes");
    let (header, payload) = jwt_parts(&token);
    assert_eq!(header.as_object().unwrap().keys().collect::<Vec<_>>(), ["alg", "kid"]);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"].as_str().unwrap().len(), 43, "base64url of a SHA-256");
    let keys: Vec<&String> = payload.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["aud", "exp", "iat", "iss", "jti", "kubernetes.io", "nbf", "sub"]);
    assert_eq!(payload["aud"], json!([AUDIENCE, "other"]));
    assert_eq!(payload["iss"], FakeKube::ISSUER);
    assert_eq!(payload["sub"], "system:serviceaccount:eventing:sender");
    let uid = kube.service_account_uid("eventing", "sender").expect("issuing creates the ServiceAccount");
    assert_eq!(
        payload["kubernetes.io"],
        json!({"namespace": "eventing", "serviceaccount": {"name": "sender", "uid": uid}})
    );
    assert_eq!(payload["jti"].as_str().unwrap().len(), 36);
    let iat = payload["iat"].as_i64().unwrap();
    assert!((before..=unix_now()).contains(&iat));
    assert_eq!(payload["nbf"].as_i64(), Some(iat));
    assert_eq!(payload["exp"].as_i64(), Some(iat + 3600));

    let again = kube.issue_token("eventing", "sender", &[AUDIENCE], HOUR);
    assert_ne!(jwt_parts(&again).1["jti"], payload["jti"], "every token has its own jti");
    assert_eq!(
        jwt_parts(&again).1["kubernetes.io"]["serviceaccount"]["uid"],
        json!(uid),
        "same ServiceAccount"
    );
    let default = kube.issue_token("eventing", "sender", &[], HOUR);
    assert_eq!(jwt_parts(&default).1["aud"], json!([FakeKube::ISSUER]), "no audience: the API server's");
}

#[test]
fn valid_between_sets_nbf_iat_and_exp() {
    let kube = FakeKube::start();
    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let token =
        kube.issue_token_valid_between("ns", "sa", &[AUDIENCE], start, start + Duration::from_secs(600));
    let (_, payload) = jwt_parts(&token);
    assert_eq!(
        (payload["nbf"].as_i64(), payload["iat"].as_i64()),
        (Some(1_700_000_000), Some(1_700_000_000))
    );
    assert_eq!(payload["exp"].as_i64(), Some(1_700_000_600));
}

// ---- reviews that authenticate ----

#[test]
fn a_valid_token_is_authenticated_for_the_audiences_it_has() {
    let kube = reviewer();
    let token = kube.issue_token("eventing", "sender", &[AUDIENCE], HOUR);
    let jti = jwt_parts(&token).1["jti"].as_str().unwrap().to_owned();
    let uid = kube.service_account_uid("eventing", "sender").unwrap();
    let mut body = review(&kube, &token, &[AUDIENCE]);
    assert_eq!(metadata(&mut body), managed(json!({"f:spec": {"f:audiences": {}, "f:token": {}}})));
    assert_eq!(
        body,
        json!({
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": body["metadata"],
            "spec": {"token": token, "audiences": [AUDIENCE]},
            "status": {
                "authenticated": true,
                "user": {
                    "username": "system:serviceaccount:eventing:sender",
                    "uid": uid,
                    "groups": ["system:serviceaccounts", "system:serviceaccounts:eventing", "system:authenticated"],
                    "extra": {"authentication.kubernetes.io/credential-id": [format!("JTI={jti}")]}
                },
                "audiences": [AUDIENCE]
            }
        })
    );
}

#[test]
fn the_status_audiences_are_the_requested_ones_the_token_has_in_request_order() {
    let kube = reviewer();
    let token = kube.issue_token("eventing", "sender", &["a", "b"], HOUR);
    let body = review(&kube, &token, &["c", "b", "a"]);
    assert_eq!(body["status"]["audiences"], json!(["b", "a"]));
    assert_eq!(body["spec"]["audiences"], json!(["c", "b", "a"]));
}

#[test]
fn without_spec_audiences_the_api_servers_own_are_used() {
    let kube = reviewer();
    let token = kube.issue_token("eventing", "sender", &[], HOUR);
    let mut body = review(&kube, &token, &[]);
    assert_eq!(metadata(&mut body), managed(json!({"f:spec": {"f:token": {}}})));
    assert_eq!(body["spec"], json!({"token": token}), "no audiences echoed");
    assert_eq!(body["status"]["authenticated"], true);
    assert_eq!(body["status"]["audiences"], json!([FakeKube::ISSUER]));

    let only_ours = kube.issue_token("eventing", "sender", &[AUDIENCE], HOUR);
    let body = review(&kube, &only_ours, &[]);
    let error = format!(
        r#"token audiences ["{AUDIENCE}"] is invalid for the target audiences ["{}"]"#,
        FakeKube::ISSUER
    );
    assert_eq!(body["status"], failed(&after_loopback(&error)));
}

#[test]
fn expiry_and_not_before_allow_a_minute_of_skew() {
    let kube = reviewer();
    let now = SystemTime::now();
    let just_expired =
        kube.issue_token_valid_between("ns", "sa", &[AUDIENCE], now - HOUR, now - Duration::from_secs(30));
    assert_eq!(
        review(&kube, &just_expired, &[AUDIENCE])["status"]["authenticated"],
        true,
        "30 s late: leeway"
    );
    let almost =
        kube.issue_token_valid_between("ns", "sa", &[AUDIENCE], now + Duration::from_secs(30), now + HOUR);
    assert_eq!(review(&kube, &almost, &[AUDIENCE])["status"]["authenticated"], true, "30 s early: leeway");
}

#[test]
fn the_static_token_reviews_as_its_user_for_the_api_audience_only() {
    let kube = reviewer();
    let body = review(&kube, FakeKube::TOKEN, &[]);
    assert_eq!(
        body["status"],
        json!({"authenticated": true, "user": {"username": FakeKube::USER, "groups": ["system:authenticated"]},
               "audiences": [FakeKube::ISSUER]})
    );
    assert_eq!(review(&kube, FakeKube::TOKEN, &[AUDIENCE])["status"], failed(INVALID), "audience-agnostic");
}

/// kubernetes/kubernetes#114165: `Bearer  <token>` has no token for the bearer authenticator,
/// and anonymous authentication says yes.
#[test]
fn a_token_starting_with_a_space_reviews_as_anonymous() {
    let kube = reviewer();
    let body = review(&kube, " hello", &[]);
    assert_eq!(body["spec"], json!({"token": " hello"}));
    assert_eq!(
        body["status"],
        json!({"authenticated": true, "user": {"username": "system:anonymous", "groups": ["system:unauthenticated"]},
               "audiences": [FakeKube::ISSUER]})
    );
    let token = kube.issue_token("ns", "sa", &[AUDIENCE], HOUR);
    let body = review(&kube, &format!("{token} trailing words"), &[AUDIENCE]);
    assert_eq!(body["status"]["authenticated"], true, "the header parser reads the first word");
}

// ---- reviews that do not authenticate ----

#[test]
fn garbage_and_foreign_tokens_are_invalid_bearer_tokens() {
    let kube = reviewer();
    for token in
        ["garbage", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJzb21lb25lLWVsc2UifQ.c2ln", "{\"json\": 1}"]
    {
        let mut body = review(&kube, token, &[AUDIENCE]);
        metadata(&mut body);
        assert_eq!(body["status"], failed(INVALID), "{token}");
        assert_eq!(body["spec"], json!({"token": token, "audiences": [AUDIENCE]}));
        assert!(body["status"].get("authenticated").is_none() && body["status"].get("audiences").is_none());
    }
}

#[test]
fn a_token_the_fake_did_not_sign_fails_its_signature() {
    let kube = reviewer();
    let token = kube.issue_token("ns", "sa", &[AUDIENCE], HOUR);
    let parts: Vec<&str> = token.split('.').collect();
    let (header, mut payload) = jwt_parts(&token);

    payload["sub"] = json!("system:serviceaccount:kube-system:admin");
    let tampered = format!("{}.{}.{}", parts[0], encode_segment(payload.to_string().as_bytes()), parts[2]);
    let error = after_loopback("go-jose/go-jose: error in cryptographic primitive");
    assert_eq!(review(&kube, &tampered, &[AUDIENCE])["status"], failed(&error));
    let resigned = format!("{}.{}.{}", parts[0], parts[1], encode_segment(&[7; 256]));
    assert_eq!(review(&kube, &resigned, &[AUDIENCE])["status"], failed(&error));
    let no_kid = format!("{}.{}.{}", encode_segment(br#"{"alg":"RS256"}"#), parts[1], parts[2]);
    assert_eq!(review(&kube, &no_kid, &[AUDIENCE])["status"], failed(&error), "no kid: every key is tried");

    let mut other_key = header.clone();
    other_key["kid"] = json!("another-key");
    let foreign = format!("{}.{}.{}", encode_segment(other_key.to_string().as_bytes()), parts[1], parts[2]);
    let error = after_loopback("invalid signature, no keys found");
    assert_eq!(review(&kube, &foreign, &[AUDIENCE])["status"], failed(&error));
}

#[test]
fn a_token_for_other_audiences_is_refused() {
    let kube = reviewer();
    let token = kube.issue_token("ns", "sa", &["a", "b"], HOUR);
    let body = review(&kube, &token, &[AUDIENCE, "c"]);
    let error =
        format!(r#"token audiences ["a" "b"] is invalid for the target audiences ["{AUDIENCE}" "c"]"#);
    assert_eq!(body["status"], failed(&after_loopback(&error)));
}

#[test]
fn expired_and_not_yet_valid_tokens_are_refused() {
    let kube = reviewer();
    let now = SystemTime::now();
    let expired =
        kube.issue_token_valid_between("ns", "sa", &[AUDIENCE], now - HOUR, now - Duration::from_secs(61));
    let body = review(&kube, &expired, &[AUDIENCE]);
    assert_eq!(body["status"], failed(&after_loopback("service account token has expired")));
    let early =
        kube.issue_token_valid_between("ns", "sa", &[AUDIENCE], now + Duration::from_secs(120), now + HOUR);
    let body = review(&kube, &early, &[AUDIENCE]);
    assert_eq!(body["status"], failed(&after_loopback("service account token is not valid yet")));
    // The audience is checked before the times.
    assert_eq!(
        review(&kube, &expired, &["c"])["status"]["error"],
        after_loopback(&format!(
            r#"token audiences ["{AUDIENCE}"] is invalid for the target audiences ["c"]"#
        ))
    );
}

#[test]
fn a_deleted_service_account_revokes_its_tokens() {
    let kube = reviewer();
    let token = kube.issue_token("eventing", "sender", &[AUDIENCE], HOUR);
    let old_uid = kube.service_account_uid("eventing", "sender").unwrap();
    kube.delete_service_account("eventing", "sender");
    assert_eq!(kube.service_account_uid("eventing", "sender"), None);
    let body = review(&kube, &token, &[AUDIENCE]);
    assert_eq!(body["status"], failed(&after_loopback(r#"serviceaccounts "sender" not found"#)));

    let new_uid = kube.add_service_account("eventing", "sender");
    assert_ne!(new_uid, old_uid);
    let error = format!("service account UID ({new_uid}) does not match claim ({old_uid})");
    assert_eq!(review(&kube, &token, &[AUDIENCE])["status"], failed(&after_loopback(&error)));
    let fresh = kube.issue_token("eventing", "sender", &[AUDIENCE], HOUR);
    assert_eq!(review(&kube, &fresh, &[AUDIENCE])["status"]["user"]["uid"], json!(new_uid));
}

/// kube-apiserver caches successful authentications for 10 s by token and audiences
/// (`TokenSuccessCacheTTL`): a revoked token still reviews as valid until then.
#[test]
fn a_cached_success_outlives_revocation_until_it_expires() {
    let kube = reviewer();
    let token = kube.issue_token("eventing", "sender", &[AUDIENCE, "b"], HOUR);
    assert_eq!(review(&kube, &token, &[AUDIENCE])["status"]["authenticated"], true);
    kube.delete_service_account("eventing", "sender");
    assert_eq!(review(&kube, &token, &[AUDIENCE])["status"]["authenticated"], true, "cached");
    let other_audiences = review(&kube, &token, &["b"]);
    assert_eq!(other_audiences["status"]["error"], after_loopback(r#"serviceaccounts "sender" not found"#));

    kube.set_token_cache_ttl(Duration::from_millis(200));
    kube.add_service_account("eventing", "again");
    let short = kube.issue_token("eventing", "again", &[AUDIENCE], HOUR);
    assert_eq!(review(&kube, &short, &[AUDIENCE])["status"]["authenticated"], true);
    kube.delete_service_account("eventing", "again");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        review(&kube, &short, &[AUDIENCE])["status"]["error"],
        after_loopback(r#"serviceaccounts "again" not found"#)
    );

    kube.set_token_cache_ttl(Duration::ZERO);
    assert_eq!(
        review(&kube, &token, &[AUDIENCE])["status"]["error"],
        after_loopback(r#"serviceaccounts "sender" not found"#)
    );
}

// ---- the request: body, options, order ----

#[test]
fn an_empty_or_missing_token_is_400() {
    let kube = reviewer();
    let expected = status(400, "BadRequest", "token is required for TokenReview in authentication", None);
    for body in [
        review_body("", &[AUDIENCE]),
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview"}),
        json!({}),
    ] {
        assert_status(
            &post_as(&kube, Some(FakeKube::TOKEN), "", &serde_json::to_vec(&body).unwrap()),
            expected.clone(),
        );
    }
}

#[test]
fn bodies_that_do_not_decode_are_400() {
    let kube = reviewer();
    let bad = |body: &[u8], message: &str| {
        assert_status(
            &post_as(&kube, Some(FakeKube::TOKEN), "", body),
            status(400, "BadRequest", message, None),
        );
    };
    bad(
        b"{not json",
        "the object provided is unrecognized (must be of type TokenReview): couldn't get version/kind; json parse error: key must be a string at line 1 column 2 ({not json)",
    );
    bad(
        br#"{"spec":{"token":1}}"#,
        r#"TokenReview in version "v1" cannot be handled as a TokenReview: json: cannot unmarshal number into Go struct field TokenReviewSpec.spec.token of type string"#,
    );
    bad(
        br#"{"spec":{"token":"t","audiences":"a"}}"#,
        r#"TokenReview in version "v1" cannot be handled as a TokenReview: json: cannot unmarshal string into Go struct field TokenReviewSpec.spec.audiences of type []string"#,
    );
    bad(
        br#"{"apiVersion":"v1","kind":"TokenReview","spec":{"token":"t"}}"#,
        r#"TokenReview in version "v1" cannot be handled as a TokenReview: no kind "TokenReview" is registered for version "v1" in scheme "pkg/api/legacyscheme/scheme.go:30""#,
    );
    bad(
        br#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{}}"#,
        r#"TokenRequest in version "v1" cannot be handled as a TokenReview: converting (v1.TokenRequest) to (authentication.TokenReview): unknown conversion"#,
    );
    bad(
        br#"{"apiVersion":"authentication.k8s.io/v1beta1","kind":"TokenReview","spec":{"token":"t"}}"#,
        "the API version in the data (authentication.k8s.io/v1beta1) does not match the expected API version (authentication.k8s.io/v1)",
    );
    let resp = post_as(&kube, Some(FakeKube::TOKEN), "", br#"{"spec":{"token":"t"}}"#);
    assert_eq!(resp.status, 201, "apiVersion and kind default to the endpoint's");
    assert_eq!(
        (resp.json()["apiVersion"].as_str(), resp.json()["kind"].as_str()),
        (Some(GROUP_VERSION), Some("TokenReview"))
    );
}

const GROUP_VERSION: &str = "authentication.k8s.io/v1";

#[test]
fn unknown_fields_warn_and_strict_validation_refuses_them() {
    let kube = reviewer();
    let body = br#"{"spec":{"token":"t","tokn":"x"},"extra":1}"#;
    let resp = post_as(&kube, Some(FakeKube::TOKEN), "", body);
    assert_eq!(resp.status, 201, "{}", resp.text());
    let warnings: Vec<&str> = resp.headers.get_all("warning").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(warnings, [r#"299 - "unknown field \"extra\"""#, r#"299 - "unknown field \"spec.tokn\"""#]);
    assert_eq!(resp.json()["spec"], json!({"token": "t"}), "unknown fields are dropped");
    assert_status(
        &post_as(&kube, Some(FakeKube::TOKEN), "?fieldValidation=Strict", body),
        status(
            400,
            "BadRequest",
            r#"strict decoding error: unknown field "extra", unknown field "spec.tokn""#,
            None,
        ),
    );
}

#[test]
fn metadata_is_echoed_without_system_fields_and_the_field_manager_is_recorded() {
    let kube = reviewer();
    let body = json!({"metadata": {"name": "r", "namespace": "ns", "uid": "u", "labels": {"a": "b"}},
                      "spec": {"token": "t", "audiences": []}, "status": {"error": "from the client"}});
    let resp =
        post_as(&kube, Some(FakeKube::TOKEN), "?fieldManager=reviewer", &serde_json::to_vec(&body).unwrap());
    let mut review = resp.json();
    let meta = metadata(&mut review);
    assert_eq!(
        meta,
        json!({"name": "r", "labels": {"a": "b"}, "creationTimestamp": null, "managedFields": [{
            "manager": "reviewer", "operation": "Update", "apiVersion": "authentication.k8s.io/v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:a": {}}}, "f:spec": {"f:token": {}}, "f:status": {"f:error": {}}}}]})
    );
    assert_eq!(review["spec"], json!({"token": "t"}), "empty audiences are omitted");
    assert_eq!(review["status"], failed(INVALID), "the storage overwrites the error");
}

#[test]
fn checks_run_in_the_apiservers_order() {
    let kube = reviewer();
    kube.add_token("nobody", "system:serviceaccount:x:nobody");
    // authentication, authorization, media type, CreateOptions, decoding, then the token
    assert_eq!(post_as(&kube, Some("wrong"), "?dryRun=x", b"{").status, 401);
    assert_eq!(post_as(&kube, Some("nobody"), "?dryRun=x", b"{").status, 403);
    let text = call(&kube, "POST", PATH, Some(FakeKube::TOKEN), &[("content-type", "text/plain")], b"{");
    assert_eq!(text.status, 415);
    assert_eq!(post_as(&kube, Some(FakeKube::TOKEN), "?dryRun=x", b"{").status, 422);
    assert_eq!(post_as(&kube, Some(FakeKube::TOKEN), "", b"{").status, 400);
    assert_eq!(post_as(&kube, Some(FakeKube::TOKEN), "", br#"{"spec":{}}"#).status, 400);
    assert_eq!(post_as(&kube, Some(FakeKube::TOKEN), "", br#"{"spec":{"token":"x"}}"#).status, 201);
}

// ---- the caller: authentication and authorization ----

#[test]
fn a_caller_needs_create_on_tokenreviews_at_the_cluster_scope() {
    let kube = FakeKube::start();
    let body = serde_json::to_vec(&review_body("t", &[])).unwrap();
    let forbidden = |user: &str| {
        let message = format!(
            r#"tokenreviews.authentication.k8s.io is forbidden: User "{user}" cannot create resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope"#
        );
        status(403, "Forbidden", &message, Some(json!({"group": GROUP, "kind": "tokenreviews"})))
    };
    assert_status(&post_as(&kube, Some(FakeKube::TOKEN), "", &body), forbidden(FakeKube::USER));
    assert_status(&post_as(&kube, None, "", &body), forbidden("system:anonymous"));
    assert_status(
        &post_as(&kube, Some("wrong"), "", &body),
        status(401, "Unauthorized", "Unauthorized", None),
    );
    // A RoleBinding does not reach the cluster scope; pods' grants are not TokenReviews'.
    kube.grant_on(FakeKube::USER, GROUP, "tokenreviews", &["create"], Some("default"));
    kube.grant(FakeKube::USER, &["*"], None);
    kube.grant_on(FakeKube::USER, GROUP, "tokenrequests", &["create"], None);
    assert_status(&post_as(&kube, Some(FakeKube::TOKEN), "", &body), forbidden(FakeKube::USER));
    kube.grant_on(FakeKube::USER, GROUP, "tokenreviews", &["create"], None);
    assert_eq!(post_as(&kube, Some(FakeKube::TOKEN), "", &body).status, 201);
    kube.revoke(FakeKube::USER);
    assert_status(&post_as(&kube, Some(FakeKube::TOKEN), "", &body), forbidden(FakeKube::USER));
    kube.grant_on(FakeKube::USER, "*", "*", &["*"], None);
    assert_eq!(post_as(&kube, Some(FakeKube::TOKEN), "", &body).status, 201);
}

#[test]
fn other_methods_are_authorized_as_their_verb_then_405() {
    let kube = reviewer();
    let resp = call(&kube, "GET", PATH, Some(FakeKube::TOKEN), &[], b"");
    let message = format!(
        r#"tokenreviews.authentication.k8s.io is forbidden: User "{}" cannot list resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope"#,
        FakeKube::USER
    );
    assert_status(
        &resp,
        status(403, "Forbidden", &message, Some(json!({"group": GROUP, "kind": "tokenreviews"}))),
    );
    kube.grant_on(FakeKube::USER, GROUP, "tokenreviews", &["list"], None);
    assert_status(&call(&kube, "GET", PATH, Some(FakeKube::TOKEN), &[], b""), method_not_allowed());
}

#[test]
fn an_issued_token_authenticates_a_caller_for_the_api_audience() {
    let kube = FakeKube::start();
    kube.grant("system:serviceaccount:eventing:sender", &["list"], Some("default"));
    let api = kube.issue_token("eventing", "sender", &[], HOUR);
    let list =
        |token: &str| call(&kube, "GET", "/api/v1/namespaces/default/pods", Some(token), &[], b"").status;
    assert_eq!(list(&api), 200);
    assert_eq!(
        list(&kube.issue_token("eventing", "sender", &[AUDIENCE], HOUR)),
        401,
        "not for the API server"
    );
    let now = SystemTime::now();
    let expired =
        kube.issue_token_valid_between("eventing", "sender", &[], now - HOUR, now - Duration::from_secs(120));
    assert_eq!(list(&expired), 401);
}

// ---- recording and faults ----

#[test]
fn reviews_are_recorded_and_faults_apply_to_them() {
    let kube = reviewer();
    let body = serde_json::to_vec(&review_body("t", &[AUDIENCE])).unwrap();
    kube.inject_on("POST", Fault::ServiceUnavailable, 1);
    kube.inject(Fault::ServerTimeout { retry_after_seconds: 1 }, 1);
    assert_status(
        &post_as(&kube, Some(FakeKube::TOKEN), "", &body),
        status(503, "ServiceUnavailable", "the server is currently unable to handle the request", None),
    );
    let resp = post_as(&kube, Some(FakeKube::TOKEN), "", &body);
    assert_eq!(resp.header("retry-after"), Some("1"));
    assert_status(
        &resp,
        status(
            500,
            "ServerTimeout",
            "The create operation against tokenreviews.authentication.k8s.io could not be completed at this time, please try again.",
            Some(json!({"name": "create", "group": GROUP, "kind": "tokenreviews", "retryAfterSeconds": 1})),
        ),
    );
    assert_eq!(post_as(&kube, Some(FakeKube::TOKEN), "", &body).status, 201);

    let requests = kube.take_requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.method == "POST" && r.path == PATH));
    assert_eq!(requests.iter().map(|r| r.status).collect::<Vec<_>>(), [Some(503), Some(500), Some(201)]);
    assert_eq!(requests[2].json(), Some(review_body("t", &[AUDIENCE])));
    assert_eq!(requests[2].answer_json().unwrap()["status"], failed(INVALID));
}
