//! Every document is a Kubernetes object of a kind this project deploys, with only the
//! fields its type knows, in a namespace of these manifests.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};

use crate::crds::{ApiServerSource, Broker, EventType, SpinApp, SpinAppExecutor, Trigger, round_trip};
use crate::load::{Doc, Manifests};

/// Round-trips a document through the type of its kind: core kinds through k8s-openapi,
/// CRD kinds through the typed structs of crds.rs.
fn round_trip_kind(doc: &Doc) -> Result<(), String> {
    let value = &doc.value;
    match (doc.api_version(), doc.kind()) {
        ("v1", "Namespace") => round_trip::<Namespace>(value).map(drop),
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(value).map(drop),
        ("v1", "Secret") => round_trip::<Secret>(value).map(drop),
        ("v1", "ConfigMap") => round_trip::<ConfigMap>(value).map(drop),
        ("v1", "Service") => round_trip::<Service>(value).map(drop),
        ("apps/v1", "Deployment") => round_trip::<Deployment>(value).map(drop),
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(value).map(drop),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<RoleBinding>(value).map(drop),
        ("node.k8s.io/v1", "RuntimeClass") => round_trip::<RuntimeClass>(value).map(drop),
        ("core.spinkube.dev/v1alpha1", "SpinApp") => round_trip::<SpinApp>(value).map(drop),
        ("core.spinkube.dev/v1alpha1", "SpinAppExecutor") => round_trip::<SpinAppExecutor>(value).map(drop),
        ("eventing.knative.dev/v1", "Broker") => round_trip::<Broker>(value).map(drop),
        ("eventing.knative.dev/v1", "Trigger") => round_trip::<Trigger>(value).map(drop),
        ("eventing.knative.dev/v1beta2", "EventType") => round_trip::<EventType>(value).map(drop),
        ("sources.knative.dev/v1", "ApiServerSource") => round_trip::<ApiServerSource>(value).map(drop),
        (_, "ClusterRole" | "ClusterRoleBinding") => {
            Err("no cluster-wide RBAC: the component only needs a namespaced Role".into())
        }
        (api_version, kind) => Err(format!("unexpected kind {kind} ({api_version})")),
    }
}

/// Every document is a Kubernetes object of a kind this project deploys; core kinds
/// round-trip through k8s-openapi and CRD kinds through the typed structs of crds.rs. Each
/// has a name, a namespace if (and only if) its kind is namespaced, and is defined once.
pub fn check_known_kinds_and_fields(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    for doc in &m.docs {
        if let Err(e) = round_trip_kind(doc) {
            problems.push(format!("{}: {e}", doc.describe()));
        }
        if doc.name().is_empty() {
            problems.push(format!("{}: no metadata.name", doc.describe()));
        }
        let cluster_scoped = matches!(doc.kind(), "Namespace" | "RuntimeClass");
        if cluster_scoped == doc.namespace().is_some() {
            problems.push(format!(
                "{}: {}",
                doc.describe(),
                if cluster_scoped {
                    "cluster-scoped, must not have a namespace"
                } else {
                    "needs metadata.namespace"
                }
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for doc in &m.docs {
        if !seen.insert((doc.kind().to_owned(), doc.namespace().map(str::to_owned), doc.name().to_owned())) {
            problems.push(format!("{} is defined twice", doc.describe()));
        }
    }
    problems
}

/// No ClusterRole or ClusterRoleBinding anywhere (also refused as an unknown kind).
pub fn check_no_cluster_rbac(m: &Manifests) -> Vec<String> {
    m.docs
        .iter()
        .filter(|d| d.kind().starts_with("Cluster"))
        .map(|d| format!("{}: no cluster-wide RBAC", d.describe()))
        .collect()
}

/// Every namespace an object is in is a Namespace of deploy/namespace.yaml.
pub fn check_namespaces_exist(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    for doc in &m.docs {
        if let Some(ns) = doc.namespace()
            && m.find("Namespace", None, ns).is_none()
        {
            problems.push(format!("{}: namespace {ns} is not in deploy/namespace.yaml", doc.describe()));
        }
    }
    problems
}
