//! CloudEvents over HTTP, both ways: the checks on the incoming request (method, size,
//! content mode), the event it carries, and the answers: a binary-mode reply event or a
//! short JSON error.

use cloudevents::binding::http::to_event;
use cloudevents::{AttributesReader, Data, Event};
use http::{HeaderMap, Method, header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Requests with a larger body are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

pub const PENDING_TYPE: &str = "io.podgateway.client.pending";
pub const DONE_TYPE: &str = "io.podgateway.client.scheduling.done";
pub const FAILED_TYPE: &str = "io.podgateway.client.scheduling.failed";
/// The `source` of every reply, as in the Go original.
pub const REPLY_SOURCE: &str = "podgateway/eventing/client/provisioner";

const STRUCTURED_JSON: &str = "application/cloudevents+json";
const BATCH_JSON: &str = "application/cloudevents-batch+json";

/// An HTTP answer, independent of the host's types.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// A short JSON error body: it is what Knative puts in `knativeerrordata` of a dead letter.
    pub fn error(status: u16, message: &str) -> Self {
        HttpAnswer {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: json!({ "error": message }).to_string().into_bytes(),
        }
    }

    /// Delivered, no reply event.
    pub fn no_content() -> Self {
        HttpAnswer { status: 204, headers: vec![], body: vec![] }
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// A request refused before any event is handled: the only non-2xx answers to bad input.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub status: u16,
    pub message: String,
}

impl Rejection {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Rejection { status, message: message.into() }
    }

    pub fn body_too_large() -> Self {
        Rejection::new(
            413,
            format!("request body is larger than {MAX_BODY_BYTES} bytes; one event per request"),
        )
    }

    pub fn into_answer(self) -> HttpAnswer {
        let answer = HttpAnswer::error(self.status, &self.message);
        if self.status == 405 { answer.with_header("allow", "POST".into()) } else { answer }
    }
}

pub fn check_method(method: &Method) -> Result<(), Rejection> {
    if method == Method::POST {
        Ok(())
    } else {
        Err(Rejection::new(405, format!("method {method} is not allowed; POST a CloudEvent")))
    }
}

/// Who sent an event and which one it is: CloudEvents are unique by source + id, so this is
/// the key that makes redeliveries recognisable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventKey {
    pub source: String,
    pub id: String,
}

impl EventKey {
    /// SHA-256 over the key's fields and `extra`, each prefixed with its length as a 64-bit
    /// big-endian integer, so that no two different field lists hash the same bytes
    /// (`("a-b","c")` and `("a","b-c")` differ). Pod names depend on this: never change it.
    pub fn digest(&self, extra: &[&str]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        for field in [self.source.as_str(), self.id.as_str()].iter().chain(extra) {
            hasher.update((field.len() as u64).to_be_bytes());
            hasher.update(field.as_bytes());
        }
        hasher.finalize().into()
    }
}

/// The event a request carried, reduced to what the component uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    pub key: EventKey,
    pub event_type: String,
    pub data_content_type: Option<String>,
    pub data: Option<Data>,
}

/// Reads a CloudEvent in binary mode (`ce-*` headers) or structured JSON mode.
pub fn read_event(headers: &HeaderMap, body: Vec<u8>) -> Result<ReceivedEvent, Rejection> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(media_type)
        .unwrap_or_default();
    if content_type == BATCH_JSON {
        return Err(Rejection::new(
            415,
            format!("batched CloudEvents ({BATCH_JSON}) are not accepted; send one event per request"),
        ));
    }
    if content_type.starts_with("application/cloudevents") && content_type != STRUCTURED_JSON {
        return Err(Rejection::new(
            415,
            format!(
                "structured format {content_type} is not supported; use {STRUCTURED_JSON} or binary mode"
            ),
        ));
    }
    let structured = content_type == STRUCTURED_JSON;
    let event = to_event(headers, body).map_err(|error| match error {
        cloudevents::message::Error::WrongEncoding {} => Rejection::new(
            400,
            format!(
                "not a CloudEvent: expected ce-specversion, ce-id, ce-source and ce-type headers \
                 (binary mode) or Content-Type {STRUCTURED_JSON} (structured mode)"
            ),
        ),
        other => Rejection::new(400, format!("invalid CloudEvent: {other}")),
    })?;
    received_event(&event, structured)
}

