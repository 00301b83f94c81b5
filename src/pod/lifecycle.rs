//! What a change of a client pod, as Knative's ApiServerSource reports it, means in the
//! client's life: it is now ready (running, ready and routed), it has finished (its work is
//! over for good), it is gone before it finished, or nothing worth telling happened. A pure
//! decision over the pod as the API holds it.

use crate::kube::responses::{ContainerStatusView, PodView};
use crate::pod::routing::{Routing, routing};
use crate::pod::template::CLIENT_CONTAINER;

/// How the pod changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Updated,
    Deleted,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lifecycle {
    /// Running, ready, and routed through the gateway at `address`.
    Ready { address: String, started_at: Option<String> },
    /// Its work is over: the `client` container ended and will not be restarted, or the
    /// pod's phase is final.
    Finished(Ending),
    /// Deleted before it finished.
    Gone { reason: Option<String>, message: Option<String> },
    /// Nothing to tell; why, in words.
    Quiet(String),
}

/// How the client's work ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub finished_at: Option<String>,
}

/// What `change` of `pod` means; `expected_address` is the gateway address a routed pod must
/// carry, when one is configured.
pub fn lifecycle(change: Change, pod: &PodView, expected_address: Option<&str>) -> Lifecycle {
    if let Some(ending) = ending(pod) {
        return Lifecycle::Finished(ending);
    }
    match change {
        Change::Deleted => gone(pod),
        Change::Updated => ready(pod, expected_address),
    }
}

fn client_status(pod: &PodView) -> Option<&ContainerStatusView> {
    pod.status.container_statuses.iter().find(|status| status.name == CLIENT_CONTAINER)
}

/// The end of the client's work, if it is over: a final phase, or a `client` container that
/// terminated and that the pod's restart policy will not start again.
fn ending(pod: &PodView) -> Option<Ending> {
    let terminated = client_status(pod).and_then(|status| status.state.terminated.as_ref());
    let final_phase = matches!(pod.status.phase.as_deref(), Some("Succeeded" | "Failed"));
    let restarted = |exit_code: i32| match pod.spec.restart_policy.as_deref() {
        Some("Never") => false,
        Some("OnFailure") => exit_code != 0,
        // `Always`, the API's default.
        _ => true,
    };
    if !final_phase && terminated.is_none_or(|terminated| restarted(terminated.exit_code)) {
        return None;
    }
    Some(Ending {
        exit_code: terminated.map(|terminated| terminated.exit_code),
        // A pod-level reason (Evicted, DeadlineExceeded) says more than the container's.
        reason: pod.status.reason.clone().or_else(|| terminated.and_then(|t| t.reason.clone())),
        message: pod.status.message.clone().or_else(|| terminated.and_then(|t| t.message.clone())),
        finished_at: terminated.and_then(|terminated| terminated.finished_at.clone()),
    })
}

fn gone(pod: &PodView) -> Lifecycle {
    let state = client_status(pod).map(|status| &status.state);
    let waiting = state.and_then(|state| state.waiting.as_ref());
    let terminated = state.and_then(|state| state.terminated.as_ref());
    // The pod's own word first, then the client's (waiting to start, or ended).
    let first = |candidates: [Option<&String>; 3]| candidates.into_iter().flatten().next().cloned();
    Lifecycle::Gone {
        reason: first([
            pod.status.reason.as_ref(),
            waiting.and_then(|w| w.reason.as_ref()),
            terminated.and_then(|t| t.reason.as_ref()),
        ]),
        message: first([
            pod.status.message.as_ref(),
            waiting.and_then(|w| w.message.as_ref()),
            terminated.and_then(|t| t.message.as_ref()),
        ]),
    }
}

