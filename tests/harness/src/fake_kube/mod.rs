//! An in-process fake kube-apiserver for pods and TokenReviews, faithful to what the
//! component meets in a cluster: bearer-token authentication (static tokens and the
//! service-account tokens it issues), per-user authorization, namespaces (active, missing,
//! terminating), the create checks and their `metav1.Status` answers, and injected faults (429
//! in plain text, 500/503/504, slow answers, dropped connections).
//!
//! It serves `/api/v1/namespaces/{ns}/pods` (POST, GET with `labelSelector` / `fieldSelector`),
//! `/api/v1/namespaces/{ns}/pods/{name}` (GET, PATCH, DELETE) and
//! `/apis/authentication.k8s.io/v1/tokenreviews` (POST) on `127.0.0.1:<random port>`, and
//! plays the scheduler and the kubelet on stored pods when a scenario asks (`kubelet.rs`).
//!
//! # What the real server does, and so this one
//!
//! From the Kubernetes sources (apimachinery `pkg/api/errors`, `pkg/util/validation`; the
//! apiserver's filters and response writers; client-go `rest/request.go`):
//!
//! - **Order of the checks on create**: authentication (401) → authorization (403) → media
//!   type (415) → `CreateOptions` (422) → body decoding (400) → admission, NamespaceLifecycle
//!   included (404 for a missing namespace, 403 for a terminating one) → object validation
//!   (422) → storage (409 `AlreadyExists`) → `201 Created`. The create handler
//!   (apiserver `pkg/endpoints/handlers/create.go`, unchanged from v0.33 to `master`) validates
//!   `CreateOptions` before it decodes the body.
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
//!
//! # TokenReview and service-account tokens
//!
//! From kubernetes/kubernetes (`pkg/registry/authentication/tokenreview/storage.go`,
//! `pkg/serviceaccount/jwt.go` and `claims.go`, `pkg/kubeapiserver/authenticator/config.go`,
//! `pkg/kubeapiserver/options/authentication.go`, `pkg/controller/serviceaccount/tokengetter.go`,
//! `cmd/kubeadm/app/phases/controlplane/manifests.go`), k8s.io/apiserver
//! (`pkg/authentication/request/{bearertoken,union,anonymous}`, `pkg/authentication/group`,
//! `pkg/authentication/token/cache`, `pkg/authentication/serviceaccount/util.go`,
//! `pkg/server/config.go`, `pkg/endpoints/handlers/create.go`, `pkg/registry/rest/meta.go`,
//! `pkg/endpoints/handlers/responsewriters/errors.go`), apimachinery (`pkg/util/errors`,
//! `pkg/api/errors`) and go-jose v2 (`jwt.Claims.ValidateWithLeeway`):
//!
//! - **The resource** is cluster-scoped and create-only. A caller needs `create` on
//!   `tokenreviews` of `authentication.k8s.io` at the cluster scope (a ClusterRoleBinding, e.g.
//!   to `system:auth-delegator`; a RoleBinding does not reach it), else 403 `tokenreviews.authentication.k8s.io
//!   is forbidden: User "<user>" cannot create resource "tokenreviews" in API group
//!   "authentication.k8s.io" at the cluster scope` with `details: {"group":
//!   "authentication.k8s.io", "kind": "tokenreviews"}`. Other methods are authorized as their
//!   verb (`list`, `update`, …), then 405.
//! - **Order**: authentication (401) → authorization (403) → media type (415) →
//!   `CreateOptions` (422) → decoding (400, `must be of type TokenReview`; another kind or
//!   version as for pods; `authentication.k8s.io/v1beta1` decodes and is refused: `the API
//!   version in the data (…) does not match the expected API version (…)`) → system metadata
//!   wiped (`uid`, `creationTimestamp`, …) and `namespace` cleared → `managedFields` recorded
//!   (manager from `fieldManager` or the User-Agent, `apiVersion: authentication.k8s.io/v1`)
//!   → an empty `spec.token` is 400 `BadRequest` `token is required for TokenReview in
//!   authentication` → the review, answered `201 Created`.
//! - **The answer** echoes the request as decoded (unknown fields dropped, empty ones
//!   omitted), `spec.token` included, with `metadata.creationTimestamp: null`. The review
//!   authenticates `Authorization: Bearer <spec.token>` with `spec.audiences`, or the API
//!   server's audiences when there are none (`--api-audiences`, defaulting to the issuer:
//!   `https://kubernetes.default.svc.cluster.local` under kubeadm and kind). Authenticated:
//!   `status: {"authenticated": true, "user": {"username", "uid", "groups", "extra"},
//!   "audiences": [the requested audiences the token has, in request order]}`. Not:
//!   `status: {"user": {}, "error": "<error>"}` (`authenticated: false` is omitted, no
//!   audiences).
//! - **The error text** is the authenticator chain's aggregate: the loopback-token
//!   authenticator (`AuthorizeClientBearerToken`) comes first and says `invalid bearer token`
//!   for every other token, then the cluster's chain. A token no authenticator recognises
//!   (not a JWT, another issuer) gives `invalid bearer token` (the same twice, de-duplicated);
//!   a service-account token that fails gives `[invalid bearer token, <why>]` (seen so on a
//!   kind cluster): `invalid signature, no keys found` (a `kid` the server has no key for),
//!   `go-jose/go-jose: error in cryptographic primitive` (a signature that does not verify),
//!   `token audiences ["a"] is invalid for the target audiences ["b" "c"]` (Go's `%q` of a
//!   slice), then `service account token is not valid yet` / `has expired` / `is issued in
//!   the future` (a minute of leeway each way; `nbf`, `exp`, `iat` in that order), then
//!   `serviceaccounts "<name>" not found` (deleted: the lister misses and the client GET
//!   answers NotFound) or `service account UID (<now>) does not match claim (<token's>)`.
//! - **The user** of a service-account token: `system:serviceaccount:<ns>:<name>`, the
//!   ServiceAccount's uid, groups `system:serviceaccounts`, `system:serviceaccounts:<ns>` and
//!   (`AuthenticatedGroupAdder`) `system:authenticated`, and `extra:
//!   {"authentication.kubernetes.io/credential-id": ["JTI=<jti>"]}` (`ServiceAccountTokenJTI`,
//!   on since 1.30; pod-bound tokens also carry `pod-name`/`pod-uid`, not modelled).
//! - **Quirks kept**: the bearer parser splits `Bearer <token>` on spaces, so a token
//!   starting with a space is no token and anonymous authentication accepts the review as
//!   `system:anonymous` (`groups: ["system:unauthenticated"]`; kubernetes/kubernetes#114165),
//!   and a token with a space is reviewed up to it. Successful authentications are cached for
//!   10 s by token and audiences (`TokenSuccessCacheTTL`; failures are not cached): a deleted
//!   ServiceAccount's token keeps reviewing as valid until its cached success expires
//!   ([`FakeKube::set_token_cache_ttl`]).
//! - **Tokens** as TokenRequest issues them: a JWT signed RS256 with `kid` =
//!   base64url(SHA-256 of the public key), claims (sorted, as go-jose writes them) `aud`
//!   (a list), `exp`, `iat`, `iss`, `jti` (a UUID), `kubernetes.io: {namespace,
//!   serviceaccount: {name, uid}}`, `nbf` (= `iat`), `sub`. The fake signs with random bytes
//!   and remembers each token: a token verifies if it is one the fake issued, byte for byte.
//!   Such tokens (for the API audience) also authenticate callers; the static tokens of
//!   [`FakeKube::add_token`] behave as a token file (audience-agnostic: they review only for
//!   the API audience).

