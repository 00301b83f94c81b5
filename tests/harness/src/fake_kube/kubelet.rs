//! The scheduler and the kubelet, played on a stored pod so that scenarios can follow a client
//! through its life: bound to a node and started, then one container ending. The status they
//! write has the shape of a real one (Kubernetes API reference: PodStatus, PodCondition,
//! ContainerStatus, ContainerState) and follows the kubelet's rules:
//!
//! - A pod with scheduling gates is not scheduled. Once bound (`spec.nodeName`), regular init
//!   containers run to completion in order (`terminated`, `Completed`, exit 0, `ready: true`),
//!   sidecars (init containers with `restartPolicy: Always`) keep running (`started`, `ready`),
//!   then every container runs. Conditions `PodReadyToStartContainers`, `Initialized`,
//!   `Ready`, `ContainersReady`, `PodScheduled` are `True`; `hostIP(s)`, `podIP(s)`,
//!   `startTime` are set; the phase is `Running`.
//! - A container that ends is `terminated` with its exit code, reason `Completed` (0) or
//!   `Error`, `startedAt`/`finishedAt`; it is restarted (`restartCount` + 1, the old state in
//!   `lastState`, `running` again) when the pod's `restartPolicy` says so: `Always`, or
//!   `OnFailure` after a non-zero exit. While a container is not running, `Ready` and
//!   `ContainersReady` are `False` (`ContainersNotReady`).
//! - The phase (kubelet `getPhase`) ignores sidecars: once every regular container has
//!   terminated for good, it is `Succeeded` if all exited 0, else `Failed`; the kubelet then
//!   stops the sidecars (`terminated`, `Completed`), and `Ready` is `False` with reason
//!   `PodCompleted`. A classic sidecar (a regular container) that keeps running keeps the
//!   pod `Running`.

use serde_json::{Map, Value, json};

use super::FakeKube;
use super::pod::rfc3339_now;

const NODE: &str = "kind-worker";
const HOST_IP: &str = "172.18.0.3";

impl FakeKube {
    /// Schedules the pod on a node and starts it. Returns the stored pod; `None` if there is
    /// no such pod or it is still gated.
    pub fn start_pod(&self, namespace: &str, name: &str) -> Option<Value> {
        self.update_pod(namespace, name, |pod| {
            if pod["spec"]["schedulingGates"].as_array().is_some_and(|gates| !gates.is_empty()) {
                return false;
            }
            let now = rfc3339_now();
            pod["spec"]["nodeName"] = json!(NODE);
            let statuses = |list: &str, init: bool| -> Vec<Value> {
                pod["spec"][list]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, container)| {
                        let sidecar = container["restartPolicy"] == "Always";
                        let state = if init && !sidecar {
                            terminated(0, &now, &now, &container_id(list, i))
                        } else {
                            json!({"running": {"startedAt": now}})
                        };
                        container_status(container, state, !init || sidecar, &container_id(list, i))
                    })
                    .collect()
            };
            let (init_statuses, statuses) = (statuses("initContainers", true), statuses("containers", false));
            let conditions: Vec<Value> =
                ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
                    .iter()
                    .map(|kind| json!({"type": kind, "status": "True", "lastProbeTime": null, "lastTransitionTime": now}))
                    .collect();
            let status = pod["status"].as_object_mut().expect("a stored pod has a status");
            let ip = format!("10.244.1.{}", 2 + name.len() % 250);
            status.insert("phase".into(), json!("Running"));
            status.insert("conditions".into(), json!(conditions));
            status.insert("hostIP".into(), json!(HOST_IP));
            status.insert("hostIPs".into(), json!([{"ip": HOST_IP}]));
            status.insert("podIP".into(), json!(ip));
            status.insert("podIPs".into(), json!([{"ip": ip}]));
            status.insert("startTime".into(), json!(now));
            if !init_statuses.is_empty() {
                status.insert("initContainerStatuses".into(), json!(init_statuses));
            }
            status.insert("containerStatuses".into(), json!(statuses));
            true
        })
    }

    /// The regular container `container` ends with `exit_code`; the kubelet restarts it or
    /// not, and sets the phase. Returns the stored pod; `None` if there is no such running
    /// container.
    pub fn end_container(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
        exit_code: i32,
    ) -> Option<Value> {
        self.update_pod(namespace, name, |pod| {
            let policy = pod["spec"]["restartPolicy"].as_str().unwrap_or("Always").to_owned();
            let restarted = match policy.as_str() {
                "Never" => false,
                "OnFailure" => exit_code != 0,
                _ => true,
            };
            let now = rfc3339_now();
            let Some(status) = pod["status"]["containerStatuses"]
                .as_array_mut()
                .and_then(|all| all.iter_mut().find(|s| s["name"] == container))
            else {
                return false;
            };
            let Some(started_at) = status["state"]["running"]["startedAt"].as_str().map(str::to_owned) else {
                return false;
            };
            let ended =
                terminated(exit_code, &started_at, &now, status["containerID"].as_str().unwrap_or(""));
            if restarted {
                status["lastState"] = ended;
                status["state"] = json!({"running": {"startedAt": now}});
                status["restartCount"] = json!(status["restartCount"].as_i64().unwrap_or(0) + 1);
                return true;
            }
            status["state"] = ended;
            status["ready"] = json!(false);
            status["started"] = json!(false);
            set_phase(pod, &now);
            true
        })
    }

    /// Changes a stored pod (bumping its `resourceVersion`) when `change` says it did.
    fn update_pod(
        &self,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value) -> bool,
    ) -> Option<Value> {
        let mut state = self.state();
        let mut pod = state.pods.get(namespace)?.get(name)?.clone();
        if !change(&mut pod) {
            return None;
        }
        let rv = state.next_resource_version();
        pod["metadata"]["resourceVersion"] = json!(rv.to_string());
        state.pods.get_mut(namespace)?.insert(name.to_owned(), pod.clone());
        Some(pod)
    }
}

