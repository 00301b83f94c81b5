//! The CloudEvents HTTP binding (v1.0.2), both ways: the event a request carries, in binary
//! mode (`ce-*` headers, percent-decoded) or structured JSON mode, and the reply event written
//! in binary mode.

use cloudevents::binding::http::to_event;
use cloudevents::{AttributesReader, Data, Event};
use http::{HeaderMap, header};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use serde_json::{Map, Value};

use crate::identity::{EventKey, digest, hex};
use crate::json;

/// The `source` of every event the component sends, as in the Go original.
pub const REPLY_SOURCE: &str = "podgateway/eventing/client/provisioner";

const STRUCTURED_JSON: &str = "application/cloudevents+json";
const BATCH_JSON: &str = "application/cloudevents-batch+json";

/// What HTTP binding §3.1.3.2 requires to be encoded in a `ce-*` value besides controls and
/// non-ASCII: space, `"` and `%`.
const HEADER_VALUE: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');

/// Why a request carries no CloudEvent the component can read.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadError {
    /// A batch, or a structured format other than JSON.
    UnsupportedFormat(String),
    /// Not a CloudEvent, or not a valid one.
    Invalid(String),
}

impl ReadError {
    pub fn message(&self) -> &str {
        match self {
            ReadError::UnsupportedFormat(message) | ReadError::Invalid(message) => message,
        }
    }
}

/// The event a request carried: what the component reads of it, and the whole event.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    pub key: EventKey,
    pub event_type: String,
    pub data_content_type: Option<String>,
    pub data: Option<Data>,
    /// As read, its `ce-*` values still percent-encoded in binary mode.
    event: Event,
    binary: bool,
}

/// Reads a CloudEvent in binary mode (`ce-*` headers) or structured JSON mode.
pub fn read(headers: &HeaderMap, body: Vec<u8>) -> Result<ReceivedEvent, ReadError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(media_type)
        .unwrap_or_default();
    if content_type == BATCH_JSON {
        return Err(ReadError::UnsupportedFormat(format!(
            "batched CloudEvents ({BATCH_JSON}) are not accepted; send one event per request"
        )));
    }
    if content_type.starts_with("application/cloudevents") && content_type != STRUCTURED_JSON {
        return Err(ReadError::UnsupportedFormat(format!(
            "structured format {content_type} is not supported; use {STRUCTURED_JSON} or binary mode"
        )));
    }
    let structured = content_type == STRUCTURED_JSON;
    let event = to_event(headers, body).map_err(|error| match error {
        cloudevents::message::Error::WrongEncoding {} => ReadError::Invalid(format!(
            "not a CloudEvent: expected ce-specversion, ce-id, ce-source and ce-type headers \
             (binary mode) or Content-Type {STRUCTURED_JSON} (structured mode)"
        )),
        other => ReadError::Invalid(format!("invalid CloudEvent: {other}")),
    })?;
    received_event(&event, structured)
}

fn received_event(event: &Event, structured: bool) -> Result<ReceivedEvent, ReadError> {
    // ce-* header values are percent-encoded (HTTP binding §3.1.3.2); JSON values are not.
    let attribute = |name: &str, value: &str| -> Result<String, ReadError> {
        let value = if structured {
            value.to_owned()
        } else {
            percent_decode(value)
                .ok_or_else(|| ReadError::Invalid(format!("header ce-{name} is not percent-encoded UTF-8")))?
        };
        if value.is_empty() {
            return Err(ReadError::Invalid(format!("invalid CloudEvent: attribute `{name}` is empty")));
        }
        Ok(value)
    };
    Ok(ReceivedEvent {
        key: EventKey { source: attribute("source", event.source())?, id: attribute("id", event.id())? },
        event_type: attribute("type", event.ty())?,
        data_content_type: event.datacontenttype().map(str::to_owned),
        data: event.data().cloned(),
        event: event.clone(),
        binary: !structured,
    })
}

/// Decodes `%XX` sequences; a `%` not followed by two hex digits stays as it is (senders
/// that do not encode at all, such as sdk-go, must still be understood). `None`: the bytes
/// are not UTF-8.
fn percent_decode(value: &str) -> Option<String> {
    percent_decode_str(value).decode_utf8().ok().map(Into::into)
}

/// `type/subtype` of a Content-Type value, lowercased, without parameters.
fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

fn is_json_media_type(content_type: &str) -> bool {
    let media = media_type(content_type);
    media == "application/json" || media == "text/json" || media.ends_with("+json")
}

