//! Whether a pod as the API admitted it is routed through its gateway. The pod-gateway
//! admission webhook marks a routed pod with nothing but what it injects: one `gateway-init`
//! init container and a `gateway-sidecar` (a container, or with `sidecarAsInit` an init
//! container after `gateway-init` with `restartPolicy: Always`), both carrying the gateway
//! Service's address in the env var `gateway` (angelnu/gateway-admision-controller v3.10–v3.12).

use crate::kube::responses::{ContainerView, PodView};

/// The scheduling gate that keeps a new client pod off every node until it is seen routed.
pub const ROUTING_GATE: &str = "podgateway.io/routing-check";
const INIT_CONTAINER: &str = "gateway-init";
const SIDECAR: &str = "gateway-sidecar";
/// The env var of the injected containers that holds the gateway's address.
const ADDRESS_VAR: &str = "gateway";

/// What the admitted pod says about its egress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    /// Routed through the gateway at `address`.
    Routed { address: String },
    /// Not routed, or not through the expected gateway: why, in words.
    NotRouted(String),
}

/// Checks the injected containers; with `expected_address`, their `gateway` must be it.
pub fn routing(pod: &PodView, expected_address: Option<&str>) -> Routing {
    let spec = &pod.spec;
    let inits: Vec<usize> =
        (0..spec.init_containers.len()).filter(|&i| spec.init_containers[i].name == INIT_CONTAINER).collect();
    let init_at = match inits[..] {
        [] => {
            return not_routed(format!(
                "it has no {INIT_CONTAINER} init container: no pod-gateway webhook mutated it"
            ));
        }
        [one] => one,
        _ => {
            return not_routed(format!(
                "it has {} {INIT_CONTAINER} init containers: more than one pod-gateway webhook mutated it",
                inits.len()
            ));
        }
    };
    let native_sidecar =
        |c: &&ContainerView| c.name == SIDECAR && c.restart_policy.as_deref() == Some("Always");
    let sidecar = spec
        .containers
        .iter()
        .find(|c| c.name == SIDECAR)
        .or_else(|| spec.init_containers[init_at + 1..].iter().find(native_sidecar));
    let Some(sidecar) = sidecar else {
        return not_routed(format!("it has {INIT_CONTAINER} but no {SIDECAR}"));
    };
    let address = spec.init_containers[init_at].env(ADDRESS_VAR).unwrap_or_default();
    if address.is_empty() {
        return not_routed(format!("its {INIT_CONTAINER} has no `{ADDRESS_VAR}` address"));
    }
    if sidecar.env(ADDRESS_VAR) != Some(address) {
        return not_routed(format!(
            "its {INIT_CONTAINER} and {SIDECAR} point at different gateways ({address:?}, {:?})",
            sidecar.env(ADDRESS_VAR).unwrap_or_default()
        ));
    }
    match expected_address {
        Some(expected) if expected != address => not_routed(format!(
            "it is routed through {address}, not through {expected} (gateway_address_template)"
        )),
        _ => Routing::Routed { address: address.to_owned() },
    }
}

fn not_routed(why: String) -> Routing {
    Routing::NotRouted(why)
}