fn received_event(event: &Event, structured: bool) -> Result<ReceivedEvent, Rejection> {
    // ce-* header values are percent-encoded (HTTP binding §3.1.3.2); JSON values are not.
    let attribute = |name: &str, value: &str| -> Result<String, Rejection> {
        let value = if structured {
            value.to_owned()
        } else {
            percent_decode(value).ok_or_else(|| {
                Rejection::new(400, format!("header ce-{name} is not percent-encoded UTF-8"))
            })?
        };
        if value.is_empty() {
            return Err(Rejection::new(400, format!("invalid CloudEvent: attribute `{name}` is empty")));
        }
        Ok(value)
    };
    Ok(ReceivedEvent {
        key: EventKey { source: attribute("source", event.source())?, id: attribute("id", event.id())? },
        event_type: attribute("type", event.ty())?,
        data_content_type: event.datacontenttype().map(str::to_owned),
        data: event.data().cloned(),
    })
}

/// Decodes `%XX` sequences; a `%` not followed by two hex digits stays as it is (senders
/// that do not encode at all, such as sdk-go, must still be understood).
fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).ok()
}

/// `type/subtype` of a Content-Type value, lowercased, without parameters.
fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

fn is_json_media_type(content_type: &str) -> bool {
    let media = media_type(content_type);
    media == "application/json" || media == "text/json" || media.ends_with("+json")
}

/// What a pending event asks for, as sent; checked against the configuration later.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PendingData {
    pub gateway_name: Option<String>,
    pub message: Option<String>,
}

/// Why a pending event's data cannot be used, and the gateway it named if it could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct DataProblem {
    pub problem: String,
    pub gateway_name: Option<String>,
}

