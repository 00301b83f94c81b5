//! The client lifecycle: the ApiServerSource that reports what becomes of the client Pods,
//! the Role it runs with, the Triggers that hand its events and the release events to the
//! component, and one EventType for every type the component consumes or produces, each
//! naming the data fields of that type.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::rbac::v1::{Role, RoleBinding};

use crate::contract;
use crate::crds::{ApiServerSource, Broker, EventType, Trigger};
use crate::load::{Doc, Manifests};
use crate::rules::rbac;

/// An event type of the component's contract and the data fields its EventType's
/// description must name.
pub struct EventContract {
    pub event_type: &'static str,
    pub fields: &'static [&'static str],
}

/// The data of the ApiServerSource's events (mode Resource): the whole Pod.
const POD_OBJECT: &[&str] = &["Pod", "metadata", "spec", "status"];
/// The data of release.done and release.failed: the Pod, its gateway (when known), what
/// happened, and the release event's id and source.
const RELEASE_REPLY: &[&str] =
    &["pod_name", "namespace", "gateway_name", "message", "request_id", "request_source"];

/// The types the component consumes, with their data fields.
pub const CONSUMED: [EventContract; 4] = [
    EventContract { event_type: contract::PENDING, fields: &["gateway_name", "message", "args"] },
    EventContract { event_type: contract::POD_UPDATED, fields: POD_OBJECT },
    EventContract { event_type: contract::POD_DELETED, fields: POD_OBJECT },
    EventContract { event_type: contract::RELEASE, fields: &["pod_name", "request_source", "request_id"] },
];

/// The types the component produces (all with source `contract::REPLY_SOURCE`), with
/// their data fields.
pub const PRODUCED: [EventContract; 7] = [
    EventContract {
        event_type: contract::DONE,
        fields: &[
            "pod_name",
            "namespace",
            "gateway_name",
            "gateway_address",
            "message",
            "request_id",
            "request_source",
        ],
    },
    EventContract {
        event_type: contract::FAILED,
        fields: &["message", "gateway_name", "request_id", "request_source"],
    },
    EventContract {
        event_type: contract::READY,
        fields: &[
            "pod_name",
            "namespace",
            "gateway_name",
            "gateway_address",
            "pod_ip",
            "node_name",
            "started_at",
            "request_id",
            "request_source",
            "message",
        ],
    },
    EventContract {
        event_type: contract::FINISHED,
        fields: &[
            "pod_name",
            "namespace",
            "gateway_name",
            "request_id",
            "request_source",
            "exit_code",
            "reason",
            "phase",
            "finished_at",
            "pod_deleted",
            "message",
        ],
    },
    EventContract {
        event_type: contract::GONE,
        fields: &[
            "pod_name",
            "namespace",
            "gateway_name",
            "request_id",
            "request_source",
            "phase",
            "reason",
            "message",
        ],
    },
    EventContract { event_type: contract::RELEASE_DONE, fields: RELEASE_REPLY },
    EventContract { event_type: contract::RELEASE_FAILED, fields: RELEASE_REPLY },
];

/// What the ApiServerSource's adapter does to what it watches; its reconciler checks these
/// three verbs with a SubjectAccessReview (knative/eventing
/// pkg/reconciler/apiserversource/apiserversource.go, runAccessCheck).
pub const WATCH_VERBS: [&str; 3] = ["get", "list", "watch"];

/// The consumed types that come from the ApiServerSource: their Triggers also filter on the
/// `namespace` extension its adapter sets (pkg/adapter/apiserver/events).
const FROM_THE_SOURCE: [&str; 2] = [contract::POD_UPDATED, contract::POD_DELETED];

/// The address of a Broker of the MT channel-based class (its `status.address`).
pub fn broker_ingress(namespace: &str, name: &str) -> String {
    format!("http://broker-ingress.knative-eventing.svc.cluster.local/{namespace}/{name}")
}

/// The OIDC audience of a Broker (`status.address.audience` with authentication-oidc
/// enabled): `<group>/<kind>/<namespace>/<name>`, lowercased (knative/eventing
/// pkg/auth/audience.go, GetAudience).
pub fn broker_audience(namespace: &str, name: &str) -> String {
    format!("eventing.knative.dev/broker/{namespace}/{name}").to_lowercase()
}

