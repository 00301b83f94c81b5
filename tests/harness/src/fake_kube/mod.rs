//! An in-process fake kube-apiserver for pods, faithful to what the component meets in a
//! cluster: bearer-token authentication, per-user authorization, namespaces (active,
//! missing, terminating), the create checks and their `metav1.Status` answers, and injected
//! faults (429 in plain text, 500/503/504, slow answers, dropped connections).
//!
//! It serves `/api/v1/namespaces/{ns}/pods` (POST, GET with `labelSelector` / `fieldSelector`)
//! and `/api/v1/namespaces/{ns}/pods/{name}` (GET, PATCH, DELETE) on `127.0.0.1:<random port>`,
//! and plays the scheduler and the kubelet on stored pods when a scenario asks (`kubelet.rs`).
//!
//! # What the real server does, and so this one
//!
//! From the Kubernetes sources (apimachinery `pkg/api/errors`, `pkg/util/validation`; the
//! apiserver's filters and response writers; client-go `rest/request.go`):
//!
//! - **Order of the checks on create**: authentication (401) → authorization (403) → body
//!   decoding (400) → `CreateOptions` (422) → admission, NamespaceLifecycle included (404 for
//!   a missing namespace, 403 for a terminating one) → object validation (422) → storage
//!   (409 `AlreadyExists`) → `201 Created`.
//! - **Errors are `metav1.Status`** (`application/json`):
//!   `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":…,"reason":…,"details":{…},"code":N}`.
//!   401 `Unauthorized` (message `Unauthorized`, no details; a bad or expired token). 403
//!   `Forbidden`: `pods is forbidden: User "<user>" cannot create resource "pods" in API group
//!   "" in the namespace "<ns>"`, details `{"kind":"pods"}` (a name only when the request has
//!   one); a request without a token is user `system:anonymous` and gets 403, not 401.
//!   404 `NotFound`: `namespaces "<ns>" not found` / `pods "<name>" not found`, details
//!   `{"name":…,"kind":…}`. 409 `AlreadyExists`: `pods "<name>" already exists`. 422
//!   `Invalid`: `Pod "<name>" is invalid: <field>: <error>` with `details.causes`
//!   (`reason`, `message`, `field`); several causes are joined as `[a, b]`. 400 `BadRequest`
//!   for a body that does not decode, or whose namespace differs from the request's. 500
//!   `ServerTimeout` with `details.retryAfterSeconds` and a `Retry-After` header; 500
//!   `InternalError` (`Internal error occurred: …`); 503 `ServiceUnavailable`; 504 `Timeout`.
//!   Whenever `retryAfterSeconds > 0`, the header is set too.
//! - **429 from max-in-flight and priority-and-fairness is plain text**, not a Status:
//!   `text/plain; charset=utf-8`, body `Too many requests, please try again later.`, and a
//!   `Retry-After` header.
//! - **Validation**: a pod name is a DNS-1123 subdomain (≤ 253); label values ≤ 63 matching
//!   `(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?`; label and annotation keys are an optional
//!   DNS-1123 subdomain prefix and `/`, then a name ≤ 63; annotations total ≤ 262,144 bytes of
//!   keys and values; at least one container, each named by a DNS-1123 label.
//! - **Create options**: `dryRun` accepts only `All` (else 422 on `CreateOptions.meta.k8s.io`);
//!   with it, admission and validation run, an existing name still gives 409, nothing is
//!   stored, and the answer is 201 with `uid` and `creationTimestamp` but no
//!   `resourceVersion`. `fieldManager` is at most 128 printable characters (else 422); when
//!   empty, the User-Agent up to its first `/` is recorded in `managedFields[].manager`.
//!   Unknown fields in the body: a `Warning: 299 …` header (since 1.27), not an error.
//! - **Success**: `201` with the whole defaulted Pod: `metadata.uid`, `resourceVersion`,
//!   `creationTimestamp`, `managedFields`; `restartPolicy: Always`, `dnsPolicy: ClusterFirst`,
//!   `terminationGracePeriodSeconds: 30`, `imagePullPolicy`, the service-account token volume,
//!   the default tolerations; `status: {"phase":"Pending","qosClass":"BestEffort"}`. `DELETE`
//!   of a pod answers 200 with the Pod.

mod api;
mod kubelet;
mod patch;
mod pod;
mod selector;
mod status;
mod validation;
mod webhook;

