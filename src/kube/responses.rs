//! Reading the API's answers: errors from their `metav1.Status` body (or whatever a proxy
//! sent instead), and the few fields of API objects the component reads.

use std::collections::BTreeMap;
use std::fmt;

use kube_core::Status;
use serde::Deserialize;

const PLAIN_MESSAGE_MAX_CHARS: usize = 200;

/// A non-2xx answer, read from its `metav1.Status` body when it has one. Proxies and
/// priority-and-fairness answer plain text or HTML instead, which must not break anything.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    /// Seconds, from the `Retry-After` header or the Status `details.retryAfterSeconds`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn from_response(response: &http::Response<Vec<u8>>) -> Self {
        let code = response.status().as_u16();
        let header_retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok());
        let canonical = response.status().canonical_reason().unwrap_or("").replace(' ', "");
        match serde_json::from_slice::<Status>(response.body()) {
            Ok(status) if !status.reason.is_empty() || !status.message.is_empty() => ApiError {
                code,
                reason: if status.reason.is_empty() { canonical } else { status.reason },
                message: status.message,
                retry_after: header_retry_after.or_else(|| {
                    status.details.map(|d| d.retry_after_seconds as u64).filter(|&seconds| seconds > 0)
                }),
            },
            _ => ApiError {
                code,
                reason: canonical,
                message: plain_text_message(response),
                retry_after: header_retry_after,
            },
        }
    }

    /// Worth retrying later: overload, server errors, timeouts. Anything else will fail
    /// the same way again.
    pub fn is_transient(&self) -> bool {
        matches!(self.code, 408 | 429 | 500 | 502 | 503 | 504)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.reason)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// The first line of a short `text/plain` body; nothing from HTML or binary bodies.
fn plain_text_message(response: &http::Response<Vec<u8>>) -> String {
    let is_plain_text = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().to_ascii_lowercase().starts_with("text/plain"));
    if !is_plain_text {
        return String::new();
    }
    let text = String::from_utf8_lossy(response.body());
    text.lines().next().unwrap_or("").trim().chars().take(PLAIN_MESSAGE_MAX_CHARS).collect()
}

/// The annotations of a pod returned by the API; everything else in it is skipped.
pub fn pod_annotations(body: &[u8]) -> Result<BTreeMap<String, String>, String> {
    #[derive(Deserialize)]
    struct PodAnnotations {
        metadata: Metadata,
    }
    #[derive(Deserialize)]
    struct Metadata {
        #[serde(default)]
        annotations: BTreeMap<String, String>,
    }
    serde_json::from_slice::<PodAnnotations>(body)
        .map(|pod| pod.metadata.annotations)
        .map_err(|error| format!("the API answered a pod that cannot be read: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn response(code: u16, content_type: &str, body: &str) -> http::Response<Vec<u8>> {
        http::Response::builder()
            .status(code)
            .header("content-type", content_type)
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    #[test]
    fn status_bodies_are_read() {
        let forbidden = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "pods is forbidden: User \"system:anonymous\" cannot create resource \"pods\" in API group \"\" in the namespace \"default\"",
            "reason": "Forbidden", "details": {"kind": "pods"}, "code": 403
        });
        let error = ApiError::from_response(&response(403, "application/json", &forbidden.to_string()));
        assert_eq!(error.code, 403);
        assert_eq!(error.reason, "Forbidden");
        assert!(error.message.starts_with("pods is forbidden: User \"system:anonymous\""));
        assert_eq!(error.retry_after, None);
        assert!(!error.is_transient());
        assert!(error.to_string().starts_with("403 Forbidden: pods is forbidden"));
    }

    #[test]
    fn retry_after_comes_from_the_header_or_the_status() {
        let timeout = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "The create operation against pods could not be completed at this time, please try again.",
            "reason": "ServerTimeout", "details": {"kind": "pods", "retryAfterSeconds": 2}, "code": 500
        })
        .to_string();
        let error = ApiError::from_response(&response(500, "application/json", &timeout));
        assert_eq!((error.reason.as_str(), error.retry_after), ("ServerTimeout", Some(2)));
        assert!(error.is_transient());
        let mut with_header = response(500, "application/json", &timeout);
        with_header.headers_mut().insert("retry-after", "7".parse().unwrap());
        assert_eq!(ApiError::from_response(&with_header).retry_after, Some(7));
    }

    #[test]
    fn plain_text_429_does_not_break_anything() {
        let mut answer =
            response(429, "text/plain; charset=utf-8", "Too many requests, please try again later.\n");
        answer.headers_mut().insert("retry-after", "1".parse().unwrap());
        let error = ApiError::from_response(&answer);
        assert_eq!(
            error,
            ApiError {
                code: 429,
                reason: "TooManyRequests".into(),
                message: "Too many requests, please try again later.".into(),
                retry_after: Some(1),
            }
        );
        assert!(error.is_transient());
    }

    #[test]
    fn html_from_a_proxy_gives_the_status_only() {
        let error =
            ApiError::from_response(&response(502, "text/html", "<html><body>Bad Gateway</body></html>"));
        assert_eq!(error.to_string(), "502 BadGateway");
        assert!(error.is_transient());
        let empty = ApiError::from_response(&response(503, "application/json", ""));
        assert_eq!(empty.to_string(), "503 ServiceUnavailable");
    }

    #[test]
    fn transient_and_permanent_codes() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(ApiError::from_response(&response(code, "text/plain", "")).is_transient(), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 422, 501] {
            assert!(!ApiError::from_response(&response(code, "text/plain", "")).is_transient(), "{code}");
        }
    }

    #[test]
    fn annotations_of_an_existing_pod() {
        let body = json!({"kind": "Pod", "metadata": {"name": "p", "annotations": {"a": "1"}}, "spec": {"containers": []}});
        assert_eq!(
            pod_annotations(body.to_string().as_bytes()).unwrap(),
            BTreeMap::from([("a".into(), "1".into())])
        );
        assert!(pod_annotations(br#"{"metadata": {"name": "p"}}"#).unwrap().is_empty());
        assert!(
            pod_annotations(b"<html>").unwrap_err().starts_with("the API answered a pod that cannot be read")
        );
    }
}
