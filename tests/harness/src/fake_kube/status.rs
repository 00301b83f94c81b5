//! `metav1.Status` bodies and `field.Error` messages, formatted as apimachinery does.

use serde::Serialize;
use serde_json::Value;

/// A response the API server sends: status code, extra headers, body.
#[derive(Debug, Clone)]
pub(super) struct Reply {
    pub code: u16,
    pub headers: Vec<(&'static str, String)>,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(code: u16, body: &impl Serialize) -> Self {
        let body = serde_json::to_vec(body).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}").into_bytes());
        Self { code, headers: Vec::new(), content_type: "application/json", body }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

#[derive(Serialize, Debug, Clone, Default)]
pub(super) struct Details {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<Cause>,
    #[serde(rename = "retryAfterSeconds", skip_serializing_if = "is_zero")]
    pub retry_after_seconds: u32,
}

#[derive(Serialize, Debug, Clone, Default)]
pub(super) struct Cause {
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// `metav1.Status` with `status: Failure`, fields in Go's order.
#[derive(Serialize, Debug, Clone)]
pub(super) struct Status {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: serde_json::Map<String, Value>,
    status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details>,
    code: u16,
}

impl Status {
    fn new(code: u16, reason: &'static str, message: impl Into<String>, details: Option<Details>) -> Self {
        Self {
            kind: "Status",
            api_version: "v1",
            metadata: Default::default(),
            status: "Failure",
            message: message.into(),
            reason,
            details,
            code,
        }
    }

    pub fn reply(&self) -> Reply {
        let reply = Reply::json(self.code, self);
        match self.details.as_ref().map_or(0, |d| d.retry_after_seconds) {
            0 => reply,
            n => reply.with_header("Retry-After", n.to_string()),
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized", None)
    }

    /// `NewForbidden(pods, name, err)`: no name on create and list.
    pub fn forbidden(resource: &str, name: &str, why: &str) -> Self {
        Self::forbidden_in("", resource, name, why)
    }

    /// `NewForbidden(group/resource, name, err)`: the resource is qualified by its group
    /// (`tokenreviews.authentication.k8s.io`), and `details` name the group.
    pub fn forbidden_in(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let qualified = qualified(group, resource);
        let message = if name.is_empty() {
            format!("{qualified} is forbidden: {why}")
        } else {
            format!("{qualified} {name:?} is forbidden: {why}")
        };
        Self::new(
            403,
            "Forbidden",
            message,
            Some(Details {
                name: name.into(),
                group: group.into(),
                kind: resource.into(),
                ..Default::default()
            }),
        )
    }

    pub fn namespace_terminating(name: &str, namespace: &str) -> Self {
        let mut status = Self::forbidden(
            "pods",
            name,
            &format!("unable to create new content in namespace {namespace} because it is being terminated"),
        );
        if let Some(details) = status.details.as_mut() {
            details.causes.push(Cause {
                reason: "NamespaceTerminating",
                message: format!("namespace {namespace} is being terminated"),
                field: "metadata.namespace".into(),
            });
        }
        status
    }

    pub fn not_found(resource: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{resource} {name:?} not found"),
            Some(Details { name: name.into(), kind: resource.into(), ..Default::default() }),
        )
    }

    /// What the apiserver answers for a path it does not serve.
    pub fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
            Some(Details::default()),
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            Some(Details::default()),
        )
    }

    pub fn already_exists(resource: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{resource} {name:?} already exists"),
            Some(Details { name: name.into(), kind: resource.into(), ..Default::default() }),
        )
    }

    /// `NewConflict(group/resource, name, err)`: the resource slot holds what the caller put
    /// there (`rest.BeforeDelete` puts the Kind, `Pod`).
    pub fn conflict(resource: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {resource} {name:?}: {why}"),
            Some(Details { name: name.into(), kind: resource.into(), ..Default::default() }),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message, None)
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf",
            None,
        )
    }

    /// `NewInvalid(group/kind, name, errs)`.
    pub fn invalid(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Self {
        let qualified = if group.is_empty() { kind.to_owned() } else { format!("{kind}.{group}") };
        let causes = errors
            .iter()
            .map(|e| Cause { reason: e.kind.reason(), message: e.body(), field: e.field.clone() })
            .collect();
        let messages: Vec<String> = errors.iter().map(FieldError::message).collect();
        Self::new(
            422,
            "Invalid",
            format!("{qualified} {name:?} is invalid: {}", aggregate(&messages)),
            Some(Details {
                name: name.into(),
                group: group.into(),
                kind: kind.into(),
                causes,
                ..Default::default()
            }),
        )
    }

    /// `NewServerTimeout(group/resource, verb, retry)`: note `details.name` is the operation.
    pub fn server_timeout(group: &str, resource: &str, verb: &str, retry_after_seconds: u32) -> Self {
        let qualified = qualified(group, resource);
        Self::new(
            500,
            "ServerTimeout",
            format!(
                "The {verb} operation against {qualified} could not be completed at this time, please try again."
            ),
            Some(Details {
                name: verb.into(),
                group: group.into(),
                kind: resource.into(),
                retry_after_seconds,
                ..Default::default()
            }),
        )
    }

    pub fn internal_error(message: &str) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
            Some(Details {
                causes: vec![Cause { message: message.into(), ..Default::default() }],
                ..Default::default()
            }),
        )
    }

    pub fn service_unavailable() -> Self {
        Self::new(503, "ServiceUnavailable", "the server is currently unable to handle the request", None)
    }

    /// The apiserver's own request timeout (504, no `Retry-After`).
    pub fn timeout() -> Self {
        Self::new(
            504,
            "Timeout",
            "Timeout: request did not complete within requested timeout - context deadline exceeded",
            Some(Details::default()),
        )
    }
}

