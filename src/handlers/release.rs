//! `io.podgateway.client.release`: give a client back. The pod, named by its name or by the
//! pending event it was created for, is deleted if it is one of this provisioner's clients;
//! one that does not exist is already released.

use serde_json::json;

use crate::cloudevents::{ReceivedEvent, Reply};
use crate::config::Config;
use crate::handlers::failure_outcome;
use crate::identity::EventKey;
use crate::json;
use crate::kube::KubeApi;
use crate::kube::calls::ApiCalls;
use crate::kube::requests::Deletion;
use crate::names;
use crate::pod::name::pod_name;
use crate::pod::shape::{GATEWAY_LABEL, is_client_pod};
use crate::pod::template::MANAGED_BY_LABEL;
use crate::respond::{Handled, Outcome};

pub const TYPE: &str = "io.podgateway.client.release";
pub const DONE_TYPE: &str = "io.podgateway.client.release.done";
pub const FAILED_TYPE: &str = "io.podgateway.client.release.failed";

const EXAMPLE: &str = r#"{"pod_name": "…"} or {"request_source": "…", "request_id": "…"}"#;

pub fn handle(event: &ReceivedEvent, config: &Config, api: &mut impl KubeApi) -> Handled {
    let namespace = &config.client_namespace;
    let mut handled = Handled::new(Outcome::Ignored(None));
    handled.namespace = Some(namespace.clone());
    let name = match released_pod(event, config) {
        Ok(name) => name,
        Err(problem) => {
            handled.outcome = Outcome::Failed(reply(event, namespace, FAILED_TYPE, None, None, problem));
            return handled;
        }
    };
    let mut calls = ApiCalls::new(api, config);
    handled.outcome = release(event, &name, &mut calls);
    handled.api_status = calls.statuses;
    handled.pod = Some(name);
    handled
}

/// Deletes the pod `name` if it is one of this provisioner's clients; the reply says what
/// became of it.
fn release(event: &ReceivedEvent, name: &str, calls: &mut ApiCalls<impl KubeApi>) -> Outcome {
    let config = calls.config;
    let namespace = &config.client_namespace;
    let pod_ref = calls.pod_ref(name);
    let done = |gateway: Option<&String>, message: String| {
        Outcome::Done(reply(event, namespace, DONE_TYPE, Some(name), gateway, message))
    };
    let failed = |gateway: Option<&String>, message: String| {
        reply(event, namespace, FAILED_TYPE, Some(name), gateway, message)
    };
    let pod = match calls.get(name) {
        Ok(Some(pod)) => pod,
        Ok(None) => {
            return done(None, format!("There is no pod {pod_ref}: the client was released already."));
        }
        Err(failure) => return failure_outcome(failure, |message| failed(None, message)),
    };
    if !is_client_pod(&pod, namespace) {
        return Outcome::Failed(failed(
            None,
            format!(
                "pod {pod_ref} is not a client of this provisioner (it has no label {}={}); nothing was deleted",
                MANAGED_BY_LABEL.0, MANAGED_BY_LABEL.1
            ),
        ));
    }
    let gateway = pod.metadata.labels.get(GATEWAY_LABEL);
    if pod.metadata.deletion_timestamp.is_some() {
        return done(gateway, format!("The client's pod {pod_ref} is being deleted already."));
    }
    match calls.delete(name, &pod.metadata.uid, Deletion::Graceful) {
        Ok(()) if config.dry_run => {
            done(gateway, format!("The client's pod {pod_ref} would have been deleted (dry run)."))
        }
        Ok(()) => done(gateway, format!("The client was released: its pod {pod_ref} was deleted.")),
        Err(failure) => failure_outcome(failure, |message| failed(gateway, message)),
    }
}

/// The reply: which pod, and the release event it answers (`request_*`, as every reply).
fn reply(
    event: &ReceivedEvent,
    namespace: &str,
    event_type: &'static str,
    pod: Option<&str>,
    gateway: Option<&String>,
    message: String,
) -> Reply {
    Reply::to(
        &event.key,
        event_type,
        pod.map(str::to_owned),
        json!({
            "pod_name": pod,
            "namespace": namespace,
            "gateway_name": gateway,
            "message": message,
            "request_id": event.key.id,
            "request_source": event.key.source,
        }),
    )
}

