//! WASI HTTP plumbing: one outbound request bounded by a deadline, the incoming request's
//! body read up to a limit, and bodies written so that head and body leave together. spin-sdk 5.2's `send` sets no `request-options`, so a hung API server
//! would hold the request for Spin's default of 600 s; this module sets the timeouts and
//! also waits on a monotonic-clock deadline, so the bound holds on any host.

use std::time::Duration;

use wasi::clocks::monotonic_clock;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingBody, IncomingResponse, Method, OutgoingBody,
    OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::poll::{Pollable, poll};
use wasi::io::streams::{InputStream, OutputStream, StreamError};

use crate::kube::TransportError;

/// Answers from the API server larger than this are not read (a pod is a few KiB).
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
const READ_CHUNK: u64 = 64 * 1024;

pub fn send(
    request: http::Request<Vec<u8>>,
    timeout: Duration,
) -> Result<http::Response<Vec<u8>>, TransportError> {
    let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    let deadline = monotonic_clock::subscribe_instant(monotonic_clock::now().saturating_add(nanos));
    let (parts, body) = request.into_parts();
    let outgoing = outgoing_request(&parts, body.len())?;
    let outgoing_body = outgoing.body().map_err(|()| failed("the request body is not writable"))?;
    let stream = outgoing_body.write().map_err(|()| failed("the request body is not writable"))?;

    let options = RequestOptions::new();
    // A host may not support every timeout; the deadline below bounds the call regardless.
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    let _ = options.set_between_bytes_timeout(Some(nanos));

    // The body goes to the host before the request does, so that the host sends head and body
    // together: a body that follows the head waits for the peer's delayed ACK (Nagle), ~40 ms.
    // Only a body larger than the host's buffer is written after the request is handed over.
    let buffered = write_ready(&stream, &body).map_err(|error| body_error(&error))?;
    let (future, written) = if buffered == body.len() {
        drop(stream);
        OutgoingBody::finish(outgoing_body, None).map_err(transport_error)?;
        (outgoing_handler::handle(outgoing, Some(options)).map_err(transport_error)?, Ok(()))
    } else {
        let future = outgoing_handler::handle(outgoing, Some(options)).map_err(transport_error)?;
        let written = write_all(&stream, &body[buffered..], Some(&deadline)).and_then(|()| {
            drop(stream);
            OutgoingBody::finish(outgoing_body, None).map_err(transport_error)
        });
        (future, written)
    };
    let response = match wait_for_response(&future, &deadline) {
        Ok(response) => response,
        // When a write fails, the response future usually holds the host's reason (e.g. a
        // denied outbound host); the write error is the better report only after a timeout.
        Err(TransportError::TimedOut) => return Err(written.err().unwrap_or(TransportError::TimedOut)),
        Err(error) => return Err(error),
    };
    drop(future);
    response_parts(response, &deadline)
}

fn outgoing_request(
    parts: &http::request::Parts,
    body_len: usize,
) -> Result<OutgoingRequest, TransportError> {
    let mut entries: Vec<(String, Vec<u8>)> = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    // A known length lets the host send the body in one piece rather than as chunks.
    if body_len > 0 {
        entries.push(("content-length".to_owned(), body_len.to_string().into_bytes()));
    }
    let headers =
        Fields::from_list(&entries).map_err(|error| failed(&format!("invalid request header: {error:?}")))?;
    let request = OutgoingRequest::new(headers);
    let method = match parts.method.as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_owned()),
    };
    let scheme = match parts.uri.scheme_str() {
        Some("http") => Scheme::Http,
        _ => Scheme::Https,
    };
    let valid = request.set_method(&method).is_ok()
        && request.set_scheme(Some(&scheme)).is_ok()
        && request.set_authority(parts.uri.authority().map(|a| a.as_str())).is_ok()
        && request.set_path_with_query(parts.uri.path_and_query().map(|p| p.as_str())).is_ok();
    if valid { Ok(request) } else { Err(failed(&format!("the host rejected the request URL {}", parts.uri))) }
}

/// Writes as much of `bytes` as the host takes without waiting; returns how many it took.
pub fn write_ready(stream: &OutputStream, bytes: &[u8]) -> Result<usize, StreamError> {
    let mut written = 0;
    while written < bytes.len() {
        let permitted = usize::try_from(stream.check_write()?).unwrap_or(usize::MAX);
        if permitted == 0 {
            break;
        }
        let end = written + permitted.min(bytes.len() - written);
        stream.write(&bytes[written..end])?;
        written = end;
    }
    stream.flush()?;
    Ok(written)
}