/// The Broker of deploy/broker.yaml: the one the events go through.
pub fn the_broker(m: &Manifests, problems: &mut Vec<String>) -> Option<Doc> {
    let brokers: Vec<Doc> = m.of_kind("Broker").filter(|d| d.file == "deploy/broker.yaml").cloned().collect();
    if brokers.len() != 1 {
        problems.push(format!("expected exactly one Broker in deploy/broker.yaml, found {}", brokers.len()));
        return None;
    }
    if let Err(e) = brokers[0].typed::<Broker>() {
        problems.push(e);
    }
    brokers.into_iter().next()
}

/// The single ApiServerSource (the client Pods' watcher).
pub fn the_source(m: &Manifests, problems: &mut Vec<String>) -> Option<(Doc, ApiServerSource)> {
    let mut sources = m.all::<ApiServerSource>("ApiServerSource", problems);
    if sources.len() != 1 {
        problems.push(format!("expected exactly one ApiServerSource, found {}", sources.len()));
        return None;
    }
    sources.pop()
}

/// The names of the Roles that RoleBindings in `namespace` bind to ServiceAccount
/// `namespace/account`.
fn roles_bound_to(m: &Manifests, namespace: Option<&str>, account: &str) -> BTreeSet<String> {
    m.all::<RoleBinding>("RoleBinding", &mut Vec::new())
        .into_iter()
        .filter(|(doc, binding)| {
            doc.namespace() == namespace
                && binding.role_ref.kind == "Role"
                && binding.subjects.iter().flatten().any(|s| {
                    s.kind == "ServiceAccount" && s.name == account && s.namespace.as_deref() == namespace
                })
        })
        .map(|(_, binding)| binding.role_ref.name)
        .collect()
}

/// The ServiceAccount an ApiServerSource runs as (Knative's default: `default`).
fn source_account(source: &ApiServerSource) -> &str {
    source.spec.service_account_name.as_deref().unwrap_or("default")
}

/// The Roles (namespace, name) that an ApiServerSource runs with. They are checked here,
/// and are not the component's Role (rbac.rs).
pub fn source_roles(m: &Manifests) -> BTreeSet<(String, String)> {
    let mut roles = BTreeSet::new();
    for (doc, source) in m.all::<ApiServerSource>("ApiServerSource", &mut Vec::new()) {
        let namespace = doc.namespace().unwrap_or_default();
        for role in roles_bound_to(m, doc.namespace(), source_account(&source)) {
            roles.insert((namespace.to_owned(), role));
        }
    }
    roles
}

