//! The decisions: which gateway may be asked for, the pod's name and shape, and what each
//! API answer means for the event (done, failed, or retry later).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::config::Config;
use crate::event::{EventKey, PendingData, hex};
use crate::kube::{self, ApiError, KubeApi, TransportError};
use crate::names;

/// Hex characters of the event digest in a pod name (80 bits).
pub const POD_NAME_HASH_LEN: usize = 20;
pub const CONTAINER_NAME: &str = "client";
pub const APP_NAME_LABEL: (&str, &str) = ("app.kubernetes.io/name", "podgateway-client");
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "podgateway-client-provisioner");
/// Carries the gateway on every pod, whatever the admission webhook is configured to read.
pub const GATEWAY_LABEL: &str = "podgateway.io/gateway";
pub const EVENT_SOURCE_ANNOTATION: &str = "podgateway.io/event-source";
pub const EVENT_ID_ANNOTATION: &str = "podgateway.io/event-id";
/// The pending event's optional `message`, kept on the pod for whoever looks at it.
pub const REQUEST_MESSAGE_ANNOTATION: &str = "podgateway.io/request-message";

/// A pending event that passed every check: the pod can be created.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRequest {
    pub event: EventKey,
    pub gateway: String,
    pub message: Option<String>,
}

/// Checks the requested gateway against the Kubernetes label-value rule and the allowlist.
pub fn client_request(event: EventKey, data: PendingData, config: &Config) -> Result<ClientRequest, String> {
    let gateway = match data.gateway_name {
        None => return Err(r#"the event data has no `gateway_name`; expected {"gateway_name": "…"}"#.into()),
        Some(gateway) if gateway.is_empty() => return Err("`gateway_name` is empty".into()),
        Some(gateway) => gateway,
    };
    if !names::is_label_value(&gateway) {
        return Err(format!(
            "`gateway_name` {gateway:?} is not a valid gateway name: at most 63 letters, digits, \
             `-`, `_` or `.`, starting and ending with a letter or digit"
        ));
    }
    if let Some(allowed) = &config.allowed_gateways
        && !allowed.contains(&gateway)
    {
        let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
        return Err(format!(
            "gateway `{gateway}` is not allowed here; allowed gateways: {}",
            allowed.join(", ")
        ));
    }
    Ok(ClientRequest { event, gateway, message: data.message })
}

/// `{prefix}-{h}`, where `h` is the first 20 hex characters of SHA-256 over the event's
/// length-prefixed source and id ([`EventKey::digest`]). A redelivered event names the same
/// pod. This rule is part of the contract: changing it makes duplicates after an upgrade.
pub fn pod_name(prefix: &str, event: &EventKey) -> String {
    let digest = hex(&event.digest(&[]));
    format!("{prefix}-{}", &digest[..POD_NAME_HASH_LEN])
}

/// The client pod: annotated (and, in label mode, labelled) for the gateway's admission
/// webhook, and marked with the event it was made for.
pub fn client_pod(config: &Config, request: &ClientRequest) -> Pod {
    let mut labels = BTreeMap::from([
        (APP_NAME_LABEL.0.to_owned(), APP_NAME_LABEL.1.to_owned()),
        (MANAGED_BY_LABEL.0.to_owned(), MANAGED_BY_LABEL.1.to_owned()),
        (GATEWAY_LABEL.to_owned(), request.gateway.clone()),
    ]);
    if let Some(label) = &config.gateway_label {
        labels.insert(label.clone(), request.gateway.clone());
    }
    let mut annotations = BTreeMap::from([
        (config.gateway_annotation.clone(), request.gateway.clone()),
        (EVENT_SOURCE_ANNOTATION.to_owned(), request.event.source.clone()),
        (EVENT_ID_ANNOTATION.to_owned(), request.event.id.clone()),
    ]);
    if let Some(message) = request.message.as_ref().filter(|message| !message.is_empty()) {
        annotations.insert(REQUEST_MESSAGE_ANNOTATION.to_owned(), message.clone());
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(&config.client_name_prefix, &request.event)),
            namespace: Some(config.client_namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: CONTAINER_NAME.to_owned(),
                image: Some(config.client_image.clone()),
                command: (!config.client_command.is_empty()).then(|| config.client_command.clone()),
                ..Container::default()
            }],
            active_deadline_seconds: config.active_deadline_seconds,
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// What became of a pending event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The pod exists for this event (created now, or by an earlier delivery).
    Done { pod_name: String },
    /// It will fail the same way again: reply `failed`.
    Failed { message: String },
    /// It may work later: answer 503 so that the broker redelivers.
    Retry { message: String, retry_after: Option<u64> },
    /// The deployment cannot reach the API at all: answer 500, like a bad variable.
    Misconfigured { message: String },
}

