//! The component's contract with its users, as literals, for every test: the unit tests
//! (`src/lib.rs` includes this file) and the integration tests. A test that compares what
//! the component does with these fails when the contract changes by accident.
#![allow(dead_code)]

/// The event that asks for a client pod.
pub const PENDING: &str = "io.podgateway.client.pending";
/// The reply when the pod exists for the event.
pub const DONE: &str = "io.podgateway.client.scheduling.done";
/// The reply when it does not and will not.
pub const FAILED: &str = "io.podgateway.client.scheduling.failed";
/// Asks for a client pod to be deleted; answered by RELEASE_DONE or RELEASE_FAILED.
pub const RELEASE: &str = "io.podgateway.client.release";
pub const RELEASE_DONE: &str = "io.podgateway.client.release.done";
pub const RELEASE_FAILED: &str = "io.podgateway.client.release.failed";
/// What Knative's ApiServerSource (Resource mode) sends when a watched pod changes or goes.
pub const POD_UPDATED: &str = "dev.knative.apiserver.resource.update";
pub const POD_DELETED: &str = "dev.knative.apiserver.resource.delete";
/// The lifecycle events the component sends about a client pod, from those changes.
pub const READY: &str = "io.podgateway.client.ready";
pub const FINISHED: &str = "io.podgateway.client.finished";
pub const GONE: &str = "io.podgateway.client.gone";
/// The label that marks a client pod as this component's.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "podgateway-client-provisioner");
/// The `source` of every event the component sends.
pub const REPLY_SOURCE: &str = "podgateway/eventing/client/provisioner";

/// The reference event: source `urn:test`, id `42`.
pub const SOURCE: &str = "urn:test";
pub const ID: &str = "42";
/// Its pod under the documented rule: `podgateway-client-` + the first 20 hex of
/// SHA-256(be64(8) "urn:test" be64(2) "42"). Pinned: a change makes duplicates after an upgrade.
pub const POD_42: &str = "podgateway-client-7678b351e70b8efde9a6";

/// What the component may do to pods, and nothing else (`deploy/rbac.yaml`).
pub const POD_VERBS: [&str; 4] = ["create", "get", "patch", "delete"];

/// A binary-mode CloudEvent's headers from source `urn:test`, with JSON data.
pub fn binary_headers<'a>(id: &'a str, event_type: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("ce-specversion", "1.0"),
        ("ce-id", id),
        ("ce-source", SOURCE),
        ("ce-type", event_type),
        ("content-type", "application/json"),
    ]
}
