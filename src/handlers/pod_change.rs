//! `dev.knative.apiserver.resource.update` and `.delete`: Knative's ApiServerSource (Resource
//! mode) telling that a client pod changed or went. The answer is at most one lifecycle
//! event about the client (`ready`, `finished`, `gone`); a finished client's pod is deleted
//! (`reap_finished`), so that nothing is left behind. Pods that are not this provisioner's
//! clients are ignored.

use serde_json::{Map, Value, json};

use crate::cloudevents::{ReceivedEvent, Reply};
use crate::config::Config;
use crate::kube::KubeApi;
use crate::kube::calls::{ApiCalls, CallFailure};
use crate::kube::requests::Deletion;
use crate::kube::responses::PodView;
use crate::pod::lifecycle::{Change, Ending, Lifecycle, lifecycle};
use crate::pod::shape::{EVENT_ID_ANNOTATION, EVENT_SOURCE_ANNOTATION, GATEWAY_LABEL, is_client_pod};
use crate::respond::{Handled, Outcome};

pub const UPDATED: &str = "dev.knative.apiserver.resource.update";
pub const DELETED: &str = "dev.knative.apiserver.resource.delete";
pub const READY_TYPE: &str = "io.podgateway.client.ready";
pub const FINISHED_TYPE: &str = "io.podgateway.client.finished";
pub const GONE_TYPE: &str = "io.podgateway.client.gone";

pub fn handle(event: &ReceivedEvent, change: Change, config: &Config, api: &mut impl KubeApi) -> Handled {
    let pod = match changed_pod(event) {
        Ok(Some(pod)) => pod,
        Ok(None) => return Handled::new(Outcome::Ignored(Some("the event is not about a v1 Pod".into()))),
        Err(problem) => return Handled::new(Outcome::Unusable(problem)),
    };
    let meta = &pod.metadata;
    let pod_ref = format!("{}/{}", meta.namespace, meta.name);
    let mut handled = Handled::new(Outcome::Ignored(None));
    handled.pod = Some(meta.name.clone());
    handled.namespace = Some(meta.namespace.clone());
    if !is_client_pod(&pod, &config.client_namespace) {
        handled.outcome =
            Outcome::Ignored(Some(format!("pod {pod_ref} is not a client pod of this provisioner")));
        return handled;
    }
    let gateway = meta.labels.get(GATEWAY_LABEL).map_or("", String::as_str);
    let expected_address = config.expected_gateway_address(gateway);
    handled.outcome = match lifecycle(change, &pod, expected_address.as_deref()) {
        Lifecycle::Quiet(why) => Outcome::Ignored(Some(format!("pod {pod_ref}: {why}"))),
        Lifecycle::Ready { address, started_at } => {
            let mut data = identity(&pod);
            data.insert("gateway_address".into(), json!(address));
            data.insert("pod_ip".into(), json!(pod.status.pod_ip));
            data.insert("node_name".into(), json!(pod.spec.node_name));
            data.insert("started_at".into(), json!(started_at));
            data.insert("message".into(), json!(format!("The client runs behind gateway {gateway}.")));
            Outcome::Done(Reply::about_pod(&meta.uid, READY_TYPE, &meta.name, Value::Object(data)))
        }
        Lifecycle::Finished(ending) => {
            let mut calls = ApiCalls::new(api, config);
            let outcome = finished(&mut calls, change, &pod, ending);
            handled.api_status = calls.statuses;
            outcome
        }
        Lifecycle::Gone { reason, message } => {
            let mut data = identity(&pod);
            data.insert("phase".into(), json!(pod.status.phase));
            data.insert("reason".into(), json!(reason));
            let said = message.map_or(String::new(), |message| format!(": {message}"));
            let why = reason.map_or(String::new(), |reason| format!(" ({reason}{said})"));
            data.insert(
                "message".into(),
                json!(format!("The client's pod was deleted before it finished{why}.")),
            );
            Outcome::Done(Reply::about_pod(&meta.uid, GONE_TYPE, &meta.name, Value::Object(data)))
        }
    };
    handled
}