/// The outcome, with the HTTP status of each API answer (for the log).
#[derive(Debug, Clone, PartialEq)]
pub struct Provisioning {
    pub outcome: Outcome,
    pub api_statuses: Vec<u16>,
}

/// Creates the pod. A 409 means an earlier delivery may have created it: the existing pod
/// counts as done only when it carries this event's source and id.
pub fn provision(config: &Config, request: &ClientRequest, api: &mut impl KubeApi) -> Provisioning {
    let mut api_statuses = Vec::new();
    let outcome = create_or_find(config, request, api, &mut api_statuses).unwrap_or_else(|outcome| outcome);
    Provisioning { outcome, api_statuses }
}

/// Both sides are outcomes: `Err` ends the attempt early, so that `?` reads as "stop here".
fn create_or_find(
    config: &Config,
    request: &ClientRequest,
    api: &mut impl KubeApi,
    statuses: &mut Vec<u16>,
) -> Result<Outcome, Outcome> {
    let failed = |message| Outcome::Failed { message };
    let pod = client_pod(config, request);
    let name = pod.metadata.name.clone().unwrap_or_default();
    let pod_ref = format!("{}/{name}", config.client_namespace);

    let created = send(api, kube::create_pod(config, &pod).map_err(failed)?, config, statuses)?;
    if created.status().is_success() {
        return Ok(Outcome::Done { pod_name: name });
    }
    if created.status() != http::StatusCode::CONFLICT {
        return Err(api_failure(&ApiError::from_response(&created), &format!("create pod {pod_ref}")));
    }

    let existing = send(api, kube::get_pod(config, &name).map_err(failed)?, config, statuses)?;
    if existing.status() == http::StatusCode::NOT_FOUND {
        return Err(Outcome::Retry {
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
    let annotations = kube::pod_annotations(existing.body())
        .map_err(|message| Outcome::Retry { message, retry_after: None })?;
    let made_for = |key: &str| annotations.get(key).map(String::as_str);
    if made_for(EVENT_SOURCE_ANNOTATION) == Some(&request.event.source)
        && made_for(EVENT_ID_ANNOTATION) == Some(&request.event.id)
    {
        return Ok(Outcome::Done { pod_name: name });
    }
    Err(failed(format!(
        "pod {pod_ref} already exists and was not created for this event (its {EVENT_SOURCE_ANNOTATION} / \
         {EVENT_ID_ANNOTATION} annotations are {:?} / {:?}); delete it or change client_name_prefix",
        made_for(EVENT_SOURCE_ANNOTATION).unwrap_or(""),
        made_for(EVENT_ID_ANNOTATION).unwrap_or(""),
    )))
}

fn send(
    api: &mut impl KubeApi,
    request: http::Request<Vec<u8>>,
    config: &Config,
    statuses: &mut Vec<u16>,
) -> Result<http::Response<Vec<u8>>, Outcome> {
    match api.send(request, config.api_timeout) {
        Ok(response) => {
            statuses.push(response.status().as_u16());
            Ok(response)
        }
        Err(TransportError::Denied(detail)) => Err(Outcome::Misconfigured {
            message: format!(
                "the host refused the request to {}: k8s_api_url must be listed in the \
                 component's allowed_outbound_hosts in spin.toml ({detail})",
                config.api
            ),
        }),
        Err(TransportError::TimedOut) => Err(Outcome::Retry {
            message: format!(
                "the Kubernetes API did not answer within {} s (k8s_timeout_seconds)",
                config.api_timeout.as_secs()
            ),
            retry_after: None,
        }),
        Err(TransportError::Failed(detail)) => Err(Outcome::Retry {
            message: format!("cannot reach the Kubernetes API at {}: {detail}", config.api),
            retry_after: None,
        }),
    }
}

fn api_failure(error: &ApiError, action: &str) -> Outcome {
    if error.is_transient() {
        return Outcome::Retry {
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
    Outcome::Failed { message: format!("the Kubernetes API refused to {action}: {error}{hint}") }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::tests::load_with;
    use serde_json::{Value, json};
    use std::collections::VecDeque;

    fn key() -> EventKey {
        EventKey { source: "urn:test".into(), id: "42".into() }
    }

    fn request(gateway: &str) -> ClientRequest {
        ClientRequest { event: key(), gateway: gateway.into(), message: None }
    }

    fn data(gateway: Option<&str>) -> PendingData {
        PendingData { gateway_name: gateway.map(String::from), message: None }
    }

    #[test]
    fn pod_name_rule() {
        let name = pod_name("podgateway-client", &key());
        let expected = hex(&key().digest(&[]))[..20].to_owned();
        assert_eq!(name, format!("podgateway-client-{expected}"));
        // Pinned: a change to the rule would create duplicate pods after an upgrade.
        assert_eq!(name, "podgateway-client-7678b351e70b8efde9a6");
        assert!(names::is_dns1123_subdomain(&name) && names::is_label_value(&name));
        let other = EventKey { source: "urn:test".into(), id: "43".into() };
        assert_ne!(pod_name("p", &other), pod_name("p", &key()));
        let longest = "p".repeat(crate::config::MAX_NAME_PREFIX_LEN);
        assert_eq!(pod_name(&longest, &key()).len(), 63);
    }

    #[test]
    fn gateway_checks() {
        let config = load_with(&[]).unwrap();
        assert_eq!(client_request(key(), data(Some("foo")), &config).unwrap(), request("foo"));
        let problem = |gateway: Option<&str>, config: &Config| {
            client_request(key(), data(gateway), config).unwrap_err()
        };
        assert_eq!(
            problem(None, &config),
            r#"the event data has no `gateway_name`; expected {"gateway_name": "…"}"#
        );
        assert_eq!(problem(Some(""), &config), "`gateway_name` is empty");
        assert!(
            problem(Some("foo bar"), &config)
                .starts_with("`gateway_name` \"foo bar\" is not a valid gateway name")
        );
        assert!(problem(Some(&"g".repeat(64)), &config).contains("is not a valid gateway name"));
        let allowlist = load_with(&[("allowed_gateways", "foo,bar")]).unwrap();
        assert!(client_request(key(), data(Some("bar")), &allowlist).is_ok());
        assert_eq!(
            problem(Some("baz"), &allowlist),
            "gateway `baz` is not allowed here; allowed gateways: bar, foo"
        );
    }

    #[test]
    fn the_exact_pod_for_the_defaults() {
        let config = load_with(&[]).unwrap();
        let pod = serde_json::to_value(client_pod(&config, &request("foo"))).unwrap();
        assert_eq!(
            pod,
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "podgateway-client-7678b351e70b8efde9a6",
                    "namespace": "default",
                    "labels": {
                        "app.kubernetes.io/managed-by": "podgateway-client-provisioner",
                        "app.kubernetes.io/name": "podgateway-client",
                        "podgateway.io/gateway": "foo"
                    },
                    "annotations": {
                        "podgateway.io/event-id": "42",
                        "podgateway.io/event-source": "urn:test",
                        "setGateway": "foo"
                    }
                },
                "spec": {
                    "containers": [{"name": "client", "image": "alpine/curl", "command": ["sleep", "infinity"]}]
                }
            })
        );
    }

    #[test]
    fn the_exact_pod_with_every_option() {
        let config = load_with(&[
            ("client_namespace", "vpn"),
            ("client_image", "busybox:1.37"),
            ("client_command", "[]"),
            ("client_name_prefix", "c"),
            ("gateway_annotation", "example.com/gw"),
            ("gateway_label", "setGateway"),
            ("client_active_deadline_seconds", "600"),
        ])
        .unwrap();
        let mut with_message = request("bar");
        with_message.message = Some("for the nightly crawl".into());
        let pod = serde_json::to_value(client_pod(&config, &with_message)).unwrap();
        assert_eq!(
            pod,
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "c-7678b351e70b8efde9a6",
                    "namespace": "vpn",
                    "labels": {
                        "app.kubernetes.io/managed-by": "podgateway-client-provisioner",
                        "app.kubernetes.io/name": "podgateway-client",
                        "podgateway.io/gateway": "bar",
                        "setGateway": "bar"
                    },
                    "annotations": {
                        "example.com/gw": "bar",
                        "podgateway.io/event-id": "42",
                        "podgateway.io/event-source": "urn:test",
                        "podgateway.io/request-message": "for the nightly crawl"
                    }
                },
                "spec": {
                    "activeDeadlineSeconds": 600,
                    "containers": [{"name": "client", "image": "busybox:1.37"}]
                }
            })
        );
    }

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
        assert_eq!(result.outcome, Outcome::Done { pod_name: NAME.into() });
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
        assert_eq!(result.outcome, Outcome::Done { pod_name: NAME.into() });
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
            result.outcome,
            Outcome::Failed {
                message: format!(
                    "pod default/{NAME} already exists and was not created for this event \
                     (its podgateway.io/event-source / podgateway.io/event-id annotations are \"urn:other\" / \"42\"); \
                     delete it or change client_name_prefix"
                )
            }
        );
    }

    #[test]
    fn a_pod_gone_between_create_and_get_is_retried() {
        let (result, _) = run(vec![
            answer(409, status(409, "AlreadyExists", "exists")),
            answer(404, status(404, "NotFound", &format!("pods \"{NAME}\" not found"))),
        ]);
        assert!(matches!(result.outcome, Outcome::Retry { retry_after: None, .. }), "{result:?}");
    }

    #[test]
    fn permanent_api_errors_fail_with_the_api_reason_and_a_hint() {
        let forbidden = "pods is forbidden: User \"system:serviceaccount:x:y\" cannot create resource \"pods\" in API group \"\" in the namespace \"default\"";
        let (result, _) = run(vec![answer(403, status(403, "Forbidden", forbidden))]);
        assert_eq!(
            result.outcome,
            Outcome::Failed {
                message: format!(
                    "the Kubernetes API refused to create pod default/{NAME}: 403 Forbidden: {forbidden}; \
                     check the Role bound to the component's ServiceAccount and that client_namespace is not being deleted"
                )
            }
        );
        for (code, reason, hint) in [
            (401, "Unauthorized", "check k8s_token"),
            (404, "NotFound", "check client_namespace"),
            (422, "Invalid", "check client_image"),
            (400, "BadRequest", ""),
        ] {
            let (result, _) = run(vec![answer(code, status(code, reason, "m"))]);
            let Outcome::Failed { message } = result.outcome else { panic!("{code}: {result:?}") };
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
            result.outcome,
            Outcome::Retry {
                message: format!(
                    "the Kubernetes API could not create pod default/{NAME} for now: \
                     429 TooManyRequests: Too many requests, please try again later."
                ),
                retry_after: Some(3),
            }
        );
        for code in [500, 502, 503, 504] {
            let (result, _) = run(vec![answer(code, status(code, "x", "y"))]);
            assert!(matches!(result.outcome, Outcome::Retry { .. }), "{code}");
        }
    }

    #[test]
    fn transport_errors() {
        let (result, _) = run(vec![Err(TransportError::TimedOut)]);
        assert_eq!(
            result.outcome,
            Outcome::Retry {
                message: "the Kubernetes API did not answer within 10 s (k8s_timeout_seconds)".into(),
                retry_after: None
            }
        );
        let (result, _) = run(vec![Err(TransportError::Failed("connection refused".into()))]);
        assert_eq!(
            result.outcome,
            Outcome::Retry {
                message: "cannot reach the Kubernetes API at http://127.0.0.1:8001: connection refused"
                    .into(),
                retry_after: None
            }
        );
        let (result, _) = run(vec![Err(TransportError::Denied("HttpRequestDenied".into()))]);
        let Outcome::Misconfigured { message } = result.outcome else { panic!("{result:?}") };
        assert!(message.contains("allowed_outbound_hosts"), "{message}");
        assert!(result.api_statuses.is_empty());
    }
}
