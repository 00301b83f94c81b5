//! Smoke tests of the whole stack: the release component, built by the harness, in the
//! Spin-like host (and, for the key-value store labels, under every Spin CLI the suite finds),
//! configured from spin.toml, with the fake API server as `k8s_api_url`.

use podgateway_test_harness::http_client::send_blocking;
use podgateway_test_harness::spin_cli::SpinBinary;
use podgateway_test_harness::{App, AppSpec, FakeKube, Runtime, SpinApp, SpinHost, component, manifest};

#[test]
fn an_unknown_event_type_is_acknowledged_with_an_empty_204() {
    let wasm = component::release_component().expect("the component builds");
    let kube = FakeKube::start();
    let app = SpinApp::from_manifest(
        concat!(env!("CARGO_MANIFEST_DIR"), "/spin.toml"),
        [("k8s_api_url", kube.url())],
    )
    .expect("spin.toml resolves");
    let host = SpinHost::start(&wasm, app).expect("the host starts");

    let resp = send_blocking(
        "POST",
        &format!("{}/", host.base_url()),
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", "smoke-1"),
            ("ce-source", "/tests/host-smoke"),
            ("ce-type", "com.example.unknown"),
        ],
        "",
    )
    .expect("the host answers");

    assert_eq!(resp.status, 204, "{}", resp.text());
    assert!(resp.body.is_empty(), "{}", resp.text());
    assert!(kube.requests().is_empty(), "an unknown type never reaches the API server");
    let logs = host.logs();
    assert_eq!(logs.len(), 1, "one log line per event: {logs:?}");
    serde_json::from_str::<serde_json::Value>(&logs[0]).expect("the log line is JSON");
}

/// The hosts of the suite: the harness, and each Spin CLI of `$SPIN_BIN` (or `spin` on `PATH`).
fn runtimes() -> Vec<Runtime> {
    let spin = SpinBinary::from_env().expect("SPIN_BIN names Spin CLIs");
    std::iter::once(Runtime::Harness).chain(spin.into_iter().map(Runtime::Spin)).collect()
}

fn spec(kube: &FakeKube, key_value_stores: &[&str]) -> AppSpec {
    AppSpec {
        variables: vec![("k8s_api_url".into(), kube.url())],
        key_value_stores: Some(key_value_stores.iter().map(|label| (*label).to_owned()).collect()),
        ..AppSpec::default()
    }
}

/// `AppSpec::key_value_stores` replaces the component's list under every host: with none the
/// application starts (and `Store::open_default()` would be `access-denied`).
#[test]
fn the_component_runs_with_no_key_value_store_under_every_host() {
    let kube = FakeKube::start();
    for runtime in runtimes() {
        let app = App::start(&runtime, &spec(&kube, &[])).unwrap_or_else(|e| panic!("{runtime}: {e:#}"));
        let resp = send_blocking(
            "POST",
            &format!("{}/", app.base_url()),
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", "smoke-kv"),
                ("ce-source", "/tests/host-smoke"),
                ("ce-type", "com.example.unknown"),
            ],
            "",
        )
        .expect("the host answers");
        assert_eq!(resp.status, 204, "{runtime}: {}", resp.text());
    }
}

/// Spin refuses to start an application whose component lists a store label that has no
/// store (only `default` has one without a runtime config), and so does the harness.
#[test]
fn a_key_value_label_without_a_store_stops_every_host() {
    let kube = FakeKube::start();
    let component = manifest::component_id(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/spin.toml")).unwrap(),
    )
    .unwrap();
    let expected = format!("unknown key_value_stores label \"cache\" for component {component:?}");
    for runtime in runtimes() {
        let Err(error) = App::start(&runtime, &spec(&kube, &["default", "cache"])) else {
            panic!("{runtime} started with a store label that has no store");
        };
        assert!(format!("{error:#}").contains(&expected), "{runtime}: {error:#}");
    }
}
