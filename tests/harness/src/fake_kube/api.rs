//! The endpoints, checked in the apiserver's order. Pods: authentication, authorization,
//! media type, CreateOptions, body decoding, namespace mismatch, admission
//! (NamespaceLifecycle), validation, storage. TokenReviews: `token_review.rs`.

use serde_json::{Value, json};

use super::selector::{FieldSelector, LabelSelector};
use super::status::{Reply, Status, go_quote};
use super::{NamespacePhase, Query, State, patch, pod, token, token_review, validation, webhook};

const ANONYMOUS: &str = "system:anonymous";
/// The collection of the cluster-scoped, create-only `tokenreviews` resource.
pub(super) const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

pub(super) struct ApiRequest<'a> {
    pub method: &'a http::Method,
    pub path: &'a str,
    pub query: &'a Query,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

struct Route<'a> {
    namespace: &'a str,
    name: Option<&'a str>,
}

fn route(path: &str) -> Option<Route<'_>> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    match rest.split('/').collect::<Vec<_>>()[..] {
        [ns, "pods"] if !ns.is_empty() => Some(Route { namespace: ns, name: None }),
        [ns, "pods", name] if !ns.is_empty() && !name.is_empty() => {
            Some(Route { namespace: ns, name: Some(name) })
        }
        _ => None,
    }
}

/// The RBAC verb of a request, if it is one the fake serves.
pub(super) fn verb(method: &http::Method, path: &str) -> Option<&'static str> {
    if path == TOKEN_REVIEWS {
        return (method == http::Method::POST).then_some("create");
    }
    let route = route(path)?;
    match (method.as_str(), route.name.is_some()) {
        ("POST", false) => Some("create"),
        ("GET", false) => Some("list"),
        ("GET", true) => Some("get"),
        ("PATCH", true) => Some("patch"),
        ("DELETE", true) => Some("delete"),
        _ => None,
    }
}

/// The API group and resource a path names (for `ServerTimeout` faults).
pub(super) fn resource(path: &str) -> (&'static str, &'static str) {
    if path == TOKEN_REVIEWS { ("authentication.k8s.io", "tokenreviews") } else { ("", "pods") }
}

pub(super) fn handle(state: &mut State, req: &ApiRequest) -> Reply {
    dispatch(state, req).unwrap_or_else(|error| error)
}

fn dispatch(state: &mut State, req: &ApiRequest) -> Result<Reply, Reply> {
    let user = authenticate(state, req.headers)?;
    if req.path == TOKEN_REVIEWS {
        // The verb is the request's (RequestInfo) whether or not the resource serves it;
        // only `create` is routed.
        let verb = match req.method.as_str() {
            "POST" => "create",
            "GET" | "HEAD" => "list",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "deletecollection",
            _ => return Err(Status::method_not_allowed().reply()),
        };
        let attributes = Attributes {
            group: "authentication.k8s.io",
            resource: "tokenreviews",
            namespace: None,
            name: "",
        };
        authorize(state, &user, verb, &attributes)?;
        if verb != "create" {
            return Err(Status::method_not_allowed().reply());
        }
        return Ok(token_review::create(state, req));
    }
    let route = route(req.path).ok_or_else(|| Status::path_not_found().reply())?;
    let verb = verb(req.method, req.path).ok_or_else(|| Status::method_not_allowed().reply())?;
    let attributes = Attributes {
        group: "",
        resource: "pods",
        namespace: Some(route.namespace),
        name: route.name.unwrap_or(""),
    };
    authorize(state, &user, verb, &attributes)?;
    match verb {
        "create" => Ok(create(state, route.namespace, req)),
        "list" => list(state, route.namespace, req.query),
        "get" => get(state, route.namespace, route.name.unwrap_or_default()),
        "patch" => patch_pod(state, route.namespace, route.name.unwrap_or_default(), req),
        _ => delete(state, route.namespace, route.name.unwrap_or_default(), req),
    }
}