mod api;
mod decode;
mod kubelet;
mod patch;
mod pod;
mod selector;
mod status;
mod token;
mod token_review;
mod validation;
mod webhook;

pub use webhook::{FailurePolicy, PodGatewayWebhook};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

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

/// A role binding, flattened: `user` may use `verbs` on `resource` of API `group` (`*`: any)
/// in `namespace` (`None`: a cluster role binding, every namespace and the cluster scope).
struct Grant {
    user: String,
    group: String,
    resource: String,
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
    /// ServiceAccounts by (namespace, name): their uid.
    service_accounts: BTreeMap<(String, String), String>,
    /// Every service-account token issued, exactly as issued: a token "verifies" by being here.
    issued: HashMap<String, token::Claims>,
    /// The `kid` of the fake's signing key.
    signing_key_id: String,
    /// Successful authentications by (token, audiences), until their expiry.
    token_cache: HashMap<(String, Vec<String>), (Instant, token::Authenticated)>,
    token_cache_ttl: Duration,
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
    /// The issuer of the service-account tokens ([`FakeKube::issue_token`]), and the API
    /// server's own audience (`--api-audiences` defaults to `--service-account-issuer`).
    pub const ISSUER: &'static str = token::ISSUER;
    /// How long the API server caches a successful token authentication (kube-apiserver's
    /// `TokenSuccessCacheTTL`); see [`FakeKube::set_token_cache_ttl`].
    pub const TOKEN_CACHE_TTL: Duration = token::SUCCESS_CACHE_TTL;

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
        let state = Arc::new(Mutex::new(State {
            signing_key_id: token::new_key_id(),
            token_cache_ttl: token::SUCCESS_CACHE_TTL,
            ..State::default()
        }));
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
        self.grant_on(user, "", "pods", verbs, namespace);
    }

    /// Lets `user` use `verbs` (or `*`) on `resource` of API `group` (`""`: the core group;
    /// `*` for either: any), as a RoleBinding in `namespace` does, or a ClusterRoleBinding
    /// (`None`): every namespace and the cluster-scoped resources. For TokenReviews:
    /// `grant_on(user, "authentication.k8s.io", "tokenreviews", &["create"], None)`, what the
    /// `system:auth-delegator` ClusterRole gives.
    pub fn grant_on(&self, user: &str, group: &str, resource: &str, verbs: &[&str], namespace: Option<&str>) {
        self.state().grants.push(Grant {
            user: user.into(),
            group: group.into(),
            resource: resource.into(),
            verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
            namespace: namespace.map(str::to_owned),
        });
    }

    /// Removes every permission of `user`.
    pub fn revoke(&self, user: &str) {
        self.state().grants.retain(|g| g.user != user);
    }

    /// A service-account token as the TokenRequest API issues it, valid from now for
    /// `lifetime`: a JWT (`{"alg":"RS256","kid":…}`; claims `aud`, `exp`, `iat`, `iss`
    /// ([`FakeKube::ISSUER`]), `jti`, `kubernetes.io` (`namespace`, `serviceaccount.name`
    /// and `.uid`), `nbf`, `sub`) whose signature is random bytes the fake remembers: a token
    /// verifies if the fake issued exactly it. Empty `audiences` mean the API server's own, as
    /// in TokenRequest. Creates the ServiceAccount (with a new uid) if it does not exist. Such
    /// a token also authenticates requests to the fake when it is valid for
    /// [`FakeKube::ISSUER`].
    pub fn issue_token(
        &self,
        namespace: &str,
        service_account: &str,
        audiences: &[&str],
        lifetime: Duration,
    ) -> String {
        let now = SystemTime::now();
        let expires = now
            .checked_add(lifetime)
            .unwrap_or(SystemTime::UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 / 2));
        self.issue_token_valid_between(namespace, service_account, audiences, now, expires)
    }

    /// [`FakeKube::issue_token`] with `nbf` and `iat` at `not_before` and `exp` at `expires`
    /// (whole seconds): for tokens that have expired or are not valid yet. The API server
    /// allows a minute of clock skew either way (go-jose's `DefaultLeeway`).
    pub fn issue_token_valid_between(
        &self,
        namespace: &str,
        service_account: &str,
        audiences: &[&str],
        not_before: SystemTime,
        expires: SystemTime,
    ) -> String {
        token::issue(&mut self.state(), namespace, service_account, audiences, not_before, expires)
    }

    /// Creates a ServiceAccount if it does not exist; returns its uid (the `uid` claim of its
    /// tokens and `status.user.uid` of their reviews).
    pub fn add_service_account(&self, namespace: &str, name: &str) -> String {
        self.state().service_accounts.entry((namespace.into(), name.into())).or_insert_with(pod::uid).clone()
    }

    /// The uid of a ServiceAccount, if it exists.
    pub fn service_account_uid(&self, namespace: &str, name: &str) -> Option<String> {
        self.state().service_accounts.get(&(namespace.into(), name.into())).cloned()
    }

    /// Deletes a ServiceAccount: its tokens stop authenticating (`serviceaccounts "<name>"
    /// not found`; after [`FakeKube::add_service_account`] again, a uid mismatch), once any
    /// cached success of theirs has expired ([`FakeKube::TOKEN_CACHE_TTL`]).
    pub fn delete_service_account(&self, namespace: &str, name: &str) {
        self.state().service_accounts.remove(&(namespace.into(), name.into()));
    }

    /// How long a successful token authentication is cached ([`FakeKube::TOKEN_CACHE_TTL`]
    /// by default, as kube-apiserver; `Duration::ZERO`: no cache). The cache is keyed by the
    /// token and the audiences asked for; failures are not cached.
    pub fn set_token_cache_ttl(&self, ttl: Duration) {
        let mut state = self.state();
        state.token_cache_ttl = ttl;
        if ttl.is_zero() {
            state.token_cache.clear();
        }
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
    let (group, resource) = api::resource(parts.uri.path());
    let reply = match fault {
        Some(Fault::DropConnection) => None,
        Some(Fault::TooManyRequests { retry_after_seconds }) => Some(too_many_requests(retry_after_seconds)),
        Some(Fault::ServerTimeout { retry_after_seconds }) => {
            Some(Status::server_timeout(group, resource, verb, retry_after_seconds).reply())
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