/// The name of the pod the event releases: `pod_name`, or the pod of the pending event
/// `request_source` + `request_id` under the naming rule.
fn released_pod(event: &ReceivedEvent, config: &Config) -> Result<String, String> {
    let fields = event.object_data(EXAMPLE)?;
    let field = |name: &str| json::string_field(&fields, name);
    match (field("pod_name")?, field("request_source")?, field("request_id")?) {
        (Some(name), None, None) if names::is_dns1123_subdomain(&name) => Ok(name),
        (Some(name), None, None) => Err(format!("`pod_name` {name:?} is not a pod name")),
        (None, Some(source), Some(id)) if !source.is_empty() && !id.is_empty() => {
            Ok(pod_name(&config.client_name_prefix, &EventKey { source, id }))
        }
        (None, Some(_), Some(_)) => Err("`request_source` and `request_id` must not be empty".into()),
        _ => {
            Err(format!("name the client by `pod_name`, or by `request_source` and `request_id`: {EXAMPLE}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudevents::read;
    use crate::cloudevents::tests::header_map;
    use crate::config::tests::load_with;
    use crate::contract::{self, POD_42, RELEASE, RELEASE_DONE, RELEASE_FAILED};
    use crate::kube::TransportError;
    use crate::kube::calls::tests::{ScriptedApi, answer, status};
    use crate::pod::lifecycle::tests::running_pod;
    use serde_json::Value;

    const UID: &str = "8f1c7a52-3c3e-4e0b-9a51-0d2f5b6e4a10";

    fn release(
        data: &str,
        variables: &[(&'static str, &str)],
        answers: Vec<Result<http::Response<Vec<u8>>, TransportError>>,
    ) -> (Handled, ScriptedApi) {
        let mut variables = variables.to_vec();
        variables.push(("k8s_api_url", "http://127.0.0.1:8001"));
        let config = load_with(&variables).unwrap();
        let event =
            read(&header_map(&contract::binary_headers("r-1", RELEASE)), data.as_bytes().to_vec()).unwrap();
        let mut api = ScriptedApi::new(answers);
        (handle(&event, &config, &mut api), api)
    }

    fn replied(handled: &Handled) -> (&'static str, &Value) {
        match &handled.outcome {
            Outcome::Done(reply) | Outcome::Failed(reply) => (reply.event_type, &reply.data),
            other => panic!("no reply: {other:?}"),
        }
    }

    fn by_name() -> String {
        json!({"pod_name": POD_42}).to_string()
    }

    #[test]
    fn a_client_is_released_by_its_name_or_its_request() {
        for data in [by_name(), json!({"request_source": "urn:test", "request_id": "42"}).to_string()] {
            let (handled, api) =
                release(&data, &[], vec![answer(200, running_pod()), answer(200, running_pod())]);
            assert_eq!(
                replied(&handled),
                (
                    RELEASE_DONE,
                    &json!({"pod_name": POD_42, "namespace": "default", "gateway_name": "foo",
                            "message": format!("The client was released: its pod default/{POD_42} was deleted."),
                            "request_id": "r-1", "request_source": "urn:test"})
                ),
                "{data}"
            );
            assert_eq!(handled.api_status, [200, 200]);
            let (get, delete) = (&api.sent[0], &api.sent[1]);
            let uri = format!("http://127.0.0.1:8001/api/v1/namespaces/default/pods/{POD_42}");
            assert_eq!((get.method().as_str(), get.uri().to_string()), ("GET", uri.clone()));
            assert_eq!((delete.method().as_str(), delete.uri().to_string()), ("DELETE", format!("{uri}?")));
            assert_eq!(
                serde_json::from_slice::<Value>(delete.body()).unwrap(),
                json!({"preconditions": {"uid": UID}})
            );
        }
    }

    #[test]
    fn a_client_that_is_not_there_was_released_already() {
        let missing = answer(404, status(404, "NotFound", &format!("pods \"{POD_42}\" not found")));
        let (handled, api) = release(&by_name(), &[], vec![missing]);
        let (kind, data) = replied(&handled);
        assert_eq!(kind, RELEASE_DONE);
        assert_eq!(
            data["message"],
            format!("There is no pod default/{POD_42}: the client was released already.")
        );
        assert_eq!(data["gateway_name"], Value::Null);
        assert_eq!(api.sent.len(), 1);
        // Being deleted: no second DELETE.
        let mut deleting = running_pod();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-12-01T10:05:00Z");
        let (handled, api) = release(&by_name(), &[], vec![answer(200, deleting)]);
        assert_eq!(
            replied(&handled).1["message"],
            format!("The client's pod default/{POD_42} is being deleted already.")
        );
        assert_eq!(api.sent.len(), 1);
    }

    #[test]
    fn a_pod_that_is_not_a_client_is_not_deleted() {
        let mut foreign = running_pod();
        foreign["metadata"]["labels"] = json!({"app": "database"});
        let (handled, api) = release(&by_name(), &[], vec![answer(200, foreign)]);
        assert_eq!(
            replied(&handled),
            (
                RELEASE_FAILED,
                &json!({"pod_name": POD_42, "namespace": "default", "gateway_name": null,
                        "message": format!("pod default/{POD_42} is not a client of this provisioner (it has no label \
                                            app.kubernetes.io/managed-by=podgateway-client-provisioner); nothing was deleted"),
                        "request_id": "r-1", "request_source": "urn:test"})
            )
        );
        assert_eq!(api.sent.len(), 1, "no DELETE");
    }

    #[test]
    fn what_names_no_client_is_failed_without_an_api_call() {
        for (data, problem) in [
            (
                "{}".to_owned(),
                "name the client by `pod_name`, or by `request_source` and `request_id`: {\"pod_name\": \"…\"} or {\"request_source\": \"…\", \"request_id\": \"…\"}",
            ),
            (json!({"pod_name": "Not_A_Pod"}).to_string(), "`pod_name` \"Not_A_Pod\" is not a pod name"),
            (
                json!({"pod_name": POD_42, "request_id": "42"}).to_string(),
                "name the client by `pod_name`, or by `request_source` and `request_id`: {\"pod_name\": \"…\"} or {\"request_source\": \"…\", \"request_id\": \"…\"}",
            ),
            (
                json!({"request_source": "", "request_id": "42"}).to_string(),
                "`request_source` and `request_id` must not be empty",
            ),
            (json!({"pod_name": 7}).to_string(), "`pod_name` must be a string, not a number"),
            (
                "[]".to_owned(),
                "data must be a JSON object such as {\"pod_name\": \"…\"} or {\"request_source\": \"…\", \"request_id\": \"…\"}, not an array",
            ),
        ] {
            let (handled, api) = release(&data, &[], vec![]);
            assert_eq!(
                replied(&handled),
                (
                    RELEASE_FAILED,
                    &json!({"pod_name": null, "namespace": "default", "gateway_name": null, "message": problem,
                                         "request_id": "r-1", "request_source": "urn:test"})
                ),
                "{data}"
            );
            assert!(api.sent.is_empty(), "{data}");
        }
    }

    #[test]
    fn api_failures_are_retried_or_failed() {
        let (handled, _) = release(&by_name(), &[], vec![answer(503, status(503, "ServiceUnavailable", ""))]);
        assert!(matches!(handled.outcome, Outcome::Retry { .. }), "{handled:?}");
        // Replaced between GET and DELETE: retried, to find the newer pod.
        let conflict = answer(
            409,
            status(409, "Conflict", "the UID in the precondition (a) does not match the UID in record (b)"),
        );
        let (handled, _) = release(&by_name(), &[], vec![answer(200, running_pod()), conflict]);
        assert!(matches!(handled.outcome, Outcome::Retry { .. }), "{handled:?}");
        let forbidden = answer(403, status(403, "Forbidden", "pods is forbidden"));
        let (handled, _) = release(&by_name(), &[], vec![answer(200, running_pod()), forbidden]);
        let (kind, data) = replied(&handled);
        assert_eq!(kind, RELEASE_FAILED);
        assert!(
            data["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("the Kubernetes API refused to delete pod default/{POD_42}: 403"))
        );
        assert_eq!(data["gateway_name"], "foo");
    }

    #[test]
    fn a_dry_run_deletes_nothing() {
        let (handled, api) = release(
            &by_name(),
            &[("dry_run", "true")],
            vec![answer(200, running_pod()), answer(200, running_pod())],
        );
        assert_eq!(
            replied(&handled).1["message"],
            format!("The client's pod default/{POD_42} would have been deleted (dry run).")
        );
        assert_eq!(
            serde_json::from_slice::<Value>(api.sent[1].body()).unwrap(),
            json!({"dryRun": ["All"], "preconditions": {"uid": UID}})
        );
    }
}