/// The ApiServerSource watches, in Resource mode, exactly the component's client Pods (v1
/// Pods labelled with the managed-by label, in the client namespace, which is its own), as
/// a ServiceAccount of these manifests, and sends to the ingress of the Broker.
pub fn check_api_server_source(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let client_namespace = m.client_namespace(&mut problems);
    let broker = the_broker(m, &mut problems);
    let Some((doc, source)) = the_source(m, &mut problems) else { return problems };
    let at = doc.describe();
    let spec = &source.spec;
    if spec.mode.as_deref() != Some("Resource") {
        problems.push(format!(
            "{at}: mode must be Resource (the component reads the whole Pod), is {:?}",
            spec.mode
        ));
    }
    if doc.namespace() != client_namespace.as_deref() {
        problems.push(format!(
            "{at}: must be in the client namespace {client_namespace:?} (it watches its own namespace)"
        ));
    }
    if spec.namespace_selector.is_some() {
        problems.push(format!(
            "{at}: no namespaceSelector: the source watches its own namespace, with a Role there"
        ));
    }
    let (label, value) = contract::MANAGED_BY;
    let expected_labels = BTreeMap::from([(label.to_owned(), value.to_owned())]);
    match spec.resources.as_slice() {
        [resource] => {
            if (resource.api_version.as_str(), resource.kind.as_str()) != ("v1", "Pod") {
                problems.push(format!(
                    "{at}: must watch v1 Pod, watches {} {}",
                    resource.api_version, resource.kind
                ));
            }
            let selector = resource.selector.clone().unwrap_or_default();
            if selector.match_labels.as_ref() != Some(&expected_labels)
                || selector.match_expressions.is_some_and(|e| !e.is_empty())
            {
                problems.push(format!(
                    "{at}: the Pod selector must be exactly matchLabels {label}: {value} (the component's \
                     client Pods), is {:?}",
                    resource.selector
                ));
            }
        }
        other => {
            problems.push(format!("{at}: must watch exactly one resource (v1 Pod), watches {}", other.len()))
        }
    }
    match &spec.service_account_name {
        None => {
            problems.push(format!("{at}: serviceAccountName must be set (its Role lets it watch the Pods)"))
        }
        Some(account) if m.find("ServiceAccount", doc.namespace(), account).is_none() => problems.push(
            format!("{at}: serviceAccountName {account} is not a ServiceAccount in {:?}", doc.namespace()),
        ),
        Some(_) => {}
    }
    if spec.sink.reference.is_some() {
        problems.push(format!(
            "{at}: the sink must be the Broker's URI, not a ref: Knative refuses a ref to another namespace"
        ));
    }
    if let Some(broker) = broker {
        let ingress = broker_ingress(broker.namespace().unwrap_or_default(), broker.name());
        if spec.sink.uri.as_deref() != Some(ingress.as_str()) {
            problems.push(format!(
                "{at}: sink uri {:?} is not the ingress of {}: {ingress}",
                spec.sink.uri,
                broker.describe()
            ));
        }
        let audience = broker_audience(broker.namespace().unwrap_or_default(), broker.name());
        if spec.sink.audience.as_deref() != Some(audience.as_str()) {
            problems.push(format!(
                "{at}: sink audience {:?} must be {audience}, the OIDC audience of {}: a URI has none of its \
                 own, and with authentication-oidc enabled the ingress refuses events without a token for it",
                spec.sink.audience,
                broker.describe()
            ));
        }
    }
    problems
}

/// The ApiServerSource's ServiceAccount is bound, in the source's namespace, to Roles that
/// grant exactly get, list and watch on core pods, and nothing else.
pub fn check_api_server_source_rbac(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((doc, source)) = the_source(m, &mut problems) else { return problems };
    let account = source_account(&source);
    let namespace = doc.namespace();
    let roles = roles_bound_to(m, namespace, account);
    if roles.is_empty() {
        problems.push(format!(
            "no RoleBinding in {namespace:?} binds a Role to ServiceAccount {account} of {}: it needs {WATCH_VERBS:?} on pods",
            doc.describe()
        ));
    }
    for name in roles {
        // A roleRef to a Role that does not exist is reported by check_role_refs.
        let Some(Ok(role)) = m.find("Role", namespace, &name).map(Doc::typed::<Role>) else { continue };
        let label = format!("Role {name} (ApiServerSource)");
        problems.extend(rbac::pods_only_problems(&label, "the source needs", &role, &WATCH_VERBS));
    }
    problems
}

