//! One scenario's world: the fake Kubernetes API server and the component served by one of
//! the suite's hosts, configured from `spin.toml` as a user would configure it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use podgateway_client_provisioner::kube::POD_VERBS;
use podgateway_test_harness::fake_kube::PodGatewayWebhook;
use podgateway_test_harness::http_client::{Response, send_blocking};
use podgateway_test_harness::{App, AppSpec, FakeKube, Runtime};
use serde_json::{Value, json};

pub use crate::contract::{
    DONE, FAILED, FINISHED, GONE, PENDING, POD_42, POD_DELETED, POD_UPDATED, READY, RELEASE, RELEASE_DONE,
    RELEASE_FAILED, REPLY_SOURCE, binary_headers as binary,
};

/// The component in its host with a fake API server behind it. The component's token may do
/// what `kube::POD_VERBS` says on pods in `default` and create token reviews, nothing else,
/// as `deploy/rbac.yaml` grants.
/// `default` is routed (`routed-gateway: "true"`) by two pod-gateway releases, `foo` and
/// `bar`, as `deploy/` installs them (chart 7.x, annotation mode, `failurePolicy: Fail`).
pub struct World {
    pub kube: FakeKube,
    pub app: App,
    /// Requests sent to the component: each writes one log line.
    sent: AtomicUsize,
}

impl World {
    pub fn new(runtime: &Runtime, variables: &[(&str, &str)]) -> Self {
        Self::start(runtime, variables, AppSpec::default()).expect("the component starts")
    }

    /// With `allowed_outbound_hosts` replaced in spin.toml.
    pub fn with_outbound_hosts(runtime: &Runtime, hosts: &[&str]) -> Self {
        let hosts = hosts.iter().map(|host| (*host).to_owned()).collect();
        let spec = AppSpec { allowed_outbound_hosts: Some(hosts), ..AppSpec::default() };
        Self::start(runtime, &[], spec).expect("the component starts")
    }

    /// With the component's `key_value_stores` replaced in spin.toml.
    pub fn with_key_value_stores(runtime: &Runtime, variables: &[(&str, &str)], stores: &[&str]) -> Self {
        let stores = stores.iter().map(|store| (*store).to_owned()).collect();
        let spec = AppSpec { key_value_stores: Some(stores), ..AppSpec::default() };
        Self::start(runtime, variables, spec).expect("the component starts")
    }

    pub fn start(runtime: &Runtime, variables: &[(&str, &str)], mut spec: AppSpec) -> anyhow::Result<Self> {
        let kube = FakeKube::start_empty();
        kube.add_namespace("default");
        kube.label_namespace("default", "routed-gateway", "true");
        for gateway in ["foo", "bar"] {
            kube.add_webhook(PodGatewayWebhook::chart_7(gateway));
        }
        kube.add_token(FakeKube::TOKEN, FakeKube::USER);
        kube.grant(FakeKube::USER, &POD_VERBS, Some("default"));
        // deploy/rbac.yaml's ClusterRole: the sender check's token reviews.
        kube.grant_on(FakeKube::USER, "authentication.k8s.io", "tokenreviews", &["create"], None);
        spec.variables =
            vec![("k8s_api_url".into(), kube.url()), ("k8s_token".into(), FakeKube::TOKEN.into())];
        spec.variables
            .extend(variables.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
        let app = App::start(runtime, &spec)?;
        Ok(World { kube, app, sent: AtomicUsize::new(0) })
    }

    pub fn post(&self, headers: &[(&str, &str)], body: &str) -> Response {
        self.send("POST", headers, body)
    }

    pub fn send(&self, method: &str, headers: &[(&str, &str)], body: &str) -> Response {
        self.count_request();
        send_blocking(method, &format!("{}/", self.app.base_url()), headers, body.to_owned())
            .expect("the component answers")
    }

    pub fn pending(&self, id: &str, data: &str) -> Response {
        self.post(&binary(id, PENDING), data)
    }

    /// What Knative's ApiServerSource (Resource mode) sends when `pod` changed or went:
    /// binary mode, an id of its own, the API server as source, the object's path as subject,
    /// the `kind`/`name`/`namespace` extensions, the whole object as JSON data.
    pub fn pod_change(&self, event_type: &str, id: &str, pod: &Value) -> Response {
        let meta = &pod["metadata"];
        let (name, namespace) =
            (meta["name"].as_str().unwrap_or(""), meta["namespace"].as_str().unwrap_or(""));
        let subject = format!("/apis/v1/namespaces/{namespace}/pods/{name}");
        let headers = [
            ("ce-specversion", "1.0"),
            ("ce-id", id),
            ("ce-source", "https://10.96.0.1:443"),
            ("ce-type", event_type),
            ("ce-subject", subject.as_str()),
            ("ce-time", "2026-12-01T10:03:41.511620Z"),
            ("ce-kind", "Pod"),
            ("ce-name", name),
            ("ce-namespace", namespace),
            ("content-type", "application/json"),
        ];
        self.post(&headers, &pod.to_string())
    }

    /// Counts a request sent some other way (a raw connection): it writes a log line too.
    pub fn count_request(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stored_pods(&self) -> Vec<Value> {
        self.kube.pods("default")
    }

    /// The component's log lines so far (one per request), parsed.
    pub fn logs(&self) -> Vec<Value> {
        self.raw_logs().iter().map(|line| serde_json::from_str(line).expect("a JSON log line")).collect()
    }

    pub fn raw_logs(&self) -> Vec<String> {
        self.app.log_lines(self.sent.load(Ordering::Relaxed))
    }
}

pub fn assert_reply(response: &Response, event_type: &str) -> Value {
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("ce-specversion"), Some("1.0"));
    assert_eq!(response.header("ce-type"), Some(event_type));
    assert_eq!(response.header("ce-source"), Some(REPLY_SOURCE));
    assert_eq!(response.header("content-type"), Some("application/json"));
    let id = response.header("ce-id").expect("ce-id");
    assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    let time = response.header("ce-time").expect("ce-time");
    assert!(time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    response.json()
}

/// The address of gateway `gateway`'s Service, which routed pods carry (chart 7.x).
pub fn address_of(gateway: &str) -> String {
    format!("pod-gateway-{gateway}-main.gateway-system.svc.cluster.local")
}

pub fn done_data(pod: &str, id: &str, gateway: &str) -> Value {
    json!({
        "pod_name": pod, "namespace": "default", "gateway_name": gateway,
        "gateway_address": address_of(gateway),
        "message": "A pod-gateway client has been scheduled.",
        "request_id": id, "request_source": "urn:test",
    })
}

/// The API calls made so far, as (method, status).
pub fn calls(kube: &FakeKube) -> Vec<(String, u16)> {
    kube.requests().iter().map(|r| (r.method.clone(), r.status.unwrap_or_default())).collect()
}

pub fn call(method: &str, status: u16) -> (String, u16) {
    (method.to_owned(), status)
}

pub fn failed_message(response: &Response, gateway: Value) -> String {
    let data = assert_reply(response, FAILED);
    assert_eq!(response.header("ce-subject"), None);
    assert_eq!(data["gateway_name"], gateway);
    assert_eq!(data["request_source"], "urn:test");
    assert_eq!(data.as_object().unwrap().len(), 4, "{data}");
    data["message"].as_str().expect("a message").to_owned()
}

pub fn strings(value: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(value.clone()).unwrap_or_default()
}
