//! Sender authentication (Knative OIDC): every Trigger to the component asks Knative for a
//! token for the component's audience (`auth_audience`), `auth_allowed_senders` lists
//! exactly the OIDC ServiceAccounts of those Triggers, and the component may verify tokens
//! (a ClusterRole of exactly `create` on tokenreviews, bound to its ServiceAccount), which
//! is all it may do cluster-wide. At the Broker, whose ingress checks its senders' tokens
//! too, an EventPolicy lets in the ApiServerSource and the Triggers' replies.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};

use crate::crds::{EventPolicy, Trigger};
use crate::load::{Doc, Manifests};
use crate::rules::eventing::delivers_to_app;
use crate::rules::lifecycle;

/// The one cluster-wide grant: (API group, resource, verb) of a TokenReview.
pub const TOKEN_REVIEW: (&str, &str, &str) = ("authentication.k8s.io", "tokenreviews", "create");

/// What Knative Eventing 1.13+ appends to a Trigger's name to name its OIDC ServiceAccount:
/// `kmeta.ChildName(name, "-oidc-" + group + "-" + kind)`, lowercased (knative/eventing
/// pkg/auth/serviceaccount.go, GetOIDCServiceAccountNameForResource).
pub const TRIGGER_OIDC_SUFFIX: &str = "-oidc-eventing.knative.dev-trigger";

/// `kmeta.ChildName` (knative.dev/pkg kmeta/names.go) returns `parent + suffix` when that
/// is at most 63 characters, and a name made of an MD5 hash otherwise.
const LONGEST_CHILD_NAME: usize = 63;

/// The longest Trigger name whose ServiceAccount is `<name>` + [`TRIGGER_OIDC_SUFFIX`]: 29.
pub const MAX_TRIGGER_NAME: usize = LONGEST_CHILD_NAME - TRIGGER_OIDC_SUFFIX.len();

/// The OIDC ServiceAccount Knative makes for a Trigger of this name, if it is not hashed.
pub fn trigger_oidc_service_account(trigger: &str) -> Result<String, String> {
    if trigger.len() > MAX_TRIGGER_NAME {
        return Err(format!(
            "its name has {} characters, more than {MAX_TRIGGER_NAME}: Knative would shorten its OIDC \
             ServiceAccount's name `{trigger}{TRIGGER_OIDC_SUFFIX}` with a hash (kmeta.ChildName), so \
             auth_allowed_senders could not name it; shorten the Trigger's name",
            trigger.len()
        ));
    }
    Ok(format!("{trigger}{TRIGGER_OIDC_SUFFIX}").to_lowercase())
}

