//! One request from start to end: the event is read, the configuration loaded, the pod
//! provisioned, and the outcome turned into the HTTP answer and one log line.

use http::{HeaderMap, Method};
use serde::Serialize;
use serde_json::json;

use crate::config::Config;
use crate::event::{self, DONE_TYPE, FAILED_TYPE, HttpAnswer, PENDING_TYPE, Rejection, Reply};
use crate::kube::KubeApi;
use crate::provision::{self, Outcome};

/// What the host gives the component besides the request.
pub trait Host: KubeApi {
    /// A Spin variable, or the host's error text.
    fn variable(&self, name: &str) -> Result<String, String>;
    /// Now, as an RFC 3339 timestamp for the reply's `time`.
    fn now(&self) -> String;
}

/// The request as received; `body` is already refused when it was over the limit.
pub struct Incoming<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub body: Result<Vec<u8>, Rejection>,
}

/// One structured log line per request. It never holds the token or the event data.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct LogLine {
    pub event_id: Option<String>,
    pub event_source: Option<String>,
    pub event_type: Option<String>,
    pub outcome: &'static str,
    pub status: u16,
    pub pod: Option<String>,
    pub namespace: Option<String>,
    pub api_status: Vec<u16>,
    pub elapsed_ms: u64,
    pub message: Option<String>,
}

const DONE_MESSAGE: &str = "A pod-gateway client has been scheduled.";
const DRY_RUN_MESSAGE: &str =
    "A pod-gateway client would have been scheduled (dry run: nothing was created).";

pub fn handle(incoming: Incoming, host: &mut impl Host) -> (HttpAnswer, LogLine) {
    let rejected = |rejection: Rejection| {
        let log = LogLine {
            outcome: "rejected",
            status: rejection.status,
            message: Some(rejection.message.clone()),
            ..LogLine::default()
        };
        (rejection.into_answer(), log)
    };
    if let Err(rejection) = event::check_method(incoming.method) {
        return rejected(rejection);
    }
    let received = match incoming.body.and_then(|body| event::read_event(incoming.headers, body)) {
        Ok(received) => received,
        Err(rejection) => return rejected(rejection),
    };
    let mut log = LogLine {
        event_id: Some(received.key.id.clone()),
        event_source: Some(received.key.source.clone()),
        event_type: Some(received.event_type.clone()),
        ..LogLine::default()
    };
    if received.event_type != PENDING_TYPE {
        log.outcome = "ignored";
        log.status = 204;
        return (HttpAnswer::no_content(), log);
    }

    let config = match Config::load(|name| host.variable(name)) {
        Ok(config) => config,
        Err(error) => {
            let message = error.to_string();
            log.outcome = "config_error";
            log.status = 500;
            log.message = Some(message.clone());
            return (HttpAnswer::error(500, &message), log);
        }
    };
    log.namespace = Some(config.client_namespace.clone());

    let failed = |message: String, gateway_name: Option<String>| {
        Reply::new(
            &received.key,
            FAILED_TYPE,
            None,
            json!({
                "message": message,
                "gateway_name": gateway_name,
                "request_id": received.key.id,
                "request_source": received.key.source,
            }),
        )
    };
    let request = received
        .pending_data()
        .map_err(|problem| failed(problem.problem, problem.gateway_name))
        .and_then(|data| {
            let gateway_name = data.gateway_name.clone();
            provision::client_request(received.key.clone(), data, &config)
                .map_err(|problem| failed(problem, gateway_name))
        });
    let request = match request {
        Ok(request) => request,
        Err(reply) => return reply_answer(reply, "failed", log, host),
    };

    let provisioning = provision::provision(&config, &request, host);
    log.api_status = provisioning.api_statuses;
    match provisioning.outcome {
        Outcome::Done { pod_name } => {
            log.pod = Some(pod_name.clone());
            let message = if config.dry_run { DRY_RUN_MESSAGE } else { DONE_MESSAGE };
            let reply = Reply::new(
                &received.key,
                DONE_TYPE,
                Some(pod_name.clone()),
                json!({
                    "pod_name": pod_name,
                    "namespace": config.client_namespace,
                    "gateway_name": request.gateway,
                    "message": message,
                    "request_id": received.key.id,
                    "request_source": received.key.source,
                }),
            );
            reply_answer(reply, "done", log, host)
        }
        Outcome::Failed { message } => {
            log.pod = Some(provision::pod_name(&config.client_name_prefix, &received.key));
            reply_answer(failed(message, Some(request.gateway)), "failed", log, host)
        }
        Outcome::Retry { message, retry_after } => {
            log.outcome = "retry";
            log.status = 503;
            let message = format!("{message}; redeliver the event later");
            log.message = Some(message.clone());
            let answer = HttpAnswer::error(503, &message);
            let answer = match retry_after {
                Some(seconds) => answer.with_header("retry-after", seconds.to_string()),
                None => answer,
            };
            (answer, log)
        }
        Outcome::Misconfigured { message } => {
            log.outcome = "config_error";
            log.status = 500;
            log.message = Some(message.clone());
            (HttpAnswer::error(500, &message), log)
        }
    }
}

