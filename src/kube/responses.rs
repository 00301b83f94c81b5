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

/// The parts of a Pod answered by the API that the component reads; everything else in it
/// is skipped (a few fields, not k8s-openapi's whole `Pod`: its deserializer is large).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PodView {
    #[serde(default)]
    pub metadata: PodMetaView,
    #[serde(default)]
    pub spec: PodSpecView,
    #[serde(default)]
    pub status: PodStatusView,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMetaView {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Set once the pod is being deleted.
    pub deletion_timestamp: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpecView {
    #[serde(default)]
    pub init_containers: Vec<ContainerView>,
    #[serde(default)]
    pub containers: Vec<ContainerView>,
    #[serde(default)]
    pub scheduling_gates: Vec<Named>,
    pub node_name: Option<String>,
    pub restart_policy: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerView {
    pub name: String,
    #[serde(default)]
    pub env: Vec<EnvVarView>,
    /// `Always` on an init container makes it a sidecar that runs beside the others.
    pub restart_policy: Option<String>,
}

impl ContainerView {
    /// The literal value of an environment variable (not one taken from a source).
    pub fn env(&self, name: &str) -> Option<&str> {
        self.env.iter().find(|var| var.name == name).and_then(|var| var.value.as_deref())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct EnvVarView {
    pub name: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Named {
    pub name: String,
}

/// What the kubelet last reported of the pod.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatusView {
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`.
    pub phase: Option<String>,
    /// Why the pod is in this phase, in one word (`Evicted`, `DeadlineExceeded`).
    pub reason: Option<String>,
    pub message: Option<String>,
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    pub start_time: Option<String>,
    #[serde(default)]
    pub conditions: Vec<ConditionView>,
    #[serde(default)]
    pub container_statuses: Vec<ContainerStatusView>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ConditionView {
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ContainerStatusView {
    pub name: String,
    #[serde(default)]
    pub state: ContainerStateView,
}

/// At most one of them is set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ContainerStateView {
    pub running: Option<RunningView>,
    pub terminated: Option<TerminatedView>,
    pub waiting: Option<WaitingView>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunningView {
    pub started_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminatedView {
    pub exit_code: i32,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub finished_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct WaitingView {
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// What a TokenReview answer says of the token.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct TokenReviewView {
    #[serde(default)]
    pub status: TokenReviewStatusView,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct TokenReviewStatusView {
    #[serde(default)]
    pub authenticated: bool,
    #[serde(default)]
    pub user: UserView,
    /// The requested audiences the token is valid for.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Why the token did not authenticate.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct UserView {
    #[serde(default)]
    pub username: String,
}

impl PodView {
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(body)
            .map_err(|error| format!("the API answered a pod that cannot be read: {error}"))
    }
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
            PodView::parse(body.to_string().as_bytes()).unwrap().metadata.annotations,
            BTreeMap::from([("a".into(), "1".into())])
        );
        assert!(PodView::parse(br#"{"metadata": {"name": "p"}}"#).unwrap().metadata.annotations.is_empty());
        assert!(
            PodView::parse(b"<html>").unwrap_err().starts_with("the API answered a pod that cannot be read")
        );
    }

    #[test]
    fn the_parts_of_a_routed_pod_are_read() {
        // As the pod-gateway webhook leaves it: its init container, its native sidecar, the gate.
        let body = json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "p", "uid": "u-1", "resourceVersion": "7", "annotations": {"setGateway": "foo"}},
            "spec": {
                "initContainers": [
                    {"name": "gateway-init", "image": "ghcr.io/angelnu/pod-gateway:v1.13.0",
                     "env": [{"name": "gateway", "value": "pod-gateway-foo-main.gateway-system.svc.cluster.local"},
                             {"name": "K8S_DNS_IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}]},
                    {"name": "gateway-sidecar", "restartPolicy": "Always", "env": []}
                ],
                "containers": [{"name": "client", "image": "alpine/curl"}],
                "schedulingGates": [{"name": "podgateway.io/routing-check"}]
            },
            "status": {"phase": "Pending"}
        });
        let pod = PodView::parse(body.to_string().as_bytes()).unwrap();
        assert_eq!((pod.metadata.name.as_str(), pod.metadata.uid.as_str()), ("p", "u-1"));
        let init = &pod.spec.init_containers[0];
        assert_eq!(init.env("gateway"), Some("pod-gateway-foo-main.gateway-system.svc.cluster.local"));
        assert_eq!(init.env("K8S_DNS_IPS"), None);
        assert_eq!(pod.spec.init_containers[1].restart_policy.as_deref(), Some("Always"));
        assert_eq!(pod.spec.scheduling_gates, [Named { name: "podgateway.io/routing-check".into() }]);
    }
}