pub use webhook::{FailurePolicy, PodGatewayWebhook};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::oneshot;

use status::{Reply, Status};

/// One injected answer, consumed by one request (whatever its path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429 from priority-and-fairness: `text/plain`, not a Status, with `Retry-After`.
    TooManyRequests { retry_after_seconds: u32 },
    /// 500 `ServerTimeout` Status with `retryAfterSeconds` and `Retry-After`.
    ServerTimeout { retry_after_seconds: u32 },
    /// 500 `InternalError` Status: `Internal error occurred: <message>`.
    InternalError(String),
    /// 503 `ServiceUnavailable` Status.
    ServiceUnavailable,
    /// 504 `Timeout` Status (the apiserver's own request timeout).
    GatewayTimeout,
    /// Wait this long, then answer normally.
    Slow(Duration),
    /// Close the connection without answering.
    DropConnection,
}

/// A request as the fake received it, and what it answered (`None`: connection dropped).
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub status: Option<u16>,
    /// `Warning` headers of the answer (e.g. unknown fields in a created Pod).
    pub warnings: Vec<String>,
    /// The answer's body (empty when the connection was dropped).
    pub answer: Bytes,
    /// Time spent on it: from the whole request received to the answer handed to hyper for
    /// writing, injected latency and faults included.
    pub server_time: Duration,
    /// Which connection it came on: connections are numbered from 1 as the fake accepts them.
    pub connection: u64,
    /// Socket reads that returned bytes of this request. A small request sent in one piece
    /// arrives in one read; a body sent after its head arrives later, in a read of its own
    /// (with Nagle's algorithm, after the server's delayed ACK: ~40 ms).
    pub reads: u32,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The first value of a query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        Query::parse(&self.query).first(name).map(str::to_owned)
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The answer's body as JSON, if it is.
    pub fn answer_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.answer).ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NamespacePhase {
    Active,
    Terminating,
}

struct Grant {
    user: String,
    verbs: Vec<String>,
    namespace: Option<String>,
}

#[derive(Default)]
struct State {
    namespaces: BTreeMap<String, NamespacePhase>,
    namespace_labels: BTreeMap<String, serde_json::Map<String, Value>>,
    webhooks: Vec<PodGatewayWebhook>,
    pods: BTreeMap<String, BTreeMap<String, Value>>,
    tokens: HashMap<String, String>,
    grants: Vec<Grant>,
    resource_version: u64,
    /// Each for the next request of its method (any method: `None`).
    faults: VecDeque<(Option<http::Method>, Fault)>,
    latency: Duration,
    requests: Vec<RecordedRequest>,
}

impl State {
    fn next_resource_version(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }
}

/// The fake API server; stops when dropped.
pub struct FakeKube {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeKube {
    /// The token [`FakeKube::start`] accepts.
    pub const TOKEN: &'static str = "fake-kube-token";
    /// The user that [`FakeKube::TOKEN`] authenticates as.
    pub const USER: &'static str = "system:serviceaccount:podgateway:client-provisioner";

    /// Starts with namespace `default`, and [`FakeKube::TOKEN`] → [`FakeKube::USER`], who may
    /// create, get, list, patch and delete pods in every namespace.
    pub fn start() -> Self {
        let kube = Self::start_empty();
        kube.add_namespace("default");
        kube.add_token(Self::TOKEN, Self::USER);
        kube.grant(Self::USER, &["create", "get", "list", "patch", "delete"], None);
        kube
    }

    /// Starts with no namespace, token or permission.
    pub fn start_empty() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("listener address");
        let state = Arc::new(Mutex::new(State::default()));
        let (shutdown, stop) = oneshot::channel();
        let served = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fake-kube-{}", addr.port()))
            .spawn(move || serve(listener, served, stop))
            .expect("spawn the fake API server thread");
        Self { addr, state, shutdown: Some(shutdown), thread: Some(thread) }
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn add_namespace(&self, namespace: &str) {
        self.state().namespaces.insert(namespace.into(), NamespacePhase::Active);
    }

    /// Marks a namespace (added if missing) as being deleted: creates in it get 403.
    pub fn terminate_namespace(&self, namespace: &str) {
        self.state().namespaces.insert(namespace.into(), NamespacePhase::Terminating);
    }

    pub fn remove_namespace(&self, namespace: &str) {
        self.state().namespaces.remove(namespace);
    }

