//! The Broker, the Triggers, the player and the Services are wired to each other and to the
//! SpinApp, and the delivery spec fits the component's status codes.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::contract;
use crate::crds::{Broker, KReference, Trigger};
use crate::load::{Doc, Manifests};
use crate::rules::lifecycle;

/// Seconds of a simple ISO-8601 duration such as `PT1S`, `PT0.5S`, `PT1M30S`.
pub fn iso8601_seconds(duration: &str) -> Option<f64> {
    let mut rest = duration.strip_prefix("PT")?;
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (number, unit_and_rest) = rest.split_at(end);
        let number: f64 = number.parse().ok()?;
        let mut chars = unit_and_rest.chars();
        total += number
            * match chars.next()? {
                'H' => 3600.0,
                'M' => 60.0,
                'S' => 1.0,
                _ => return None,
            };
        rest = chars.as_str();
    }
    Some(total)
}

/// Whether a reference (made in `from`) is a Service: one of the manifests' Services, or
/// the one the operator makes for the SpinApp `app` (same name and namespace).
fn resolves(m: &Manifests, app: Option<&Doc>, reference: &KReference, from: &Doc) -> bool {
    let ns = reference.namespace.as_deref().or(from.namespace());
    reference.api_version == "v1"
        && reference.kind == "Service"
        && (m.find("Service", ns, &reference.name).is_some()
            || app.is_some_and(|d| d.name() == reference.name && d.namespace() == ns))
}

/// Whether a Trigger (`doc`) delivers to the Service the operator makes for the SpinApp
/// (`app_doc`): same name, same namespace.
pub fn delivers_to_app(app_doc: &Doc, doc: &Doc, trigger: &Trigger) -> bool {
    trigger.spec.subscriber.reference.as_ref().is_some_and(|reference| {
        reference.kind == "Service"
            && reference.name == app_doc.name()
            && reference.namespace.as_deref().or(doc.namespace()) == app_doc.namespace()
    })
}

/// Every Broker retries (503 means: try again) with an exponential backoff, and sends what
/// it gives up on to a Service of these manifests.
pub fn check_broker_delivery(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let app = m.spin_app(&mut problems).map(|(doc, _)| doc);
    for (doc, broker) in m.all::<Broker>("Broker", &mut problems) {
        let Some(delivery) = &broker.spec.delivery else {
            problems.push(format!("{}: needs a delivery spec (retries, dead-letter sink)", doc.describe()));
            continue;
        };
        if !matches!(delivery.retry, Some(r) if r >= 1) {
            problems.push(format!(
                "{}: delivery.retry must be at least 1 (503 means: try again)",
                doc.describe()
            ));
        }
        if delivery.backoff_policy.as_deref() != Some("exponential") {
            problems.push(format!("{}: delivery.backoffPolicy should be exponential", doc.describe()));
        }
        if !matches!(delivery.backoff_delay.as_deref().and_then(iso8601_seconds), Some(s) if s > 0.0) {
            problems.push(format!(
                "{}: delivery.backoffDelay {:?} is not an ISO-8601 duration such as PT1S",
                doc.describe(),
                delivery.backoff_delay
            ));
        }
        match delivery.dead_letter_sink.as_ref().and_then(|d| d.reference.as_ref()) {
            Some(reference) if resolves(m, app.as_ref(), reference, &doc) => {}
            other => problems.push(format!(
                "{}: deadLetterSink {other:?} is not a Service of these manifests",
                doc.describe()
            )),
        }
    }
    problems
}

/// Every Trigger listens to a Broker of these manifests and delivers to a Service of them.
pub fn check_trigger_wiring(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let app = m.spin_app(&mut problems).map(|(doc, _)| doc);
    for (doc, trigger) in m.all::<Trigger>("Trigger", &mut problems) {
        if m.find("Broker", doc.namespace(), &trigger.spec.broker).is_none() {
            problems.push(format!("{}: broker {} does not exist", doc.describe(), trigger.spec.broker));
        }
        match &trigger.spec.subscriber.reference {
            None => problems.push(format!("{}: subscriber must be a ref", doc.describe())),
            Some(reference) if !resolves(m, app.as_ref(), reference, &doc) => problems.push(format!(
                "{}: subscriber {reference:?} is not a Service of these manifests",
                doc.describe()
            )),
            Some(_) => {}
        }
    }
    problems
}

