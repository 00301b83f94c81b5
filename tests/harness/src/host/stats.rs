//! Host options for benchmarks: per-instance measurements (how long instantiation took, the
//! most linear memory the instance asked for) and not keeping every request's stdout.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How a [`super::SpinHost`] runs; [`super::SpinHost::start`] uses the defaults.
#[derive(Clone)]
pub struct HostOptions {
    /// Keep every request's stdout for [`super::SpinHost::logs`] (the default). Turn it off
    /// for long benchmark runs: the kept lines grow with every request.
    pub keep_logs: bool,
    /// Where to record one [`InstanceSample`] per request.
    pub stats: Option<Arc<InstanceStats>>,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self { keep_logs: true, stats: None }
    }
}

/// One request's instance, measured by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceSample {
    /// `ProxyPre::instantiate_async`: a fresh instance of the pre-compiled, pre-linked component.
    pub instantiate: Duration,
    /// Instantiation plus the guest's `incoming-handler.handle` call, to its return.
    pub run: Duration,
    /// The largest linear-memory size the instance asked for (its initial size if it never
    /// grew), in bytes.
    pub peak_memory_bytes: usize,
}

/// Collects [`InstanceSample`]s; drain them with [`InstanceStats::take`].
#[derive(Debug, Default)]
pub struct InstanceStats {
    samples: Mutex<Vec<InstanceSample>>,
}

impl InstanceStats {
    /// The samples recorded since the last `take`. A request's sample is recorded when its
    /// guest call returns, which can be just after the client has the whole answer.
    pub fn take(&self) -> Vec<InstanceSample> {
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(super) fn record(&self, sample: InstanceSample) {
        self.samples.lock().unwrap_or_else(PoisonError::into_inner).push(sample);
    }
}

/// A `ResourceLimiter` that allows everything and remembers the largest memory asked for.
#[derive(Debug, Default)]
pub(super) struct MemoryPeak {
    pub(super) peak_bytes: usize,
}

impl wasmtime::ResourceLimiter for MemoryPeak {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.peak_bytes = self.peak_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}