fn reply_answer(
    reply: Reply,
    outcome: &'static str,
    mut log: LogLine,
    host: &impl Host,
) -> (HttpAnswer, LogLine) {
    log.outcome = outcome;
    log.status = 200;
    log.message = reply.data["message"].as_str().map(String::from);
    (reply.into_answer(host.now()), log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::spin_defaults;
    use crate::kube::TransportError;
    use crate::provision::tests::ScriptedApi;
    use http::HeaderValue;
    use serde_json::Value;
    use std::collections::HashMap;

    struct FakeHost {
        variables: HashMap<&'static str, String>,
        api: ScriptedApi,
    }

    impl FakeHost {
        fn new(answers: Vec<Result<http::Response<Vec<u8>>, TransportError>>) -> Self {
            FakeHost { variables: spin_defaults(), api: ScriptedApi::new(answers) }
        }
    }

    impl KubeApi for FakeHost {
        fn send(
            &mut self,
            request: http::Request<Vec<u8>>,
            timeout: std::time::Duration,
        ) -> Result<http::Response<Vec<u8>>, TransportError> {
            self.api.send(request, timeout)
        }
    }

    impl Host for FakeHost {
        fn variable(&self, name: &str) -> Result<String, String> {
            self.variables.get(name).cloned().ok_or_else(|| format!("undefined: {name}"))
        }
        fn now(&self) -> String {
            "2026-11-23T08:00:00.000Z".into()
        }
    }

    fn pending() -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("ce-specversion", "1.0"),
            ("ce-id", "42"),
            ("ce-source", "urn:test"),
            ("ce-type", PENDING_TYPE),
            ("content-type", "application/json"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        headers
    }

    fn post(host: &mut FakeHost, headers: &HeaderMap, body: &str) -> (HttpAnswer, LogLine) {
        handle(Incoming { method: &Method::POST, headers, body: Ok(body.as_bytes().to_vec()) }, host)
    }

    fn created() -> Result<http::Response<Vec<u8>>, TransportError> {
        Ok(http::Response::builder().status(201).body(b"{}".to_vec()).unwrap())
    }

    fn header<'a>(answer: &'a HttpAnswer, name: &str) -> Option<&'a str> {
        answer.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    const NAME: &str = "podgateway-client-7678b351e70b8efde9a6";

    #[test]
    fn pending_event_creates_the_pod_and_replies_done() {
        let mut host = FakeHost::new(vec![created()]);
        let (answer, log) = post(&mut host, &pending(), r#"{"gateway_name":"foo"}"#);
        assert_eq!(answer.status, 200);
        assert_eq!(header(&answer, "ce-type"), Some(DONE_TYPE));
        assert_eq!(header(&answer, "ce-source"), Some(event::REPLY_SOURCE));
        assert_eq!(header(&answer, "ce-subject"), Some(NAME));
        assert_eq!(header(&answer, "ce-time"), Some("2026-11-23T08:00:00.000Z"));
        assert_eq!(header(&answer, "content-type"), Some("application/json"));
        assert_eq!(
            serde_json::from_slice::<Value>(&answer.body).unwrap(),
            json!({
                "pod_name": NAME, "namespace": "default", "gateway_name": "foo",
                "message": DONE_MESSAGE, "request_id": "42", "request_source": "urn:test"
            })
        );
        assert_eq!(
            log,
            LogLine {
                event_id: Some("42".into()),
                event_source: Some("urn:test".into()),
                event_type: Some(PENDING_TYPE.into()),
                outcome: "done",
                status: 200,
                pod: Some(NAME.into()),
                namespace: Some("default".into()),
                api_status: vec![201],
                elapsed_ms: 0,
                message: Some(DONE_MESSAGE.into()),
            }
        );
        assert_eq!(host.api.sent.len(), 1);
    }

    #[test]
    fn dry_run_says_so() {
        let mut host = FakeHost::new(vec![created()]);
        host.variables.insert("dry_run", "true".into());
        let (answer, _) = post(&mut host, &pending(), r#"{"gateway_name":"foo"}"#);
        let data: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(data["message"], DRY_RUN_MESSAGE);
        assert!(host.api.sent[0].uri().query().unwrap().contains("dryRun=All"));
    }

    #[test]
    fn invalid_data_replies_failed_without_any_api_call() {
        let mut host = FakeHost::new(vec![]);
        let (answer, log) = post(&mut host, &pending(), r#"{"gateway_name":"not valid!"}"#);
        assert_eq!(answer.status, 200);
        assert_eq!(header(&answer, "ce-type"), Some(FAILED_TYPE));
        assert_eq!(header(&answer, "ce-subject"), None);
        let data: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(data["gateway_name"], "not valid!");
        assert_eq!(data["request_id"], "42");
        assert_eq!(data["request_source"], "urn:test");
        assert!(data["message"].as_str().unwrap().contains("is not a valid gateway name"));
        assert_eq!(log.outcome, "failed");
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
        host.variables.insert("dry_run", "maybe".into());
        let mut headers = pending();
        headers.insert("ce-type", HeaderValue::from_static("com.example.other"));
        let (answer, log) = post(&mut host, &headers, "{}");
        assert_eq!(answer, HttpAnswer { status: 204, headers: vec![], body: vec![] });
        assert_eq!(log.outcome, "ignored");
        assert!(host.api.sent.is_empty());
    }

    #[test]
    fn a_bad_variable_is_a_500_naming_it() {
        let mut host = FakeHost::new(vec![]);
        host.variables.insert("client_command", "sleep infinity".into());
        let (answer, log) = post(&mut host, &pending(), r#"{"gateway_name":"foo"}"#);
        assert_eq!(answer.status, 500);
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        assert!(body["error"].as_str().unwrap().starts_with("Spin variable `client_command`: "), "{body}");
        assert_eq!((log.outcome, log.status), ("config_error", 500));
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
        assert_eq!((log.outcome, log.api_status.as_slice()), ("retry", &[503][..]));

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
        assert_eq!((log.outcome, log.status), ("rejected", 405));
        let (answer, _) = handle(
            Incoming { method: &Method::POST, headers: &headers, body: Err(Rejection::body_too_large()) },
            &mut host,
        );
        assert_eq!(answer.status, 413);
        let (answer, log) = post(&mut host, &headers, "{}");
        assert_eq!(answer.status, 400);
        assert_eq!(log.event_id, None);
    }
}