    /// Sets a label on a namespace (the pod-gateway webhooks select namespaces by label).
    pub fn label_namespace(&self, namespace: &str, key: &str, value: &str) {
        self.state().namespace_labels.entry(namespace.into()).or_default().insert(key.into(), value.into());
    }

    /// Installs a pod-gateway release's admission webhook.
    pub fn add_webhook(&self, webhook: PodGatewayWebhook) {
        self.state().webhooks.push(webhook);
    }

    /// Changes a release's webhook: take it down, change its failure policy or layout.
    pub fn update_webhook(&self, release: &str, change: impl Fn(&mut PodGatewayWebhook)) {
        let mut state = self.state();
        let mut found = false;
        for webhook in state.webhooks.iter_mut().filter(|w| w.release == release) {
            change(webhook);
            found = true;
        }
        assert!(found, "no webhook of release {release}");
    }

    pub fn add_token(&self, token: &str, user: &str) {
        self.state().tokens.insert(token.into(), user.into());
    }

    /// Lets `user` use `verbs` (`create`, `get`, `list`, `delete`, or `*`) on pods in
    /// `namespace` (`None`: every namespace).
    pub fn grant(&self, user: &str, verbs: &[&str], namespace: Option<&str>) {
        self.state().grants.push(Grant {
            user: user.into(),
            verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
            namespace: namespace.map(str::to_owned),
        });
    }

    /// Removes every permission of `user`.
    pub fn revoke(&self, user: &str) {
        self.state().grants.retain(|g| g.user != user);
    }

    /// The stored pods of a namespace, by name.
    pub fn pods(&self, namespace: &str) -> Vec<Value> {
        self.state().pods.get(namespace).map(|p| p.values().cloned().collect()).unwrap_or_default()
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
        self.state().pods.get(namespace).and_then(|p| p.get(name)).cloned()
    }

    /// Stores a pod as if someone else had created it (no checks; `metadata.name` required),
    /// with the server-set fields filled in. Returns the stored pod.
    pub fn seed_pod(&self, namespace: &str, mut pod: Value) -> Value {
        let mut state = self.state();
        let meta = pod::object_at(&mut pod, "metadata");
        meta.insert("namespace".into(), namespace.into());
        let name = meta.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
        assert!(!name.is_empty(), "seed_pod needs metadata.name");
        if let Some(m) = pod.as_object_mut() {
            m.insert("apiVersion".into(), "v1".into());
            m.insert("kind".into(), "Pod".into());
        }
        pod::apply_scheme_defaults(&mut pod);
        let rv = state.next_resource_version();
        pod::finish_create(&mut pod, "seed", Some(rv));
        state.pods.entry(namespace.into()).or_default().insert(name, pod.clone());
        pod
    }

    /// Plays the kubelet once a pod being deleted has stopped: removes it. A pod that is not
    /// being deleted stays.
    pub fn finish_deletion(&self, namespace: &str, name: &str) {
        let mut state = self.state();
        if let Some(pods) = state.pods.get_mut(namespace)
            && pods.get(name).is_some_and(|pod| pod["metadata"]["deletionTimestamp"].is_string())
        {
            pods.remove(name);
        }
    }

    /// The next `times` requests answer with `fault` (after faults injected earlier).
    pub fn inject(&self, fault: Fault, times: usize) {
        self.state().faults.extend(std::iter::repeat_n((None, fault), times));
    }

    /// The next `times` requests with this method (`POST`, `PATCH`, `DELETE`, …) answer with
    /// `fault`; other requests are answered as usual.
    pub fn inject_on(&self, method: &str, fault: Fault, times: usize) {
        let method = http::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        self.state().faults.extend(std::iter::repeat_n((Some(method), fault), times));
    }

    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Delay added before answering every request (for benchmarks).
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// Forgets every stored pod, in every namespace (long benchmark runs).
    pub fn clear_pods(&self) {
        self.state().pods.clear();
    }

