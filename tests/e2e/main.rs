//! End to end: the release `.wasm`, configured from spin.toml, driven the way a Knative
//! broker drives it, against the fake Kubernetes API server, under every host of the suite:
//! the harness's Spin-like host, and each real Spin CLI of `$SPIN_BIN` (comma-separated
//! paths) or, without it, `spin` on `PATH`. Without either, the real-Spin runs are reported
//! as ignored, with a line saying how to enable them.

mod auth;
#[path = "../common/contract.rs"]
mod contract;
mod lifecycle;
mod pod_shape;
mod provisioning;
mod routing;
mod wire;
mod world;

use libtest_mimic::{Arguments, Failed, Trial};
use podgateway_test_harness::Runtime;
use podgateway_test_harness::component;
use podgateway_test_harness::spin_cli::{SPIN_BIN, SpinBinary};

/// A scenario: runs under any host and panics when the component misbehaves.
pub struct Scenario {
    pub name: &'static str,
    pub run: fn(&Runtime),
}

/// `scenarios!(a, b)` declares a module's `SCENARIOS` from its scenario functions.
#[macro_export]
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        pub const SCENARIOS: &[$crate::Scenario] = &[$($crate::Scenario { name: stringify!($name), run: $name }),*];
    };
}

fn main() {
    let args = Arguments::from_args();
    let scenarios: Vec<&Scenario> = [
        provisioning::SCENARIOS,
        routing::SCENARIOS,
        pod_shape::SCENARIOS,
        lifecycle::SCENARIOS,
        auth::SCENARIOS,
        wire::SCENARIOS,
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut trials =
        vec![Trial::test("the_component_imports_only_wasi_and_spin_variables_and_key_value", || {
            the_component_imports_only_wasi_and_spin_variables_and_key_value();
            Ok(())
        })];
    let mut runtimes = vec![Runtime::Harness];
    match SpinBinary::from_env() {
        Ok(binaries) if binaries.is_empty() => {
            let how = format!(
                "no Spin CLI: set {SPIN_BIN}=/path/to/spin[,/path/to/another] or put spin on PATH to run these scenarios under real Spin"
            );
            eprintln!("real Spin: skipped ({} scenarios): {how}", scenarios.len());
            trials.extend(scenarios.iter().map(|scenario| {
                let how = how.clone();
                Trial::test(format!("{}::spin", scenario.name), move || Err(Failed::from(how)))
                    .with_ignored_flag(true)
            }));
        }
        Ok(binaries) => {
            eprintln!(
                "real Spin: {}",
                binaries
                    .iter()
                    .map(|b| format!("{} ({})", b.name(), b.path.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            runtimes.extend(binaries.into_iter().map(Runtime::Spin));
        }
        Err(error) => {
            let error = format!("{error:#}");
            trials.push(Trial::test("real_spin_binaries", move || Err(Failed::from(error))));
        }
    }
    for scenario in &scenarios {
        for runtime in &runtimes {
            let (run, runtime) = (scenario.run, runtime.clone());
            trials.push(Trial::test(format!("{}::{runtime}", scenario.name), move || {
                run(&runtime);
                Ok(())
            }));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}

fn the_component_imports_only_wasi_and_spin_variables_and_key_value() {
    let wasm = std::fs::read(component::release_component().expect("the component builds")).unwrap();
    // Only the outer component's imports: nested components (the export adapters) have
    // imports of their own that the host never sees.
    let mut imports = Vec::new();
    let mut depth = 0;
    for payload in wasmparser::Parser::new(0).parse_all(&wasm) {
        match payload.expect("a valid component") {
            wasmparser::Payload::Version { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth -= 1,
            wasmparser::Payload::ComponentImportSection(section) if depth == 1 => {
                imports.extend(
                    section.into_iter().map(|import| import.expect("an import").name.name.to_owned()),
                );
            }
            _ => {}
        }
    }
    let mut not_wasi: Vec<_> = imports.iter().filter(|name| !name.starts_with("wasi:")).collect();
    not_wasi.sort();
    // What both the harness host and Spin 3.6 (containerd-shim-spin v0.24) provide.
    assert_eq!(
        not_wasi,
        ["fermyon:spin/key-value@2.0.0", "fermyon:spin/variables@2.0.0"],
        "all imports: {imports:?}"
    );
    assert!(imports.iter().any(|name| name.starts_with("wasi:http/outgoing-handler@0.2.")), "{imports:?}");
}