/// Writes all of `bytes`, waiting for the host to take them (until `deadline`, if any).
pub fn write_all(
    stream: &OutputStream,
    bytes: &[u8],
    deadline: Option<&Pollable>,
) -> Result<(), TransportError> {
    let mut written = 0;
    loop {
        written += write_ready(stream, &bytes[written..]).map_err(|error| body_error(&error))?;
        if written == bytes.len() {
            return Ok(());
        }
        let ready = stream.subscribe();
        match deadline {
            Some(deadline) => wait(&ready, deadline)?,
            None => ready.block(),
        }
    }
}

fn body_error(error: &StreamError) -> TransportError {
    failed(&format!("cannot write the body: {error:?}"))
}

fn wait_for_response(
    future: &FutureIncomingResponse,
    deadline: &Pollable,
) -> Result<IncomingResponse, TransportError> {
    loop {
        match future.get() {
            Some(Ok(Ok(response))) => return Ok(response),
            Some(Ok(Err(code))) => return Err(transport_error(code)),
            Some(Err(())) => return Err(failed("the response was already taken")),
            None => {
                let ready = future.subscribe();
                wait(&ready, deadline)?;
            }
        }
    }
}

/// Blocks until `ready` fires; `TimedOut` when the deadline comes first.
fn wait(ready: &Pollable, deadline: &Pollable) -> Result<(), TransportError> {
    if poll(&[ready, deadline]).contains(&0) { Ok(()) } else { Err(TransportError::TimedOut) }
}

fn response_parts(
    response: IncomingResponse,
    deadline: &Pollable,
) -> Result<http::Response<Vec<u8>>, TransportError> {
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers().entries() {
        builder = builder.header(name, value);
    }
    let incoming_body = response.consume().map_err(|()| failed("the response body is not readable"))?;
    let body = {
        let stream = incoming_body.stream().map_err(|()| failed("the response body is not readable"))?;
        read_stream(&stream, MAX_RESPONSE_BYTES, Some(deadline))
    };
    drop(IncomingBody::finish(incoming_body));
    let body = body.map_err(|error| match error {
        ReadError::TooLarge => failed(&format!("the API answered more than {MAX_RESPONSE_BYTES} bytes")),
        ReadError::TimedOut => TransportError::TimedOut,
        ReadError::Failed(detail) => failed(&detail),
    })?;
    builder.body(body).map_err(|error| failed(&format!("invalid response: {error}")))
}

/// Why a body could not be read in full.
#[derive(Debug)]
pub enum ReadError {
    TooLarge,
    TimedOut,
    Failed(String),
}

/// Reads the whole incoming request body, or stops once it is over `limit` bytes.
pub fn read_request_body(
    request: spin_sdk::http::IncomingRequest,
    limit: usize,
) -> Result<Vec<u8>, ReadError> {
    let body = request.consume().map_err(|()| ReadError::Failed("the body was already taken".into()))?;
    let stream = body.stream().map_err(|()| ReadError::Failed("the body is not readable".into()))?;
    read_stream(&stream, limit, None)
}

fn read_stream(
    stream: &InputStream,
    limit: usize,
    deadline: Option<&Pollable>,
) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    loop {
        match stream.read(READ_CHUNK) {
            Ok(chunk) if chunk.is_empty() => {
                let ready = stream.subscribe();
                match deadline {
                    Some(deadline) => wait(&ready, deadline).map_err(|_| ReadError::TimedOut)?,
                    None => ready.block(),
                }
            }
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > limit {
                    return Err(ReadError::TooLarge);
                }
            }
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(error)) => {
                return Err(ReadError::Failed(error.to_debug_string()));
            }
        }
    }
}

fn failed(detail: &str) -> TransportError {
    TransportError::Failed(detail.to_owned())
}

fn transport_error(code: ErrorCode) -> TransportError {
    match code {
        ErrorCode::HttpRequestDenied => TransportError::Denied("HttpRequestDenied".into()),
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout => TransportError::TimedOut,
        other => TransportError::Failed(format!("{other:?}")),
    }
}