/// The bearer-token authenticator: a request without a (bearer) token is anonymous; a token
/// is one of the static tokens (`add_token`) or a service-account token the fake issued and
/// that is valid for the API server's audience; any other is rejected.
fn authenticate(state: &mut State, headers: &http::HeaderMap) -> Result<String, Reply> {
    let auth = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("").trim();
    let mut parts = auth.splitn(3, ' ');
    match (parts.next(), parts.next()) {
        (Some(scheme), Some(token)) if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() => {
            token::review(state, token, &[token::ISSUER.to_owned()])
                .map(|authenticated| authenticated.user.username)
                .map_err(|_| Status::unauthorized().reply())
        }
        _ => Ok(ANONYMOUS.to_owned()),
    }
}

/// What RBAC is asked: the resource, and the namespace (`None`: cluster scope).
struct Attributes<'a> {
    group: &'a str,
    resource: &'a str,
    namespace: Option<&'a str>,
    name: &'a str,
}

/// RBAC: a grant for every namespace (a ClusterRoleBinding) also covers the cluster scope; a
/// grant in a namespace (a RoleBinding) covers only that namespace.
fn authorize(state: &State, user: &str, verb: &str, attributes: &Attributes) -> Result<(), Reply> {
    let allowed = state.grants.iter().any(|g| {
        g.user == user
            && g.verbs.iter().any(|v| v == verb || v == "*")
            && (g.group == attributes.group || g.group == "*")
            && (g.resource == attributes.resource || g.resource == "*")
            && match (&g.namespace, attributes.namespace) {
                (None, _) => true,
                (Some(granted), Some(requested)) => granted == requested,
                (Some(_), None) => false,
            }
    });
    if allowed {
        return Ok(());
    }
    let scope = match attributes.namespace {
        Some(namespace) => format!("in the namespace {}", go_quote(namespace)),
        None => "at the cluster scope".to_owned(),
    };
    let why = format!(
        "User {} cannot {verb} resource {} in API group {} {scope}",
        go_quote(user),
        go_quote(attributes.resource),
        go_quote(attributes.group)
    );
    Err(Status::forbidden_in(attributes.group, attributes.resource, attributes.name, &why).reply())
}

fn create(state: &mut State, namespace: &str, req: &ApiRequest) -> Reply {
    let mut warnings = Vec::new();
    let reply = create_pod(state, namespace, req, &mut warnings).unwrap_or_else(|error| error);
    with_warnings(reply, warnings)
}

/// `Warning: 299 - "<text>"` headers.
pub(super) fn with_warnings(reply: Reply, warnings: Vec<String>) -> Reply {
    warnings
        .into_iter()
        .fold(reply, |reply, w| reply.with_header("Warning", format!("299 - {}", go_quote(&w))))
}

fn create_pod(
    state: &mut State,
    namespace: &str,
    req: &ApiRequest,
    warnings: &mut Vec<String>,
) -> Result<Reply, Reply> {
    if !is_json(req.headers) {
        return Err(Status::unsupported_media_type().reply());
    }
    let options = CreateOptions::parse(req.query)?;
    let decoded = pod::decode(req.body).map_err(|m| Status::bad_request(m).reply())?;
    options.unknown_fields(&decoded.unknown_fields, warnings)?;

    let mut pod = decoded.object;
    let meta = pod::object_at(&mut pod, "metadata");
    match meta.get("namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() && ns != namespace => {
            return Err(Status::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            )
            .reply());
        }
        _ => meta.insert("namespace".into(), json!(namespace)),
    };
    let mut name = meta.get("name").and_then(Value::as_str).unwrap_or("").to_owned();

    match state.namespaces.get(namespace) {
        None => return Err(Status::not_found("namespaces", namespace).reply()),
        Some(NamespacePhase::Terminating) => {
            let shown = if name.is_empty() { "Unknown" } else { name.as_str() };
            return Err(Status::namespace_terminating(shown, namespace).reply());
        }
        Some(NamespacePhase::Active) => {}
    }

    let prefix = meta.get("generateName").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() && !prefix.is_empty() {
        name = format!("{prefix}{}", pod::random_suffix());
        meta.insert("name".into(), json!(name));
    }
    pod::apply_scheme_defaults(&mut pod);
    let namespace_labels = state.namespace_labels.get(namespace);
    webhook::admit(&state.webhooks, namespace_labels, namespace, &mut pod)?;
    // The mutated object is decoded and defaulted again.
    pod::apply_scheme_defaults(&mut pod);
    let errors = validation::pod(&pod);
    if !errors.is_empty() {
        return Err(Status::invalid("", "Pod", &name, &errors).reply());
    }
    if state.pods.get(namespace).is_some_and(|pods| pods.contains_key(&name)) {
        return Err(Status::already_exists("pods", &name).reply());
    }

    let manager = options.manager(req.headers);
    let dry = !options.dry_run.is_empty();
    let resource_version = (!dry).then(|| state.next_resource_version());
    pod::finish_create(&mut pod, &manager, resource_version);
    if !dry {
        state.pods.entry(namespace.to_owned()).or_default().insert(name, pod.clone());
    }
    Ok(Reply::json(201, &pod))
}