/// `schema.GroupResource.String()`: `resource`, or `resource.group`.
fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() { resource.to_owned() } else { format!("{resource}.{group}") }
}

/// `utilerrors.NewAggregate(...).Error()` after `ErrorList.ToAggregate()`'s de-duplication.
pub(super) fn aggregate(messages: &[String]) -> String {
    let mut unique: Vec<&str> = Vec::new();
    for m in messages {
        if !unique.contains(&m.as_str()) {
            unique.push(m);
        }
    }
    match unique.as_slice() {
        [one] => (*one).to_owned(),
        many => format!("[{}]", many.join(", ")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ErrorKind {
    Required,
    Invalid,
    NotSupported,
    Duplicate,
    TooLong,
    Forbidden,
}

impl ErrorKind {
    fn reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Duplicate => "FieldValueDuplicate",
            Self::TooLong => "FieldValueTooLong",
            Self::Forbidden => "FieldValueForbidden",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::Duplicate => "Duplicate value",
            Self::TooLong => "Too long",
            Self::Forbidden => "Forbidden",
        }
    }
}

/// A `field.Error`; `bad_value` is JSON, rendered as Go does (strings quoted, numbers bare,
/// anything else as JSON).
#[derive(Debug, Clone)]
pub(super) struct FieldError {
    pub kind: ErrorKind,
    pub field: String,
    pub bad_value: Value,
    pub detail: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        Self { kind: ErrorKind::Required, field: field.into(), bad_value: Value::Null, detail: detail.into() }
    }

    pub fn invalid(field: impl Into<String>, value: impl Into<Value>, detail: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Invalid, field: field.into(), bad_value: value.into(), detail: detail.into() }
    }

    pub fn not_supported(field: impl Into<String>, value: impl Into<Value>, valid: &[&str]) -> Self {
        let quoted: Vec<String> = valid.iter().map(|v| go_quote(v)).collect();
        Self {
            kind: ErrorKind::NotSupported,
            field: field.into(),
            bad_value: value.into(),
            detail: format!("supported values: {}", quoted.join(", ")),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self {
            kind: ErrorKind::Duplicate,
            field: field.into(),
            bad_value: value.into(),
            detail: String::new(),
        }
    }

    pub fn too_long(field: impl Into<String>, max_bytes: usize) -> Self {
        let unit = if max_bytes == 1 { "byte" } else { "bytes" };
        Self {
            kind: ErrorKind::TooLong,
            field: field.into(),
            bad_value: Value::Null,
            detail: format!("may not be more than {max_bytes} {unit}"),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Forbidden,
            field: field.into(),
            bad_value: Value::Null,
            detail: detail.into(),
        }
    }

    /// `ErrorBody()`: the message without the field.
    pub fn body(&self) -> String {
        let mut s = match self.kind {
            ErrorKind::Required | ErrorKind::TooLong | ErrorKind::Forbidden => self.kind.text().to_owned(),
            _ => match &self.bad_value {
                Value::String(v) => format!("{}: {}", self.kind.text(), go_quote(v)),
                Value::Number(n) => format!("{}: {n}", self.kind.text()),
                Value::Bool(b) => format!("{}: {b}", self.kind.text()),
                other => format!("{}: {other}", self.kind.text()),
            },
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    /// `Error()`: `field: body`.
    pub fn message(&self) -> String {
        format!("{}: {}", self.field, self.body())
    }
}

/// Go's `strconv.Quote` (`%q`).
pub(super) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if go_is_print(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Close to Go's `unicode.IsPrint`: no control characters, no space other than U+0020.
pub(super) fn go_is_print(c: char) -> bool {
    c == ' ' || !(c.is_control() || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("a\"b\\c\n\u{1}é\u{a0}"), r#""a\"b\\c\n\x01é\u00a0""#);
    }

    #[test]
    fn aggregate_dedups_and_brackets() {
        assert_eq!(aggregate(&["a".into()]), "a");
        assert_eq!(aggregate(&["a".into(), "b".into(), "a".into()]), "[a, b]");
    }

    #[test]
    fn field_error_bodies() {
        assert_eq!(FieldError::required("spec.containers", "").message(), "spec.containers: Required value");
        assert_eq!(
            FieldError::not_supported("dryRun", serde_json::json!(["x"]), &["All"]).message(),
            r#"dryRun: Unsupported value: ["x"]: supported values: "All""#
        );
        assert_eq!(
            FieldError::invalid("a", 0, "must be positive").message(),
            "a: Invalid value: 0: must be positive"
        );
        assert_eq!(
            FieldError::too_long("fieldManager", 128).message(),
            "fieldManager: Too long: may not be more than 128 bytes"
        );
    }
}