/// The pod in the event's data; `None` when the data is an object of another kind.
fn changed_pod(event: &ReceivedEvent) -> Result<Option<PodView>, String> {
    let object = event.object_data(r#"a Pod (ApiServerSource with mode: Resource)"#)?;
    if object.get("apiVersion") != Some(&json!("v1")) || object.get("kind") != Some(&json!("Pod")) {
        return Ok(None);
    }
    // Read from bytes, as API answers are: one deserializer of PodView in the component.
    let bytes = serde_json::to_vec(&object).unwrap_or_default();
    let pod: PodView =
        serde_json::from_slice(&bytes).map_err(|error| format!("the event's Pod cannot be read: {error}"))?;
    if pod.metadata.name.is_empty() || pod.metadata.uid.is_empty() {
        return Err("the event's Pod has no metadata.name or metadata.uid".into());
    }
    Ok(Some(pod))
}

/// What every lifecycle event says of the client: its pod, its gateway and the pending event
/// it was created for.
fn identity(pod: &PodView) -> Map<String, Value> {
    let meta = &pod.metadata;
    let mut data = Map::new();
    data.insert("pod_name".into(), json!(meta.name));
    data.insert("namespace".into(), json!(meta.namespace));
    data.insert("gateway_name".into(), json!(meta.labels.get(GATEWAY_LABEL)));
    data.insert("request_id".into(), json!(meta.annotations.get(EVENT_ID_ANNOTATION)));
    data.insert("request_source".into(), json!(meta.annotations.get(EVENT_SOURCE_ANNOTATION)));
    data
}

/// The `finished` event, after deleting the pod when `reap_finished` says so and nobody has
/// yet: a pod that is being deleted, or is gone, is not deleted again.
fn finished(calls: &mut ApiCalls<impl KubeApi>, change: Change, pod: &PodView, ending: Ending) -> Outcome {
    let config = calls.config;
    let meta = &pod.metadata;
    let going = change == Change::Deleted || meta.deletion_timestamp.is_some();
    let exit = ending.exit_code.map_or(String::new(), |code| format!(" with exit code {code}"));
    let said = ending.reason.as_ref().map_or(String::new(), |reason| format!(" ({reason})"));
    let mut message = format!("The client finished{exit}{said}");
    let deleted = if going {
        message.push_str("; its pod is deleted");
        true
    } else if !config.reap_finished {
        message.push_str("; its pod is kept (reap_finished is false)");
        false
    } else if config.dry_run {
        message.push_str("; its pod would have been deleted (dry run)");
        false
    } else {
        match calls.delete(&meta.name, &meta.uid, Deletion::Graceful) {
            Ok(()) => {
                message.push_str("; its pod is deleted");
                true
            }
            Err(CallFailure::Refused(refusal)) => {
                message.push_str(&format!("; its pod could not be deleted: {refusal}"));
                false
            }
            Err(CallFailure::Unavailable { message, retry_after }) => {
                return Outcome::Retry { message, retry_after };
            }
            Err(CallFailure::Misconfigured(message)) => return Outcome::Misconfigured(message),
        }
    };
    message.push('.');
    let mut data = identity(pod);
    data.insert("phase".into(), json!(pod.status.phase));
    data.insert("exit_code".into(), json!(ending.exit_code));
    data.insert("reason".into(), json!(ending.reason));
    data.insert("finished_at".into(), json!(ending.finished_at));
    data.insert("pod_deleted".into(), json!(deleted));
    data.insert("message".into(), json!(message));
    Outcome::Done(Reply::about_pod(&meta.uid, FINISHED_TYPE, &meta.name, Value::Object(data)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudevents::read;
    use crate::cloudevents::tests::header_map;
    use crate::config::tests::load_with;
    use crate::contract::{FINISHED, GONE, POD_42, POD_DELETED, POD_UPDATED, READY};
    use crate::kube::calls::tests::{ScriptedApi, answer, status};
    use crate::pod::lifecycle::tests::{ended_pod, running_pod};

    const FOO: &str = "pod-gateway-foo-main.gateway-system.svc.cluster.local";
    const UID: &str = "8f1c7a52-3c3e-4e0b-9a51-0d2f5b6e4a10";

    /// `pod` changed, as Knative's ApiServerSource (Resource mode) sends it: binary mode, its
    /// own id per event, the API server as source, the object's self link as subject, and the
    /// `kind`/`name`/`namespace` extensions.
    pub(crate) fn source_event(event_type: &str, id: &str, pod: &Value) -> ReceivedEvent {
        let subject = format!(
            "/apis/v1/namespaces/{}/pods/{}",
            pod["metadata"]["namespace"].as_str().unwrap_or(""),
            pod["metadata"]["name"].as_str().unwrap_or("")
        );
        let headers = header_map(&[
            ("ce-specversion", "1.0"),
            ("ce-id", id),
            ("ce-source", "https://10.96.0.1:443"),
            ("ce-type", event_type),
            ("ce-subject", &subject),
            ("ce-time", "2026-12-01T10:03:41.511Z"),
            ("ce-kind", "Pod"),
            ("ce-name", pod["metadata"]["name"].as_str().unwrap_or("")),
            ("ce-namespace", pod["metadata"]["namespace"].as_str().unwrap_or("")),
            ("content-type", "application/json"),
        ]);
        read(&headers, pod.to_string().into_bytes()).unwrap()
    }

    fn on_change(
        event_type: &str,
        pod: &Value,
        variables: &[(&'static str, &str)],
        answers: Vec<Result<http::Response<Vec<u8>>, crate::kube::TransportError>>,
    ) -> (Handled, ScriptedApi) {
        let mut variables = variables.to_vec();
        variables.push(("k8s_api_url", "http://127.0.0.1:8001"));
        let config = load_with(&variables).unwrap();
        let change = if event_type == POD_DELETED { Change::Deleted } else { Change::Updated };
        let mut api = ScriptedApi::new(answers);
        let handled = handle(&source_event(event_type, "7d3c2b1a", pod), change, &config, &mut api);
        (handled, api)
    }

    fn reply(handled: &Handled) -> &Reply {
        match &handled.outcome {
            Outcome::Done(reply) => reply,
            other => panic!("not a reply: {other:?}"),
        }
    }

    fn quiet(handled: &Handled) -> &str {
        match &handled.outcome {
            Outcome::Ignored(Some(why)) => why,
            other => panic!("not ignored: {other:?}"),
        }
    }

    #[test]
    fn a_ready_client_is_announced_with_where_it_runs() {
        let (handled, api) = on_change(POD_UPDATED, &running_pod(), &[], vec![]);
        let ready = reply(&handled);
        assert_eq!((ready.event_type, ready.subject.as_deref()), (READY, Some(POD_42)));
        assert_eq!(
            ready.data,
            json!({"pod_name": POD_42, "namespace": "default", "gateway_name": "foo", "gateway_address": FOO,
                   "pod_ip": "10.244.1.17", "node_name": "kind-worker", "started_at": "2026-12-01T10:00:07Z",
                   "request_id": "42", "request_source": "urn:test",
                   "message": "The client runs behind gateway foo."})
        );
        assert!(api.sent.is_empty());
        assert_eq!((handled.pod.as_deref(), handled.namespace.as_deref()), (Some(POD_42), Some("default")));
        // Another update of the same pod (another event id, a new resourceVersion): the same id.
        let mut later = running_pod();
        later["metadata"]["resourceVersion"] = json!("48290");
        let (again, _) = on_change(POD_UPDATED, &later, &[], vec![]);
        assert_eq!(reply(&again).id, ready.id);
        // Its id is derived from the pod's uid and the type.
        assert_eq!(ready.id, crate::identity::hex(&crate::identity::digest(&[UID, READY])[..16]));
    }

    #[test]
    fn a_finished_client_is_announced_and_its_pod_deleted_once() {
        let deleted = answer(200, ended_pod("Never", 0));
        let (handled, api) = on_change(POD_UPDATED, &ended_pod("Never", 0), &[], vec![deleted]);
        let finished = reply(&handled);
        assert_eq!((finished.event_type, finished.subject.as_deref()), (FINISHED, Some(POD_42)));
        assert_eq!(
            finished.data,
            json!({"pod_name": POD_42, "namespace": "default", "gateway_name": "foo",
                   "request_id": "42", "request_source": "urn:test", "phase": "Succeeded", "exit_code": 0,
                   "reason": "Completed", "finished_at": "2026-12-01T10:03:41Z", "pod_deleted": true,
                   "message": "The client finished with exit code 0 (Completed); its pod is deleted."})
        );
        assert_eq!(handled.api_status, [200]);
        let delete = &api.sent[0];
        assert_eq!(delete.method(), http::Method::DELETE);
        assert_eq!(delete.uri(), &*format!("http://127.0.0.1:8001/api/v1/namespaces/default/pods/{POD_42}?"));
        // The pod's own grace period: its sidecar stops cleanly.
        assert_eq!(
            serde_json::from_slice::<Value>(delete.body()).unwrap(),
            json!({"preconditions": {"uid": UID}})
        );

        // Being deleted, then deleted: the same event, and no second DELETE.
        let mut deleting = ended_pod("Never", 0);
        deleting["metadata"]["deletionTimestamp"] = json!("2026-12-01T10:03:42Z");
        for event_type in [POD_UPDATED, POD_DELETED] {
            let (again, api) = on_change(event_type, &deleting, &[], vec![]);
            assert_eq!(reply(&again).id, finished.id, "{event_type}");
            assert_eq!(reply(&again).data, finished.data, "{event_type}");
            assert!(api.sent.is_empty(), "{event_type}");
        }
    }

    #[test]
    fn a_finished_pod_is_kept_when_asked_to_or_when_it_cannot_be_deleted() {
        let message = |handled: &Handled| {
            (reply(handled).data["pod_deleted"].clone(), reply(handled).data["message"].clone())
        };
        let (kept, api) =
            on_change(POD_UPDATED, &ended_pod("Never", 2), &[("reap_finished", "false")], vec![]);
        assert_eq!(
            message(&kept),
            (
                json!(false),
                json!(
                    "The client finished with exit code 2 (Error); its pod is kept (reap_finished is false)."
                )
            )
        );
        assert!(api.sent.is_empty());
        let (dry, api) = on_change(POD_UPDATED, &ended_pod("Never", 0), &[("dry_run", "true")], vec![]);
        assert_eq!(
            message(&dry).1,
            json!(
                "The client finished with exit code 0 (Completed); its pod would have been deleted (dry run)."
            )
        );
        assert!(api.sent.is_empty());
        let forbidden = answer(403, status(403, "Forbidden", "pods \"x\" is forbidden"));
        let (refused, _) = on_change(POD_UPDATED, &ended_pod("Never", 0), &[], vec![forbidden]);
        let (deleted, said) = message(&refused);
        assert_eq!(deleted, json!(false));
        assert!(said.as_str().unwrap().starts_with(
            "The client finished with exit code 0 (Completed); its pod could not be deleted: the Kubernetes API refused to delete pod default/"
        ), "{said}");
        // Already gone: deleted all the same.
        let (gone, _) = on_change(
            POD_UPDATED,
            &ended_pod("Never", 0),
            &[],
            vec![answer(404, status(404, "NotFound", "gone"))],
        );
        assert_eq!(message(&gone).0, json!(true));
    }

    #[test]
    fn a_delete_that_cannot_be_made_now_is_retried() {
        let (handled, _) = on_change(
            POD_UPDATED,
            &ended_pod("Never", 0),
            &[],
            vec![answer(503, status(503, "ServiceUnavailable", "etcd"))],
        );
        assert!(
            matches!(&handled.outcome, Outcome::Retry { message, .. }
            if message.starts_with("the Kubernetes API could not delete pod default/")),
            "{handled:?}"
        );
        assert_eq!(handled.api_status, [503]);
    }

    #[test]
    fn a_client_deleted_before_it_finished_is_gone() {
        let mut evicted = running_pod();
        evicted["status"]["reason"] = json!("Evicted");
        evicted["status"]["message"] = json!("The node was low on resource: memory.");
        evicted["status"]["phase"] = json!("Running");
        let (handled, api) = on_change(POD_DELETED, &evicted, &[], vec![]);
        let gone = reply(&handled);
        assert_eq!((gone.event_type, gone.subject.as_deref()), (GONE, Some(POD_42)));
        assert_eq!(
            gone.data,
            json!({"pod_name": POD_42, "namespace": "default", "gateway_name": "foo", "request_id": "42",
                   "request_source": "urn:test", "phase": "Running", "reason": "Evicted",
                   "message": "The client's pod was deleted before it finished (Evicted: The node was low on resource: memory.)."})
        );
        assert!(api.sent.is_empty());
    }

    #[test]
    fn changes_that_say_nothing_new_are_acknowledged() {
        let mut pending = running_pod();
        pending["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
        let (handled, api) = on_change(POD_UPDATED, &pending, &[], vec![]);
        assert_eq!(quiet(&handled), format!("pod default/{POD_42}: it is Pending"));
        assert!(api.sent.is_empty());
    }

    #[test]
    fn pods_that_are_not_this_provisioners_clients_are_ignored() {
        let mut foreign = running_pod();
        foreign["metadata"]["labels"]["app.kubernetes.io/managed-by"] = json!("helm");
        let mut elsewhere = running_pod();
        elsewhere["metadata"]["namespace"] = json!("kube-system");
        for (pod, pod_ref) in
            [(foreign, format!("default/{POD_42}")), (elsewhere, format!("kube-system/{POD_42}"))]
        {
            let (handled, api) = on_change(POD_DELETED, &pod, &[], vec![]);
            assert_eq!(quiet(&handled), format!("pod {pod_ref} is not a client pod of this provisioner"));
            assert!(api.sent.is_empty());
        }
        let (handled, _) = on_change(
            POD_UPDATED,
            &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {}}),
            &[],
            vec![],
        );
        assert_eq!(quiet(&handled), "the event is not about a v1 Pod");
    }

    #[test]
    fn data_that_is_no_pod_is_unusable() {
        let config = load_with(&[]).unwrap();
        let unusable = |event: &ReceivedEvent| match handle(
            event,
            Change::Updated,
            &config,
            &mut ScriptedApi::new(vec![]),
        )
        .outcome
        {
            Outcome::Unusable(problem) => problem,
            other => panic!("{other:?}"),
        };
        let mut no_uid = running_pod();
        no_uid["metadata"].as_object_mut().unwrap().remove("uid");
        assert_eq!(
            unusable(&source_event(POD_UPDATED, "1", &no_uid)),
            "the event's Pod has no metadata.name or metadata.uid"
        );
        let mut bad_status = running_pod();
        bad_status["status"]["containerStatuses"][0]["state"] = json!({"terminated": {"exitCode": "zero"}});
        assert!(
            unusable(&source_event(POD_UPDATED, "1", &bad_status))
                .starts_with("the event's Pod cannot be read: invalid type: string \"zero\", expected i32")
        );
        assert_eq!(
            unusable(&source_event(POD_UPDATED, "1", &json!(["a"]))),
            "data must be a JSON object such as a Pod (ApiServerSource with mode: Resource), not an array"
        );
    }
}
