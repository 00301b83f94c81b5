//! One request from start to end: the method is checked, then the sender (when
//! `auth_audience` is set), then the body; the event is read and handed to the handler of its
//! type, and the result becomes the answer and one log line.

use http::{HeaderMap, Method};

use crate::auth;
use crate::cloudevents;
use crate::handlers;
use crate::host::Host;
use crate::respond::{self, HttpAnswer, LogLine, Rejection};

/// Requests with a larger body are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The request as received; `body` is already refused when it could not be read whole.
pub struct Incoming<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub body: Result<Vec<u8>, Rejection>,
}

pub fn handle(incoming: Incoming, host: &mut impl Host) -> (HttpAnswer, LogLine) {
    if incoming.method != Method::POST {
        return respond::rejected(Rejection::MethodNotAllowed(incoming.method.clone()));
    }
    let checked = auth::check_sender(incoming.headers, host);
    let sender = match checked.sender {
        Ok(sender) => sender,
        Err(denial) => {
            let (answer, mut log) = respond::denied(denial);
            log.api_status = checked.api_status;
            log.warnings = checked.warnings;
            return (answer, log);
        }
    };
    let event = match incoming
        .body
        .and_then(|body| cloudevents::read(incoming.headers, body).map_err(Rejection::NotAnEvent))
    {
        Ok(event) => event,
        Err(rejection) => {
            let (answer, mut log) = respond::rejected(rejection);
            log.sender = sender.map(|sender| sender.subject);
            return (answer, log);
        }
    };
    let handled = handlers::dispatch(&event, host, checked.config);
    let (answer, mut log) = respond::answer(&event, handled, || host.now());
    log.sender = sender.map(|sender| sender.subject);
    log.api_status.splice(0..0, checked.api_status);
    log.warnings = checked.warnings;
    (answer, log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{self, DONE, FAILED, PENDING, POD_42 as NAME, REPLY_SOURCE};
    use crate::host::tests::FakeHost;
    use crate::kube::TransportError;
    use crate::respond::LogOutcome;
    use http::HeaderValue;
    use serde_json::{Value, json};

    fn pending() -> HeaderMap {
        crate::cloudevents::tests::header_map(&contract::binary_headers(contract::ID, PENDING))
    }

    fn post(host: &mut FakeHost, headers: &HeaderMap, body: &str) -> (crate::respond::HttpAnswer, LogLine) {
        handle(Incoming { method: &Method::POST, headers, body: Ok(body.as_bytes().to_vec()) }, host)
    }

    fn created() -> Result<http::Response<Vec<u8>>, TransportError> {
        Ok(http::Response::builder().status(201).body(b"{}".to_vec()).unwrap())
    }

    fn header<'a>(answer: &'a crate::respond::HttpAnswer, name: &str) -> Option<&'a str> {
        answer.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn pending_event_creates_the_pod_and_replies_done() {
        let mut host = FakeHost::new(vec![created()]);
        let (answer, log) = post(&mut host, &pending(), r#"{"gateway_name":"foo"}"#);
        assert_eq!(answer.status, 200);
        assert_eq!(header(&answer, "ce-type"), Some(DONE));
        assert_eq!(header(&answer, "ce-source"), Some(REPLY_SOURCE));
        assert_eq!(header(&answer, "ce-subject"), Some(NAME));
        assert_eq!(header(&answer, "ce-time"), Some("2026-11-23T08:00:00.000Z"));
        assert_eq!(header(&answer, "content-type"), Some("application/json"));
        assert_eq!(
            serde_json::from_slice::<Value>(&answer.body).unwrap(),
            json!({
                "pod_name": NAME, "namespace": "default", "gateway_name": "foo", "gateway_address": null,
                "message": "A pod-gateway client has been scheduled.", "request_id": "42", "request_source": "urn:test"
            })
        );
        assert_eq!(
            log,
            LogLine {
                event_id: Some("42".into()),
                event_source: Some("urn:test".into()),
                event_type: Some(PENDING.into()),
                outcome: LogOutcome::Done,
                status: 200,
                pod: Some(NAME.into()),
                namespace: Some("default".into()),
                api_status: vec![201],
                elapsed_ms: 0,
                message: Some("A pod-gateway client has been scheduled.".into()),
                sender: None,
                warnings: vec![],
            }
        );
        assert_eq!(host.api.sent.len(), 1);
    }

    #[test]
    fn dry_run_says_so() {
        let mut host = FakeHost::new(vec![created()]);
        host.variables.insert("dry_run".into(), "true".into());
        let (answer, _) = post(&mut host, &pending(), r#"{"gateway_name":"foo"}"#);
        let data: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(
            data["message"],
            "A pod-gateway client would have been scheduled (dry run: nothing was created)."
        );
        assert!(host.api.sent[0].uri().query().unwrap().contains("dryRun=All"));
    }

    #[test]
    fn invalid_data_replies_failed_without_any_api_call() {
        let mut host = FakeHost::new(vec![]);
        let (answer, log) = post(&mut host, &pending(), r#"{"gateway_name":"not valid!"}"#);
        assert_eq!(answer.status, 200);
        assert_eq!(header(&answer, "ce-type"), Some(FAILED));
        assert_eq!(header(&answer, "ce-subject"), None);
        let data: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(data["gateway_name"], "not valid!");
        assert_eq!(data["request_id"], "42");
        assert_eq!(data["request_source"], "urn:test");
        assert!(data["message"].as_str().unwrap().contains("is not a valid gateway name"));
        assert_eq!(log.outcome, LogOutcome::Failed);
        assert!(host.api.sent.is_empty());

        let (answer, _) = post(&mut host, &pending(), "not json");
        let data: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(data["gateway_name"], Value::Null);
        assert!(data["message"].as_str().unwrap().starts_with("data is not valid JSON"));
        assert!(host.api.sent.is_empty());
    }

    #[test]
    fn failed_and_done_replies_have_different_ids_and_stable_ones() {
        let mut host = FakeHost::new(vec![created(), created()]);
        let (first, _) = post(&mut host, &pending(), r#"{"gateway_name":"foo"}"#);
        let (again, _) = post(&mut host, &pending(), r#"{"gateway_name":"foo"}"#);
        let (failed, _) = post(&mut host, &pending(), r#"{}"#);
        assert_eq!(header(&first, "ce-id"), header(&again, "ce-id"));
        assert_ne!(header(&first, "ce-id"), header(&failed, "ce-id"));
    }

    #[test]
    fn unknown_types_are_acknowledged_with_an_empty_204() {
        let mut host = FakeHost::new(vec![]);
        host.variables.insert("dry_run".into(), "maybe".into());
        let mut headers = pending();
        headers.insert("ce-type", HeaderValue::from_static("com.example.other"));
        let (answer, log) = post(&mut host, &headers, "{}");
        assert_eq!(answer, crate::respond::HttpAnswer { status: 204, headers: vec![], body: vec![] });
        assert_eq!(log.outcome, LogOutcome::Ignored);
        assert!(host.api.sent.is_empty());
    }

    #[test]
    fn a_bad_variable_is_a_500_naming_it() {
        let mut host = FakeHost::new(vec![]);
        host.variables.insert("client_command".into(), "sleep infinity".into());
        let (answer, log) = post(&mut host, &pending(), r#"{"gateway_name":"foo"}"#);
        assert_eq!(answer.status, 500);
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        assert!(body["error"].as_str().unwrap().starts_with("Spin variable `client_command`: "), "{body}");
        assert_eq!((log.outcome, log.status), (LogOutcome::ConfigError, 500));
        assert!(host.api.sent.is_empty());
    }

    #[test]
    fn transient_failures_answer_503_with_retry_after() {
        let unavailable =
            http::Response::builder().status(503).header("retry-after", "5").body(Vec::new()).unwrap();
        let mut host = FakeHost::new(vec![Ok(unavailable), Err(TransportError::TimedOut)]);
        let (answer, log) = post(&mut host, &pending(), r#"{"gateway_name":"foo"}"#);
        assert_eq!(answer.status, 503);
        assert_eq!(header(&answer, "retry-after"), Some("5"));
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(
            body["error"],
            format!(
                "the Kubernetes API could not create pod default/{NAME} for now: 503 ServiceUnavailable; redeliver the event later"
            )
        );
        assert_eq!((log.outcome, log.api_status.as_slice()), (LogOutcome::Retry, &[503][..]));

        let (answer, _) = post(&mut host, &pending(), r#"{"gateway_name":"foo"}"#);
        assert_eq!(answer.status, 503);
        assert_eq!(header(&answer, "retry-after"), None);
    }

    #[test]
    fn rejections_are_logged() {
        let mut host = FakeHost::new(vec![]);
        let headers = HeaderMap::new();
        let (answer, log) =
            handle(Incoming { method: &Method::PUT, headers: &headers, body: Ok(vec![]) }, &mut host);
        assert_eq!(answer.status, 405);
        assert_eq!((log.outcome, log.status), (LogOutcome::Rejected, 405));
        let (answer, _) = handle(
            Incoming {
                method: &Method::POST,
                headers: &headers,
                body: Err(Rejection::BodyTooLarge { limit: MAX_BODY_BYTES }),
            },
            &mut host,
        );
        assert_eq!(answer.status, 413);
        let (answer, log) = post(&mut host, &headers, "{}");
        assert_eq!(answer.status, 400);
        assert_eq!(log.event_id, None);
    }

    #[test]
    fn the_sender_is_checked_before_the_event_is_read_and_logged() {
        let token = crate::auth::bearer::tests::jwt(json!({"aud": ["p"], "exp": 1_764_586_800u64}));
        let sender =
            "system:serviceaccount:podgateway-system:client-provisioner-oidc-eventing.knative.dev-trigger";
        let reviewed = crate::kube::calls::tests::answer(
            201,
            json!({"status": {"authenticated": true, "audiences": ["p"], "user": {"username": sender}}}),
        );
        let mut host = FakeHost::new(vec![reviewed, created()]);
        host.set("auth_audience", "p");
        // Unauthenticated: 401 even for a body that is no event.
        let (answer, log) = post(&mut host, &pending(), "not an event");
        assert_eq!((answer.status, log.outcome, log.event_id), (401, LogOutcome::Rejected, None));
        assert!(host.api.sent.is_empty());

        let mut headers = pending();
        headers.insert("authorization", HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
        let (answer, log) = post(&mut host, &headers, r#"{"gateway_name":"foo"}"#);
        assert_eq!(answer.status, 200);
        assert_eq!(log.sender.as_deref(), Some(sender));
        assert_eq!(log.api_status, [201, 201], "the review, then the create");
        let line = serde_json::to_string(&log).unwrap();
        assert!(!line.contains(&token), "the token is never logged");
    }
}
