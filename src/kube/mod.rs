//! The Kubernetes API as the component uses it: how a request is sent (a trait the host
//! implements), the requests it makes ([`requests`]), how it reads the answers
//! ([`responses`]), and what the answers of one event's calls mean ([`calls`]).

pub mod calls;
pub mod requests;
pub mod responses;

use std::time::Duration;

/// Sends one request to the API server: Spin's outbound HTTP in the component, a fake in
/// tests. A call that has no complete answer within `timeout` is `TimedOut`.
pub trait KubeApi {
    fn send(
        &mut self,
        request: http::Request<Vec<u8>>,
        timeout: Duration,
    ) -> Result<http::Response<Vec<u8>>, TransportError>;
}

/// A call that got no HTTP answer.
#[derive(Debug, Clone, PartialEq)]
pub enum TransportError {
    /// The host refused to send it: the URL is outside `allowed_outbound_hosts`.
    Denied(String),
    /// No complete answer within the timeout.
    TimedOut,
    /// DNS, connection, TLS or protocol failure.
    Failed(String),
}

pub use requests::POD_VERBS;