/// `CreateOptions` from the query, validated (422) before the body is decoded, as the create
/// handler does (`pkg/endpoints/handlers/create.go`).
pub(super) struct CreateOptions<'a> {
    pub dry_run: Vec<String>,
    pub field_manager: &'a str,
    pub field_validation: &'a str,
}

impl<'a> CreateOptions<'a> {
    pub fn parse(query: &'a Query) -> Result<Self, Reply> {
        let options = Self {
            dry_run: query.all("dryRun"),
            field_manager: query.first("fieldManager").unwrap_or(""),
            field_validation: query.first("fieldValidation").unwrap_or(""),
        };
        let errors =
            validation::create_options(&options.dry_run, options.field_manager, options.field_validation);
        if !errors.is_empty() {
            return Err(Status::invalid("meta.k8s.io", "CreateOptions", "", &errors).reply());
        }
        Ok(options)
    }

    /// Unknown fields of the body: 400 with `fieldValidation=Strict`, ignored with `Ignore`,
    /// else warnings.
    pub fn unknown_fields(&self, unknown: &[String], warnings: &mut Vec<String>) -> Result<(), Reply> {
        let unknown: Vec<String> = unknown.iter().map(|f| format!("unknown field {}", go_quote(f))).collect();
        match self.field_validation {
            "Strict" if !unknown.is_empty() => {
                Err(Status::bad_request(format!("strict decoding error: {}", unknown.join(", "))).reply())
            }
            "Ignore" => Ok(()),
            _ => {
                warnings.extend(unknown);
                Ok(())
            }
        }
    }

    /// The field manager: `fieldManager`, else the User-Agent up to its first `/`.
    pub fn manager(&self, headers: &http::HeaderMap) -> String {
        if self.field_manager.is_empty() { user_agent_prefix(headers) } else { self.field_manager.to_owned() }
    }
}

/// An absent Content-Type means JSON, as in the apiserver's negotiation.
pub(super) fn is_json(headers: &http::HeaderMap) -> bool {
    let content_type = headers.get(http::header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("invalid"));
    let media = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    media.is_empty() || media == "application/json"
}

/// The field manager of a request without `fieldManager`: the User-Agent up to its first `/`.
fn user_agent_prefix(headers: &http::HeaderMap) -> String {
    let agent = headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    agent.split('/').next().unwrap_or("").to_owned()
}

fn get(state: &State, namespace: &str, name: &str) -> Result<Reply, Reply> {
    state
        .pods
        .get(namespace)
        .and_then(|pods| pods.get(name))
        .map(|pod| Reply::json(200, pod))
        .ok_or_else(|| Status::not_found("pods", name).reply())
}

fn list(state: &State, namespace: &str, query: &Query) -> Result<Reply, Reply> {
    let bad = |m: String| Status::bad_request(m).reply();
    let labels = LabelSelector::parse(query.first("labelSelector").unwrap_or("")).map_err(bad)?;
    let fields = FieldSelector::parse(query.first("fieldSelector").unwrap_or("")).map_err(bad)?;
    let items: Vec<Value> = state
        .pods
        .get(namespace)
        .into_iter()
        .flat_map(|pods| pods.values())
        .filter(|pod| labels.matches(pod) && fields.matches(pod))
        .map(|pod| {
            let mut item = pod.clone();
            if let Some(m) = item.as_object_mut() {
                m.remove("apiVersion");
                m.remove("kind");
            }
            item
        })
        .collect();
    Ok(Reply::json(
        200,
        &json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": state.resource_version.to_string()}, "items": items}),
    ))
}

