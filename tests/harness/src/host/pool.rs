//! Outbound HTTP/1.1 connections kept open across requests and instances, as Spin's host
//! keeps them: Spin sends `wasi:http` requests through a pooled client shared by every
//! instance of the application (spinframework/spin#3229, #3240; on by default), on plain
//! TCP streams (no `TCP_NODELAY`), as here. The guest's `request-options` timeouts are
//! honoured as wasmtime-wasi-http's default sender does. Idle connections do not expire: the
//! fake API server never closes them.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// wasmtime-wasi-http's timeout when the guest sets none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Idle connections kept per `host:port`; more are closed when they become idle.
const MAX_IDLE_PER_AUTHORITY: usize = 128;

/// Idle connections by `host:port`, for `http://` requests.
#[derive(Default)]
pub(super) struct ConnectionPool {
    idle: Mutex<HashMap<String, Vec<SendRequest<WasiBody>>>>,
}

struct Timeouts {
    connect: Duration,
    first_byte: Duration,
    between_bytes: Duration,
}

impl Timeouts {
    fn of(options: Option<RequestOptions>) -> Self {
        let options = options.unwrap_or_default();
        let or_default = |timeout: Option<Duration>| timeout.unwrap_or(DEFAULT_TIMEOUT);
        Self {
            connect: or_default(options.connect_timeout),
            first_byte: or_default(options.first_byte_timeout),
            // tokio cannot sleep for zero: 1 ns is as good.
            between_bytes: or_default(options.between_bytes_timeout).max(Duration::from_nanos(1)),
        }
    }
}

impl ConnectionPool {
    /// Sends a plain-HTTP request with an absolute URI on an idle connection to its
    /// authority, or on a new one. A request that a reused connection closed before taking it
    /// is sent again on another connection (a server may close an idle connection at any time).
    pub(super) async fn send(
        self: Arc<Self>,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<http::Response<WasiBody>, Error> {
        let timeouts = Timeouts::of(options);
        let uri = request.uri();
        let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
        let authority = format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(80));
        // On the wire the request line carries only the path and query.
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;

        loop {
            let (mut sender, reused) = match self.checkout(&authority, timeouts.connect).await {
                Some(sender) => (sender, true),
                None => (connect(&authority, timeouts.connect).await?, false),
            };
            let answer = tokio::time::timeout(timeouts.first_byte, sender.try_send_request(request))
                .await
                .map_err(|_| Error::ConnectionReadTimeout)?;
            match answer {
                Ok(response) => {
                    let (pool, between_bytes) = (self.clone(), timeouts.between_bytes);
                    return Ok(response.map(|body| {
                        PooledBody {
                            body,
                            limit: between_bytes,
                            timer: Box::pin(tokio::time::sleep(between_bytes)),
                            connection: Some((pool, authority, sender)),
                        }
                        .boxed_unsync()
                    }));
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(error.into_error().into()),
                },
            }
        }
    }

    /// An idle connection to `authority` that can take a request, if there is one. Connections
    /// are put back as soon as their response has been read; hyper may need a moment more to
    /// mark one ready (waited for no longer than a connect), or may find it closed.
    async fn checkout(&self, authority: &str, wait: Duration) -> Option<SendRequest<WasiBody>> {
        loop {
            let mut sender = {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                idle.get_mut(authority)?.pop()?
            };
            if let Ok(Ok(())) = tokio::time::timeout(wait, sender.ready()).await {
                return Some(sender);
            }
        }
    }

    fn checkin(&self, authority: String, sender: SendRequest<WasiBody>) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let senders = idle.entry(authority).or_default();
        if senders.len() < MAX_IDLE_PER_AUTHORITY && !sender.is_closed() {
            senders.push(sender);
        }
    }
}

async fn connect(authority: &str, timeout: Duration) -> Result<SendRequest<WasiBody>, Error> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(authority))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(Error::Connect)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// A response body that fails with `ConnectionReadTimeout` when no frame comes for `limit`,
/// and gives its connection back to the pool once read to the end. A body dropped before its
/// end takes the connection with it (hyper then closes it).
struct PooledBody {
    body: Incoming,
    limit: Duration,
    timer: Pin<Box<Sleep>>,
    connection: Option<(Arc<ConnectionPool>, String, SendRequest<WasiBody>)>,
}

impl PooledBody {
    fn release_connection(&mut self) {
        if let Some((pool, authority, sender)) = self.connection.take() {
            pool.checkin(authority, sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.timer.as_mut().reset(Instant::now() + this.limit);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.connection = None;
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Ready(None) => {
                this.release_connection();
                Poll::Ready(None)
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.connection = None;
                    Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    /// A body read to its end without a last poll (an empty one, say) still frees its connection.
    fn drop(&mut self) {
        if self.body.is_end_stream() {
            self.release_connection();
        }
    }
}