    /// The requests received since the last `take_requests` (drains them).
    pub fn take_requests(&self) -> Vec<RecordedRequest> {
        std::mem::take(&mut self.state().requests)
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: std::net::TcpListener, state: Arc<Mutex<State>>, mut stop: oneshot::Receiver<()>) {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return eprintln!("fake kube: cannot start a tokio runtime: {e}"),
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => return eprintln!("fake kube: {e}"),
        };
        for connection in 1.. {
            let stream = tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
            };
            let state = state.clone();
            tokio::spawn(async move {
                let reads = Arc::new(AtomicU32::new(0));
                let stream = CountingReads { inner: stream, reads: reads.clone() };
                let service = service_fn(move |req| answer(state.clone(), connection, reads.clone(), req));
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    runtime.shutdown_timeout(Duration::from_millis(200));
}

/// Returned by the service to make hyper close the connection without answering.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

/// A connection that counts the reads that return bytes. A client sends one request at a time
/// and waits for its answer, so the reads since the last answer are the current request's.
struct CountingReads {
    inner: tokio::net::TcpStream,
    reads: Arc<AtomicU32>,
}

impl tokio::io::AsyncRead for CountingReads {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.reads.fetch_add(1, Ordering::Relaxed);
        }
        poll
    }
}

impl tokio::io::AsyncWrite for CountingReads {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn answer(
    state: Arc<Mutex<State>>,
    connection: u64,
    reads: Arc<AtomicU32>,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Dropped> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let reads = reads.swap(0, Ordering::Relaxed);
    let started = Instant::now();
    let lock = || state.lock().unwrap_or_else(PoisonError::into_inner);
    let (fault, latency) = {
        let mut s = lock();
        let due = s.faults.iter().position(|(method, _)| method.as_ref().is_none_or(|m| m == parts.method));
        (due.and_then(|at| s.faults.remove(at)).map(|(_, fault)| fault), s.latency)
    };
    // tokio rounds every sleep up to its 1 ms timer tick, even a zero one.
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(Fault::Slow(delay)) = &fault {
        tokio::time::sleep(*delay).await;
    }

    let mut recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts.headers.clone(),
        body: body.clone(),
        status: None,
        warnings: Vec::new(),
        answer: Bytes::new(),
        server_time: Duration::ZERO,
        connection,
        reads,
    };
    let verb = api::verb(&parts.method, parts.uri.path()).unwrap_or("get");
    let reply = match fault {
        Some(Fault::DropConnection) => None,
        Some(Fault::TooManyRequests { retry_after_seconds }) => Some(too_many_requests(retry_after_seconds)),
        Some(Fault::ServerTimeout { retry_after_seconds }) => {
            Some(Status::server_timeout(verb, retry_after_seconds).reply())
        }
        Some(Fault::InternalError(message)) => Some(Status::internal_error(&message).reply()),
        Some(Fault::ServiceUnavailable) => Some(Status::service_unavailable().reply()),
        Some(Fault::GatewayTimeout) => Some(Status::timeout().reply()),
        Some(Fault::Slow(_)) | None => {
            let query = Query::parse(&recorded.query);
            let request = api::ApiRequest {
                method: &parts.method,
                path: &recorded.path,
                query: &query,
                headers: &parts.headers,
                body: &body,
            };
            Some(api::handle(&mut lock(), &request))
        }
    };
    recorded.status = reply.as_ref().map(|r| r.code);
    recorded.answer = reply.as_ref().map(|r| Bytes::from(r.body.clone())).unwrap_or_default();
    recorded.warnings = reply
        .iter()
        .flat_map(|r| &r.headers)
        .filter(|(n, _)| *n == "Warning")
        .map(|(_, v)| v.clone())
        .collect();
    recorded.server_time = started.elapsed();
    lock().requests.push(recorded);
    reply.map(into_response).ok_or(Dropped)
}

/// What the max-in-flight and priority-and-fairness filters write: Go's `http.Error`.
fn too_many_requests(retry_after_seconds: u32) -> Reply {
    Reply {
        code: 429,
        headers: vec![
            ("Retry-After", retry_after_seconds.to_string()),
            ("X-Content-Type-Options", "nosniff".into()),
        ],
        content_type: "text/plain; charset=utf-8",
        body: b"Too many requests, please try again later.\n".to_vec(),
    }
}

fn into_response(reply: Reply) -> hyper::Response<Full<Bytes>> {
    let mut resp = hyper::Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() =
        http::StatusCode::from_u16(reply.code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(reply.content_type));
    for (name, value) in reply.headers {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            headers.append(name, value);
        }
    }
    resp
}

/// A URL query, decoded as `application/x-www-form-urlencoded` (`+` is a space), in order.
#[derive(Debug, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: &str) -> Self {
        Self(form_urlencoded::parse(raw.as_bytes()).into_owned().collect())
    }

    pub(crate) fn first(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }
}
