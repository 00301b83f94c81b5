//! The Kubernetes API protocol of provisioning: create the pod; on 409, read the existing
//! one and adopt it when an earlier delivery of the same event made it. What each answer
//! means (done, refused, retry later, misconfigured) is decided here; the reply is the
//! handler's.

use http::StatusCode;

use crate::config::Config;
use crate::kube::requests::{create_pod, get_pod};
use crate::kube::responses::{ApiError, pod_annotations};
use crate::kube::{KubeApi, TransportError};
use crate::pod::shape::{ClientRequest, EVENT_ID_ANNOTATION, EVENT_SOURCE_ANNOTATION, client_pod};

/// Why an API exchange did not give the component what it needed.
#[derive(Debug, Clone, PartialEq)]
pub enum CallFailure {
    /// It will fail the same way again; the message says what to fix.
    Refused(String),
    /// It may work later (overload, server errors, timeouts, no connection).
    Unavailable { message: String, retry_after: Option<u64> },
    /// The deployment cannot reach the API at all (outside `allowed_outbound_hosts`).
    Misconfigured(String),
}

/// The pod's name if it exists for the event, with the HTTP status of each API answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Provisioning {
    pub pod: Result<String, CallFailure>,
    pub api_statuses: Vec<u16>,
}

/// Creates the pod. A 409 means an earlier delivery may have created it: the existing pod
/// counts only when it carries this event's source and id.
pub fn provision(config: &Config, request: &ClientRequest, api: &mut impl KubeApi) -> Provisioning {
    let mut api_statuses = Vec::new();
    let pod = create_or_adopt(config, request, api, &mut api_statuses);
    Provisioning { pod, api_statuses }
}

fn create_or_adopt(
    config: &Config,
    request: &ClientRequest,
    api: &mut impl KubeApi,
    statuses: &mut Vec<u16>,
) -> Result<String, CallFailure> {
    let pod = client_pod(config, request);
    let name = pod.metadata.name.clone().unwrap_or_default();
    let pod_ref = format!("{}/{name}", config.client_namespace);

    let created = send(api, create_pod(config, &pod).map_err(CallFailure::Refused)?, config, statuses)?;
    if created.status().is_success() {
        return Ok(name);
    }
    if created.status() != StatusCode::CONFLICT {
        return Err(api_failure(&ApiError::from_response(&created), &format!("create pod {pod_ref}")));
    }

    let existing = send(api, get_pod(config, &name).map_err(CallFailure::Refused)?, config, statuses)?;
    if existing.status() == StatusCode::NOT_FOUND {
        return Err(CallFailure::Unavailable {
            message: format!(
                "pod {pod_ref} already existed but was gone when read; redelivery will create it"
            ),
            retry_after: None,
        });
    }
    if !existing.status().is_success() {
        return Err(api_failure(
            &ApiError::from_response(&existing),
            &format!("read existing pod {pod_ref}"),
        ));
    }
    let annotations = pod_annotations(existing.body())
        .map_err(|message| CallFailure::Unavailable { message, retry_after: None })?;
    let made_for = |key: &str| annotations.get(key).map(String::as_str);
    if made_for(EVENT_SOURCE_ANNOTATION) == Some(&request.event.source)
        && made_for(EVENT_ID_ANNOTATION) == Some(&request.event.id)
    {
        return Ok(name);
    }
    Err(CallFailure::Refused(format!(
        "pod {pod_ref} already exists and was not created for this event (its {EVENT_SOURCE_ANNOTATION} / \
         {EVENT_ID_ANNOTATION} annotations are {:?} / {:?}); delete it or change client_name_prefix",
        made_for(EVENT_SOURCE_ANNOTATION).unwrap_or(""),
        made_for(EVENT_ID_ANNOTATION).unwrap_or(""),
    )))
}

