//! The requests the component makes, built with kube-core's client-less request builder:
//! create a pod, get it, remove its scheduling gate, delete it; review a sender's token.

use k8s_openapi::api::authentication::v1::TokenReview;
use k8s_openapi::api::core::v1::Pod;
use kube_core::params::{DeleteParams, GetParams, Patch, PatchParams, PostParams, Preconditions};
use kube_core::{Request, Resource};
use serde_json::Value;

use crate::config::Config;

/// Recorded by the API server in `metadata.managedFields[].manager`.
pub const FIELD_MANAGER: &str = "podgateway-client-provisioner";
const USER_AGENT: &str = concat!("podgateway-client-provisioner/", env!("CARGO_PKG_VERSION"));
/// The only verbs the component uses, all on core `pods`: deploy/rbac.yaml grants exactly these.
pub const POD_VERBS: [&str; 4] = ["create", "get", "patch", "delete"];

/// Creates `pod` (its JSON, as the pod module builds it from the template).
pub fn create_pod(config: &Config, pod: &Value) -> Result<http::Request<Vec<u8>>, String> {
    let params = PostParams { dry_run: config.dry_run, field_manager: Some(FIELD_MANAGER.into()) };
    let body = serde_json::to_vec(pod).map_err(|error| format!("cannot encode the pod: {error}"))?;
    let request = pods(config).create(&params, body).map_err(|error| error.to_string())?;
    authorized(config, request)
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

/// How a pod is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// At once, with no grace period: a pod that must not run.
    Now,
    /// With the pod's own grace period, so that its containers (a gateway sidecar still
    /// running) stop cleanly: a pod whose work is over.
    Graceful,
}

/// Deletes the pod `name` whose uid is `uid` (a newer pod of the same name answers 409); in a
/// dry run, only as `dryRun=All`.
pub fn delete_pod(
    config: &Config,
    name: &str,
    uid: &str,
    deletion: Deletion,
) -> Result<http::Request<Vec<u8>>, String> {
    let params = DeleteParams {
        dry_run: config.dry_run,
        grace_period_seconds: (deletion == Deletion::Now).then_some(0),
        preconditions: Some(Preconditions { uid: Some(uid.to_owned()), resource_version: None }),
        ..DeleteParams::default()
    };
    let request = pods(config).delete(name, &params).map_err(|error| error.to_string())?;
    authorized(config, request)
}

/// Asks the API server whom `token` authenticates, for `audience` (TokenReview). The body is
/// written here rather than from k8s-openapi's `TokenReview`, whose serializer would link
/// `ObjectMeta`'s and its date formatting (BENCHMARKS.md: the size of the component).
pub fn review_token(config: &Config, token: &str, audience: &str) -> Result<http::Request<Vec<u8>>, String> {
    let body = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": [audience]},
    });
    let body =
        serde_json::to_vec(&body).map_err(|error| format!("cannot encode the token review: {error}"))?;
    let request = Request::new(TokenReview::url_path(&(), None))
        .create(&PostParams::default(), body)
        .map_err(|error| error.to_string())?;
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
        let request =
            create_pod(&config, &serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}))
                .unwrap();
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
    fn dry_run_and_no_token() {
        let config = load_with(&[("dry_run", "true")]).unwrap();
        let request = create_pod(&config, &serde_json::json!({})).unwrap();
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
