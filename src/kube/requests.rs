//! The requests the component makes, built with kube-core's client-less request builder:
//! create a pod, get it after a 409, remove its scheduling gate, delete it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSchedulingGate};
use kube_core::params::{DeleteParams, GetParams, Patch, PatchParams, PostParams, Preconditions};
use kube_core::{Request, Resource};
use serde::Serialize;

use crate::config::Config;

/// Recorded by the API server in `metadata.managedFields[].manager`.
pub const FIELD_MANAGER: &str = "podgateway-client-provisioner";
const USER_AGENT: &str = concat!("podgateway-client-provisioner/", env!("CARGO_PKG_VERSION"));
/// The only verbs the component uses, all on core `pods`: deploy/rbac.yaml grants exactly these.
pub const POD_VERBS: [&str; 4] = ["create", "get", "patch", "delete"];

pub fn create_pod(config: &Config, pod: &Pod) -> Result<http::Request<Vec<u8>>, String> {
    let params = PostParams { dry_run: config.dry_run, field_manager: Some(FIELD_MANAGER.into()) };
    let body =
        serde_json::to_vec(&PodBody::of(pod)).map_err(|error| format!("cannot encode the pod: {error}"))?;
    debug_assert_eq!(
        String::from_utf8_lossy(&body),
        serde_json::to_string(pod).unwrap_or_default(),
        "the pod sets a field that PodBody does not write"
    );
    let request = pods(config).create(&params, body).map_err(|error| error.to_string())?;
    authorized(config, request)
}

/// The create body: byte for byte the JSON that k8s-openapi writes for the pods the component
/// makes, written from the fields those pods set. Serializing a whole `Pod` links the
/// serializer of every Pod field the API has, down to `metav1.Time`'s date formatting (jiff):
/// about a quarter of the component's size. The `debug_assert` in [`create_pod`] checks, in
/// every native test, that nothing the pod sets is left out.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PodBody<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: PodBodyMeta<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spec: Option<PodBodySpec<'a>>,
}

/// Field order as k8s-openapi writes it: alphabetical.
#[derive(Serialize)]
struct PodBodyMeta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PodBodySpec<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    active_deadline_seconds: Option<i64>,
    containers: &'a [Container],
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduling_gates: Option<&'a [PodSchedulingGate]>,
}

impl<'a> PodBody<'a> {
    fn of(pod: &'a Pod) -> Self {
        let meta = &pod.metadata;
        PodBody {
            api_version: "v1",
            kind: "Pod",
            metadata: PodBodyMeta {
                annotations: meta.annotations.as_ref(),
                labels: meta.labels.as_ref(),
                name: meta.name.as_deref(),
                namespace: meta.namespace.as_deref(),
            },
            spec: pod.spec.as_ref().map(|spec| PodBodySpec {
                active_deadline_seconds: spec.active_deadline_seconds,
                containers: &spec.containers,
                scheduling_gates: spec.scheduling_gates.as_deref(),
            }),
        }
    }
}

pub fn get_pod(config: &Config, name: &str) -> Result<http::Request<Vec<u8>>, String> {
    let request = pods(config).get(name, &GetParams::default()).map_err(|error| error.to_string())?;
    authorized(config, request)
}

/// Removes the scheduling gate `gate` from the pod `name` whose uid is `uid`, and no other
/// gate: a strategic merge patch deleting the gate by its merge key. The uid in it makes it
/// apply to that pod only: the API refuses to change a uid (422), so a newer pod of the same
/// name is left as it is.
pub fn remove_scheduling_gate(
    config: &Config,
    name: &str,
    uid: &str,
    gate: &str,
) -> Result<http::Request<Vec<u8>>, String> {
    let patch = serde_json::json!({
        "metadata": {"uid": uid},
        "spec": {"schedulingGates": [{"$patch": "delete", "name": gate}]},
    });
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() };
    let request =
        pods(config).patch(name, &params, &Patch::Strategic(patch)).map_err(|error| error.to_string())?;
    authorized(config, request)
}

