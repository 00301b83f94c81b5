//! The Kubernetes API protocol of provisioning: create the pod (on 409, read the existing one
//! and adopt it when an earlier delivery of the same event made it), then make sure it is
//! routed: release the routing gate of a routed pod, delete an unrouted one. What each answer
//! means (done, refused, retry later, misconfigured) is decided here; the reply is the
//! handler's.

use http::StatusCode;

use crate::config::{Config, RoutingGuard};
use crate::kube::KubeApi;
use crate::kube::calls::{ApiCalls, CallFailure, api_failure, unavailable};
use crate::kube::requests::{Deletion, create_pod};
use crate::kube::responses::{ApiError, PodView};
use crate::pod::name::pod_name;
use crate::pod::routing::{ROUTING_GATE, Routing, is_gated, routing};
use crate::pod::shape::{ClientRequest, EVENT_ID_ANNOTATION, EVENT_SOURCE_ANNOTATION, client_pod};

/// A client pod that exists for the event and may run.
#[derive(Debug, Clone, PartialEq)]
pub struct Provisioned {
    pub name: String,
    /// Where its egress goes (the injected containers' `gateway`); `None` when not checked.
    pub gateway_address: Option<String>,
}

/// The pod if it exists for the event, with the HTTP status of each API answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Provisioning {
    pub pod: Result<Provisioned, CallFailure>,
    pub api_statuses: Vec<u16>,
}

/// Creates the pod and guards its routing (`routing_guard`).
pub fn provision(config: &Config, request: &ClientRequest, api: &mut impl KubeApi) -> Provisioning {
    let mut calls = ApiCalls::new(api, config);
    let pod = create_or_adopt(&mut calls, request).and_then(|found| guard(&mut calls, request, &found));
    Provisioning { pod, api_statuses: calls.statuses }
}

/// The pod of this event as the API holds it.
struct Found {
    name: String,
    pod: PodView,
    /// Created by this delivery (as admitted, after every mutating webhook), rather than by
    /// an earlier one.
    created: bool,
}

/// The pod of this event: the one created now, or the one an earlier delivery made.
fn create_or_adopt(
    calls: &mut ApiCalls<impl KubeApi>,
    request: &ClientRequest,
) -> Result<Found, CallFailure> {
    let config = calls.config;
    let pod = client_pod(config, request).map_err(CallFailure::Refused)?;
    let name = pod_name(&config.client_name_prefix, &request.event);
    let pod_ref = calls.pod_ref(&name);

    let created = calls.send(create_pod(config, &pod), &format!("create pod {pod_ref}"))?;
    if created.status().is_success() {
        return PodView::parse(created.body())
            .map(|pod| Found { name, pod, created: true })
            .map_err(unavailable);
    }
    if created.status() != StatusCode::CONFLICT {
        return Err(api_failure(&ApiError::from_response(&created), &format!("create pod {pod_ref}")));
    }

    let Some(existing) = calls.get(&name)? else {
        return Err(unavailable(format!(
            "pod {pod_ref} already existed but was gone when read; redelivery will create it"
        )));
    };
    let made_for = |key: &str| existing.metadata.annotations.get(key).map(String::as_str);
    if made_for(EVENT_SOURCE_ANNOTATION) == Some(&request.event.source)
        && made_for(EVENT_ID_ANNOTATION) == Some(&request.event.id)
    {
        return Ok(Found { name, pod: existing, created: false });
    }
    Err(CallFailure::Refused(format!(
        "pod {pod_ref} already exists and was not created for this event (its {EVENT_SOURCE_ANNOTATION} / \
         {EVENT_ID_ANNOTATION} annotations are {:?} / {:?}); delete it or change client_name_prefix",
        made_for(EVENT_SOURCE_ANNOTATION).unwrap_or(""),
        made_for(EVENT_ID_ANNOTATION).unwrap_or(""),
    )))
}

