//! Test support for the `podgateway-client-provisioner` Spin component:
//!
//! - [`component`] builds the release `.wasm` once per test process;
//! - [`manifest`] resolves `spin.toml` variables, outbound hosts and key-value store labels as
//!   Spin does;
//! - [`host`] runs the component like Spin (wasmtime + wasi-http + `fermyon:spin/variables` and
//!   `fermyon:spin/key-value`);
//! - [`spin_cli`] runs it under the real Spin CLI (`spin up`);
//! - [`app`] is either of the two, so that one scenario runs under each;
//! - [`fake_kube`] is a stateful fake kube-apiserver for pods and TokenReviews;
//! - [`http_client`] is a minimal HTTP/1.1 client for tests;
//! - [`load`] drives keep-alive connections for benchmarks.

pub mod app;
pub mod component;
pub mod fake_kube;
pub mod host;
pub mod http_client;
pub mod load;
pub mod manifest;
pub mod spin_cli;

pub use app::{App, AppSpec, Runtime};
pub use fake_kube::{FailurePolicy, FakeKube, Fault, PodGatewayWebhook, RecordedRequest};
pub use host::SpinHost;
pub use manifest::SpinApp;
