//! The one place that turns what became of a request into its HTTP answer and its log line:
//! every status code, header and log field is decided here.

use http::Method;
use serde::Serialize;
use serde_json::json;

use crate::auth::Denial;
use crate::cloudevents::{ReadError, ReceivedEvent, Reply};

/// An HTTP answer, independent of the host's types.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// A short JSON error body: it is what Knative puts in `knativeerrordata` of a dead letter.
    fn error(status: u16, message: &str) -> Self {
        HttpAnswer {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: json!({ "error": message }).to_string().into_bytes(),
        }
    }

    fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// A request refused before any event is handled: the only answers to bad input that are
/// not reply events. Knative does not retry them.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    MethodNotAllowed(Method),
    BodyTooLarge { limit: usize },
    UnreadableBody(String),
    NotAnEvent(ReadError),
}

impl Rejection {
    fn status(&self) -> u16 {
        match self {
            Rejection::MethodNotAllowed(_) => 405,
            Rejection::BodyTooLarge { .. } => 413,
            Rejection::NotAnEvent(ReadError::UnsupportedFormat(_)) => 415,
            Rejection::UnreadableBody(_) | Rejection::NotAnEvent(ReadError::Invalid(_)) => 400,
        }
    }

    fn message(&self) -> String {
        match self {
            Rejection::MethodNotAllowed(method) => {
                format!("method {method} is not allowed; POST a CloudEvent")
            }
            Rejection::BodyTooLarge { limit } => {
                format!("request body is larger than {limit} bytes; one event per request")
            }
            Rejection::UnreadableBody(detail) => format!("cannot read the request body: {detail}"),
            Rejection::NotAnEvent(error) => error.message().to_owned(),
        }
    }
}

/// What became of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It was handled: `200` with the reply event.
    Done(Reply),
    /// It cannot succeed and retrying will not help: `200` with a reply saying why.
    Failed(Reply),
    /// Nothing to do or to say (a type the component does not handle, a pod change that
    /// changes nothing): `204`, no reply; the log line says why when there is more to say.
    Ignored(Option<String>),
    /// An event of a type the component handles whose data it cannot use, and for which the
    /// type has no `failed` reply: `400`, which Knative does not retry (it dead-letters it).
    Unusable(String),
    /// It may work later: `503` (with `Retry-After` when known), so that the broker redelivers.
    Retry { message: String, retry_after: Option<u64> },
    /// The deployment is wrong (a variable, the outbound hosts): `500`.
    Misconfigured(String),
}

/// A handler's result: the outcome, and what the log line tells about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    pub outcome: Outcome,
    pub pod: Option<String>,
    pub namespace: Option<String>,
    /// The HTTP status of each API answer, in order.
    pub api_status: Vec<u16>,
}

impl Handled {
    pub fn new(outcome: Outcome) -> Self {
        Handled { outcome, pod: None, namespace: None, api_status: Vec::new() }
    }
}

/// The log line's verdict on a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogOutcome {
    Done,
    Failed,
    Retry,
    Ignored,
    Rejected,
    ConfigError,
}

/// One structured log line per request. It never holds a token or the event's data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    pub event_id: Option<String>,
    pub event_source: Option<String>,
    pub event_type: Option<String>,
    pub outcome: LogOutcome,
    pub status: u16,
    pub pod: Option<String>,
    pub namespace: Option<String>,
    pub api_status: Vec<u16>,
    pub elapsed_ms: u64,
    pub message: Option<String>,
    /// The authenticated sender's subject (with `auth_audience`).
    pub sender: Option<String>,
    /// What went wrong on the side without changing the answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl LogLine {
    /// The line of a request whose event was not read.
    fn unread(outcome: LogOutcome, status: u16, message: String) -> Self {
        LogLine {
            event_id: None,
            event_source: None,
            event_type: None,
            outcome,
            status,
            pod: None,
            namespace: None,
            api_status: Vec::new(),
            elapsed_ms: 0,
            message: Some(message),
            sender: None,
            warnings: Vec::new(),
        }
    }
}

/// The answer to a request refused before any event was read.
pub fn rejection_answer(rejection: Rejection) -> HttpAnswer {
    let answer = HttpAnswer::error(rejection.status(), &rejection.message());
    match rejection {
        Rejection::MethodNotAllowed(_) => answer.with_header("allow", "POST".into()),
        _ => answer,
    }
}

/// The answer and log line of a refused request.
pub fn rejected(rejection: Rejection) -> (HttpAnswer, LogLine) {
    let log = LogLine::unread(LogOutcome::Rejected, rejection.status(), rejection.message());
    (rejection_answer(rejection), log)
}