/// Lets a routed pod run (removes the routing gate it may carry) and deletes an unrouted one.
/// In a dry run nothing is changed, and the answer says what would have happened.
fn guard(
    calls: &mut ApiCalls<impl KubeApi>,
    request: &ClientRequest,
    found: &Found,
) -> Result<Provisioned, CallFailure> {
    let config = calls.config;
    let pod = &found.pod;
    let address = match config.routing_guard {
        RoutingGuard::Off => None,
        RoutingGuard::Gate | RoutingGuard::Delete => {
            let expected = config.expected_gateway_address(&request.gateway);
            match routing(pod, expected.as_deref()) {
                Routing::Routed { address } => Some(address),
                Routing::NotRouted(why) => return Err(remove_unrouted(calls, request, found, &why)),
            }
        }
    };
    if is_gated(pod) && !config.dry_run {
        calls.release_gate(&found.name, &pod.metadata.uid, ROUTING_GATE)?;
    }
    Ok(Provisioned { name: found.name.clone(), gateway_address: address })
}

/// Deletes a pod that is not routed; the answer is always a failure, saying why.
fn remove_unrouted(
    calls: &mut ApiCalls<impl KubeApi>,
    request: &ClientRequest,
    found: &Found,
    why: &str,
) -> CallFailure {
    let config = calls.config;
    let pod = &found.pod;
    let pod_ref = calls.pod_ref(&found.name);
    let gateway = &request.gateway;
    let checks = format!(
        "check that namespace {} has the label routed-gateway=true, that a pod-gateway release has \
         gatewayAnnotationValue {gateway} and reads the annotation {} (gateway_annotation), and that its \
         webhook is running (with failurePolicy Ignore a webhook that is down admits pods unrouted)",
        config.client_namespace, config.gateway_annotation
    );
    if config.dry_run {
        return CallFailure::Refused(format!(
            "pod {pod_ref} would not be routed through gateway {gateway}: {why} (dry run: nothing was \
             created); {checks}"
        ));
    }
    let when = match (is_gated(pod), found.created) {
        (true, _) => "before anything ran in it",
        (false, true) => "right after it was created",
        (false, false) => "now; nothing held it back, so it may have run unrouted until then",
    };
    match calls.delete(&found.name, &pod.metadata.uid, Deletion::Now) {
        Ok(()) => CallFailure::Refused(format!(
            "pod {pod_ref} was not routed through gateway {gateway}: {why}; it was deleted {when}; {checks}"
        )),
        Err(CallFailure::Refused(refusal)) => CallFailure::Refused(format!(
            "pod {pod_ref} is not routed through gateway {gateway} ({why}) and could not be deleted: \
             {refusal}; delete it by hand"
        )),
        Err(other) => other,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::tests::load_with;
    use crate::kube::TransportError;
    use crate::kube::calls::tests::{ScriptedApi, answer, status};
    use crate::pod::shape::tests::request;
    use serde_json::{Value, json};

    fn existing_pod(source: &str, id: &str) -> Value {
        json!({"kind": "Pod", "apiVersion": "v1", "metadata": {
            "name": "podgateway-client-7678b351e70b8efde9a6", "namespace": "default",
            "annotations": {"podgateway.io/event-source": source, "podgateway.io/event-id": id}}})
    }

    /// Creating and adopting, without the routing check (`routing_guard = off`).
    fn run(answers: Vec<Result<http::Response<Vec<u8>>, TransportError>>) -> (Provisioning, ScriptedApi) {
        run_with(&[("routing_guard", "off")], answers)
    }

    fn run_with(
        variables: &[(&'static str, &str)],
        answers: Vec<Result<http::Response<Vec<u8>>, TransportError>>,
    ) -> (Provisioning, ScriptedApi) {
        let mut variables = variables.to_vec();
        variables.push(("k8s_api_url", "http://127.0.0.1:8001"));
        let config = load_with(&variables).unwrap();
        let mut api = ScriptedApi::new(answers);
        (provision(&config, &request("foo"), &mut api), api)
    }

    const NAME: &str = "podgateway-client-7678b351e70b8efde9a6";

    fn done(address: Option<&str>) -> Result<Provisioned, CallFailure> {
        Ok(Provisioned { name: NAME.into(), gateway_address: address.map(String::from) })
    }

    #[test]
    fn created() {
        let (result, api) = run(vec![answer(201, json!({"kind": "Pod"}))]);
        assert_eq!(result.pod, done(None));
        assert_eq!(result.api_statuses, [201]);
        assert_eq!(api.sent.len(), 1);
        let sent: Value = serde_json::from_slice(api.sent[0].body()).unwrap();
        let config = load_with(&[("routing_guard", "off")]).unwrap();
        assert_eq!(sent, client_pod(&config, &request("foo")).unwrap());
    }

    #[test]
    fn already_created_by_this_event_is_done() {
        let (result, api) = run(vec![
            answer(409, status(409, "AlreadyExists", &format!("pods \"{NAME}\" already exists"))),
            answer(200, existing_pod("urn:test", "42")),
        ]);
        assert_eq!(result.pod, done(None));
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
                 check the Role bound to the component's ServiceAccount (create, get, patch and delete on \
                 pods) and that client_namespace is not being deleted"
            )))
        );
        for (code, reason, hint) in [
            (401, "Unauthorized", "check k8s_token"),
            (404, "NotFound", "check client_namespace"),
            (422, "Invalid", "check client_pod_template, client_image"),
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

    /// The pod of the reference event as the API answers it: `routed` through foo's Service
    /// or not mutated at all, `gated` or not.
    fn admitted(routed: bool, gated: bool) -> Value {
        let foo = "pod-gateway-foo-main.gateway-system.svc.cluster.local";
        let injected =
            |name: &str| json!({"name": name, "image": "pg", "env": [{"name": "gateway", "value": foo}]});
        let mut pod = existing_pod("urn:test", "42");
        pod["metadata"]["uid"] = json!("uid-1");
        pod["spec"] = json!({"containers": [{"name": "client", "image": "alpine/curl"}]});
        if routed {
            pod["spec"]["initContainers"] = json!([injected("gateway-init")]);
            pod["spec"]["containers"].as_array_mut().unwrap().push(injected("gateway-sidecar"));
        }
        if gated {
            pod["spec"]["schedulingGates"] = json!([{"name": "podgateway.io/routing-check"}]);
        }
        pod
    }

    const FOO: &str = "pod-gateway-foo-main.gateway-system.svc.cluster.local";

    #[test]
    fn a_routed_pod_is_released_from_its_gate() {
        let (result, api) =
            run_with(&[], vec![answer(201, admitted(true, true)), answer(200, admitted(true, false))]);
        assert_eq!(result.pod, done(Some(FOO)));
        assert_eq!(result.api_statuses, [201, 200]);
        let patch = &api.sent[1];
        assert_eq!(patch.method(), http::Method::PATCH);
        assert_eq!(
            patch.uri(),
            &*format!(
                "http://127.0.0.1:8001/api/v1/namespaces/default/pods/{NAME}?&fieldManager=podgateway-client-provisioner"
            )
        );
        assert_eq!(patch.headers()["content-type"], "application/strategic-merge-patch+json");
        assert_eq!(
            serde_json::from_slice::<Value>(patch.body()).unwrap(),
            json!({"metadata": {"uid": "uid-1"},
                   "spec": {"schedulingGates": [{"$patch": "delete", "name": "podgateway.io/routing-check"}]}})
        );
        // In delete mode the pod was never gated: one call. With a template, the address is checked.
        let template = [
            ("routing_guard", "delete"),
            ("gateway_address_template", "pod-gateway-{gateway}-main.gateway-system.svc.cluster.local"),
        ];
        let (result, _) = run_with(&template, vec![answer(201, admitted(true, false))]);
        assert_eq!(result.pod, done(Some(FOO)));
    }

    #[test]
    fn an_unrouted_pod_is_deleted_by_its_uid() {
        for (variables, gated, when) in [
            (&[][..], true, "before anything ran in it"),
            (&[("routing_guard", "delete")][..], false, "right after it was created"),
        ] {
            let (result, api) = run_with(
                variables,
                vec![answer(201, admitted(false, gated)), answer(200, admitted(false, gated))],
            );
            let Err(CallFailure::Refused(message)) = result.pod else { panic!("{result:?}") };
            assert_eq!(
                message,
                format!(
                    "pod default/{NAME} was not routed through gateway foo: it has no gateway-init init container: \
                     no pod-gateway webhook mutated it; it was deleted {when}; check that namespace default has the \
                     label routed-gateway=true, that a pod-gateway release has gatewayAnnotationValue foo and reads \
                     the annotation setGateway (gateway_annotation), and that its webhook is running (with \
                     failurePolicy Ignore a webhook that is down admits pods unrouted)"
                )
            );
            let delete = &api.sent[1];
            assert_eq!(delete.method(), http::Method::DELETE);
            assert_eq!(
                serde_json::from_slice::<Value>(delete.body()).unwrap(),
                json!({"gracePeriodSeconds": 0, "preconditions": {"uid": "uid-1"}})
            );
        }
    }

    #[test]
    fn an_adopted_unrouted_pod_is_deleted_and_said_to_have_run() {
        let (result, _) = run_with(
            &[],
            vec![
                answer(409, status(409, "AlreadyExists", "exists")),
                answer(200, admitted(false, false)),
                answer(200, json!({})),
            ],
        );
        let Err(CallFailure::Refused(message)) = result.pod else { panic!("{result:?}") };
        assert!(
            message
                .contains("it was deleted now; nothing held it back, so it may have run unrouted until then"),
            "{message}"
        );
        assert_eq!(result.api_statuses, [409, 200, 200]);
    }

    #[test]
    fn deletion_answers() {
        let unrouted = || answer(201, admitted(false, true));
        // Already gone: deleted all the same.
        let (result, _) = run_with(&[], vec![unrouted(), answer(404, status(404, "NotFound", "gone"))]);
        assert!(
            matches!(&result.pod, Err(CallFailure::Refused(m)) if m.contains("it was deleted")),
            "{result:?}"
        );
        // A newer pod of that name: for the redelivery to check.
        let conflict = status(
            409,
            "Conflict",
            "Operation cannot be fulfilled on Pod \"p\": the UID in the precondition (a) does not match the UID in record (b). The object might have been deleted and then recreated",
        );
        let (result, _) = run_with(&[], vec![unrouted(), answer(409, conflict)]);
        let Err(CallFailure::Unavailable { message, .. }) = result.pod else { panic!("{result:?}") };
        assert!(
            message.starts_with(&format!("could not delete pod default/{NAME}: 409 Conflict")),
            "{message}"
        );
        assert!(message.ends_with("a newer pod of that name exists"), "{message}");
        // Not allowed: the pod stays, and the reply says so.
        let (result, _) =
            run_with(&[], vec![unrouted(), answer(403, status(403, "Forbidden", "pods is forbidden"))]);
        let Err(CallFailure::Refused(message)) = result.pod else { panic!("{result:?}") };
        assert!(
            message.contains("and could not be deleted: the Kubernetes API refused to delete pod"),
            "{message}"
        );
        assert!(message.ends_with("delete it by hand"), "{message}");
        // Later: retried.
        let (result, _) = run_with(&[], vec![unrouted(), answer(503, status(503, "ServiceUnavailable", ""))]);
        assert!(matches!(result.pod, Err(CallFailure::Unavailable { .. })), "{result:?}");
    }

    #[test]
    fn gate_removal_answers() {
        let routed = || answer(201, admitted(true, true));
        for code in [404, 422] {
            let (result, _) = run_with(&[], vec![routed(), answer(code, status(code, "x", "y"))]);
            let Err(CallFailure::Unavailable { message, .. }) = result.pod else {
                panic!("{code}: {result:?}")
            };
            assert!(message.ends_with("the pod was deleted or replaced meanwhile"), "{message}");
        }
        let (result, _) = run_with(&[], vec![routed(), answer(403, status(403, "Forbidden", "no"))]);
        let Err(CallFailure::Refused(message)) = result.pod else { panic!("{result:?}") };
        assert!(message.starts_with(&format!(
            "the Kubernetes API refused to remove the routing gate of pod default/{NAME}"
        )));
        assert!(message.contains("(create, get, patch and delete on pods)"), "{message}");
    }

    #[test]
    fn a_dry_run_changes_nothing() {
        let (result, api) = run_with(&[("dry_run", "true")], vec![answer(201, admitted(true, true))]);
        assert_eq!(result.pod, done(Some(FOO)));
        assert_eq!(api.sent.len(), 1);
        let (result, api) = run_with(&[("dry_run", "true")], vec![answer(201, admitted(false, true))]);
        let Err(CallFailure::Refused(message)) = result.pod else { panic!("{result:?}") };
        assert!(
            message.starts_with(&format!("pod default/{NAME} would not be routed through gateway foo")),
            "{message}"
        );
        assert!(message.contains("(dry run: nothing was created)"), "{message}");
        assert_eq!(api.sent.len(), 1);
    }

    #[test]
    fn with_the_guard_off_a_gated_pod_is_released_unchecked() {
        let (result, api) = run(vec![answer(201, admitted(false, true)), answer(200, json!({}))]);
        assert_eq!(result.pod, done(None));
        assert_eq!(api.sent[1].method(), http::Method::PATCH);
    }
}