/// Deletes the pod `name` whose uid is `uid` (a newer pod of the same name answers 409), at
/// once: a pod that must not run gets no grace period.
pub fn delete_pod(config: &Config, name: &str, uid: &str) -> Result<http::Request<Vec<u8>>, String> {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions { uid: Some(uid.to_owned()), resource_version: None }),
        ..DeleteParams::default()
    };
    let request = pods(config).delete(name, &params).map_err(|error| error.to_string())?;
    authorized(config, request)
}

fn pods(config: &Config) -> Request {
    Request::new(Pod::url_path(&(), Some(&config.client_namespace)))
}

/// kube-core builds path-only requests; this adds the server and the credentials.
fn authorized(
    config: &Config,
    mut request: http::Request<Vec<u8>>,
) -> Result<http::Request<Vec<u8>>, String> {
    let path = request.uri().path_and_query().map_or("/", |path| path.as_str());
    let url = config.api.url(path);
    *request.uri_mut() = url.parse().map_err(|_| format!("`{url}` is not a valid request URL"))?;
    let headers = request.headers_mut();
    headers.insert(http::header::ACCEPT, http::HeaderValue::from_static("application/json"));
    headers.insert(http::header::USER_AGENT, http::HeaderValue::from_static(USER_AGENT));
    if let Some(token) = &config.token {
        let mut value = http::HeaderValue::try_from(token.authorization_header())
            .map_err(|_| "k8s_token cannot be sent in an HTTP header".to_owned())?;
        value.set_sensitive(true);
        headers.insert(http::header::AUTHORIZATION, value);
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::load_with;

    #[test]
    fn create_request() {
        let config = load_with(&[
            ("k8s_api_url", "http://127.0.0.1:8001/"),
            ("k8s_token", "abc"),
            ("client_namespace", "clients"),
        ])
        .unwrap();
        let request = create_pod(&config, &Pod::default()).unwrap();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(
            request.uri(),
            "http://127.0.0.1:8001/api/v1/namespaces/clients/pods?&fieldManager=podgateway-client-provisioner"
        );
        let header = |name: &str| request.headers().get(name).map(|v| v.to_str().unwrap());
        assert_eq!(header("authorization"), Some("Bearer abc"));
        assert_eq!(header("content-type"), Some("application/json"));
        assert_eq!(header("accept"), Some("application/json"));
        assert_eq!(header("user-agent"), Some(USER_AGENT));
        assert_eq!(request.body(), b"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{}}");
    }

    #[test]
    fn the_create_body_is_what_k8s_openapi_writes_for_the_pod() {
        let config = load_with(&[
            ("gateway_label", "setGateway"),
            ("client_active_deadline_seconds", "600"),
            ("client_command", "[]"),
        ])
        .unwrap();
        let request = crate::pod::shape::ClientRequest {
            event: crate::identity::EventKey { source: "urn:test".into(), id: "42".into() },
            gateway: "foo".into(),
            message: Some("a \"quoted\" message, ünïcode".into()),
        };
        for config in [load_with(&[]).unwrap(), config] {
            let pod = crate::pod::shape::client_pod(&config, &request);
            let sent = create_pod(&config, &pod).unwrap();
            assert_eq!(sent.body(), &serde_json::to_vec(&pod).unwrap());
        }
    }

    #[test]
    fn dry_run_and_no_token() {
        let config = load_with(&[("dry_run", "true")]).unwrap();
        let request = create_pod(&config, &Pod::default()).unwrap();
        assert_eq!(
            request.uri(),
            "https://kubernetes.default.svc/api/v1/namespaces/default/pods?&dryRun=All&fieldManager=podgateway-client-provisioner"
        );
        assert!(request.headers().get("authorization").is_none());
    }

    #[test]
    fn get_request() {
        let config = load_with(&[("k8s_token", "abc")]).unwrap();
        let request = get_pod(&config, "podgateway-client-0123").unwrap();
        assert_eq!(request.method(), http::Method::GET);
        assert_eq!(
            request.uri(),
            "https://kubernetes.default.svc/api/v1/namespaces/default/pods/podgateway-client-0123"
        );
        assert_eq!(request.headers()["authorization"], "Bearer abc");
    }

    #[test]
    fn the_verbs_are_the_contracts() {
        assert_eq!(POD_VERBS, crate::contract::POD_VERBS);
    }
}
