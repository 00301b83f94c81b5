//! The Spin entry point, compiled for wasm only (`#[http_component]` exports symbols a native
//! linker rejects): the HTTP request in, the answer out, one log line on stdout. With
//! [`wasi_http`], the only code that talks to the host; no decisions are made here.

mod wasi_http;

use std::time::{Duration, Instant};

use spin_sdk::http::{
    Fields, IncomingRequest, Method as SpinMethod, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;
use spin_sdk::wit::wasi::http0_2_0::types::{self as http_types, ErrorCode};

use crate::host::Host;
use crate::kube::{KubeApi, TransportError};
use crate::respond::{HttpAnswer, Rejection};
use crate::service::{self, Incoming, MAX_BODY_BYTES};

#[http_component]
fn handle_request(request: IncomingRequest, response_out: ResponseOutparam) {
    let started = Instant::now();
    let method = http_method(request.method());
    let headers = header_map(&request);
    let body = read_body(request, &headers);
    let mut host = SpinHost { store: None };
    let (answer, mut log) = service::handle(Incoming { method: &method, headers: &headers, body }, &mut host);
    log.elapsed_ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
    match serde_json::to_string(&log) {
        Ok(line) => println!("{line}"),
        Err(error) => eprintln!("cannot write the log line: {error}"),
    }
    if let Err(error) = respond(answer, response_out) {
        eprintln!("cannot send the answer: {error}");
    }
}

/// Sends the answer in one piece: the body is written and finished before the response is
/// handed to the host. spin-sdk's `set_with_body` hands the response over first; the host then
/// sends the head alone, and the body waits for the client's delayed ACK (Nagle), ~40 ms. A
/// body larger than the host's buffer is written after the hand-over, as it must be.
fn respond(answer: HttpAnswer, response_out: ResponseOutparam) -> Result<(), String> {
    let response = match outgoing_response(&answer) {
        Ok(response) => response,
        Err(error) => {
            let out = response_out.into_inner();
            http_types::ResponseOutparam::set(out, Err(ErrorCode::InternalError(Some(error.clone()))));
            return Err(error);
        }
    };
    let body = response.body().map_err(|()| "the response body is not writable".to_owned())?;
    let stream = body.write().map_err(|()| "the response body is not writable".to_owned())?;
    let buffered = wasi_http::write_ready(&stream, &answer.body).map_err(|error| format!("{error:?}"))?;
    if buffered < answer.body.len() {
        response_out.set(response);
        wasi_http::write_all(&stream, &answer.body[buffered..], None)
            .map_err(|error| format!("{error:?}"))?;
        drop(stream);
        return OutgoingBody::finish(body, None).map_err(|error| format!("{error:?}"));
    }
    drop(stream);
    OutgoingBody::finish(body, None).map_err(|error| format!("{error:?}"))?;
    response_out.set(response);
    Ok(())
}

fn outgoing_response(answer: &HttpAnswer) -> Result<OutgoingResponse, String> {
    let mut entries: Vec<(String, Vec<u8>)> =
        answer.headers.iter().map(|(name, value)| ((*name).to_owned(), value.as_bytes().to_vec())).collect();
    // A 204 carries no Content-Length (RFC 9110 §8.6).
    if answer.status != 204 {
        entries.push(("content-length".to_owned(), answer.body.len().to_string().into_bytes()));
    }
    let headers = Fields::from_list(&entries).map_err(|error| format!("invalid answer header: {error:?}"))?;
    let response = OutgoingResponse::new(headers);
    response.set_status_code(answer.status).map_err(|()| format!("invalid status {}", answer.status))?;
    Ok(response)
}

/// Spin variables, the clock, the key-value store and outbound HTTP.
struct SpinHost {
    /// The store `default`, opened when first used.
    store: Option<Result<Store, String>>,
}

impl SpinHost {
    fn default_store(&mut self) -> Result<&Store, String> {
        let opened = self.store.get_or_insert_with(|| {
            Store::open_default()
                .map_err(|error| format!("cannot open the key-value store `default`: {error}"))
        });
        opened.as_ref().map_err(Clone::clone)
    }
}

impl Host for SpinHost {
    fn variable(&self, name: &str) -> Result<String, String> {
        spin_sdk::variables::get(name).map_err(|error| error.to_string())
    }

    fn now(&self) -> String {
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    fn unix_seconds(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_secs())
    }

    fn stored(&mut self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.default_store()?.get(key).map_err(|error| error.to_string())
    }

    fn store(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        self.default_store()?.set(key, value).map_err(|error| error.to_string())
    }
}

impl KubeApi for SpinHost {
    fn send(
        &mut self,
        request: http::Request<Vec<u8>>,
        timeout: Duration,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        wasi_http::send(request, timeout)
    }
}

/// spin-sdk's own `From<Method> for http::Method` panics on an `Other` method that `http`
/// cannot parse; the request path must never panic.
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
    let too_large = Rejection::BodyTooLarge { limit: MAX_BODY_BYTES };
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(too_large);
    }
    wasi_http::read_request_body(request, MAX_BODY_BYTES).map_err(|error| match error {
        wasi_http::ReadError::TooLarge => too_large,
        // No deadline is set on the incoming body: the host times out slow clients.
        wasi_http::ReadError::TimedOut => Rejection::UnreadableBody("timed out".into()),
        wasi_http::ReadError::Failed(detail) => Rejection::UnreadableBody(detail),
    })
}
