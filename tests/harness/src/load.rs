//! Load generation for benchmarks: keep-alive HTTP/1.1 connections, as a Knative broker's
//! dispatcher keeps them, each carrying one request at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// No request may take longer than this.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A `POST /` to send.
#[derive(Debug, Clone, Default)]
pub struct Post {
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
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
        // An ordinary client socket: Nagle on, the kernel's delayed ACKs, as Knative's
        // dispatcher uses it; tuning it would hide a server that sends its answer in pieces.
        let (_, authority, stream) = crate::http_client::connect(base_url).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Self { base_url: base_url.to_owned(), authority: authority.as_str().to_owned(), sender })
    }

    async fn post(&mut self, post: &Post) -> anyhow::Result<Answer> {
        let mut req = http::Request::builder()
            .method(http::Method::POST)
            .uri("/")
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

/// What [`Load::run_for`] saw.
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

/// Makes request number `i`; numbers are distinct across all connections and calls.
pub type MakeRequest = Arc<dyn Fn(u64) -> Post + Send + Sync>;

/// `concurrency` keep-alive connections driven together from one client thread.
pub struct Load {
    runtime: tokio::runtime::Runtime,
    connections: Vec<Open>,
    next: Arc<AtomicU64>,
}

impl Load {
    pub fn connect(base_url: &str, concurrency: usize) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let connections = runtime.block_on(async {
            let mut connections = Vec::with_capacity(concurrency);
            for _ in 0..concurrency {
                connections.push(Open::connect(base_url).await?);
            }
            anyhow::Ok(connections)
        })?;
        Ok(Self { runtime, connections, next: Arc::default() })
    }

    /// One request on every connection at once, answers not kept: the first requests after
    /// a pause are slower (new API connections in the host, cold caches in every process), and
    /// a measurement should not depend on how long the pause was.
    pub fn warm_up(&mut self, make: &MakeRequest) -> anyhow::Result<()> {
        self.drive(|| false, make).map(|_| ())
    }

    /// Every connection sends requests back to back until `duration` has passed (requests
    /// in flight then are awaited and counted).
    pub fn run_for(&mut self, duration: Duration, make: &MakeRequest) -> anyhow::Result<LoadRun> {
        let started = Instant::now();
        let deadline = started + duration;
        let (answers, errors) = self.drive(move || Instant::now() < deadline, make)?;
        Ok(LoadRun { elapsed: started.elapsed(), answers, errors })
    }

    /// Sends one request on each connection, then more while `again()`.
    fn drive(
        &mut self,
        again: impl Fn() -> bool + Clone + Send + 'static,
        make: &MakeRequest,
    ) -> anyhow::Result<(Vec<Answer>, usize)> {
        let connections = std::mem::take(&mut self.connections);
        let next = self.next.clone();
        let finished = self.runtime.block_on(async {
            let workers: Vec<_> = connections
                .into_iter()
                .map(|mut connection| {
                    let (next, make, again) = (next.clone(), make.clone(), again.clone());
                    tokio::spawn(async move {
                        let (mut answers, mut errors) = (Vec::new(), 0);
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            match connection.post(&make(i)).await {
                                Ok(answer) => answers.push(answer),
                                Err(_) => {
                                    errors += 1;
                                    if connection.reconnect().await.is_err() {
                                        tokio::time::sleep(Duration::from_millis(10)).await;
                                    }
                                }
                            }
                            if !again() {
                                break;
                            }
                        }
                        (connection, answers, errors)
                    })
                })
                .collect();
            let mut finished = Vec::with_capacity(workers.len());
            for worker in workers {
                finished.push(worker.await?);
            }
            anyhow::Ok(finished)
        })?;
        let (mut all_answers, mut all_errors) = (Vec::new(), 0);
        for (connection, answers, errors) in finished {
            self.connections.push(connection);
            all_answers.extend(answers);
            all_errors += errors;
        }
        Ok((all_answers, all_errors))
    }
}