fn container_id(list: &str, i: usize) -> String {
    format!("containerd://{list}-{i}")
}

fn terminated(exit_code: i32, started_at: &str, finished_at: &str, container_id: &str) -> Value {
    let reason = if exit_code == 0 { "Completed" } else { "Error" };
    json!({"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": started_at,
                          "finishedAt": finished_at, "containerID": container_id}})
}

/// A container's status right after the pod started: every one is ready (a regular init
/// container once it completed), those still running are `started`.
fn container_status(container: &Value, state: Value, started: bool, container_id: &str) -> Value {
    let image = container["image"].as_str().unwrap_or_default();
    json!({"name": container["name"], "state": state, "lastState": {}, "ready": true,
           "restartCount": 0, "started": started, "image": image,
           "imageID": format!("{image}@sha256:0000"), "containerID": container_id})
}

/// The kubelet's phase once a container ended for good: final when no regular container runs.
fn set_phase(pod: &mut Value, now: &str) {
    let statuses: Vec<Value> = pod["status"]["containerStatuses"].as_array().cloned().unwrap_or_default();
    let running = statuses.iter().any(|s| s["state"].get("terminated").is_none());
    let set_condition = |pod: &mut Value, reason: &str| {
        for condition in pod["status"]["conditions"].as_array_mut().into_iter().flatten() {
            if condition["type"] == "Ready" || condition["type"] == "ContainersReady" {
                condition["status"] = json!("False");
                condition["reason"] = json!(reason);
                condition["lastTransitionTime"] = json!(now);
            }
        }
    };
    if running {
        set_condition(pod, "ContainersNotReady");
        return;
    }
    let succeeded = statuses.iter().all(|s| s["state"]["terminated"]["exitCode"] == 0);
    set_condition(pod, "PodCompleted");
    let status: &mut Map<String, Value> = pod["status"].as_object_mut().expect("a status");
    status.insert("phase".into(), json!(if succeeded { "Succeeded" } else { "Failed" }));
    for sidecar in status.get_mut("initContainerStatuses").and_then(Value::as_array_mut).into_iter().flatten()
    {
        if let Some(started_at) = sidecar["state"]["running"]["startedAt"].as_str().map(str::to_owned) {
            let id = sidecar["containerID"].as_str().unwrap_or("").to_owned();
            sidecar["state"] = terminated(0, &started_at, now, &id);
            sidecar["ready"] = json!(false);
            sidecar["started"] = json!(false);
        }
    }
}