/// `DeleteOptions` from the body (kube-core and client-go send them there) or the query. A
/// pod that is not on a node, or deleted with `gracePeriodSeconds: 0`, goes at once; a pod
/// on a node is marked (`deletionTimestamp`) and goes when [`super::FakeKube::finish_deletion`]
/// plays the kubelet. The answer is the Pod as deleted.
fn delete(state: &mut State, namespace: &str, name: &str, req: &ApiRequest) -> Result<Reply, Reply> {
    let options: Value = if req.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(req.body).map_err(|e| Status::bad_request(e.to_string()).reply())?
    };
    let mut dry_run = req.query.all("dryRun");
    dry_run.extend(
        options["dryRun"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned),
    );
    let errors = validation::dry_run_errors(&dry_run);
    if !errors.is_empty() {
        return Err(Status::invalid("meta.k8s.io", "DeleteOptions", "", &errors).reply());
    }
    let stored = state.pods.get(namespace).and_then(|pods| pods.get(name)).cloned();
    let mut pod = stored.ok_or_else(|| Status::not_found("pods", name).reply())?;
    if let Some(uid) = options["preconditions"]["uid"].as_str()
        && pod["metadata"]["uid"].as_str() != Some(uid)
    {
        let actual = pod["metadata"]["uid"].as_str().unwrap_or_default();
        return Err(Status::conflict(
            "Pod",
            name,
            &format!(
                "the UID in the precondition ({uid}) does not match the UID in record ({actual}). \
                 The object might have been deleted and then recreated"
            ),
        )
        .reply());
    }
    let on_node = pod["spec"]["nodeName"].as_str().is_some_and(|node| !node.is_empty());
    let terminal = matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
    let grace = options["gracePeriodSeconds"]
        .as_i64()
        .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30);
    let grace = if on_node && !terminal { grace.max(0) } else { 0 };
    let meta = pod::object_at(&mut pod, "metadata");
    meta.insert("deletionTimestamp".into(), json!(pod::rfc3339_now()));
    meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
    if dry_run.is_empty() {
        if grace == 0 {
            if let Some(pods) = state.pods.get_mut(namespace) {
                pods.remove(name);
            }
        } else {
            let rv = state.next_resource_version();
            pod::object_at(&mut pod, "metadata").insert("resourceVersion".into(), json!(rv.to_string()));
            state.pods.entry(namespace.to_owned()).or_default().insert(name.to_owned(), pod.clone());
        }
    }
    Ok(Reply::json(200, &pod))
}

/// A strategic merge patch of a pod (the only patch type the component sends).
fn patch_pod(state: &mut State, namespace: &str, name: &str, req: &ApiRequest) -> Result<Reply, Reply> {
    let media = req.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if media.split(';').next().unwrap_or("").trim() != "application/strategic-merge-patch+json" {
        return Err(Status::unsupported_media_type().reply());
    }
    let patch: Value =
        serde_json::from_slice(req.body).map_err(|e| Status::bad_request(e.to_string()).reply())?;
    let old = state.pods.get(namespace).and_then(|pods| pods.get(name)).cloned();
    let old = old.ok_or_else(|| Status::not_found("pods", name).reply())?;
    let mut new = old.clone();
    patch::strategic_merge(&mut new, &patch);
    patch::drop_empty_lists(&mut new);
    patch::validate_update(&old, &new)?;
    if req.query.all("dryRun").is_empty() {
        let rv = state.next_resource_version();
        pod::object_at(&mut new, "metadata").insert("resourceVersion".into(), json!(rv.to_string()));
        state.pods.entry(namespace.to_owned()).or_default().insert(name.to_owned(), new.clone());
    }
    Ok(Reply::json(200, &new))
}