fn ready(pod: &PodView, expected_address: Option<&str>) -> Lifecycle {
    let status = &pod.status;
    if pod.metadata.deletion_timestamp.is_some() {
        return Lifecycle::Quiet("it is being deleted".into());
    }
    let phase = status.phase.as_deref().unwrap_or("Pending");
    if phase != "Running" {
        return Lifecycle::Quiet(format!("it is {phase}"));
    }
    if !status.conditions.iter().any(|condition| condition.kind == "Ready" && condition.status == "True") {
        return Lifecycle::Quiet("it is running but not ready".into());
    }
    match routing(pod, expected_address) {
        Routing::NotRouted(why) => Lifecycle::Quiet(format!("it is running and ready but not routed: {why}")),
        Routing::Routed { address } => Lifecycle::Ready {
            address,
            started_at: client_status(pod)
                .and_then(|client| client.state.running.as_ref())
                .and_then(|running| running.started_at.clone())
                .or_else(|| status.start_time.clone()),
        },
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{Value, json};

    const FOO: &str = "pod-gateway-foo-main.gateway-system.svc.cluster.local";
    const STARTED: &str = "2026-12-01T10:00:07Z";
    const FINISHED: &str = "2026-12-01T10:03:41Z";

    /// A routed client pod (native gateway sidecar) as the API holds it once the kubelet runs
    /// it: the fields and shapes of `kubectl get pod -o json` (Kubernetes API reference: Pod,
    /// PodStatus, PodCondition, ContainerStatus, ContainerState).
    pub(crate) fn running_pod() -> Value {
        let injected = |name: &str| {
            json!({"name": name, "image": "ghcr.io/angelnu/pod-gateway:v1.13.0",
                                          "env": [{"name": "gateway", "value": FOO}]})
        };
        let mut sidecar = injected("gateway-sidecar");
        sidecar["restartPolicy"] = json!("Always");
        let condition = |kind: &str| {
            json!({"type": kind, "status": "True", "lastProbeTime": null,
                                            "lastTransitionTime": "2026-12-01T10:00:07Z"})
        };
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "podgateway-client-7678b351e70b8efde9a6", "namespace": "default",
                "uid": "8f1c7a52-3c3e-4e0b-9a51-0d2f5b6e4a10", "resourceVersion": "48211",
                "creationTimestamp": "2026-12-01T10:00:00Z",
                "labels": {"app.kubernetes.io/managed-by": "podgateway-client-provisioner",
                           "app.kubernetes.io/name": "podgateway-client", "podgateway.io/gateway": "foo"},
                "annotations": {"podgateway.io/event-id": "42", "podgateway.io/event-source": "urn:test",
                                "setGateway": "foo"}
            },
            "spec": {
                "initContainers": [injected("gateway-init"), sidecar],
                "containers": [{"name": "client", "image": "alpine/curl", "command": ["sleep", "infinity"]}],
                "restartPolicy": "Never", "nodeName": "kind-worker", "dnsPolicy": "None",
                "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"
            },
            "status": {
                "phase": "Running",
                "conditions": [condition("PodReadyToStartContainers"), condition("Initialized"),
                               condition("Ready"), condition("ContainersReady"), condition("PodScheduled")],
                "hostIP": "172.18.0.3", "hostIPs": [{"ip": "172.18.0.3"}],
                "podIP": "10.244.1.17", "podIPs": [{"ip": "10.244.1.17"}],
                "startTime": "2026-12-01T10:00:01Z",
                "initContainerStatuses": [
                    {"name": "gateway-init", "ready": true, "restartCount": 0, "started": false,
                     "image": "ghcr.io/angelnu/pod-gateway:v1.13.0", "imageID": "ghcr.io/angelnu/pod-gateway@sha256:1f0e",
                     "containerID": "containerd://a1", "lastState": {},
                     "state": {"terminated": {"exitCode": 0, "reason": "Completed", "containerID": "containerd://a1",
                                              "startedAt": "2026-12-01T10:00:03Z", "finishedAt": "2026-12-01T10:00:05Z"}}},
                    {"name": "gateway-sidecar", "ready": true, "restartCount": 0, "started": true,
                     "image": "ghcr.io/angelnu/pod-gateway:v1.13.0", "imageID": "ghcr.io/angelnu/pod-gateway@sha256:1f0e",
                     "containerID": "containerd://a2", "lastState": {},
                     "state": {"running": {"startedAt": "2026-12-01T10:00:06Z"}}}
                ],
                "containerStatuses": [
                    {"name": "client", "ready": true, "restartCount": 0, "started": true,
                     "image": "docker.io/alpine/curl:latest", "imageID": "docker.io/alpine/curl@sha256:9a3b",
                     "containerID": "containerd://b1", "lastState": {},
                     "state": {"running": {"startedAt": STARTED}}}
                ],
                "qosClass": "BestEffort"
            }
        })
    }

    /// The pod once its `client` container ended with `exit_code`, as the kubelet reports it
    /// with `restart_policy`: final phase for `Never` (and `OnFailure` after success), its
    /// native sidecar stopped after it.
    pub(crate) fn ended_pod(restart_policy: &str, exit_code: i32) -> Value {
        let mut pod = running_pod();
        pod["spec"]["restartPolicy"] = json!(restart_policy);
        let reason = if exit_code == 0 { "Completed" } else { "Error" };
        pod["status"]["containerStatuses"][0]["ready"] = json!(false);
        pod["status"]["containerStatuses"][0]["started"] = json!(false);
        pod["status"]["containerStatuses"][0]["state"] = json!({"terminated": {
            "exitCode": exit_code, "reason": reason, "containerID": "containerd://b1",
            "startedAt": STARTED, "finishedAt": FINISHED}});
        let final_phase = match restart_policy {
            "Never" => Some(if exit_code == 0 { "Succeeded" } else { "Failed" }),
            "OnFailure" if exit_code == 0 => Some("Succeeded"),
            _ => None,
        };
        for condition in pod["status"]["conditions"].as_array_mut().unwrap() {
            if condition["type"] == "Ready" || condition["type"] == "ContainersReady" {
                condition["status"] = json!("False");
                condition["reason"] =
                    json!(if final_phase.is_some() { "PodCompleted" } else { "ContainersNotReady" });
            }
        }
        if let Some(phase) = final_phase {
            pod["status"]["phase"] = json!(phase);
            pod["status"]["initContainerStatuses"][1]["ready"] = json!(false);
            pod["status"]["initContainerStatuses"][1]["state"] = json!({"terminated": {
                "exitCode": 0, "reason": "Completed", "containerID": "containerd://a2",
                "startedAt": "2026-12-01T10:00:06Z", "finishedAt": "2026-12-01T10:03:42Z"}});
        }
        pod
    }

    fn view(pod: &Value) -> PodView {
        serde_json::from_value(pod.clone()).unwrap()
    }

    fn on(change: Change, pod: &Value) -> Lifecycle {
        lifecycle(change, &view(pod), None)
    }

    fn ending(exit_code: i32, reason: &str) -> Lifecycle {
        Lifecycle::Finished(Ending {
            exit_code: Some(exit_code),
            reason: Some(reason.into()),
            message: None,
            finished_at: Some(FINISHED.into()),
        })
    }

    #[test]
    fn a_running_ready_routed_pod_is_ready() {
        let ready = Lifecycle::Ready { address: FOO.into(), started_at: Some(STARTED.into()) };
        assert_eq!(on(Change::Updated, &running_pod()), ready);
        assert_eq!(lifecycle(Change::Updated, &view(&running_pod()), Some(FOO)), ready);
        // Without the client's own start time, the pod's.
        let mut pod = running_pod();
        pod["status"]["containerStatuses"] = json!([]);
        assert_eq!(
            on(Change::Updated, &pod),
            Lifecycle::Ready { address: FOO.into(), started_at: Some("2026-12-01T10:00:01Z".into()) }
        );
    }

    #[test]
    fn not_yet_ready_being_deleted_or_unrouted_is_quiet() {
        let quiet = |pod: &Value| match on(Change::Updated, pod) {
            Lifecycle::Quiet(why) => why,
            other => panic!("{other:?}"),
        };
        let mut pending = running_pod();
        pending["status"] = json!({"phase": "Pending", "qosClass": "BestEffort", "conditions": [
            {"type": "PodScheduled", "status": "False", "lastProbeTime": null, "lastTransitionTime": "2026-12-01T10:00:00Z",
             "reason": "SchedulingGated", "message": "Scheduling is blocked due to non-empty scheduling gates"}]});
        assert_eq!(quiet(&pending), "it is Pending");
        let mut not_ready = running_pod();
        not_ready["status"]["conditions"][2]["status"] = json!("False");
        assert_eq!(quiet(&not_ready), "it is running but not ready");
        let mut deleting = running_pod();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-12-01T10:05:00Z");
        deleting["metadata"]["deletionGracePeriodSeconds"] = json!(30);
        assert_eq!(quiet(&deleting), "it is being deleted");
        let mut unrouted = running_pod();
        unrouted["spec"]["initContainers"] = json!([]);
        assert!(
            quiet(&unrouted).starts_with("it is running and ready but not routed: it has no gateway-init")
        );
        assert_eq!(
            lifecycle(
                Change::Updated,
                &view(&running_pod()),
                Some("pod-gateway-bar-main.gateway-system.svc.cluster.local")
            ),
            Lifecycle::Quiet(format!(
                "it is running and ready but not routed: it is routed through {FOO}, not through \
                 pod-gateway-bar-main.gateway-system.svc.cluster.local (gateway_address_template)"
            ))
        );
    }

    #[test]
    fn a_client_that_ended_for_good_is_finished() {
        assert_eq!(on(Change::Updated, &ended_pod("Never", 0)), ending(0, "Completed"));
        assert_eq!(on(Change::Updated, &ended_pod("Never", 3)), ending(3, "Error"));
        assert_eq!(on(Change::Updated, &ended_pod("OnFailure", 0)), ending(0, "Completed"));
        // The same pod's delete event says the same.
        assert_eq!(on(Change::Deleted, &ended_pod("Never", 0)), ending(0, "Completed"));
        // With a classic sidecar the phase stays Running; the client's state tells.
        let mut classic = ended_pod("Never", 0);
        classic["status"]["phase"] = json!("Running");
        assert_eq!(on(Change::Updated, &classic), ending(0, "Completed"));
    }

    #[test]
    fn a_client_that_will_be_restarted_has_not_finished() {
        for (policy, exit_code) in [("OnFailure", 1), ("Always", 0), ("Always", 2)] {
            let pod = ended_pod(policy, exit_code);
            assert_eq!(pod["status"]["phase"], "Running", "{policy}");
            assert_eq!(
                on(Change::Updated, &pod),
                Lifecycle::Quiet("it is running but not ready".into()),
                "{policy} {exit_code}"
            );
        }
        // Restarted and running again: ready.
        let mut restarted = running_pod();
        restarted["spec"]["restartPolicy"] = json!("OnFailure");
        restarted["status"]["containerStatuses"][0]["restartCount"] = json!(1);
        restarted["status"]["containerStatuses"][0]["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": STARTED, "finishedAt": FINISHED}});
        assert!(matches!(on(Change::Updated, &restarted), Lifecycle::Ready { .. }));
    }

    #[test]
    fn a_final_phase_is_finished_with_the_pods_reason() {
        // activeDeadlineSeconds: the kubelet kills the containers and fails the pod.
        let mut deadline = ended_pod("Never", 137);
        deadline["status"]["reason"] = json!("DeadlineExceeded");
        deadline["status"]["message"] =
            json!("Pod was active on the node longer than the specified deadline");
        assert_eq!(
            on(Change::Updated, &deadline),
            Lifecycle::Finished(Ending {
                exit_code: Some(137),
                reason: Some("DeadlineExceeded".into()),
                message: Some("Pod was active on the node longer than the specified deadline".into()),
                finished_at: Some(FINISHED.into()),
            })
        );
        // Evicted before the client's status was known.
        let mut evicted = running_pod();
        evicted["status"] = json!({"phase": "Failed", "reason": "Evicted",
            "message": "The node was low on resource: memory.", "startTime": "2026-12-01T10:00:01Z"});
        assert_eq!(
            on(Change::Updated, &evicted),
            Lifecycle::Finished(Ending {
                exit_code: None,
                reason: Some("Evicted".into()),
                message: Some("The node was low on resource: memory.".into()),
                finished_at: None,
            })
        );
    }

    #[test]
    fn a_pod_deleted_before_it_finished_is_gone() {
        assert_eq!(on(Change::Deleted, &running_pod()), Lifecycle::Gone { reason: None, message: None });
        let mut pulling = running_pod();
        pulling["status"]["phase"] = json!("Pending");
        pulling["status"]["containerStatuses"][0]["state"] = json!({"waiting": {
            "reason": "ImagePullBackOff", "message": "Back-off pulling image \"crawler:9\""}});
        assert_eq!(
            on(Change::Deleted, &pulling),
            Lifecycle::Gone {
                reason: Some("ImagePullBackOff".into()),
                message: Some("Back-off pulling image \"crawler:9\"".into())
            }
        );
    }
}
