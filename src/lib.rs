//! podgateway client provisioner: a Spin HTTP component that turns an
//! `io.podgateway.client.pending` CloudEvent into a client Pod routed through the requested
//! pod-gateway, and answers with the result event.
//!
//! A request goes [`entry`] → [`service`] (method, body) → [`cloudevents`] (the event) →
//! [`handlers`] (one per event type, with the [`config`]) → [`provision`] (the API protocol,
//! through [`kube`], for the pod of [`pod`]) → [`respond`] (the answer and the log line).
//! Only `entry` talks to the host; everything else is plain code that builds and tests
//! natively. `entry` is compiled for wasm only: `#[http_component]` exports symbols a native
//! linker rejects.

pub mod auth;
pub mod cloudevents;
pub mod config;
pub mod handlers;
pub mod host;
pub mod identity;
pub mod json;
pub mod kube;
pub mod names;
pub mod pod;
pub mod provision;
pub mod respond;
pub mod service;

#[cfg(target_arch = "wasm32")]
mod entry;

/// The contract literals shared by every test (`tests/common/contract.rs`).
#[cfg(test)]
#[path = "../tests/common/contract.rs"]
pub(crate) mod contract;
