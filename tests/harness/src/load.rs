//! Load generation for benchmarks: keep-alive HTTP/1.1 connections, as a Knative broker's
//! dispatcher keeps them, each carrying one request at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// No request may take longer than this.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A request to send (by default a `POST /`).
#[derive(Debug, Clone)]
pub struct Post {
    pub method: &'static str,
    /// Path and query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Default for Post {
    fn default() -> Self {
        Self { method: "POST", path: "/".into(), headers: Vec::new(), body: Bytes::new() }
    }
}

/// One answered request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// From handing the request to the connection to having the whole answer body.
    pub latency: Duration,
}

/// One keep-alive connection, driven from synchronous code.
pub struct Connection {
    runtime: tokio::runtime::Runtime,
    open: Open,
}

impl Connection {
    /// Connects to an `http://host:port` URL.
    pub fn open(base_url: &str) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let open = runtime.block_on(Open::connect(base_url))?;
        Ok(Self { runtime, open })
    }

    /// Sends `post` and waits for the whole answer.
    pub fn post(&mut self, post: &Post) -> anyhow::Result<Answer> {
        self.runtime.block_on(self.open.post(post))
    }
}

struct Open {
    base_url: String,
    authority: String,
    sender: SendRequest<Full<Bytes>>,
}

impl Open {
    async fn connect(base_url: &str) -> anyhow::Result<Self> {
        let uri: http::Uri = base_url.parse().with_context(|| format!("invalid URL {base_url:?}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("only http:// URLs are supported: {base_url}");
        }
        let authority = uri.authority().context("URL without host")?.clone();
        let stream =
            tokio::net::TcpStream::connect((authority.host(), authority.port_u16().unwrap_or(80))).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Self { base_url: base_url.to_owned(), authority: authority.as_str().to_owned(), sender })
    }

    async fn post(&mut self, post: &Post) -> anyhow::Result<Answer> {
        let mut req = http::Request::builder()
            .method(post.method)
            .uri(post.path.as_str())
            .header(http::header::HOST, &self.authority);
        for (name, value) in &post.headers {
            req = req.header(name, value);
        }
        let req = req.body(Full::new(post.body.clone()))?;
        let started = Instant::now();
        let exchange = async {
            self.sender.ready().await?;
            let resp = self.sender.send_request(req).await?;
            let status = resp.status().as_u16();
            resp.into_body().collect().await?;
            anyhow::Ok(status)
        };
        let status = tokio::time::timeout(TIMEOUT, exchange).await.context("no answer in time")??;
        Ok(Answer { status, latency: started.elapsed() })
    }

    async fn reconnect(&mut self) -> anyhow::Result<()> {
        let fresh = Self::connect(&self.base_url).await?;
        *self = fresh;
        Ok(())
    }
}

/// What [`run_for`] saw.
#[derive(Debug, Clone)]
pub struct LoadRun {
    /// From the first request sent to the last answer received.
    pub elapsed: Duration,
    pub answers: Vec<Answer>,
    /// Requests that got no answer (the connection is then reopened).
    pub errors: usize,
}

impl LoadRun {
    /// Answered requests per second.
    pub fn throughput(&self) -> f64 {
        self.answers.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// `concurrency` connections, each sending requests back to back until `duration` has
/// passed (requests in flight then are awaited and counted). Request number `i` (distinct
/// across all connections, from 0) is `make(i)`. The client runs on one thread.
pub fn run_for(
    base_url: &str,
    concurrency: usize,
    duration: Duration,
    make: Arc<dyn Fn(u64) -> Post + Send + Sync>,
) -> anyhow::Result<LoadRun> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut connections = Vec::with_capacity(concurrency);
        for _ in 0..concurrency {
            connections.push(Open::connect(base_url).await?);
        }
        let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + duration;
        let workers: Vec<_> = connections
            .into_iter()
            .map(|mut connection| {
                let (next, make) = (next.clone(), make.clone());
                tokio::spawn(async move {
                    let (mut answers, mut errors) = (Vec::new(), 0);
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        match connection.post(&make(i)).await {
                            Ok(answer) => answers.push(answer),
                            Err(_) => {
                                errors += 1;
                                if connection.reconnect().await.is_err() {
                                    tokio::time::sleep(Duration::from_millis(10)).await;
                                }
                            }
                        }
                    }
                    (answers, errors)
                })
            })
            .collect();
        let mut run = LoadRun { elapsed: Duration::ZERO, answers: Vec::new(), errors: 0 };
        for worker in workers {
            let (answers, errors) = worker.await?;
            run.answers.extend(answers);
            run.errors += errors;
        }
        run.elapsed = started.elapsed();
        Ok(run)
    })
}