/// The answer and log line of a request whose sender was turned away (its event unread).
pub fn denied(denial: Denial) -> (HttpAnswer, LogLine) {
    let (answer, outcome, message) = match denial {
        Denial::Unauthenticated { reason, token_given } => {
            // RFC 6750 §3: the scheme to use, and `invalid_token` when a token was sent.
            let challenge = if token_given { r#"Bearer error="invalid_token""# } else { "Bearer" }.to_owned();
            let message = format!("unauthenticated: {reason}");
            let answer = HttpAnswer::error(401, &message).with_header("www-authenticate", challenge);
            (answer, LogOutcome::Rejected, message)
        }
        Denial::NotAllowed { subject } => {
            let message = format!("{subject} may not send events here (auth_allowed_senders)");
            (HttpAnswer::error(403, &message), LogOutcome::Rejected, message)
        }
        Denial::Unavailable { message, retry_after } => {
            let (answer, outcome, message) =
                outcome_answer(Outcome::Retry { message, retry_after }, String::new);
            (answer, outcome, message.unwrap_or_default())
        }
        Denial::Misconfigured(message) => {
            (HttpAnswer::error(500, &message), LogOutcome::ConfigError, message)
        }
    };
    let log = LogLine::unread(outcome, answer.status, message);
    (answer, log)
}

/// The answer and log line of a handled event; `now` gives a reply's `time` (RFC 3339).
pub fn answer(
    event: &ReceivedEvent,
    handled: Handled,
    now: impl FnOnce() -> String,
) -> (HttpAnswer, LogLine) {
    let Handled { outcome, pod, namespace, api_status } = handled;
    let (answer, log_outcome, message) = outcome_answer(outcome, now);
    let log = LogLine {
        event_id: Some(event.key.id.clone()),
        event_source: Some(event.key.source.clone()),
        event_type: Some(event.event_type.clone()),
        pod,
        namespace,
        api_status,
        message,
        ..LogLine::unread(log_outcome, answer.status, String::new())
    };
    (answer, log)
}

/// The HTTP answer of an outcome, its verdict and its message for the log line.
fn outcome_answer(
    outcome: Outcome,
    now: impl FnOnce() -> String,
) -> (HttpAnswer, LogOutcome, Option<String>) {
    match outcome {
        Outcome::Done(reply) => reply_answer(reply, LogOutcome::Done, now),
        Outcome::Failed(reply) => reply_answer(reply, LogOutcome::Failed, now),
        Outcome::Ignored(why) => {
            (HttpAnswer { status: 204, headers: vec![], body: vec![] }, LogOutcome::Ignored, why)
        }
        Outcome::Unusable(message) => (HttpAnswer::error(400, &message), LogOutcome::Rejected, Some(message)),
        Outcome::Retry { message, retry_after } => {
            let message = format!("{message}; redeliver the event later");
            let answer = HttpAnswer::error(503, &message);
            let answer = match retry_after {
                Some(seconds) => answer.with_header("retry-after", seconds.to_string()),
                None => answer,
            };
            (answer, LogOutcome::Retry, Some(message))
        }
        Outcome::Misconfigured(message) => {
            (HttpAnswer::error(500, &message), LogOutcome::ConfigError, Some(message))
        }
    }
}

fn reply_answer(
    reply: Reply,
    outcome: LogOutcome,
    now: impl FnOnce() -> String,
) -> (HttpAnswer, LogOutcome, Option<String>) {
    let message = reply.data["message"].as_str().map(String::from);
    let (headers, body) = reply.into_binary(now());
    (HttpAnswer { status: 200, headers, body }, outcome, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn only_post_is_allowed() {
        let answer = rejection_answer(Rejection::MethodNotAllowed(Method::GET));
        assert_eq!(answer.status, 405);
        assert!(answer.headers.contains(&("allow", "POST".into())));
        assert_eq!(
            serde_json::from_slice::<Value>(&answer.body).unwrap(),
            json!({"error": "method GET is not allowed; POST a CloudEvent"})
        );
    }

    #[test]
    fn body_limit_answer() {
        let answer = rejection_answer(Rejection::BodyTooLarge { limit: 262_144 });
        assert_eq!(answer.status, 413);
        assert_eq!(answer.headers, vec![("content-type", "application/json".to_string())]);
        assert_eq!(
            serde_json::from_slice::<Value>(&answer.body).unwrap(),
            json!({"error": "request body is larger than 262144 bytes; one event per request"})
        );
    }

    #[test]
    fn log_outcomes_are_written_in_snake_case() {
        let written: Vec<Value> = [
            LogOutcome::Done,
            LogOutcome::Failed,
            LogOutcome::Retry,
            LogOutcome::Ignored,
            LogOutcome::Rejected,
            LogOutcome::ConfigError,
        ]
        .iter()
        .map(|outcome| serde_json::to_value(outcome).unwrap())
        .collect();
        assert_eq!(
            written,
            [
                json!("done"),
                json!("failed"),
                json!("retry"),
                json!("ignored"),
                json!("rejected"),
                json!("config_error")
            ]
        );
    }
}
