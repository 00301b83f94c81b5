//! `kubectl apply -k deploy/` applies exactly the manifests these tests check.

use std::collections::BTreeSet;

use crate::crds::{Kustomization, round_trip};
use crate::load::Manifests;

/// `kubectl apply -k deploy/` applies exactly the manifests of deploy/.
pub fn check_kustomization(m: &Manifests) -> Vec<String> {
    let kustomization: Kustomization = match round_trip(&m.kustomization) {
        Ok(k) => k,
        Err(e) => return vec![format!("deploy/kustomization.yaml: {e}")],
    };
    let listed: BTreeSet<String> = kustomization.resources.iter().map(|r| format!("deploy/{r}")).collect();
    let manifests: BTreeSet<String> =
        m.docs.iter().filter(|d| d.file.starts_with("deploy/")).map(|d| d.file.clone()).collect();
    let mut problems = Vec::new();
    for file in manifests.difference(&listed) {
        problems.push(format!("deploy/kustomization.yaml does not list {file}"));
    }
    for file in listed.difference(&manifests) {
        problems.push(format!("deploy/kustomization.yaml lists {file}, which is not a manifest of deploy/"));
    }
    if kustomization.resources.len() != listed.len() {
        problems.push("deploy/kustomization.yaml lists a file twice".into());
    }
    problems
}