/// Whether the pod still carries the routing gate.
pub fn is_gated(pod: &PodView) -> bool {
    pod.spec.scheduling_gates.iter().any(|gate| gate.name == ROUTING_GATE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const FOO: &str = "pod-gateway-foo-main.gateway-system.svc.cluster.local";

    /// An injected container as the webhook writes it (the fields that matter here and a few
    /// around them, as in a real admitted pod).
    fn injected(name: &str, gateway: &str) -> Value {
        json!({
            "name": name, "image": "ghcr.io/angelnu/pod-gateway:v1.13.0",
            "command": [if name == INIT_CONTAINER { "/bin/client_init.sh" } else { "/bin/client_sidecar.sh" }],
            "env": [{"name": "gateway", "value": gateway}, {"name": "DNS", "value": "172.16.0.1"},
                    {"name": "DNS_ips", "value": "172.16.0.1"}, {"name": "K8S_DNS_ips", "value": "10.96.0.10"}],
            "volumeMounts": [{"name": "gateway-configmap", "readOnly": true, "mountPath": "/config"}],
            "imagePullPolicy": "IfNotPresent",
            "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}, "runAsUser": 0, "runAsNonRoot": false}
        })
    }

    fn pod(init_containers: Vec<Value>, containers: Vec<Value>) -> PodView {
        let mut all = vec![json!({"name": "client", "image": "alpine/curl"})];
        all.extend(containers);
        let body = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "uid": "u"},
            "spec": {"initContainers": init_containers, "containers": all,
                     "schedulingGates": [{"name": ROUTING_GATE}]},
            "status": {"phase": "Pending"}
        });
        PodView::parse(body.to_string().as_bytes()).unwrap()
    }

    fn routed(address: &str) -> Routing {
        Routing::Routed { address: address.into() }
    }

    #[test]
    fn the_classic_layout_is_routed() {
        let pod = pod(vec![injected(INIT_CONTAINER, FOO)], vec![injected(SIDECAR, FOO)]);
        assert_eq!(routing(&pod, None), routed(FOO));
        assert_eq!(routing(&pod, Some(FOO)), routed(FOO));
        assert!(is_gated(&pod));
    }

    #[test]
    fn the_native_sidecar_layout_is_routed() {
        let mut sidecar = injected(SIDECAR, FOO);
        sidecar["restartPolicy"] = json!("Always");
        let own = json!({"name": "fetch-config", "image": "busybox"});
        let pod = pod(vec![own, injected(INIT_CONTAINER, FOO), sidecar], vec![]);
        assert_eq!(routing(&pod, Some(FOO)), routed(FOO));
    }

    #[test]
    fn an_unmutated_pod_is_not_routed() {
        assert_eq!(
            routing(&pod(vec![], vec![]), None),
            Routing::NotRouted(
                "it has no gateway-init init container: no pod-gateway webhook mutated it".into()
            )
        );
    }

    #[test]
    fn two_webhooks_or_a_missing_sidecar_are_not_routed() {
        let bar = "pod-gateway-bar-main.gateway-system.svc.cluster.local";
        let twice = pod(
            vec![injected(INIT_CONTAINER, FOO), injected(INIT_CONTAINER, bar)],
            vec![injected(SIDECAR, FOO), injected(SIDECAR, bar)],
        );
        assert_eq!(
            routing(&twice, None),
            Routing::NotRouted(
                "it has 2 gateway-init init containers: more than one pod-gateway webhook mutated it".into()
            )
        );
        let no_sidecar = pod(vec![injected(INIT_CONTAINER, FOO)], vec![]);
        assert_eq!(
            routing(&no_sidecar, None),
            Routing::NotRouted("it has gateway-init but no gateway-sidecar".into())
        );
        // An init container named like the sidecar but without restartPolicy Always does not
        // run beside the others: it is no sidecar.
        let not_native = pod(vec![injected(INIT_CONTAINER, FOO), injected(SIDECAR, FOO)], vec![]);
        assert!(matches!(routing(&not_native, None), Routing::NotRouted(_)));
        let mixed = pod(vec![injected(INIT_CONTAINER, FOO)], vec![injected(SIDECAR, bar)]);
        assert_eq!(
            routing(&mixed, None),
            Routing::NotRouted(format!(
                "its gateway-init and gateway-sidecar point at different gateways ({FOO:?}, {bar:?})"
            ))
        );
    }

    #[test]
    fn the_address_must_match_the_template() {
        let chart_6 = "pod-gateway-foo.gateway-system.svc.cluster.local";
        let pod = pod(vec![injected(INIT_CONTAINER, chart_6)], vec![injected(SIDECAR, chart_6)]);
        assert_eq!(routing(&pod, None), routed(chart_6));
        assert_eq!(
            routing(&pod, Some(FOO)),
            Routing::NotRouted(format!(
                "it is routed through {chart_6}, not through {FOO} (gateway_address_template)"
            ))
        );
        let empty = self::pod(vec![injected(INIT_CONTAINER, "")], vec![injected(SIDECAR, "")]);
        assert_eq!(
            routing(&empty, None),
            Routing::NotRouted("its gateway-init has no `gateway` address".into())
        );
    }

    #[test]
    fn the_gate_is_seen() {
        let mut ungated = pod(vec![], vec![]);
        ungated.spec.scheduling_gates.clear();
        assert!(!is_gated(&ungated));
    }
}
