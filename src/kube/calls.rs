//! The API calls of one event (on the client namespace's pods, and token reviews): each request sent, the status
//! of every answer recorded for the log line, and what an answer that is not the one wanted
//! means for the event ([`CallFailure`]): refused for good, worth retrying, or a deployment
//! that cannot reach the API at all.

use http::StatusCode;

use crate::config::Config;
use crate::kube::requests::{Deletion, delete_pod, get_pod, remove_scheduling_gate};
use crate::kube::responses::{ApiError, PodView};
use crate::kube::{KubeApi, TransportError};

/// Why an API exchange did not give the component what it needed.
#[derive(Debug, Clone, PartialEq)]
pub enum CallFailure {
    /// It will fail the same way again; the message says what to fix.
    Refused(String),
    /// It may work later (overload, server errors, timeouts, no connection, a race).
    Unavailable { message: String, retry_after: Option<u64> },
    /// The deployment cannot reach the API at all (outside `allowed_outbound_hosts`).
    Misconfigured(String),
}

/// The API calls of one event, with the status of every answer.
pub struct ApiCalls<'a, A> {
    api: &'a mut A,
    pub config: &'a Config,
    pub statuses: Vec<u16>,
}

impl<'a, A: KubeApi> ApiCalls<'a, A> {
    pub fn new(api: &'a mut A, config: &'a Config) -> Self {
        ApiCalls { api, config, statuses: Vec::new() }
    }

    /// `namespace/name`, as messages name a pod.
    pub fn pod_ref(&self, name: &str) -> String {
        format!("{}/{name}", self.config.client_namespace)
    }

    /// Sends one request; an answer of any status is `Ok` (and its status recorded).
    pub fn send(
        &mut self,
        request: Result<http::Request<Vec<u8>>, String>,
        action: &str,
    ) -> Result<http::Response<Vec<u8>>, CallFailure> {
        let request =
            request.map_err(|problem| CallFailure::Refused(format!("cannot {action}: {problem}")))?;
        let config = self.config;
        match self.api.send(request, config.api_timeout) {
            Ok(response) => {
                self.statuses.push(response.status().as_u16());
                Ok(response)
            }
            Err(TransportError::Denied(detail)) => Err(CallFailure::Misconfigured(format!(
                "the host refused the request to {}: k8s_api_url must be listed in the \
                 component's allowed_outbound_hosts in spin.toml ({detail})",
                config.api
            ))),
            Err(TransportError::TimedOut) => Err(unavailable(format!(
                "the Kubernetes API did not answer within {} s (k8s_timeout_seconds)",
                config.api_timeout.as_secs()
            ))),
            Err(TransportError::Failed(detail)) => {
                Err(unavailable(format!("cannot reach the Kubernetes API at {}: {detail}", config.api)))
            }
        }
    }

    /// The pod `name`, or `None` when there is none.
    pub fn get(&mut self, name: &str) -> Result<Option<PodView>, CallFailure> {
        let action = format!("read pod {}", self.pod_ref(name));
        let answer = self.send(get_pod(self.config, name), &action)?;
        match answer.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => PodView::parse(answer.body()).map(Some).map_err(unavailable),
            _ => Err(api_failure(&ApiError::from_response(&answer), &action)),
        }
    }

    /// Removes the routing gate `gate` from the pod `name` whose uid is `uid`.
    pub fn release_gate(&mut self, name: &str, uid: &str, gate: &str) -> Result<(), CallFailure> {
        let action = format!("remove the routing gate of pod {}", self.pod_ref(name));
        let request = remove_scheduling_gate(self.config, name, uid, gate);
        let answer = self.send(request, &action)?;
        match answer.status() {
            status if status.is_success() => Ok(()),
            // Gone, or replaced by a newer pod of the same name (whose uid differs): a
            // redelivery finds and checks whatever is there now.
            StatusCode::NOT_FOUND | StatusCode::UNPROCESSABLE_ENTITY => Err(unavailable(format!(
                "could not {action}: {}; the pod was deleted or replaced meanwhile",
                ApiError::from_response(&answer)
            ))),
            _ => Err(api_failure(&ApiError::from_response(&answer), &action)),
        }
    }

    /// Deletes the pod `name` whose uid is `uid`; one that is already gone counts as deleted.
    pub fn delete(&mut self, name: &str, uid: &str, deletion: Deletion) -> Result<(), CallFailure> {
        let action = format!("delete pod {}", self.pod_ref(name));
        let answer = self.send(delete_pod(self.config, name, uid, deletion), &action)?;
        match answer.status() {
            status if status.is_success() || status == StatusCode::NOT_FOUND => Ok(()),
            // A newer pod of the same name: a redelivery checks it.
            StatusCode::CONFLICT => Err(unavailable(format!(
                "could not {action}: {}; a newer pod of that name exists",
                ApiError::from_response(&answer)
            ))),
            _ => Err(api_failure(&ApiError::from_response(&answer), &action)),
        }
    }
}

pub fn unavailable(message: String) -> CallFailure {
    CallFailure::Unavailable { message, retry_after: None }
}

/// An error answer to `action` that is worth retrying later (overload, server errors,
/// timeouts); `None` when it will fail the same way again.
pub fn retry_later(error: &ApiError, action: &str) -> Option<CallFailure> {
    error.is_transient().then(|| CallFailure::Unavailable {
        message: format!("the Kubernetes API could not {action} for now: {error}"),
        retry_after: error.retry_after,
    })
}

/// What an error answer to `action` on pods means: retry later, or refused with a hint at
/// what to fix.
pub fn api_failure(error: &ApiError, action: &str) -> CallFailure {
    if let Some(retry) = retry_later(error, action) {
        return retry;
    }
    let hint = match error.code {
        401 => "; check k8s_token (the component's service-account token)",
        403 => {
            "; check the Role bound to the component's ServiceAccount (create, get, patch and delete on \
             pods) and that client_namespace is not being deleted"
        }
        404 => "; check client_namespace",
        422 => {
            "; check client_pod_template, client_image, client_command, client_name_prefix, gateway_annotation and gateway_label"
        }
        _ => "",
    };
    CallFailure::Refused(format!("the Kubernetes API refused to {action}: {error}{hint}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::collections::VecDeque;

    /// Answers from a script and records what was sent.
    pub(crate) struct ScriptedApi {
        answers: VecDeque<Result<http::Response<Vec<u8>>, TransportError>>,
        pub(crate) sent: Vec<http::Request<Vec<u8>>>,
    }

    impl ScriptedApi {
        pub(crate) fn new(answers: Vec<Result<http::Response<Vec<u8>>, TransportError>>) -> Self {
            ScriptedApi { answers: answers.into(), sent: Vec::new() }
        }
    }

    impl KubeApi for ScriptedApi {
        fn send(
            &mut self,
            request: http::Request<Vec<u8>>,
            _timeout: std::time::Duration,
        ) -> Result<http::Response<Vec<u8>>, TransportError> {
            self.sent.push(request);
            self.answers.pop_front().expect("an unexpected API call")
        }
    }

    /// An API answer with a JSON body.
    pub(crate) fn answer(code: u16, body: Value) -> Result<http::Response<Vec<u8>>, TransportError> {
        Ok(http::Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(body.to_string().into_bytes())
            .unwrap())
    }

    /// A `metav1.Status` error body, as the API server writes one.
    pub(crate) fn status(code: u16, reason: &str, message: &str) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code})
    }
}