/// The subject (TokenReview username) of a ServiceAccount.
pub fn service_account_subject(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// A setting of the component's ConfigMap, trimmed ("" when it is not there:
/// check_config_values reports a missing key).
fn setting(m: &Manifests, key: &str, problems: &mut Vec<String>) -> Option<(Doc, String)> {
    let (doc, config) = m.component_config(problems)?;
    let value = config.get(key).map(|v| v.trim().to_owned()).unwrap_or_default();
    Some((doc, value))
}

/// The Triggers that deliver to the component's Service.
fn component_triggers(m: &Manifests, problems: &mut Vec<String>) -> Vec<(Doc, Trigger)> {
    let Some((app_doc, _)) = m.spin_app(problems) else { return Vec::new() };
    m.all::<Trigger>("Trigger", problems)
        .into_iter()
        .filter(|(doc, trigger)| delivers_to_app(&app_doc, doc, trigger))
        .collect()
}

/// auth_audience is set, every Trigger to the component names it as its subscriber's
/// audience (else Knative sends no token, and the component answers 401), and no other
/// Trigger asks for tokens (no other subscriber here checks them).
pub fn check_trigger_audiences(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((config_doc, audience)) = setting(m, "auth_audience", &mut problems) else { return problems };
    if audience.is_empty() {
        problems.push(format!(
            "{}: auth_audience is empty: sender authentication is off, anyone who reaches the component's \
             Service may send it events",
            config_doc.describe()
        ));
    }
    let Some((app_doc, _)) = m.spin_app(&mut problems) else { return problems };
    let mut to_component = 0;
    for (doc, trigger) in m.all::<Trigger>("Trigger", &mut problems) {
        let given = trigger.spec.subscriber.audience.as_deref();
        if delivers_to_app(&app_doc, &doc, &trigger) {
            to_component += 1;
            if given != Some(audience.as_str()) {
                problems.push(format!(
                    "{}: subscriber.audience is {given:?}, must be auth_audience {audience:?}: without it \
                     Knative sends no token and the component answers 401",
                    doc.describe()
                ));
            }
        } else if given.is_some() {
            problems.push(format!(
                "{}: subscriber.audience {given:?} on a Trigger that does not deliver to the component: \
                 only the component checks tokens; an audience would just hand its subscriber tokens",
                doc.describe()
            ));
        }
    }
    if to_component == 0 {
        problems.push("no Trigger delivers to the component's Service".into());
    }
    problems
}

/// auth_allowed_senders lists, as exact subjects, exactly the OIDC ServiceAccounts of the
/// Triggers to the component, each named by Knative's rule from a Trigger name short
/// enough not to be hashed.
pub fn check_allowed_senders(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((config_doc, senders)) = setting(m, "auth_allowed_senders", &mut problems) else {
        return problems;
    };
    let at = config_doc.describe();
    let listed: Vec<&str> = senders.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if listed.is_empty() {
        problems.push(format!(
            "{at}: auth_allowed_senders is empty: any ServiceAccount that gets a token for auth_audience \
             may send; list the Triggers' OIDC ServiceAccounts"
        ));
    }
    let mut seen = BTreeSet::new();
    for sender in &listed {
        if sender.ends_with('*') {
            problems.push(format!(
                "{at}: auth_allowed_senders has the prefix `{sender}`: list the Triggers' ServiceAccounts \
                 exactly"
            ));
        }
        if !seen.insert(*sender) {
            problems.push(format!("{at}: auth_allowed_senders lists {sender} twice"));
        }
    }
    // subject -> the Trigger it is the identity of.
    let mut expected = BTreeMap::new();
    for (doc, _) in component_triggers(m, &mut problems) {
        match trigger_oidc_service_account(doc.name()) {
            Ok(account) => {
                let subject = service_account_subject(doc.namespace().unwrap_or_default(), &account);
                expected.insert(subject, doc.describe());
            }
            Err(e) => problems.push(format!("{}: {e}", doc.describe())),
        }
    }
    for (subject, trigger) in &expected {
        if !seen.contains(subject.as_str()) {
            problems.push(format!(
                "{trigger}: its OIDC ServiceAccount {subject} is not in auth_allowed_senders: the component \
                 would answer its deliveries 403"
            ));
        }
    }
    for sender in seen.iter().filter(|s| !s.ends_with('*') && !expected.contains_key(**s)) {
        problems.push(format!(
            "{at}: auth_allowed_senders lists {sender}, the OIDC ServiceAccount of no Trigger to the component"
        ));
    }
    problems
}

/// What makes a ClusterRole more (or less) than the token review: nothing when it grants
/// exactly `create` on tokenreviews in authentication.k8s.io, in one rule, and nothing else.
pub fn token_review_role_problems(label: &str, role: &ClusterRole) -> Vec<String> {
    let (group, resource, verb) = TOKEN_REVIEW;
    let mut problems = Vec::new();
    if role.aggregation_rule.is_some() {
        problems.push(format!("{label}: no aggregationRule (it would gather other roles' grants)"));
    }
    let rules = role.rules.clone().unwrap_or_default();
    if rules.len() != 1 {
        problems.push(format!("{label}: expected one rule (`{verb}` on {resource}), found {}", rules.len()));
    }
    for rule in &rules {
        let groups = rule.api_groups.clone().unwrap_or_default();
        let resources = rule.resources.clone().unwrap_or_default();
        if groups != [group] || resources != [resource] || rule.verbs != [verb] {
            problems.push(format!(
                "{label}: grants {:?} on {resources:?} in API groups {groups:?}; the component needs exactly \
                 `{verb}` on {resource} in {group}",
                rule.verbs
            ));
        }
        if rule.resource_names.is_some() || rule.non_resource_urls.is_some() {
            problems.push(format!("{label}: resourceNames / nonResourceURLs are not expected"));
        }
    }
    problems
}

/// Exactly one ClusterRole, granting exactly the token review, and a ClusterRoleBinding that
/// binds it to the SpinApp's ServiceAccount (whose token is k8s_token) and to nothing else.
pub fn check_token_review_rbac(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let app = m.spin_app(&mut problems);
    let account = app.as_ref().and_then(|(_, a)| a.spec.service_account_name.clone());
    let app_namespace = app.as_ref().and_then(|(d, _)| d.namespace().map(str::to_owned));
    let mut roles = m.all::<ClusterRole>("ClusterRole", &mut problems);
    if roles.len() != 1 {
        problems.push(format!(
            "expected exactly one ClusterRole (the component's token review), found {}",
            roles.len()
        ));
        return problems;
    }
    let (role_doc, role) = roles.pop().unwrap();
    let name = role_doc.name();
    problems.extend(token_review_role_problems(&format!("ClusterRole {name}"), &role));
    let (Some(account), Some(app_namespace)) = (account, app_namespace) else {
        problems.push(
            "the SpinApp needs a namespace and a serviceAccountName to bind the token review to".into(),
        );
        return problems;
    };
    let mut bound = false;
    for (doc, binding) in m.all::<ClusterRoleBinding>("ClusterRoleBinding", &mut problems) {
        let reference = &binding.role_ref;
        if (reference.api_group.as_str(), reference.kind.as_str(), reference.name.as_str())
            != ("rbac.authorization.k8s.io", "ClusterRole", name)
        {
            continue;
        }
        for subject in binding.subjects.iter().flatten() {
            if subject.kind == "ServiceAccount"
                && subject.name == account
                && subject.namespace.as_deref() == Some(app_namespace.as_str())
            {
                bound = true;
            } else {
                problems.push(format!(
                    "{}: binds ClusterRole {name} to {} {:?}/{}: only the component's ServiceAccount reviews \
                     tokens",
                    doc.describe(),
                    subject.kind,
                    subject.namespace,
                    subject.name
                ));
            }
        }
    }
    if !bound {
        problems.push(format!(
            "no ClusterRoleBinding binds ClusterRole {name} to ServiceAccount {app_namespace}/{account} (the \
             SpinApp's): every request with a token would be answered 500"
        ));
    }
    problems
}

/// Whether Knative's Broker ingress lets `subject` in under these `from` subjects: one equal
/// to it (ignoring case), or one ending in `*` that it starts with (knative/eventing
/// pkg/auth/event_policy.go, SubjectContained).
pub fn subject_allowed(subject: &str, allowed: &[&str]) -> bool {
    allowed.iter().any(|pattern| {
        pattern.eq_ignore_ascii_case(subject)
            || pattern.strip_suffix('*').is_some_and(|prefix| subject.starts_with(prefix))
    })
}

/// The API group of an `apiVersion` (`group/version`; the core group is "").
fn api_group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// Exactly one EventPolicy applies to the Broker of broker.yaml, and it names just that
/// Broker in `to`. Its `from` entries are what Knative accepts (one of `ref` and `sub`; a
/// `*` only at the end of a `sub`) and let in: the ApiServerSource of apiserversource.yaml
/// by ref (in another namespace: the default allow-same-namespace would refuse it), with
/// its namespace written out; the OIDC ServiceAccount of every Trigger on the Broker (the
/// broker filter sends the replies into the Broker with the Trigger's token); and the
/// ServiceAccounts defined next to the policy (the senders made for people). No `sub`
/// reaches beyond the Broker's namespace, and every `ref` names an object of these
/// manifests (else Knative cannot resolve it, and the policy and the Broker stay not Ready).
pub fn check_broker_event_policy(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(broker) = lifecycle::the_broker(m, &mut problems) else { return problems };
    let broker_namespace = broker.namespace().unwrap_or_default();
    let names_broker = |policy: &EventPolicy| {
        policy.spec.to.iter().filter_map(|to| to.reference.as_ref()).any(|r| {
            api_group(&r.api_version) == "eventing.knative.dev"
                && r.kind.eq_ignore_ascii_case("Broker")
                && r.name.eq_ignore_ascii_case(broker.name())
        })
    };
    // Knative applies a policy to the Broker when it is in the Broker's namespace and its
    // `to` is empty or names the Broker (pkg/auth/event_policy.go, GetEventPoliciesForResource).
    let mut applying: Vec<(Doc, EventPolicy)> = m
        .all::<EventPolicy>("EventPolicy", &mut problems)
        .into_iter()
        .filter(|(doc, policy)| {
            doc.namespace() == broker.namespace() && (policy.spec.to.is_empty() || names_broker(policy))
        })
        .collect();
    if applying.len() != 1 {
        problems.push(format!(
            "expected exactly one EventPolicy whose `to` names {}, in its namespace, found {}: with none, \
             the ingress refuses (403) every sender outside {broker_namespace}, the ApiServerSource included; \
             with several, it lets in the `from`s of all of them",
            broker.describe(),
            applying.len()
        ));
        return problems;
    }
    let (doc, policy) = applying.pop().unwrap();
    let at = doc.describe();
    let spec = &policy.spec;
    if spec.to.len() != 1 || !names_broker(&policy) {
        problems.push(format!(
            "{at}: `to` must name exactly {} by ref (an empty `to` applies to every receiver in \
             {broker_namespace}, the Broker's own channel included)",
            broker.describe()
        ));
    }
    // What Knative's webhook accepts (pkg/apis/eventing/v1alpha1/eventpolicy_validation.go).
    for (i, from) in spec.from.iter().enumerate() {
        let sub = from.sub.as_deref().filter(|s| !s.is_empty());
        if from.reference.is_some() == sub.is_some() {
            problems.push(format!("{at}: from[{i}] needs exactly one of ref and sub"));
        }
        if let Some(sub) = sub
            && sub.find('*').is_some_and(|at_star| at_star + 1 < sub.len())
        {
            problems.push(format!("{at}: from[{i}].sub {sub:?}: `*` is only allowed as the last character"));
        }
    }
    // Every ref resolves to an object of these manifests.
    for reference in spec.from.iter().filter_map(|f| f.reference.as_ref()) {
        let namespace = reference.namespace.as_deref().or(doc.namespace());
        let found = m.docs.iter().any(|d| {
            d.kind() == reference.kind
                && d.api_version() == reference.api_version
                && d.name() == reference.name
                && d.namespace() == namespace
        });
        if !found {
            problems.push(format!(
                "{at}: from ref {} {}/{} ({}) is not an object of these manifests: Knative cannot resolve \
                 its OIDC ServiceAccount, and the policy (and the Broker) stay not Ready",
                reference.kind,
                namespace.unwrap_or_default(),
                reference.name,
                reference.api_version
            ));
        }
    }
    // The ApiServerSource, by ref, with its namespace.
    if let Some((source_doc, _)) = lifecycle::the_source(m, &mut problems) {
        let source_ref = spec.from.iter().filter_map(|f| f.reference.as_ref()).find(|r| {
            r.api_version == source_doc.api_version()
                && r.kind == source_doc.kind()
                && r.name == source_doc.name()
        });
        match source_ref {
            None => problems.push(format!(
                "{at}: `from` does not allow {} by ref: the Broker would refuse (403) its Pod changes, and no \
                 ready / finished / gone events would come",
                source_doc.describe()
            )),
            Some(r) if r.namespace.as_deref() != source_doc.namespace() => problems.push(format!(
                "{at}: the from ref to {} has namespace {}, must have {}, written out (Knative 1.15 builds \
                 the subject system:serviceaccount:<namespace>:<account> from it as written)",
                source_doc.describe(),
                r.namespace.as_deref().unwrap_or("none"),
                source_doc.namespace().unwrap_or_default()
            )),
            Some(_) => {}
        }
    }
    let subs: Vec<&str> = spec.from.iter().filter_map(|f| f.sub.as_deref()).collect();
    // Nothing beyond the Broker's namespace by `sub`: a wider pattern lets in anyone.
    let namespace_prefix = service_account_subject(broker_namespace, "");
    for sub in &subs {
        if let Some(prefix) = sub.strip_suffix('*')
            && !prefix.starts_with(&namespace_prefix)
        {
            problems.push(format!(
                "{at}: sub {sub:?} allows subjects outside the ServiceAccounts of {broker_namespace}: name other \
                 senders by ref or exactly"
            ));
        }
    }
    // The Triggers' replies.
    for (trigger_doc, trigger) in m.all::<Trigger>("Trigger", &mut problems) {
        if trigger.spec.broker != broker.name() || trigger_doc.namespace() != broker.namespace() {
            continue;
        }
        let namespace = trigger_doc.namespace().unwrap_or_default();
        // A hashed name is unknown here: only a pattern for the whole namespace covers it.
        let account = trigger_oidc_service_account(trigger_doc.name())
            .unwrap_or_else(|_| "<hashed by kmeta.ChildName>".into());
        let subject = service_account_subject(namespace, &account);
        if !subject_allowed(&subject, &subs) {
            problems.push(format!(
                "{}: its OIDC ServiceAccount {subject} is not allowed by the `sub`s of {at} {subs:?}: the Broker \
                 would refuse (403) the replies the broker filter sends with its token",
                trigger_doc.describe()
            ));
        }
    }
    // The senders made for people, next to the policy.
    for account in m.of_kind("ServiceAccount").filter(|d| d.file == doc.file) {
        let subject = service_account_subject(account.namespace().unwrap_or_default(), account.name());
        if !subject_allowed(&subject, &subs) {
            problems.push(format!(
                "{}: {subject} is not allowed by the `sub`s of {at} {subs:?}: the Broker would refuse (403) \
                 events sent with its token",
                account.describe()
            ));
        }
    }
    problems
}
