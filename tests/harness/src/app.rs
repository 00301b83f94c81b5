//! The component under test, served by one of the suite's hosts: the harness's Spin-like
//! host, or a real `spin up` of the project's `spin.toml`.

use std::fmt;

use anyhow::Context;

use crate::component::{release_component, workspace_root};
use crate::host::SpinHost;
use crate::manifest::{self, ComponentOverrides, SpinApp};
use crate::spin_cli::{SpinBinary, SpinUp};

/// A host the scenarios run under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    /// `tests/harness`'s wasmtime host: a model of Spin that the tests can look inside.
    Harness,
    /// A Spin CLI binary: the real runtime.
    Spin(SpinBinary),
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Runtime::Harness => f.write_str("harness"),
            Runtime::Spin(binary) => f.write_str(&binary.name()),
        }
    }
}

/// How to configure the application; what `spin.toml` and `SPIN_VARIABLE_*` decide.
#[derive(Debug, Clone, Default)]
pub struct AppSpec {
    /// Application variables, as `SPIN_VARIABLE_<NAME>=value` would set them.
    pub variables: Vec<(String, String)>,
    /// Replaces the component's `allowed_outbound_hosts` of `spin.toml`.
    pub allowed_outbound_hosts: Option<Vec<String>>,
    /// Replaces the component's `key_value_stores` of `spin.toml` (`Some(vec![])`: the
    /// component may open no store, and `Store::open_default()` answers `access-denied`).
    pub key_value_stores: Option<Vec<String>>,
}

/// The running application.
pub enum App {
    Harness(SpinHost),
    Spin(SpinUp),
}

impl App {
    /// Builds the component (once per process) with the build command of `spin.toml` and
    /// serves it under `runtime`. Real Spin serves the project's `spin.toml` with the
    /// component's `source` made absolute (the build may go to another target directory) and
    /// `spec`'s replacements written into it. Each start has key-value stores of its own: the
    /// harness keeps them in memory, `spin up` in `<its temporary state dir>/sqlite_key_value.db`.
    pub fn start(runtime: &Runtime, spec: &AppSpec) -> anyhow::Result<Self> {
        let wasm = release_component()?;
        let manifest_path = workspace_root().join("spin.toml");
        match runtime {
            Runtime::Harness => {
                let mut app = SpinApp::from_manifest(&manifest_path, spec.variables.clone())?;
                if let Some(hosts) = &spec.allowed_outbound_hosts {
                    app.allowed_outbound_hosts = hosts.clone();
                }
                if let Some(labels) = &spec.key_value_stores {
                    app.key_value_stores = labels.clone();
                }
                Ok(App::Harness(SpinHost::start(&wasm, app)?))
            }
            Runtime::Spin(binary) => {
                let text = std::fs::read_to_string(&manifest_path)
                    .with_context(|| format!("reading {}", manifest_path.display()))?;
                let overrides = ComponentOverrides {
                    allowed_outbound_hosts: spec.allowed_outbound_hosts.as_deref(),
                    key_value_stores: spec.key_value_stores.as_deref(),
                };
                let text = manifest::with_overrides(&text, &wasm, overrides)?;
                Ok(App::Spin(SpinUp::start(binary, &text, &spec.variables)?))
            }
        }
    }

    /// `http://127.0.0.1:<port>`
    pub fn base_url(&self) -> String {
        match self {
            App::Harness(host) => host.base_url(),
            App::Spin(spin) => spin.base_url(),
        }
    }

    /// The component's stdout lines so far; waits (boundedly) for requests still running and
    /// for at least `at_least` lines.
    pub fn log_lines(&self, at_least: usize) -> Vec<String> {
        match self {
            App::Harness(host) => host.logs(),
            App::Spin(spin) => spin.log_lines(at_least),
        }
    }
}