/// The Pod updates and deletions and the release events each reach the component's
/// Service through exactly one Trigger on the Broker of broker.yaml, which filters exactly
/// their type (and, for the ApiServerSource's events, the client namespace).
pub fn check_lifecycle_triggers(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let client_namespace = m.client_namespace(&mut problems).unwrap_or_default();
    let broker = the_broker(m, &mut problems);
    let Some((app_doc, _)) = m.spin_app(&mut problems) else { return problems };
    let triggers = m.all::<Trigger>("Trigger", &mut problems);
    for event_type in [contract::POD_UPDATED, contract::POD_DELETED, contract::RELEASE] {
        let of_type: Vec<_> = triggers
            .iter()
            .filter(|(_, t)| {
                t.spec.filter.as_ref().and_then(|f| f.attributes.get("type")).map(String::as_str)
                    == Some(event_type)
            })
            .collect();
        if of_type.len() != 1 {
            problems
                .push(format!("expected exactly one Trigger for type {event_type}, found {}", of_type.len()));
        }
        let mut expected = BTreeMap::from([("type".to_owned(), event_type.to_owned())]);
        if FROM_THE_SOURCE.contains(&event_type) {
            expected.insert("namespace".into(), client_namespace.clone());
        }
        for (doc, trigger) in of_type {
            let at = doc.describe();
            let to_app = trigger.spec.subscriber.reference.as_ref().is_some_and(|r| {
                r.api_version == "v1"
                    && r.kind == "Service"
                    && r.name == app_doc.name()
                    && r.namespace.as_deref().or(doc.namespace()) == app_doc.namespace()
            });
            if !to_app {
                problems.push(format!(
                    "{at}: type {event_type} must reach the component's Service {:?}/{}",
                    app_doc.namespace(),
                    app_doc.name()
                ));
            }
            if let Some(broker) = &broker
                && (trigger.spec.broker != broker.name() || doc.namespace() != broker.namespace())
            {
                problems.push(format!(
                    "{at}: type {event_type} must be on {} (where the source and the replies send), is on \
                     broker {}",
                    broker.describe(),
                    trigger.spec.broker
                ));
            }
            let attributes = trigger.spec.filter.as_ref().map(|f| f.attributes.clone()).unwrap_or_default();
            if attributes != expected {
                problems.push(format!("{at}: must filter exactly {expected:?}, filters {attributes:?}"));
            }
        }
    }
    problems
}

/// The words of a text, as identifiers: runs of letters, digits and `_`.
fn words(text: &str) -> BTreeSet<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect()
}

/// Every type the component consumes or produces has exactly one EventType, on the Broker,
/// in its namespace, whose description names each of its data fields; the produced ones
/// have the component's source; no EventType names another type.
pub fn check_event_types(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let broker = the_broker(m, &mut problems);
    let event_types = m.all::<EventType>("EventType", &mut problems);
    let contracts: BTreeMap<&str, (&EventContract, bool)> = CONSUMED
        .iter()
        .map(|c| (c.event_type, (c, false)))
        .chain(PRODUCED.iter().map(|c| (c.event_type, (c, true))))
        .collect();
    for event_type in contracts.keys() {
        let count = event_types.iter().filter(|(_, e)| e.spec.event_type == *event_type).count();
        if count != 1 {
            problems.push(format!("expected exactly one EventType of type {event_type}, found {count}"));
        }
    }
    for (doc, event) in &event_types {
        let at = doc.describe();
        let event_type = event.spec.event_type.as_str();
        let Some((contract, produced)) = contracts.get(event_type) else {
            problems
                .push(format!("{at}: type {event_type} is neither consumed nor produced by the component"));
            continue;
        };
        let description = event.spec.description.as_deref().unwrap_or_default();
        if description.trim().is_empty() {
            problems.push(format!("{at}: needs a description of its data"));
        }
        let said = words(description);
        for field in contract.fields {
            if !said.contains(field) {
                problems.push(format!(
                    "{at}: the description does not name the data field {field} of {event_type}"
                ));
            }
        }
        let source = event.spec.source.as_deref();
        if *produced && source != Some(contract::REPLY_SOURCE) {
            problems.push(format!(
                "{at}: the component sends {event_type} with source {}, the EventType says {source:?}",
                contract::REPLY_SOURCE
            ));
        }
        if !*produced && source.is_some() {
            problems
                .push(format!("{at}: {event_type} comes from any source; the EventType must not name one"));
        }
        let Some(broker) = &broker else { continue };
        let on_broker = event.spec.reference.as_ref().is_some_and(|r| {
            r.api_version == "eventing.knative.dev/v1"
                && r.kind == "Broker"
                && r.name == broker.name()
                && r.namespace.as_deref().or(doc.namespace()) == broker.namespace()
        });
        if !on_broker || doc.namespace() != broker.namespace() {
            problems.push(format!(
                "{at}: must be in {:?} with a reference to {} (the events go through it), references {:?}",
                broker.namespace(),
                broker.describe(),
                event.spec.reference
            ));
        }
    }
    problems
}
