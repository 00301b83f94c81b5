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

/// Builds the component with the build command of `spin.toml` (what `spin build` runs), once
/// per process (later calls return the same answer), and returns the `.wasm` path.
///
/// The nested cargo uses the same target directory as the `cargo test` that runs us (even one
/// given with `--target-dir`), so CI compiles the component once; cargo's own no-op check makes
/// later processes cheap. Cargo does not hold its build lock while tests run, so this does not
/// deadlock.
pub fn release_component() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(|| build().map_err(|e| format!("{e:#}"))).clone().map_err(anyhow::Error::msg)
}

/// The target directory this test executable was built in: the outermost of its ancestors
/// that cargo tagged with `CACHEDIR.TAG` (`target/`, not `target/<triple>/`).
fn outer_target_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors().filter(|dir| dir.join("CACHEDIR.TAG").is_file()).last().map(Path::to_owned)
}

/// The words of `spin.toml`'s build command, checked to be a cargo command the harness can
/// extend with options of its own.
fn spin_build_command(root: &Path) -> anyhow::Result<Vec<String>> {
    let command = crate::manifest::build_command(root.join("spin.toml"))?;
    let words: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
    if words.first().map(String::as_str) != Some("cargo") {
        bail!("the build command {command:?} does not run cargo");
    }
    // The harness appends cargo options; after `--` they would go to rustc.
    if words.iter().any(|word| word == "--") {
        bail!(
            "the build command {command:?} passes options to rustc after `--`; the harness cannot extend it"
        );
    }
    Ok(words)
}

fn build() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = workspace_root();
    let words = spin_build_command(&root)?;
    let mut command = Command::new(&cargo);
    command
        .current_dir(&root)
        .args(&words[1..])
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"));
    if let Some(dir) = outer_target_dir() {
        command.arg("--target-dir").arg(dir);
    }
    let mut child = command
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
        bail!("`{}` failed ({status}); see the compiler output above", words.join(" "));
    }
    wasm.context("cargo reported no .wasm artifact for podgateway_client_provisioner")
}