impl ReceivedEvent {
    /// The event's data as JSON (`None`: it has none). Data whose `datacontenttype` is not JSON,
    /// or that does not parse, is refused with the reason.
    pub fn json_data(&self) -> Result<Option<Value>, String> {
        if let Some(content_type) = &self.data_content_type
            && !is_json_media_type(content_type)
        {
            return Err(format!(
                "data must be JSON (datacontenttype application/json), not `{content_type}`"
            ));
        }
        match &self.data {
            None => Ok(None),
            Some(Data::Json(value)) => Ok(Some(value.clone())),
            Some(Data::Binary(bytes)) => serde_json::from_slice(bytes).map(Some),
            Some(Data::String(text)) => serde_json::from_str(text).map(Some),
        }
        .map_err(|error| format!("data is not valid JSON: {error}"))
    }

    /// The event's data as a JSON object; `example` shows one in the errors.
    pub fn object_data(&self, example: &str) -> Result<Map<String, Value>, String> {
        match self.json_data()? {
            None => Err(format!("the event has no data; expected {example}")),
            Some(Value::Object(fields)) => Ok(fields),
            Some(other) => {
                Err(format!("data must be a JSON object such as {example}, not {}", json::kind(&other)))
            }
        }
    }
}

impl ReceivedEvent {
    /// The whole event in the structured JSON format (what Knative's JobSink hands its Jobs):
    /// its attributes as the component understood them (percent-decoded from binary mode),
    /// its extensions, and `data` as JSON when it is JSON (else as sent, or `data_base64`).
    pub fn structured_json(&self) -> String {
        let mut structured = serde_json::to_value(&self.event).unwrap_or_default();
        if let Some(fields) = structured.as_object_mut() {
            if self.binary {
                let header_values = fields.iter_mut().filter(|(name, _)| {
                    !["specversion", "datacontenttype", "time", "data", "data_base64"]
                        .contains(&name.as_str())
                });
                for (_, value) in header_values {
                    if let Some(decoded) = value.as_str().and_then(percent_decode) {
                        *value = Value::String(decoded);
                    }
                }
            }
            if let Ok(Some(data)) = self.json_data() {
                fields.remove("data_base64");
                fields.insert("data".into(), data);
            }
        }
        structured.to_string()
    }
}

/// An event the component sends: as the answer to a request, the broker sends it on.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub event_type: &'static str,
    pub id: String,
    pub subject: Option<String>,
    pub data: Value,
}

impl Reply {
    /// The reply to `request`: its id depends only on the request's source + id and the reply
    /// type, so a redelivered request is answered with the same id and consumers can
    /// de-duplicate.
    pub fn to(request: &EventKey, event_type: &'static str, subject: Option<String>, data: Value) -> Self {
        let id = hex(&request.digest(&[event_type])[..16]);
        Reply { event_type, id, subject, data }
    }

    /// An event about the pod whose uid is `pod_uid`, named by `pod_name` in its subject: its
    /// id depends only on the uid and the type, so each change of that pod that says the same
    /// thing says it with the same id.
    pub fn about_pod(pod_uid: &str, event_type: &'static str, pod_name: &str, data: Value) -> Self {
        let id = hex(&digest(&[pod_uid, event_type])[..16]);
        Reply { event_type, id, subject: Some(pod_name.to_owned()), data }
    }

