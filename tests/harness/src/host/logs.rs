//! The guests' stdout, one buffer per request, readable once the requests have ended.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// How long reading the logs waits for requests still running.
const WAIT_FOR_IDLE: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(super) struct GuestLogs {
    state: Mutex<State>,
    idle: Condvar,
}

#[derive(Default)]
struct State {
    requests: Vec<MemoryOutputPipe>,
    drained: usize,
    in_flight: usize,
}

/// Held while a guest instance runs.
pub(super) struct InFlight(Arc<GuestLogs>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.lock().in_flight -= 1;
        self.0.idle.notify_all();
    }
}

impl GuestLogs {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn begin(self: &Arc<Self>, stdout: MemoryOutputPipe) -> InFlight {
        let mut state = self.lock();
        state.requests.push(stdout);
        state.in_flight += 1;
        InFlight(self.clone())
    }

    fn idle(&self) -> MutexGuard<'_, State> {
        let state = self.lock();
        self.idle
            .wait_timeout_while(state, WAIT_FOR_IDLE, |s| s.in_flight > 0)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }

    pub(super) fn request_logs(&self) -> Vec<Vec<String>> {
        self.idle().requests.iter().map(lines).collect()
    }

    pub(super) fn take(&self) -> Vec<Vec<String>> {
        let mut state = self.idle();
        let end = state.requests.len();
        let start = std::mem::replace(&mut state.drained, end);
        state.requests[start..].iter().map(lines).collect()
    }
}

fn lines(pipe: &MemoryOutputPipe) -> Vec<String> {
    String::from_utf8_lossy(&pipe.contents()).lines().map(str::to_owned).collect()
}
