//! What the component needs from the host it runs in, besides the request: Spin variables,
//! the clock, the key-value store and the Kubernetes API. The Spin entry implements it with
//! Spin's interfaces; the tests with fakes.

use crate::kube::KubeApi;

pub trait Host: KubeApi {
    /// A Spin variable, or the host's error text.
    fn variable(&self, name: &str) -> Result<String, String>;
    /// Now, as an RFC 3339 timestamp for a reply's `time`.
    fn now(&self) -> String;
    /// Now, in Unix seconds.
    fn unix_seconds(&self) -> u64;
    /// The value of `key` in the key-value store `default`, or the host's error text.
    fn stored(&mut self, key: &str) -> Result<Option<Vec<u8>>, String>;
    /// Sets `key` in the key-value store `default`.
    fn store(&mut self, key: &str, value: &[u8]) -> Result<(), String>;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::tests::spin_defaults;
    use crate::kube::TransportError;
    use crate::kube::calls::tests::ScriptedApi;
    use std::collections::HashMap;

    /// spin.toml's variables, a scripted API, a key-value store in memory and a fixed clock.
    pub(crate) struct FakeHost {
        pub(crate) variables: HashMap<String, String>,
        pub(crate) api: ScriptedApi,
        pub(crate) store: HashMap<String, Vec<u8>>,
        /// Set: every store operation fails with this.
        pub(crate) store_error: Option<String>,
        pub(crate) unix_seconds: u64,
    }

    impl FakeHost {
        /// spin.toml's defaults, but no routing check: these tests are about the request's
        /// way through the component (`provision` tests the routing guard).
        pub(crate) fn new(answers: Vec<Result<http::Response<Vec<u8>>, TransportError>>) -> Self {
            let mut variables = spin_defaults();
            variables.insert("routing_guard".into(), "off".into());
            FakeHost {
                variables,
                api: ScriptedApi::new(answers),
                store: HashMap::new(),
                store_error: None,
                unix_seconds: 1_764_583_200,
            }
        }

        pub(crate) fn set(&mut self, name: &str, value: &str) {
            self.variables.insert(name.into(), value.into());
        }
    }

    impl KubeApi for FakeHost {
        fn send(
            &mut self,
            request: http::Request<Vec<u8>>,
            timeout: std::time::Duration,
        ) -> Result<http::Response<Vec<u8>>, TransportError> {
            self.api.send(request, timeout)
        }
    }

    impl Host for FakeHost {
        fn variable(&self, name: &str) -> Result<String, String> {
            self.variables.get(name).cloned().ok_or_else(|| format!("undefined: {name}"))
        }
        fn now(&self) -> String {
            "2026-11-23T08:00:00.000Z".into()
        }
        fn unix_seconds(&self) -> u64 {
            self.unix_seconds
        }
        fn stored(&mut self, key: &str) -> Result<Option<Vec<u8>>, String> {
            match &self.store_error {
                Some(error) => Err(error.clone()),
                None => Ok(self.store.get(key).cloned()),
            }
        }
        fn store(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
            match &self.store_error {
                Some(error) => Err(error.clone()),
                None => {
                    self.store.insert(key.into(), value.to_vec());
                    Ok(())
                }
            }
        }
    }
}