/// Every Trigger that delivers to the SpinApp's Service filters a type the component
/// consumes (lifecycle::CONSUMED; lifecycle.rs checks the filters of the lifecycle types),
/// and exactly one of them delivers the pending events, filtering exactly their type.
pub fn check_component_trigger(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((app_doc, _)) = m.spin_app(&mut problems) else { return problems };
    let consumed: BTreeSet<&str> = lifecycle::CONSUMED.iter().map(|c| c.event_type).collect();
    let mut pending_triggers = 0;
    for (doc, trigger) in m.all::<Trigger>("Trigger", &mut problems) {
        if !delivers_to_app(&app_doc, &doc, &trigger) {
            continue;
        }
        let attributes = trigger.spec.filter.as_ref().map(|f| f.attributes.clone()).unwrap_or_default();
        let event_type = attributes.get("type").map(String::as_str).unwrap_or_default();
        if !consumed.contains(event_type) {
            problems.push(format!(
                "{}: the component's Trigger must filter exactly type: one of the types it consumes {consumed:?}, \
                 filters {attributes:?}",
                doc.describe()
            ));
        }
        if event_type != contract::PENDING {
            continue;
        }
        pending_triggers += 1;
        let expected = BTreeMap::from([("type".to_owned(), contract::PENDING.to_owned())]);
        if attributes != expected {
            problems.push(format!(
                "{}: the component's Trigger must filter exactly type: {}, filters {attributes:?}",
                doc.describe(),
                contract::PENDING
            ));
        }
    }
    if pending_triggers != 1 {
        problems.push(format!(
            "expected one Trigger whose subscriber is the SpinApp's Service for type {}, found {pending_triggers}",
            contract::PENDING
        ));
    }
    problems
}

/// The containers of a Deployment's pods.
fn containers(deployment: &Deployment) -> Vec<Container> {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|s| s.containers.clone())
        .unwrap_or_default()
}

/// The player sends to the ingress of a Broker of these manifests.
pub fn check_player_broker_uri(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let ingresses: BTreeSet<String> = m
        .all::<Broker>("Broker", &mut problems)
        .iter()
        .map(|(b, _)| {
            format!(
                "http://broker-ingress.knative-eventing.svc.cluster.local/{}/{}",
                b.namespace().unwrap_or(""),
                b.name()
            )
        })
        .collect();
    for (doc, deployment) in m.all::<Deployment>("Deployment", &mut problems) {
        for container in containers(&deployment) {
            for env in container.env.iter().flatten().filter(|e| e.name == "BROKER_URI") {
                let uri = env.value.clone().unwrap_or_default();
                if !ingresses.contains(&uri) {
                    problems.push(format!(
                        "{}: BROKER_URI {uri} is not the ingress of a Broker here",
                        doc.describe()
                    ));
                }
            }
        }
    }
    problems
}

/// Every Service selects the pods of a Deployment of these manifests, on a port those pods
/// have.
pub fn check_service_selectors(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let deployments = m.all::<Deployment>("Deployment", &mut problems);
    for (doc, service) in m.all::<Service>("Service", &mut problems) {
        let spec = service.spec.unwrap_or_default();
        let selector = spec.selector.unwrap_or_default();
        let target = deployments.iter().find(|(d, deployment)| {
            let labels = deployment
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|md| md.labels.clone())
                .unwrap_or_default();
            d.namespace() == doc.namespace()
                && !selector.is_empty()
                && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        });
        let Some((_, deployment)) = target else {
            problems.push(format!("{}: selects no Deployment of these manifests", doc.describe()));
            continue;
        };
        let port_names: BTreeSet<String> = containers(deployment)
            .into_iter()
            .flat_map(|c| c.ports.unwrap_or_default())
            .filter_map(|p| p.name)
            .collect();
        for port in spec.ports.unwrap_or_default() {
            if let Some(IntOrString::String(name)) = &port.target_port
                && !port_names.contains(name)
            {
                problems.push(format!("{}: targetPort {name} is not a container port", doc.describe()));
            }
        }
    }
    problems
}
