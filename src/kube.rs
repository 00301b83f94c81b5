//! The Kubernetes API calls the component makes (create a pod; get it after a 409), built
//! with kube-core's client-less request builder, and how to read the API's answers.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use kube_core::params::{GetParams, PostParams};
use kube_core::{Request, Resource, Status};
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// Recorded by the API server in `metadata.managedFields[].manager`.
pub const FIELD_MANAGER: &str = "podgateway-client-provisioner";
const USER_AGENT: &str = concat!("podgateway-client-provisioner/", env!("CARGO_PKG_VERSION"));
/// The only verbs the component uses, all on core `pods`: deploy/rbac.yaml grants exactly these.
pub const POD_VERBS: [&str; 2] = ["create", "get"];
const PLAIN_MESSAGE_MAX_CHARS: usize = 200;

/// Sends one request to the API server: Spin's outbound HTTP in the component, a fake in
/// tests. A call that has no complete answer within `timeout` is `TimedOut`.
pub trait KubeApi {
    fn send(
        &mut self,
        request: http::Request<Vec<u8>>,
        timeout: Duration,
    ) -> Result<http::Response<Vec<u8>>, TransportError>;
}

/// A call that got no HTTP answer.
#[derive(Debug, Clone, PartialEq)]
pub enum TransportError {
    /// The host refused to send it: the URL is outside `allowed_outbound_hosts`.
    Denied(String),
    /// No complete answer within the timeout.
    TimedOut,
    /// DNS, connection, TLS or protocol failure.
    Failed(String),
}

pub fn create_pod(config: &Config, pod: &Pod) -> Result<http::Request<Vec<u8>>, String> {
    let params = PostParams { dry_run: config.dry_run, field_manager: Some(FIELD_MANAGER.into()) };
    let body =
        serde_json::to_vec(&PodBody::of(pod)).map_err(|error| format!("cannot encode the pod: {error}"))?;
    debug_assert_eq!(
        String::from_utf8_lossy(&body),
        serde_json::to_string(pod).unwrap_or_default(),
        "the pod sets a field that PodBody does not write"
    );
    let request = pods(config).create(&params, body).map_err(|error| error.to_string())?;
    authorized(config, request)
}

/// The create body: byte for byte the JSON that k8s-openapi writes for the pods the component
/// makes, written from the fields those pods set. Serializing a whole `Pod` links the
/// serializer of every Pod field the API has, down to `metav1.Time`'s date formatting (jiff):
/// about a quarter of the component's size. The `debug_assert` in [`create_pod`] checks, in
/// every native test, that nothing the pod sets is left out.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PodBody<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: PodBodyMeta<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spec: Option<PodBodySpec<'a>>,
}

/// Field order as k8s-openapi writes it: alphabetical.
#[derive(Serialize)]
struct PodBodyMeta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PodBodySpec<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    active_deadline_seconds: Option<i64>,
    containers: &'a [Container],
}

impl<'a> PodBody<'a> {
    fn of(pod: &'a Pod) -> Self {
        let meta = &pod.metadata;
        PodBody {
            api_version: "v1",
            kind: "Pod",
            metadata: PodBodyMeta {
                annotations: meta.annotations.as_ref(),
                labels: meta.labels.as_ref(),
                name: meta.name.as_deref(),
                namespace: meta.namespace.as_deref(),
            },
            spec: pod.spec.as_ref().map(|spec| PodBodySpec {
                active_deadline_seconds: spec.active_deadline_seconds,
                containers: &spec.containers,
            }),
        }
    }
}

pub fn get_pod(config: &Config, name: &str) -> Result<http::Request<Vec<u8>>, String> {
    let request = pods(config).get(name, &GetParams::default()).map_err(|error| error.to_string())?;
    authorized(config, request)
}

fn pods(config: &Config) -> Request {
    Request::new(Pod::url_path(&(), Some(&config.client_namespace)))
}

/// kube-core builds path-only requests; this adds the server and the credentials.
fn authorized(
    config: &Config,
    mut request: http::Request<Vec<u8>>,
) -> Result<http::Request<Vec<u8>>, String> {
    let path = request.uri().path_and_query().map_or("/", |path| path.as_str());
    let url = config.api.url(path);
    *request.uri_mut() = url.parse().map_err(|_| format!("`{url}` is not a valid request URL"))?;
    let headers = request.headers_mut();
    headers.insert(http::header::ACCEPT, http::HeaderValue::from_static("application/json"));
    headers.insert(http::header::USER_AGENT, http::HeaderValue::from_static(USER_AGENT));
    if let Some(token) = &config.token {
        let mut value = http::HeaderValue::try_from(token.authorization_header())
            .map_err(|_| "k8s_token cannot be sent in an HTTP header".to_owned())?;
        value.set_sensitive(true);
        headers.insert(http::header::AUTHORIZATION, value);
    }
    Ok(request)
}

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
    use crate::config::tests::load_with;
    use serde_json::json;

    fn response(code: u16, content_type: &str, body: &str) -> http::Response<Vec<u8>> {
        http::Response::builder()
            .status(code)
            .header("content-type", content_type)
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    #[test]
    fn create_request() {
        let config = load_with(&[
            ("k8s_api_url", "http://127.0.0.1:8001/"),
            ("k8s_token", "abc"),
            ("client_namespace", "clients"),
        ])
        .unwrap();
        let request = create_pod(&config, &Pod::default()).unwrap();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(
            request.uri(),
            "http://127.0.0.1:8001/api/v1/namespaces/clients/pods?&fieldManager=podgateway-client-provisioner"
        );
        let header = |name: &str| request.headers().get(name).map(|v| v.to_str().unwrap());
        assert_eq!(header("authorization"), Some("Bearer abc"));
        assert_eq!(header("content-type"), Some("application/json"));
        assert_eq!(header("accept"), Some("application/json"));
        assert_eq!(header("user-agent"), Some(USER_AGENT));
        assert_eq!(request.body(), b"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{}}");
    }

    #[test]
    fn the_create_body_is_what_k8s_openapi_writes_for_the_pod() {
        let config = load_with(&[
            ("gateway_label", "setGateway"),
            ("client_active_deadline_seconds", "600"),
            ("client_command", "[]"),
        ])
        .unwrap();
        let request = crate::provision::ClientRequest {
            event: crate::event::EventKey { source: "urn:test".into(), id: "42".into() },
            gateway: "foo".into(),
            message: Some("a \"quoted\" message, ünïcode".into()),
        };
        for config in [load_with(&[]).unwrap(), config] {
            let pod = crate::provision::client_pod(&config, &request);
            let sent = create_pod(&config, &pod).unwrap();
            assert_eq!(sent.body(), &serde_json::to_vec(&pod).unwrap());
        }
    }

    #[test]
    fn dry_run_and_no_token() {
        let config = load_with(&[("dry_run", "true")]).unwrap();
        let request = create_pod(&config, &Pod::default()).unwrap();
        assert_eq!(
            request.uri(),
            "https://kubernetes.default.svc/api/v1/namespaces/default/pods?&dryRun=All&fieldManager=podgateway-client-provisioner"
        );
        assert!(request.headers().get("authorization").is_none());
    }

    #[test]
    fn get_request() {
        let config = load_with(&[("k8s_token", "abc")]).unwrap();
        let request = get_pod(&config, "podgateway-client-0123").unwrap();
        assert_eq!(request.method(), http::Method::GET);
        assert_eq!(
            request.uri(),
            "https://kubernetes.default.svc/api/v1/namespaces/default/pods/podgateway-client-0123"
        );
        assert_eq!(request.headers()["authorization"], "Bearer abc");
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