/// Sends one request; an answer of any status is `Ok` (and its status recorded).
fn send(
    api: &mut impl KubeApi,
    request: http::Request<Vec<u8>>,
    config: &Config,
    statuses: &mut Vec<u16>,
) -> Result<http::Response<Vec<u8>>, CallFailure> {
    match api.send(request, config.api_timeout) {
        Ok(response) => {
            statuses.push(response.status().as_u16());
            Ok(response)
        }
        Err(TransportError::Denied(detail)) => Err(CallFailure::Misconfigured(format!(
            "the host refused the request to {}: k8s_api_url must be listed in the \
             component's allowed_outbound_hosts in spin.toml ({detail})",
            config.api
        ))),
        Err(TransportError::TimedOut) => Err(CallFailure::Unavailable {
            message: format!(
                "the Kubernetes API did not answer within {} s (k8s_timeout_seconds)",
                config.api_timeout.as_secs()
            ),
            retry_after: None,
        }),
        Err(TransportError::Failed(detail)) => Err(CallFailure::Unavailable {
            message: format!("cannot reach the Kubernetes API at {}: {detail}", config.api),
            retry_after: None,
        }),
    }
}

fn api_failure(error: &ApiError, action: &str) -> CallFailure {
    if error.is_transient() {
        return CallFailure::Unavailable {
            message: format!("the Kubernetes API could not {action} for now: {error}"),
            retry_after: error.retry_after,
        };
    }
    let hint = match error.code {
        401 => "; check k8s_token (the component's service-account token)",
        403 => {
            "; check the Role bound to the component's ServiceAccount and that client_namespace is not being deleted"
        }
        404 => "; check client_namespace",
        422 => {
            "; check client_image, client_command, client_name_prefix, gateway_annotation and gateway_label"
        }
        _ => "",
    };
    CallFailure::Refused(format!("the Kubernetes API refused to {action}: {error}{hint}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::tests::load_with;
    use crate::pod::shape::tests::request;
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

    fn answer(code: u16, body: Value) -> Result<http::Response<Vec<u8>>, TransportError> {
        Ok(http::Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(body.to_string().into_bytes())
            .unwrap())
    }

    fn status(code: u16, reason: &str, message: &str) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code})
    }

    fn existing_pod(source: &str, id: &str) -> Value {
        json!({"kind": "Pod", "apiVersion": "v1", "metadata": {
            "name": "podgateway-client-7678b351e70b8efde9a6", "namespace": "default",
            "annotations": {"podgateway.io/event-source": source, "podgateway.io/event-id": id}}})
    }

    fn run(answers: Vec<Result<http::Response<Vec<u8>>, TransportError>>) -> (Provisioning, ScriptedApi) {
        let config = load_with(&[("k8s_api_url", "http://127.0.0.1:8001")]).unwrap();
        let mut api = ScriptedApi::new(answers);
        (provision(&config, &request("foo"), &mut api), api)
    }

    const NAME: &str = "podgateway-client-7678b351e70b8efde9a6";

    #[test]
    fn created() {
        let (result, api) = run(vec![answer(201, json!({"kind": "Pod"}))]);
        assert_eq!(result.pod, Ok(NAME.into()));
        assert_eq!(result.api_statuses, [201]);
        assert_eq!(api.sent.len(), 1);
        let sent: Value = serde_json::from_slice(api.sent[0].body()).unwrap();
        let config = load_with(&[]).unwrap();
        assert_eq!(sent, serde_json::to_value(client_pod(&config, &request("foo"))).unwrap());
    }

    #[test]
    fn already_created_by_this_event_is_done() {
        let (result, api) = run(vec![
            answer(409, status(409, "AlreadyExists", &format!("pods \"{NAME}\" already exists"))),
            answer(200, existing_pod("urn:test", "42")),
        ]);
        assert_eq!(result.pod, Ok(NAME.into()));
        assert_eq!(result.api_statuses, [409, 200]);
        assert_eq!(api.sent[1].method(), http::Method::GET);
        assert_eq!(
            api.sent[1].uri(),
            &*format!("http://127.0.0.1:8001/api/v1/namespaces/default/pods/{NAME}")
        );
    }

    #[test]
    fn a_foreign_pod_with_the_same_name_is_a_failure() {
        let (result, _) = run(vec![
            answer(409, status(409, "AlreadyExists", "exists")),
            answer(200, existing_pod("urn:other", "42")),
        ]);
        assert_eq!(
            result.pod,
            Err(CallFailure::Refused(format!(
                "pod default/{NAME} already exists and was not created for this event \
                 (its podgateway.io/event-source / podgateway.io/event-id annotations are \"urn:other\" / \"42\"); \
                 delete it or change client_name_prefix"
            )))
        );
    }

    #[test]
    fn a_pod_gone_between_create_and_get_is_retried() {
        let (result, _) = run(vec![
            answer(409, status(409, "AlreadyExists", "exists")),
            answer(404, status(404, "NotFound", &format!("pods \"{NAME}\" not found"))),
        ]);
        assert!(matches!(result.pod, Err(CallFailure::Unavailable { retry_after: None, .. })), "{result:?}");
    }

    #[test]
    fn permanent_api_errors_fail_with_the_api_reason_and_a_hint() {
        let forbidden = "pods is forbidden: User \"system:serviceaccount:x:y\" cannot create resource \"pods\" in API group \"\" in the namespace \"default\"";
        let (result, _) = run(vec![answer(403, status(403, "Forbidden", forbidden))]);
        assert_eq!(
            result.pod,
            Err(CallFailure::Refused(format!(
                "the Kubernetes API refused to create pod default/{NAME}: 403 Forbidden: {forbidden}; \
                 check the Role bound to the component's ServiceAccount and that client_namespace is not being deleted"
            )))
        );
        for (code, reason, hint) in [
            (401, "Unauthorized", "check k8s_token"),
            (404, "NotFound", "check client_namespace"),
            (422, "Invalid", "check client_image"),
            (400, "BadRequest", ""),
        ] {
            let (result, _) = run(vec![answer(code, status(code, reason, "m"))]);
            let Err(CallFailure::Refused(message)) = result.pod else { panic!("{code}: {result:?}") };
            assert!(message.contains(&format!("{code} {reason}: m")) && message.contains(hint), "{message}");
        }
    }

    #[test]
    fn transient_api_errors_are_retried_with_retry_after() {
        let mut too_many = http::Response::new(b"Too many requests, please try again later.".to_vec());
        *too_many.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
        too_many.headers_mut().insert("retry-after", "3".parse().unwrap());
        too_many.headers_mut().insert("content-type", "text/plain".parse().unwrap());
        let (result, _) = run(vec![Ok(too_many)]);
        assert_eq!(
            result.pod,
            Err(CallFailure::Unavailable {
                message: format!(
                    "the Kubernetes API could not create pod default/{NAME} for now: \
                     429 TooManyRequests: Too many requests, please try again later."
                ),
                retry_after: Some(3),
            })
        );
        for code in [500, 502, 503, 504] {
            let (result, _) = run(vec![answer(code, status(code, "x", "y"))]);
            assert!(matches!(result.pod, Err(CallFailure::Unavailable { .. })), "{code}");
        }
    }

    #[test]
    fn transport_errors() {
        let (result, _) = run(vec![Err(TransportError::TimedOut)]);
        assert_eq!(
            result.pod,
            Err(CallFailure::Unavailable {
                message: "the Kubernetes API did not answer within 10 s (k8s_timeout_seconds)".into(),
                retry_after: None
            })
        );
        let (result, _) = run(vec![Err(TransportError::Failed("connection refused".into()))]);
        assert_eq!(
            result.pod,
            Err(CallFailure::Unavailable {
                message: "cannot reach the Kubernetes API at http://127.0.0.1:8001: connection refused"
                    .into(),
                retry_after: None
            })
        );
        let (result, _) = run(vec![Err(TransportError::Denied("HttpRequestDenied".into()))]);
        let Err(CallFailure::Misconfigured(message)) = result.pod else { panic!("{result:?}") };
        assert!(message.contains("allowed_outbound_hosts"), "{message}");
        assert!(result.api_statuses.is_empty());
    }
}
