//! A minimal HTTP/1.1 client (one connection per request) for tests.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// No test request may take longer than this.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (showing the body) if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends one request to an `http://` URL.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> anyhow::Result<Response> {
    tokio::time::timeout(TIMEOUT, send_inner(method, url, headers, body.into()))
        .await
        .with_context(|| format!("{method} {url}: no answer within {TIMEOUT:?}"))?
}

/// [`send`] on a private runtime, for tests that are not `async` (must not be called from
/// inside a tokio runtime).
pub fn send_blocking(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> anyhow::Result<Response> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(send(method, url, headers, body))
}

async fn send_inner(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> anyhow::Result<Response> {
    let (uri, authority, stream) = connect(url).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let conn = tokio::spawn(conn);

    let mut req = http::Request::builder()
        .method(method)
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::HOST, authority.as_str());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = sender.send_request(req.body(Full::new(body))?).await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    conn.abort();
    Ok(Response { status: parts.status.as_u16(), headers: parts.headers, body })
}

/// Parses an `http://` URL and opens a TCP connection to its host and port.
pub(crate) async fn connect(
    url: &str,
) -> anyhow::Result<(http::Uri, http::uri::Authority, tokio::net::TcpStream)> {
    let uri: http::Uri = url.parse().with_context(|| format!("invalid URL {url:?}"))?;
    if uri.scheme_str() != Some("http") {
        bail!("only http:// URLs are supported: {url}");
    }
    let authority = uri.authority().context("URL without host")?.clone();
    let stream =
        tokio::net::TcpStream::connect((authority.host(), authority.port_u16().unwrap_or(80))).await?;
    Ok((uri, authority, stream))
}

/// One keep-alive connection on a plain socket, for tests about what arrives when: it counts
/// the reads each answer takes.
pub struct RawConnection {
    stream: std::net::TcpStream,
    host: String,
    pending: Vec<u8>,
}

/// An answer read from a [`RawConnection`].
#[derive(Debug, Clone)]
pub struct RawAnswer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
    /// Socket reads that returned bytes of this answer.
    pub reads: u32,
}

impl RawConnection {
    /// Connects to an `http://host:port` URL.
    pub fn open(base_url: &str) -> anyhow::Result<Self> {
        let uri: http::Uri = base_url.parse().with_context(|| format!("invalid URL {base_url:?}"))?;
        let authority = uri.authority().context("URL without host")?.clone();
        let stream = std::net::TcpStream::connect((authority.host(), authority.port_u16().unwrap_or(80)))?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        Ok(Self { stream, host: authority.to_string(), pending: Vec::new() })
    }

    /// Sends `POST /` with `headers` and `body` in one write and reads the whole answer
    /// (framed by `Content-Length` or chunked).
    pub fn post(&mut self, headers: &[(&str, &str)], body: &[u8]) -> anyhow::Result<RawAnswer> {
        use std::io::{Read, Write};
        let mut request =
            format!("POST / HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\n", self.host, body.len());
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        self.stream.write_all(&bytes)?;

        let mut reads = 0;
        let mut buffer = [0; 64 * 1024];
        loop {
            if let Some(answer) = self.complete_answer(reads)? {
                return Ok(answer);
            }
            let n = self.stream.read(&mut buffer)?;
            if n == 0 {
                bail!("the connection was closed after {} bytes of an answer", self.pending.len());
            }
            reads += 1;
            self.pending.extend_from_slice(&buffer[..n]);
        }
    }

    fn complete_answer(&mut self, reads: u32) -> anyhow::Result<Option<RawAnswer>> {
        let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Ok(None);
        };
        let head = String::from_utf8_lossy(&self.pending[..end]).into_owned();
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("a status line")?;
        let header = |wanted: &str| {
            head.lines()
                .find_map(|line| line.split_once(':').filter(|(name, _)| name.eq_ignore_ascii_case(wanted)))
                .map(|(_, value)| value.trim().to_owned())
        };
        let start = end + 4;
        let framed =
            if header("transfer-encoding").is_some_and(|coding| coding.eq_ignore_ascii_case("chunked")) {
                dechunk(&self.pending[start..])?
            } else {
                let length =
                    header("content-length").map(|value| value.parse::<usize>()).transpose()?.unwrap_or(0);
                (self.pending.len() >= start + length)
                    .then(|| (self.pending[start..start + length].to_vec(), length))
            };
        let Some((body, used)) = framed else {
            return Ok(None);
        };
        self.pending.drain(..start + used);
        Ok(Some(RawAnswer { status, head, body, reads }))
    }
}

/// A complete chunked body at the start of `bytes`, and how many bytes it took; `None` while
/// incomplete. Chunk extensions and trailers are not expected.
fn dechunk(bytes: &[u8]) -> anyhow::Result<Option<(Vec<u8>, usize)>> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(line_end) = bytes[at..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size = usize::from_str_radix(std::str::from_utf8(&bytes[at..at + line_end])?.trim(), 16)?;
        let data = at + line_end + 2;
        if bytes.len() < data + size + 2 {
            return Ok(None);
        }
        if size == 0 {
            return Ok(Some((body, data + 2)));
        }
        body.extend_from_slice(&bytes[data..data + size]);
        at = data + size + 2;
    }
}
