//! Every document is a Kubernetes object of a kind this project deploys, with only the
//! fields its type knows, in a namespace of these manifests; nothing cluster-wide but the
//! token review.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};

use crate::crds::{
    ApiServerSource, Broker, EventPolicy, EventType, SpinApp, SpinAppExecutor, Trigger, round_trip,
};
use crate::load::{Doc, Manifests};
use crate::rules::auth;

/// The kinds without a namespace.
const CLUSTER_SCOPED: [&str; 4] = ["Namespace", "RuntimeClass", "ClusterRole", "ClusterRoleBinding"];

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
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<ClusterRole>(value).map(drop),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            round_trip::<ClusterRoleBinding>(value).map(drop)
        }
        ("node.k8s.io/v1", "RuntimeClass") => round_trip::<RuntimeClass>(value).map(drop),
        ("core.spinkube.dev/v1alpha1", "SpinApp") => round_trip::<SpinApp>(value).map(drop),
        ("core.spinkube.dev/v1alpha1", "SpinAppExecutor") => round_trip::<SpinAppExecutor>(value).map(drop),
        ("eventing.knative.dev/v1", "Broker") => round_trip::<Broker>(value).map(drop),
        ("eventing.knative.dev/v1", "Trigger") => round_trip::<Trigger>(value).map(drop),
        ("eventing.knative.dev/v1beta2", "EventType") => round_trip::<EventType>(value).map(drop),
        ("eventing.knative.dev/v1alpha1", "EventPolicy") => round_trip::<EventPolicy>(value).map(drop),
        ("sources.knative.dev/v1", "ApiServerSource") => round_trip::<ApiServerSource>(value).map(drop),
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
        let cluster_scoped = CLUSTER_SCOPED.contains(&doc.kind());
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

/// Nothing cluster-wide but the token review: every ClusterRole grants exactly `create` on
/// tokenreviews (auth.rs), and every ClusterRoleBinding binds one of them (not a built-in
/// ClusterRole such as cluster-admin or system:auth-delegator).
pub fn check_cluster_rbac(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    for (doc, role) in m.all::<ClusterRole>("ClusterRole", &mut problems) {
        for problem in auth::token_review_role_problems(&doc.describe(), &role) {
            problems.push(format!("no cluster-wide RBAC but the token review: {problem}"));
        }
    }
    for (doc, binding) in m.all::<ClusterRoleBinding>("ClusterRoleBinding", &mut problems) {
        let reference = &binding.role_ref;
        if reference.kind != "ClusterRole" || m.find("ClusterRole", None, &reference.name).is_none() {
            problems.push(format!(
                "{}: no cluster-wide RBAC but the token review: roleRef {} {} is not a ClusterRole of these \
                 manifests",
                doc.describe(),
                reference.kind,
                reference.name
            ));
        }
    }
    problems
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
