//! An embedding host that runs a `wasi:http/incoming-handler` component the way Spin does:
//! compiled and pre-instantiated once, a fresh `Store` and instance per request, outbound
//! HTTP limited to `allowed_outbound_hosts`, `fermyon:spin/variables` from the app, and
//! `fermyon:spin/key-value` stores that the application's instances share (`key_value.rs`).

mod key_value;
mod logs;
mod outbound;
mod pool;
mod stats;
mod variables;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::manifest::SpinApp;
use key_value::KeyValueDispatch;
pub use key_value::KeyValueStores;
pub(crate) use key_value::label_error as key_value_label_error;
use logs::GuestLogs;
pub use outbound::AllowedHosts;
use outbound::OutboundPolicy;
use pool::ConnectionPool;
use stats::MemoryPeak;
pub use stats::{HostOptions, InstanceSample, InstanceStats};
use variables::ComponentVariables;

/// Most a guest may print to stdout during one request.
const STDOUT_CAPACITY: usize = 4 << 20;

/// A running host, serving on `127.0.0.1:<random port>` until dropped.
pub struct SpinHost {
    addr: SocketAddr,
    logs: Arc<GuestLogs>,
    key_value: Arc<KeyValueStores>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SpinHost {
    /// Loads (compiling once per process and file version) and serves `wasm` with `app`'s
    /// variables, route, outbound allow-list and key-value stores. Like Spin, refuses an
    /// application whose component lists a key-value store label other than `default`.
    pub fn start(wasm: impl AsRef<Path>, app: SpinApp) -> anyhow::Result<Self> {
        Self::start_with(wasm, app, HostOptions::default())
    }

    /// [`SpinHost::start`] with [`HostOptions`] (for benchmarks).
    pub fn start_with(wasm: impl AsRef<Path>, app: SpinApp, options: HostOptions) -> anyhow::Result<Self> {
        key_value::check_labels(&app.component_id, &app.key_value_stores)?;
        let component = compiled(wasm.as_ref())?;
        let pre = pre_instantiate(&component).map_err(|e| anyhow::anyhow!("linking the component: {e:?}"))?;

        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let logs = Arc::new(GuestLogs::default());
        let key_value = Arc::new(KeyValueStores::default());
        let server = Arc::new(Server {
            pre,
            outbound: Arc::new(AllowedHosts::resolve(&app.allowed_outbound_hosts)),
            connections: Arc::default(),
            component_id: app.component_id.into(),
            variables: Arc::new(app.variables),
            key_value_stores: Arc::new(app.key_value_stores.into_iter().collect()),
            key_value: key_value.clone(),
            route: Route::parse(&app.route),
            logs: logs.clone(),
            options,
        });
        let (shutdown, stop) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("spin-host-{}", addr.port()))
            .spawn(move || serve(listener, server, stop))?;
        Ok(Self { addr, logs, key_value, shutdown: Some(shutdown), thread: Some(thread) })
    }

    /// `http://127.0.0.1:<port>`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every stdout line the guest printed so far, after waiting (up to a few seconds) for
    /// the requests still running to end.
    pub fn logs(&self) -> Vec<String> {
        self.logs.request_logs().concat()
    }

    /// Like [`SpinHost::logs`], grouped per request, in the order the requests arrived.
    pub fn request_logs(&self) -> Vec<Vec<String>> {
        self.logs.request_logs()
    }

    /// The lines printed since the last `take_logs` (drains them).
    pub fn take_logs(&self) -> Vec<String> {
        self.logs.take().concat()
    }

    /// What the application's key-value store `label` holds now, sorted by key.
    pub fn key_value_entries(&self, label: &str) -> Vec<(String, Vec<u8>)> {
        self.key_value.entries(label)
    }
}

impl Drop for SpinHost {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Links what Spin gives a component (WASI p2, wasi:http, Spin variables and key-value) and
/// pre-instantiates it.
fn pre_instantiate(component: &Component) -> wasmtime::Result<ProxyPre<RequestState>> {
    let mut linker = Linker::<RequestState>::new(engine());
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    variables::add_to_linker::<_, HasSelf<ComponentVariables>>(&mut linker, |s| &mut s.variables)?;
    key_value::add_to_linker::<_, HasSelf<KeyValueDispatch>>(&mut linker, |s| &mut s.key_value)?;
    ProxyPre::new(linker.instantiate_pre(component)?)
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(&Config::new()).expect("the default wasmtime config is valid"))
}

/// Compiling a component takes seconds: do it once per file version per process.
fn compiled(path: &Path) -> anyhow::Result<Component> {
    type Key = (PathBuf, Option<SystemTime>, u64);
    static CACHE: Mutex<BTreeMap<Key, Component>> = Mutex::new(BTreeMap::new());
    let meta = std::fs::metadata(path).with_context(|| format!("component {}", path.display()))?;
    let key = (path.canonicalize()?, meta.modified().ok(), meta.len());
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(component) = cache.get(&key) {
        return Ok(component.clone());
    }
    let component = Component::from_file(engine(), path)
        .map_err(|e| anyhow::anyhow!("compiling {}: {e:?}", path.display()))?;
    cache.insert(key, component.clone());
    Ok(component)
}

/// What one request's `Store` holds.
struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    outbound: OutboundPolicy,
    variables: ComponentVariables,
    key_value: KeyValueDispatch,
    limiter: MemoryPeak,
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.outbound }
    }
}

