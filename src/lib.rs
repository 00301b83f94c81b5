//! podgateway client provisioner: a Spin HTTP component that turns an
//! `io.podgateway.client.pending` CloudEvent into a client Pod routed through the requested
//! pod-gateway, and answers with the result event.
//!
//! `spin_entry` is the Spin entry point and, with `outbound`, the only code that talks to
//! the host (Spin variables, outbound HTTP, clock, stdout); every decision lives in the
//! other modules, which build and test natively. The host modules are compiled for wasm
//! only: `#[http_component]` exports symbols a native linker rejects.

pub mod config;
pub mod event;
pub mod kube;
pub mod names;
pub mod provision;
pub mod service;

#[cfg(target_arch = "wasm32")]
mod outbound;
#[cfg(target_arch = "wasm32")]
mod spin_entry;
