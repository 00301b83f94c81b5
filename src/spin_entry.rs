//! The Spin entry point: the HTTP request in, the answer out, one log line on stdout.

use std::time::{Duration, Instant};

use spin_sdk::http::{IncomingRequest, Method as SpinMethod, Response};
use spin_sdk::http_component;

use crate::event::{MAX_BODY_BYTES, Rejection};
use crate::kube::{KubeApi, TransportError};
use crate::outbound;
use crate::service::{self, Host, Incoming};

#[http_component]
fn handle_request(request: IncomingRequest) -> Response {
    let started = Instant::now();
    let method = http_method(request.method());
    let headers = header_map(&request);
    let body = read_body(request, &headers);
    let mut host = SpinHost;
    let (answer, mut log) = service::handle(Incoming { method: &method, headers: &headers, body }, &mut host);
    log.elapsed_ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
    match serde_json::to_string(&log) {
        Ok(line) => println!("{line}"),
        Err(error) => eprintln!("cannot write the log line: {error}"),
    }
    let mut response = Response::builder();
    response.status(answer.status);
    for (name, value) in answer.headers {
        response.header(name, value);
    }
    response.body(answer.body).build()
}

/// Spin variables, the clock and outbound HTTP.
struct SpinHost;

impl Host for SpinHost {
    fn variable(&self, name: &str) -> Result<String, String> {
        spin_sdk::variables::get(name).map_err(|error| error.to_string())
    }

    fn now(&self) -> String {
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

impl KubeApi for SpinHost {
    fn send(
        &mut self,
        request: http::Request<Vec<u8>>,
        timeout: Duration,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        outbound::send(request, timeout)
    }
}

fn http_method(method: SpinMethod) -> http::Method {
    match method {
        SpinMethod::Get => http::Method::GET,
        SpinMethod::Head => http::Method::HEAD,
        SpinMethod::Post => http::Method::POST,
        SpinMethod::Put => http::Method::PUT,
        SpinMethod::Delete => http::Method::DELETE,
        SpinMethod::Connect => http::Method::CONNECT,
        SpinMethod::Options => http::Method::OPTIONS,
        SpinMethod::Trace => http::Method::TRACE,
        SpinMethod::Patch => http::Method::PATCH,
        // Hosts only pass method tokens, which `from_bytes` accepts; any non-POST gets 405.
        SpinMethod::Other(other) => {
            http::Method::from_bytes(other.as_bytes()).unwrap_or(http::Method::OPTIONS)
        }
    }
}

/// The request's headers; a name or value `http` cannot hold is dropped (the host has
/// already checked them, so this does not happen in practice).
fn header_map(request: &IncomingRequest) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for (name, value) in request.headers().entries() {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_bytes(&value))
        {
            headers.append(name, value);
        }
    }
    headers
}

/// Reads the body, refusing it as soon as it is over the limit.
fn read_body(request: IncomingRequest, headers: &http::HeaderMap) -> Result<Vec<u8>, Rejection> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(Rejection::body_too_large());
    }
    outbound::read_all(request, MAX_BODY_BYTES).map_err(|error| match error {
        outbound::ReadError::TooLarge => Rejection::body_too_large(),
        // No deadline is set on the incoming body: the host times out slow clients.
        outbound::ReadError::TimedOut => {
            Rejection { status: 400, message: "cannot read the request body: timed out".into() }
        }
        outbound::ReadError::Failed(detail) => {
            Rejection { status: 400, message: format!("cannot read the request body: {detail}") }
        }
    })
}
