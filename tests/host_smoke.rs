//! Smoke test of the whole stack: the release component, built by the harness, in the
//! Spin-like host, configured from spin.toml, with the fake API server as `k8s_api_url`.

use podgateway_test_harness::http_client::send_blocking;
use podgateway_test_harness::{FakeKube, SpinApp, SpinHost, component};

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
