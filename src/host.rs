//! What the component needs from the host it runs in, besides the request: Spin variables,
//! the clock and the Kubernetes API. The Spin entry implements it with Spin's interfaces;
//! the tests with fakes.

use crate::kube::KubeApi;

pub trait Host: KubeApi {
    /// A Spin variable, or the host's error text.
    fn variable(&self, name: &str) -> Result<String, String>;
    /// Now, as an RFC 3339 timestamp for a reply's `time`.
    fn now(&self) -> String;
}