impl ReceivedEvent {
    /// The data of a pending event: a JSON object with a string `gateway_name` and an
    /// optional string `message`; other fields are ignored.
    pub fn pending_data(&self) -> Result<PendingData, DataProblem> {
        let problem = |problem: String| DataProblem { problem, gateway_name: None };
        if let Some(content_type) = &self.data_content_type
            && !is_json_media_type(content_type)
        {
            return Err(problem(format!(
                "data must be JSON (datacontenttype application/json), not `{content_type}`"
            )));
        }
        let value = match &self.data {
            None => return Err(problem(r#"the event has no data; expected {"gateway_name": "…"}"#.into())),
            Some(Data::Json(value)) => value.clone(),
            Some(Data::Binary(bytes)) => serde_json::from_slice(bytes)
                .map_err(|error| problem(format!("data is not valid JSON: {error}")))?,
            Some(Data::String(text)) => serde_json::from_str(text)
                .map_err(|error| problem(format!("data is not valid JSON: {error}")))?,
        };
        let Value::Object(fields) = value else {
            return Err(problem(format!(
                r#"data must be a JSON object such as {{"gateway_name": "foo"}}, not {}"#,
                json_kind(&value)
            )));
        };
        let string_field = |name: &str| match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(format!("`{name}` must be a string, not {}", json_kind(other))),
        };
        let gateway_name = string_field("gateway_name").map_err(problem)?;
        let message = string_field("message")
            .map_err(|problem| DataProblem { problem, gateway_name: gateway_name.clone() })?;
        Ok(PendingData { gateway_name, message })
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The event the component answers with; the broker sends it on as a new event.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub event_type: &'static str,
    pub id: String,
    pub subject: Option<String>,
    pub data: Value,
}

impl Reply {
    /// The reply's id depends only on the request's source + id and the reply type, so a
    /// redelivered request is answered with the same id and consumers can de-duplicate.
    pub fn new(request: &EventKey, event_type: &'static str, subject: Option<String>, data: Value) -> Self {
        let id = hex(&request.digest(&[event_type])[..16]);
        Reply { event_type, id, subject, data }
    }

    /// `200` with the reply in binary mode; `time` is its RFC 3339 `time` attribute.
    pub fn into_answer(self, time: String) -> HttpAnswer {
        let mut headers = vec![
            ("ce-specversion", "1.0".to_owned()),
            ("ce-id", self.id),
            ("ce-source", REPLY_SOURCE.to_owned()),
            ("ce-type", self.event_type.to_owned()),
            ("ce-time", time),
            ("content-type", "application/json".to_owned()),
        ];
        if let Some(subject) = self.subject {
            headers.push(("ce-subject", percent_encode_header(&subject)));
        }
        HttpAnswer { status: 200, headers, body: self.data.to_string().into_bytes() }
    }
}

/// Encodes what HTTP binding §3.1.3.2 requires: space, `"`, `%` and anything that is not
/// printable ASCII.
fn percent_encode_header(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_graphic() && byte != b'"' && byte != b'%' {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn binary_headers() -> Vec<(&'static str, &'static str)> {
        vec![
            ("ce-specversion", "1.0"),
            ("ce-id", "42"),
            ("ce-source", "urn:test"),
            ("ce-type", PENDING_TYPE),
            ("content-type", "application/json"),
        ]
    }

    fn rejected(pairs: &[(&'static str, &str)], body: &str) -> Rejection {
        read_event(&headers(pairs), body.as_bytes().to_vec()).unwrap_err()
    }

    #[test]
    fn binary_mode() {
        let event = read_event(&headers(&binary_headers()), br#"{"gateway_name":"foo"}"#.to_vec()).unwrap();
        assert_eq!(event.key, EventKey { source: "urn:test".into(), id: "42".into() });
        assert_eq!(event.event_type, PENDING_TYPE);
        assert_eq!(
            event.pending_data().unwrap(),
            PendingData { gateway_name: Some("foo".into()), message: None }
        );
    }

    #[test]
    fn structured_mode() {
        let body = json!({
            "specversion": "1.0", "id": "42", "source": "urn:a%20b", "type": PENDING_TYPE,
            "datacontenttype": "application/json",
            "data": {"gateway_name": "bar", "message": "hello", "extra": 1}
        });
        let event = read_event(
            &headers(&[("content-type", "application/cloudevents+json; charset=utf-8")]),
            body.to_string().into_bytes(),
        )
        .unwrap();
        // Structured values are JSON: nothing is percent-decoded.
        assert_eq!(event.key, EventKey { source: "urn:a%20b".into(), id: "42".into() });
        assert_eq!(
            event.pending_data().unwrap(),
            PendingData { gateway_name: Some("bar".into()), message: Some("hello".into()) }
        );
    }

    #[test]
    fn binary_headers_are_percent_decoded() {
        let mut pairs = binary_headers();
        pairs[1] = ("ce-id", "id%20with%22quotes%22%25");
        pairs[2] = ("ce-source", "urn:caf%C3%A9/100%");
        let event = read_event(&headers(&pairs), b"{}".to_vec()).unwrap();
        assert_eq!(event.key.id, "id with\"quotes\"%");
        assert_eq!(event.key.source, "urn:café/100%");
    }

    #[test]
    fn percent_encoded_bytes_must_be_utf8() {
        let mut pairs = binary_headers();
        pairs[1] = ("ce-id", "bad%FF");
        let rejection = rejected(&pairs, "{}");
        assert_eq!(rejection, Rejection::new(400, "header ce-id is not percent-encoded UTF-8"));
    }

    #[test]
    fn not_a_cloudevent_is_400() {
        let rejection = rejected(&[("content-type", "application/json")], r#"{"gateway_name":"foo"}"#);
        assert_eq!(rejection.status, 400);
        assert!(
            rejection.message.starts_with("not a CloudEvent: expected ce-specversion"),
            "{}",
            rejection.message
        );
    }

    #[test]
    fn missing_required_attributes_are_named() {
        for missing in ["ce-id", "ce-source", "ce-type"] {
            let pairs: Vec<_> = binary_headers().into_iter().filter(|(name, _)| *name != missing).collect();
            let rejection = rejected(&pairs, "{}");
            assert_eq!(rejection.status, 400);
            let attribute = missing.trim_start_matches("ce-");
            assert!(
                rejection.message.contains(&format!("Missing required attribute {attribute}")),
                "{}",
                rejection.message
            );
        }
        let structured = json!({"specversion": "1.0", "source": "urn:x", "type": "t"}).to_string();
        let rejection = rejected(&[("content-type", STRUCTURED_JSON)], &structured);
        assert_eq!(rejection.status, 400);
        assert_eq!(
            rejection.message,
            "invalid CloudEvent: Error while serializing/deserializing to json: missing field `id`"
        );
    }

    #[test]
    fn empty_attributes_are_400() {
        let mut pairs = binary_headers();
        pairs[1] = ("ce-id", "");
        assert_eq!(
            rejected(&pairs, "{}"),
            Rejection::new(400, "invalid CloudEvent: attribute `id` is empty")
        );
    }

    #[test]
    fn unknown_specversion_and_bad_json_are_400() {
        let mut pairs = binary_headers();
        pairs[0] = ("ce-specversion", "9.9");
        assert_eq!(rejected(&pairs, "{}").status, 400);
        let rejection = rejected(&[("content-type", STRUCTURED_JSON)], "{not json");
        assert_eq!(rejection.status, 400);
        assert!(rejection.message.starts_with("invalid CloudEvent: "), "{}", rejection.message);
    }

    #[test]
    fn batches_and_other_structured_formats_are_415() {
        let rejection = rejected(&[("content-type", "application/cloudevents-batch+json")], "[]");
        assert_eq!(rejection.status, 415);
        assert!(rejection.message.contains("one event per request"));
        assert_eq!(rejected(&[("content-type", "application/cloudevents+xml")], "<x/>").status, 415);
    }

    #[test]
    fn only_post_is_allowed() {
        assert!(check_method(&Method::POST).is_ok());
        let answer = check_method(&Method::GET).unwrap_err().into_answer();
        assert_eq!(answer.status, 405);
        assert!(answer.headers.contains(&("allow", "POST".into())));
        assert_eq!(
            serde_json::from_slice::<Value>(&answer.body).unwrap(),
            json!({"error": "method GET is not allowed; POST a CloudEvent"})
        );
    }

    #[test]
    fn body_limit_answer() {
        let answer = Rejection::body_too_large().into_answer();
        assert_eq!(answer.status, 413);
        assert_eq!(answer.headers, vec![("content-type", "application/json".to_string())]);
        assert_eq!(
            serde_json::from_slice::<Value>(&answer.body).unwrap(),
            json!({"error": "request body is larger than 262144 bytes; one event per request"})
        );
    }

    fn pending_with(content_type: Option<&str>, data: Option<Data>) -> ReceivedEvent {
        ReceivedEvent {
            key: EventKey { source: "s".into(), id: "i".into() },
            event_type: PENDING_TYPE.into(),
            data_content_type: content_type.map(String::from),
            data,
        }
    }

    #[test]
    fn pending_data_problems() {
        let bytes = |text: &str| Some(Data::Binary(text.as_bytes().to_vec()));
        let cases = [
            (pending_with(Some("application/json"), None), "the event has no data"),
            (pending_with(Some("application/json"), bytes("gateway foo")), "data is not valid JSON"),
            (
                pending_with(Some("text/plain"), bytes("{}")),
                "data must be JSON (datacontenttype application/json), not `text/plain`",
            ),
            (
                pending_with(None, bytes(r#"["foo"]"#)),
                "data must be a JSON object such as {\"gateway_name\": \"foo\"}, not an array",
            ),
            (
                pending_with(None, bytes(r#"{"gateway_name": 7}"#)),
                "`gateway_name` must be a string, not a number",
            ),
        ];
        for (event, expected) in cases {
            let problem = event.pending_data().unwrap_err();
            assert!(problem.problem.starts_with(expected), "{} / {expected}", problem.problem);
            assert_eq!(problem.gateway_name, None);
        }
        let problem = pending_with(None, bytes(r#"{"gateway_name": "foo", "message": {}}"#))
            .pending_data()
            .unwrap_err();
        assert_eq!(problem.problem, "`message` must be a string, not an object");
        assert_eq!(problem.gateway_name.as_deref(), Some("foo"));
    }

    #[test]
    fn pending_data_accepts_json_types_and_absent_gateway() {
        let event = pending_with(Some("application/vnd.x+json"), Some(Data::Json(json!({"message": "m"}))));
        assert_eq!(
            event.pending_data().unwrap(),
            PendingData { gateway_name: None, message: Some("m".into()) }
        );
    }

    #[test]
    fn digest_is_length_prefixed() {
        let key = |source: &str, id: &str| EventKey { source: source.into(), id: id.into() };
        assert_ne!(key("a-b", "c").digest(&[]), key("a", "b-c").digest(&[]));
        assert_ne!(key("ab", "").digest(&[]), key("a", "b").digest(&[]));
        assert_eq!(key("a", "b").digest(&[]), key("a", "b").digest(&[]));
        // The published rule: SHA-256 of be64(len) ‖ bytes for source, then id.
        let mut manual = Sha256::new();
        manual.update(1u64.to_be_bytes());
        manual.update(b"a");
        manual.update(1u64.to_be_bytes());
        manual.update(b"b");
        assert_eq!(key("a", "b").digest(&[]), <[u8; 32]>::from(manual.finalize()));
    }

    #[test]
    fn reply_is_a_binary_mode_cloudevent() {
        let key = EventKey { source: "urn:test".into(), id: "42".into() };
        let reply = Reply::new(&key, DONE_TYPE, Some("pod-1".into()), json!({"pod_name": "pod-1"}));
        let answer = reply.clone().into_answer("2026-11-23T08:00:00.000Z".into());
        assert_eq!(answer.status, 200);
        let mut map = HeaderMap::new();
        for (name, value) in &answer.headers {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        let event = to_event(&map, answer.body).unwrap();
        assert_eq!(event.id(), reply.id);
        assert_eq!(event.ty(), DONE_TYPE);
        assert_eq!(event.source(), REPLY_SOURCE);
        assert_eq!(event.subject(), Some("pod-1"));
        assert_eq!(event.datacontenttype(), Some("application/json"));
        assert_eq!(event.time().unwrap().to_rfc3339(), "2026-11-23T08:00:00+00:00");
        assert_eq!(event.data(), Some(&Data::Binary(br#"{"pod_name":"pod-1"}"#.to_vec())));
    }

    #[test]
    fn reply_ids_are_stable_per_request_and_type() {
        let key = EventKey { source: "urn:test".into(), id: "42".into() };
        let done = Reply::new(&key, DONE_TYPE, None, json!({}));
        assert_eq!(done.id, Reply::new(&key, DONE_TYPE, None, json!({"other": 1})).id);
        assert_ne!(done.id, Reply::new(&key, FAILED_TYPE, None, json!({})).id);
        let other = EventKey { source: "urn:test".into(), id: "43".into() };
        assert_ne!(done.id, Reply::new(&other, DONE_TYPE, None, json!({})).id);
        assert_eq!(done.id.len(), 32);
    }

    #[test]
    fn reply_header_values_are_percent_encoded() {
        assert_eq!(percent_encode_header("a b\"c%é"), "a%20b%22c%25%C3%A9");
        assert_eq!(percent_decode("a%20b%22c%25%C3%A9").unwrap(), "a b\"c%é");
    }
}
