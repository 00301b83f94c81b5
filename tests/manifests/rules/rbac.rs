//! The Role grants exactly what the component calls, where it calls it, to the SpinApp's
//! ServiceAccount. (The ApiServerSource's Role is lifecycle.rs's.)

use std::collections::BTreeSet;

use k8s_openapi::api::rbac::v1::{Role, RoleBinding};

use crate::load::{Doc, Manifests};
use crate::rules::lifecycle;

/// The verbs the component uses on core `pods` (create, get after a 409, patch to remove its
/// routing gate, delete an unrouted pod), as the code declares them: deploy/rbac.yaml must
/// grant exactly these. When the code starts to use another verb, it adds it there and this
/// test asks for it in the Role.
const COMPONENT_POD_VERBS: &[&str] = &podgateway_client_provisioner::kube::POD_VERBS;

/// The component's Role: the single Role of the manifests that no ApiServerSource runs with
/// (those are checked by lifecycle.rs).
fn the_role(m: &Manifests, problems: &mut Vec<String>) -> Option<(Doc, Role)> {
    let source_roles = lifecycle::source_roles(m);
    let mut roles: Vec<(Doc, Role)> = m
        .all::<Role>("Role", problems)
        .into_iter()
        .filter(|(doc, _)| {
            !source_roles.contains(&(doc.namespace().unwrap_or_default().to_owned(), doc.name().to_owned()))
        })
        .collect();
    if roles.len() != 1 {
        problems.push(format!(
            "expected exactly one Role for the component (besides the ApiServerSource's), found {}",
            roles.len()
        ));
        return None;
    }
    roles.pop()
}

/// The Role is in the client namespace and grants exactly the verbs the component uses on
/// core pods, in one rule.
pub fn check_role_grants(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let client_namespace = m.client_namespace(&mut problems);
    let Some((role_doc, role)) = the_role(m, &mut problems) else { return problems };
    let name = role_doc.name();
    if role_doc.namespace() != client_namespace.as_deref() {
        problems.push(format!(
            "Role {name} is in {:?}, the component creates pods in {client_namespace:?}",
            role_doc.namespace()
        ));
    }
    problems.extend(pods_only_problems(
        &format!("Role {name}"),
        "the component uses",
        &role,
        COMPONENT_POD_VERBS,
    ));
    problems
}

/// A Role of one rule granting exactly `verbs` on core pods and nothing else; `who` says who
/// needs them in the messages ("the component uses").
pub fn pods_only_problems(role: &str, who: &str, granted: &Role, verbs: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    let expected: BTreeSet<&str> = verbs.iter().copied().collect();
    let rules = granted.rules.clone().unwrap_or_default();
    if rules.len() != 1 {
        problems.push(format!("{role}: expected one rule (pods), found {}", rules.len()));
    }
    for rule in &rules {
        let groups = rule.api_groups.clone().unwrap_or_default();
        let resources = rule.resources.clone().unwrap_or_default();
        let verbs: BTreeSet<&str> = rule.verbs.iter().map(String::as_str).collect();
        if groups != [""] || resources != ["pods"] {
            problems.push(format!(
                "{role}: grants {resources:?} in API groups {groups:?}; only core pods are needed"
            ));
        }
        if verbs != expected {
            problems.push(format!("{role}: grants verbs {verbs:?}, {who} exactly {expected:?}"));
        }
        if rule.resource_names.is_some() || rule.non_resource_urls.is_some() {
            problems.push(format!("{role}: resourceNames / nonResourceURLs are not expected"));
        }
    }
    problems
}

/// A RoleBinding in the Role's namespace binds it to the SpinApp's ServiceAccount.
pub fn check_role_binding(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let app = m.spin_app(&mut problems);
    let Some((role_doc, _)) = the_role(m, &mut problems) else { return problems };
    let bindings = m.all::<RoleBinding>("RoleBinding", &mut problems);
    let account = app.as_ref().and_then(|(_, a)| a.spec.service_account_name.clone());
    let app_namespace = app.as_ref().and_then(|(d, _)| d.namespace().map(str::to_owned));
    let bound = bindings.iter().any(|(doc, binding)| {
        doc.namespace() == role_doc.namespace()
            && binding.role_ref.kind == "Role"
            && binding.role_ref.api_group == "rbac.authorization.k8s.io"
            && binding.role_ref.name == role_doc.name()
            && binding.subjects.iter().flatten().any(|s| {
                s.kind == "ServiceAccount"
                    && Some(&s.name) == account.as_ref()
                    && s.namespace.as_ref() == app_namespace.as_ref()
            })
    });
    if !bound {
        problems.push(format!(
            "no RoleBinding in {:?} binds Role {} to ServiceAccount {app_namespace:?}/{account:?}",
            role_doc.namespace(),
            role_doc.name()
        ));
    }
    problems
}

/// Every RoleBinding refers to a Role of these manifests, in its own namespace.
pub fn check_role_refs(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    for (doc, binding) in m.all::<RoleBinding>("RoleBinding", &mut problems) {
        if binding.role_ref.kind != "Role"
            || m.find("Role", doc.namespace(), &binding.role_ref.name).is_none()
        {
            problems.push(format!("{}: roleRef is not a Role of these manifests", doc.describe()));
        }
    }
    problems
}