    /// The reply in binary mode: its `ce-*` and `content-type` headers and its body; `time`
    /// is its RFC 3339 `time` attribute.
    pub fn into_binary(self, time: String) -> (Vec<(&'static str, String)>, Vec<u8>) {
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
        (headers, self.data.to_string().into_bytes())
    }
}

fn percent_encode_header(value: &str) -> String {
    utf8_percent_encode(value, HEADER_VALUE).to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::contract::{self, PENDING};
    use cloudevents::EventBuilder;
    use http::HeaderValue;
    use serde_json::json;

    pub(crate) fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn binary_headers() -> Vec<(&'static str, &'static str)> {
        contract::binary_headers("42", PENDING)
    }

    fn rejected(pairs: &[(&str, &str)], body: &str) -> ReadError {
        read(&header_map(pairs), body.as_bytes().to_vec()).unwrap_err()
    }

    /// The HTTP status and error message a user gets for a read error.
    fn answer_to(error: ReadError) -> (u16, String) {
        let answer = crate::respond::rejection_answer(crate::respond::Rejection::NotAnEvent(error));
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        (answer.status, body["error"].as_str().unwrap().to_owned())
    }

    #[test]
    fn binary_mode() {
        let event = read(&header_map(&binary_headers()), br#"{"gateway_name":"foo"}"#.to_vec()).unwrap();
        assert_eq!(event.key, EventKey { source: "urn:test".into(), id: "42".into() });
        assert_eq!(event.event_type, PENDING);
        assert_eq!(event.json_data().unwrap(), Some(json!({"gateway_name": "foo"})));
    }

    #[test]
    fn structured_mode() {
        let body = json!({
            "specversion": "1.0", "id": "42", "source": "urn:a%20b", "type": PENDING,
            "datacontenttype": "application/json",
            "data": {"gateway_name": "bar", "message": "hello", "extra": 1}
        });
        let event = read(
            &header_map(&[("content-type", "application/cloudevents+json; charset=utf-8")]),
            body.to_string().into_bytes(),
        )
        .unwrap();
        // Structured values are JSON: nothing is percent-decoded.
        assert_eq!(event.key, EventKey { source: "urn:a%20b".into(), id: "42".into() });
        assert_eq!(
            event.json_data().unwrap(),
            Some(json!({"gateway_name": "bar", "message": "hello", "extra": 1}))
        );
    }

    #[test]
    fn binary_headers_are_percent_decoded() {
        let mut pairs = binary_headers();
        pairs[1] = ("ce-id", "id%20with%22quotes%22%25");
        pairs[2] = ("ce-source", "urn:caf%C3%A9/100%");
        let event = read(&header_map(&pairs), b"{}".to_vec()).unwrap();
        assert_eq!(event.key.id, "id with\"quotes\"%");
        assert_eq!(event.key.source, "urn:café/100%");
    }

    #[test]
    fn percent_encoded_bytes_must_be_utf8() {
        let mut pairs = binary_headers();
        pairs[1] = ("ce-id", "bad%FF");
        assert_eq!(
            answer_to(rejected(&pairs, "{}")),
            (400, "header ce-id is not percent-encoded UTF-8".into())
        );
    }

    #[test]
    fn not_a_cloudevent_is_400() {
        let (status, message) =
            answer_to(rejected(&[("content-type", "application/json")], r#"{"gateway_name":"foo"}"#));
        assert_eq!(status, 400);
        assert!(message.starts_with("not a CloudEvent: expected ce-specversion"), "{message}");
    }

    #[test]
    fn missing_required_attributes_are_named() {
        for missing in ["ce-id", "ce-source", "ce-type"] {
            let pairs: Vec<_> = binary_headers().into_iter().filter(|(name, _)| *name != missing).collect();
            let (status, message) = answer_to(rejected(&pairs, "{}"));
            assert_eq!(status, 400);
            let attribute = missing.trim_start_matches("ce-");
            assert!(message.contains(&format!("Missing required attribute {attribute}")), "{message}");
        }
        let structured = json!({"specversion": "1.0", "source": "urn:x", "type": "t"}).to_string();
        let (status, message) = answer_to(rejected(&[("content-type", STRUCTURED_JSON)], &structured));
        assert_eq!(status, 400);
        assert_eq!(
            message,
            "invalid CloudEvent: Error while serializing/deserializing to json: missing field `id`"
        );
    }

    #[test]
    fn empty_attributes_are_400() {
        let mut pairs = binary_headers();
        pairs[1] = ("ce-id", "");
        assert_eq!(
            answer_to(rejected(&pairs, "{}")),
            (400, "invalid CloudEvent: attribute `id` is empty".into())
        );
    }

    #[test]
    fn unknown_specversion_and_bad_json_are_400() {
        let mut pairs = binary_headers();
        pairs[0] = ("ce-specversion", "9.9");
        assert_eq!(answer_to(rejected(&pairs, "{}")).0, 400);
        let (status, message) = answer_to(rejected(&[("content-type", STRUCTURED_JSON)], "{not json"));
        assert_eq!(status, 400);
        assert!(message.starts_with("invalid CloudEvent: "), "{message}");
    }

    #[test]
    fn batches_and_other_structured_formats_are_415() {
        let (status, message) =
            answer_to(rejected(&[("content-type", "application/cloudevents-batch+json")], "[]"));
        assert_eq!(status, 415);
        assert!(message.contains("one event per request"));
        assert_eq!(answer_to(rejected(&[("content-type", "application/cloudevents+xml")], "<x/>")).0, 415);
    }

    pub(crate) fn event_with(content_type: Option<&str>, data: Option<Data>) -> ReceivedEvent {
        let mut event = cloudevents::EventBuilderV10::new().id("i").source("s").ty(PENDING).build().unwrap();
        if let Some(data) = data.clone() {
            event.set_data(content_type.unwrap_or("application/json"), data);
        }
        ReceivedEvent {
            key: EventKey { source: "s".into(), id: "i".into() },
            event_type: PENDING.into(),
            data_content_type: content_type.map(String::from),
            data,
            event,
            binary: false,
        }
    }

    #[test]
    fn the_structured_event_has_decoded_attributes_extensions_and_json_data() {
        let mut pairs = binary_headers();
        pairs[1] = ("ce-id", "id%20%C3%A9");
        pairs.push(("ce-subject", "a%20b"));
        pairs.push(("ce-traceparent", "00-abc"));
        let event = read(&header_map(&pairs), br#"{"gateway_name":"foo","args":["x"]}"#.to_vec()).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&event.structured_json()).unwrap(),
            json!({"specversion": "1.0", "id": "id é", "source": "urn:test", "type": PENDING,
                   "datacontenttype": "application/json", "subject": "a b", "traceparent": "00-abc",
                   "data": {"gateway_name": "foo", "args": ["x"]}})
        );
        let text = read(
            &header_map(&[("content-type", "application/cloudevents+json")]),
            json!({"specversion": "1.0", "id": "1", "source": "urn:a%20b", "type": "t", "datacontenttype": "text/plain", "data": "hi"})
                .to_string()
                .into_bytes(),
        )
        .unwrap();
        let structured: Value = serde_json::from_str(&text.structured_json()).unwrap();
        assert_eq!((&structured["source"], &structured["data"]), (&json!("urn:a%20b"), &json!("hi")));
    }

    #[test]
    fn json_data_problems() {
        let bytes = |text: &str| Some(Data::Binary(text.as_bytes().to_vec()));
        assert!(
            event_with(Some("application/json"), bytes("gateway foo"))
                .json_data()
                .unwrap_err()
                .starts_with("data is not valid JSON")
        );
        assert_eq!(
            event_with(Some("text/plain"), bytes("{}")).json_data().unwrap_err(),
            "data must be JSON (datacontenttype application/json), not `text/plain`"
        );
        assert_eq!(event_with(Some("application/json"), None).json_data(), Ok(None));
        let json = event_with(Some("application/vnd.x+json"), Some(Data::Json(json!({"message": "m"}))));
        assert_eq!(json.json_data(), Ok(Some(json!({"message": "m"}))));
    }

    #[test]
    fn reply_is_a_binary_mode_cloudevent() {
        let key = EventKey { source: "urn:test".into(), id: "42".into() };
        let reply = Reply::to(&key, contract::DONE, Some("pod-1".into()), json!({"pod_name": "pod-1"}));
        let (headers, body) = reply.clone().into_binary("2026-11-23T08:00:00.000Z".into());
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
        let event = to_event(&header_map(&pairs), body).unwrap();
        assert_eq!(event.id(), reply.id);
        assert_eq!(event.ty(), contract::DONE);
        assert_eq!(event.source(), contract::REPLY_SOURCE);
        assert_eq!(event.subject(), Some("pod-1"));
        assert_eq!(event.datacontenttype(), Some("application/json"));
        assert_eq!(event.time().unwrap().to_rfc3339(), "2026-11-23T08:00:00+00:00");
        assert_eq!(event.data(), Some(&Data::Binary(br#"{"pod_name":"pod-1"}"#.to_vec())));
    }

    #[test]
    fn reply_ids_are_stable_per_request_and_type() {
        let key = EventKey { source: "urn:test".into(), id: "42".into() };
        let done = Reply::to(&key, contract::DONE, None, json!({}));
        assert_eq!(done.id, Reply::to(&key, contract::DONE, None, json!({"other": 1})).id);
        assert_ne!(done.id, Reply::to(&key, contract::FAILED, None, json!({})).id);
        let other = EventKey { source: "urn:test".into(), id: "43".into() };
        assert_ne!(done.id, Reply::to(&other, contract::DONE, None, json!({})).id);
        assert_eq!(done.id.len(), 32);
    }

    #[test]
    fn reply_header_values_are_percent_encoded() {
        assert_eq!(percent_encode_header("a b\"c%é"), "a%20b%22c%25%C3%A9");
        assert_eq!(percent_decode("a%20b%22c%25%C3%A9").unwrap(), "a b\"c%é");
    }
}