struct Server {
    pre: ProxyPre<RequestState>,
    outbound: Arc<AllowedHosts>,
    /// Shared by every instance, as Spin shares its outbound connection pool.
    connections: Arc<ConnectionPool>,
    component_id: Arc<str>,
    variables: Arc<BTreeMap<String, String>>,
    /// The component's `key_value_stores`.
    key_value_stores: Arc<BTreeSet<String>>,
    /// The application's stores, shared by every instance as Spin's store manager is.
    key_value: Arc<KeyValueStores>,
    route: Route,
    logs: Arc<GuestLogs>,
    options: HostOptions,
}

fn serve(listener: std::net::TcpListener, server: Arc<Server>, mut stop: oneshot::Receiver<()>) {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return eprintln!("spin host: cannot start a tokio runtime: {e}"),
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => return eprintln!("spin host: {e}"),
        };
        loop {
            let (stream, peer) = tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(_) => continue,
                },
            };
            let server = server.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| server.clone().handle(req, peer));
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    // Guests still waiting on a slow upstream are abandoned, not awaited.
    runtime.shutdown_timeout(Duration::from_millis(500));
}

impl Server {
    async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Response<HyperOutgoingBody>, Infallible> {
        let Some(path_info) = self.route.path_info(req.uri().path()) else {
            return Ok(plain(404, "Not Found"));
        };
        add_spin_headers(&mut req, &self.route, &path_info, peer);

        let stdout = MemoryOutputPipe::new(STDOUT_CAPACITY);
        let in_flight = self.options.keep_logs.then(|| self.logs.begin(stdout.clone()));
        let mut store = Store::new(
            self.pre.engine(),
            RequestState {
                wasi: WasiCtx::builder().stdout(stdout).inherit_stderr().build(),
                http: WasiHttpCtx::new(),
                table: ResourceTable::new(),
                outbound: OutboundPolicy::new(self.outbound.clone(), self.connections.clone()),
                variables: ComponentVariables {
                    component_id: self.component_id.clone(),
                    values: self.variables.clone(),
                },
                key_value: KeyValueDispatch::new(self.key_value_stores.clone(), self.key_value.clone()),
                limiter: MemoryPeak::default(),
            },
        );
        let stats = self.options.stats.clone();
        if stats.is_some() {
            store.limiter(|state| &mut state.limiter);
        }
        let (respond, response) = oneshot::channel();
        let prepared = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)
            .and_then(|req| Ok((req, store.data_mut().http().new_response_outparam(respond)?)));
        let (req, out) = match prepared {
            Ok(resources) => resources,
            Err(e) => {
                eprintln!("spin host: bad request: {e:?}");
                return Ok(plain(400, "Bad Request"));
            }
        };
        let pre = self.pre.clone();
        let guest = tokio::spawn(async move {
            let _in_flight = in_flight;
            let started = Instant::now();
            let proxy = pre.instantiate_async(&mut store).await?;
            let instantiate = started.elapsed();
            let result = proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await;
            if let Some(stats) = stats {
                let peak_memory_bytes = store.data().limiter.peak_bytes;
                stats.record(InstanceSample { instantiate, run: started.elapsed(), peak_memory_bytes });
            }
            result
        });
        match response.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(code)) => {
                eprintln!("spin host: guest answered with error {code:?}");
                Ok(plain(500, "Internal Server Error"))
            }
            Err(_) => {
                match guest.await {
                    Ok(Ok(())) => eprintln!("spin host: guest never set a response"),
                    Ok(Err(e)) => eprintln!("spin host: guest failed: {e:?}"),
                    Err(e) => eprintln!("spin host: guest task failed: {e}"),
                }
                Ok(plain(500, "Internal Server Error"))
            }
        }
    }
}

fn plain(status: u16, body: &'static str) -> Response<HyperOutgoingBody> {
    let mut resp =
        Response::new(Full::new(Bytes::from_static(body.as_bytes())).map_err(|e| match e {}).boxed_unsync());
    *resp.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    resp
}

/// A `[[trigger.http]]` route: exact (`/hello`) or wildcard (`/api/...`, `/...`).
#[derive(Debug, Clone)]
struct Route {
    raw: String,
    prefix: String,
    wildcard: bool,
}

impl Route {
    fn parse(route: &str) -> Self {
        match route.strip_suffix("/...") {
            Some(prefix) => Self { raw: route.into(), prefix: prefix.into(), wildcard: true },
            None => Self { raw: route.into(), prefix: route.trim_end_matches('/').into(), wildcard: false },
        }
    }

    fn path_info(&self, path: &str) -> Option<String> {
        let path = path.trim_end_matches('/');
        match path.strip_prefix(self.prefix.as_str()) {
            Some("") => Some(String::new()),
            Some(rest) if self.wildcard && rest.starts_with('/') => Some(rest.into()),
            _ => None,
        }
    }
}

/// The request headers Spin adds for the guest (spin-trigger-http).
fn add_spin_headers(req: &mut Request<Incoming>, route: &Route, path_info: &str, peer: SocketAddr) {
    let host =
        req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost").to_owned();
    let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let base = if route.prefix.is_empty() { "/" } else { route.prefix.as_str() };
    let headers = [
        ("spin-full-url", format!("http://{host}{path_and_query}")),
        ("spin-path-info", path_info.to_owned()),
        ("spin-matched-route", route.raw.clone()),
        ("spin-base-path", "/".to_owned()),
        ("spin-raw-component-route", route.raw.clone()),
        ("spin-component-route", base.trim_end_matches('/').to_owned()),
        ("spin-client-addr", peer.to_string()),
    ];
    for (name, value) in headers {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            req.headers_mut().insert(name, value);
        }
    }
}
