//! Builds the component (`wasm32-wasip2`, release) once per test process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, bail};

/// The workspace root: this crate lives in `<root>/tests/harness`.
pub fn workspace_root() -> PathBuf {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    // Physical path: cargo resolves `..` in `--manifest-path` lexically, the OS does not.
    root.canonicalize().unwrap_or_else(|_| root.to_owned())
}

/// Builds `podgateway-client-provisioner` for `wasm32-wasip2 --release` (the first call in a
/// process; later calls return the same answer) and returns the `.wasm` path.
///
/// The nested cargo uses the same target directory as the `cargo test` that runs us, so CI
/// compiles the component once; cargo's own no-op check makes later processes cheap.
pub fn release_component() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(|| build().map_err(|e| format!("{e:#}"))).clone().map_err(anyhow::Error::msg)
}

fn build() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = workspace_root();
    let mut child = Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--target", "wasm32-wasip2", "--release", "-p", "podgateway-client-provisioner"])
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("running {}", cargo.to_string_lossy()))?;

    let mut wasm = None;
    let stdout = child.stdout.take().context("cargo stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if msg["reason"] == "compiler-artifact"
            && msg["target"]["name"] == "podgateway_client_provisioner"
            && msg["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "cdylib"))
        {
            wasm = msg["filenames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f.as_str())
                .find(|f| f.ends_with(".wasm"))
                .map(PathBuf::from);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo build of the component failed ({status}); see the compiler output above");
    }
    wasm.context("cargo reported no .wasm artifact for podgateway_client_provisioner")
}
