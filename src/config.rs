//! The component's settings: every Spin variable, read through a lookup function and
//! validated into one [`Config`], so that a wrong value is reported by name before any
//! Kubernetes call is made.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use crate::names;
use crate::pod::event_file::{EVENT_DIR, EVENT_VOLUME, OWNED_ENV};
use crate::pod::name::MAX_NAME_PREFIX_LEN;
use crate::pod::template::{Owned, PodTemplate};

const MAX_TIMEOUT_SECONDS: u64 = 3600;
/// Stands for the gateway's name in `gateway_address_template`.
const GATEWAY_PLACEHOLDER: &str = "{gateway}";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub api: ApiEndpoint,
    pub token: Option<BearerToken>,
    pub client_namespace: String,
    /// The `client` container's image; `None`: the template's.
    pub client_image: Option<String>,
    /// The `client` container's command; `None`: the template's; empty: the image's own
    /// entrypoint.
    pub client_command: Option<Vec<String>>,
    /// `Always`, `OnFailure` or `Never`; `None`: the template's, else `Never`.
    pub client_restart_policy: Option<String>,
    /// What every client pod starts from.
    pub pod_template: PodTemplate,
    /// Whether a pending event's `args` become the `client` container's args.
    pub allow_event_args: bool,
    pub client_name_prefix: String,
    pub gateway_annotation: String,
    pub gateway_label: Option<String>,
    /// `None`: any gateway may be requested.
    pub allowed_gateways: Option<BTreeSet<String>>,
    pub active_deadline_seconds: Option<i64>,
    pub api_timeout: Duration,
    pub dry_run: bool,
    pub routing_guard: RoutingGuard,
    /// The expected `gateway` address of a routed pod, `{gateway}` standing for the gateway's
    /// name; `None`: any address will do.
    pub gateway_address_template: Option<String>,
    /// Whether a client pod that finished is deleted when its `finished` event is sent.
    pub reap_finished: bool,
    /// Who may send events; `None`: anyone who can reach the component (no authentication).
    pub auth: Option<SenderAuth>,
}

/// Sender authentication (Knative OIDC): the audience every bearer token must be valid for,
/// the subjects allowed to send, and how long a verified token is remembered.
#[derive(Debug, Clone, PartialEq)]
pub struct SenderAuth {
    pub audience: String,
    /// Empty: any authenticated sender of the audience.
    pub allowed_senders: Vec<SenderPattern>,
    /// 0: every request is verified with the API.
    pub cache_seconds: u64,
}

/// An allowed subject: exact, or a prefix when written with a trailing `*` (EventPolicy's
/// `from.sub` syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderPattern {
    Exact(String),
    Prefix(String),
}

impl SenderPattern {
    pub fn matches(&self, subject: &str) -> bool {
        match self {
            SenderPattern::Exact(exact) => subject == exact,
            SenderPattern::Prefix(prefix) => subject.starts_with(prefix.as_str()),
        }
    }
}

/// What makes sure that no client pod runs with plain cluster egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingGuard {
    /// Created with a scheduling gate, so that no node runs it; the gate is removed once the
    /// pod is seen routed, and an unrouted pod is deleted.
    Gate,
    /// Created runnable; an unrouted pod is deleted right after it is created.
    Delete,
    /// Not checked (egress is routed by other means).
    Off,
}

/// Where the Kubernetes API is: `scheme://authority`, without a trailing slash. No path:
/// the same value is the component's `allowed_outbound_hosts` entry, where Spin refuses one.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiEndpoint {
    base: String,
}

impl ApiEndpoint {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let uri: http::Uri = raw
            .parse()
            .map_err(|_| format!("`{raw}` is not a URL; expected e.g. https://kubernetes.default.svc"))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err(format!("`{raw}` must start with http:// or https://")),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(format!("`{raw}` has no host"));
        }
        if uri.query().is_some() || !matches!(uri.path(), "" | "/") {
            return Err(format!(
                "`{raw}` must be scheme://host[:port] only, with no path or query \
                 (it is also the component's allowed_outbound_hosts entry)"
            ));
        }
        Ok(Self { base: raw.trim_end_matches('/').to_owned() })
    }

    /// The absolute URL for an API path such as `/api/v1/namespaces/x/pods?dryRun=All`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }
}

impl fmt::Display for ApiEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

/// The service-account token. Its `Debug` never shows the value, so that no log line or
/// error message can carry it.
#[derive(Clone, PartialEq)]
pub struct BearerToken(String);

impl BearerToken {
    pub fn authorization_header(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// A variable that is missing or has a value the component cannot use.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Spin variable `{}`: {}", self.variable, self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads every variable through `lookup` (Spin's `variables::get` in the component).
    /// `lookup` answers the host's error text when a variable cannot be read.
    pub fn load(lookup: impl Fn(&str) -> Result<String, String>) -> Result<Self, ConfigError> {
        let gateway_annotation = read_variable(&lookup, "gateway_annotation", &parse_key)?;
        let gateway_label = read_variable(&lookup, "gateway_label", &parse_optional_key)?;
        let allow_init_containers = read_variable(&lookup, "allow_template_init_containers", &parse_bool)?;
        let owned = Owned {
            gateway_annotation: &gateway_annotation,
            gateway_label: gateway_label.as_deref(),
            env: &OWNED_ENV,
            volume: EVENT_VOLUME,
            mount_path: EVENT_DIR,
        };
        let pod_template = read_variable(&lookup, "client_pod_template", &|text| {
            PodTemplate::parse(text, allow_init_containers, &owned)
        })?;
        let client_image = read_variable(&lookup, "client_image", &parse_image)?;
        if client_image.is_none() && pod_template.client_container().is_none_or(|c| c.get("image").is_none())
        {
            return Err(ConfigError {
                variable: "client_pod_template",
                problem: "its `client` container has no image: give it one, or set client_image".into(),
            });
        }
        Ok(Config {
            api: read_variable(&lookup, "k8s_api_url", &ApiEndpoint::parse)?,
            token: read_variable(&lookup, "k8s_token", &parse_token)?,
            client_namespace: read_variable(&lookup, "client_namespace", &parse_namespace)?,
            client_image,
            client_command: read_variable(&lookup, "client_command", &parse_command)?,
            client_restart_policy: read_variable(&lookup, "client_restart_policy", &parse_restart_policy)?,
            pod_template,
            allow_event_args: read_variable(&lookup, "allow_event_args", &parse_bool)?,
            client_name_prefix: read_variable(&lookup, "client_name_prefix", &parse_name_prefix)?,
            gateway_annotation,
            gateway_label,
            allowed_gateways: read_variable(&lookup, "allowed_gateways", &parse_allowlist)?,
            active_deadline_seconds: read_variable(
                &lookup,
                "client_active_deadline_seconds",
                &parse_deadline,
            )?,
            api_timeout: read_variable(&lookup, "k8s_timeout_seconds", &parse_timeout)?,
            dry_run: read_variable(&lookup, "dry_run", &parse_bool)?,
            routing_guard: read_variable(&lookup, "routing_guard", &parse_routing_guard)?,
            gateway_address_template: read_variable(
                &lookup,
                "gateway_address_template",
                &parse_address_template,
            )?,
            reap_finished: read_variable(&lookup, "reap_finished", &parse_bool)?,
            auth: read_auth(&lookup)?,
        })
    }

    /// The address a pod routed through `gateway` must carry, when a template is set.
    pub fn expected_gateway_address(&self, gateway: &str) -> Option<String> {
        self.gateway_address_template.as_ref().map(|template| template.replace(GATEWAY_PLACEHOLDER, gateway))
    }
}

/// Reads one variable (trimmed: values from ConfigMaps often end in a newline) and applies
/// its rule, naming the variable in any error.
fn read_variable<T>(
    lookup: &impl Fn(&str) -> Result<String, String>,
    variable: &'static str,
    rule: &dyn Fn(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    let value = lookup(variable).map_err(|host_error| ConfigError {
        variable,
        problem: format!(
            "cannot be read ({host_error}); declare it in spin.toml [variables] \
             and [component.client-provisioner.variables]"
        ),
    })?;
    rule(value.trim()).map_err(|problem| ConfigError { variable, problem })
}

fn parse_token(value: &str) -> Result<Option<BearerToken>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    // The value itself never goes into the message.
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("contains characters that cannot be sent in an HTTP header \
                    (spaces, control or non-ASCII characters)"
            .into());
    }
    Ok(Some(BearerToken(value.to_owned())))
}

fn parse_namespace(value: &str) -> Result<String, String> {
    if names::is_dns1123_label(value) {
        Ok(value.to_owned())
    } else {
        Err(format!("`{value}` is not a namespace name (lowercase letters, digits and `-`, at most 63)"))
    }
}

fn parse_image(value: &str) -> Result<Option<String>, String> {
    if value.is_empty() {
        Ok(None)
    } else if value.chars().any(char::is_whitespace) {
        Err(format!("`{value}` is not an image reference such as alpine/curl:8.11.1"))
    } else {
        Ok(Some(value.to_owned()))
    }
}

fn parse_command(value: &str) -> Result<Option<Vec<String>>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    serde_json::from_str::<Vec<String>>(value).map(Some).map_err(|error| {
        format!(r#"`{value}` is not a JSON array of strings such as ["sleep","infinity"] ({error})"#)
    })
}

fn parse_restart_policy(value: &str) -> Result<Option<String>, String> {
    match value {
        "" => Ok(None),
        "Always" | "OnFailure" | "Never" => Ok(Some(value.to_owned())),
        _ => Err(format!("`{value}` is none of Always, OnFailure, Never (or empty for the template's)")),
    }
}

fn parse_name_prefix(value: &str) -> Result<String, String> {
    if names::is_dns1123_label(value) && value.len() <= MAX_NAME_PREFIX_LEN {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "`{value}` cannot start pod names: use lowercase letters, digits and `-`, \
             at most {MAX_NAME_PREFIX_LEN} characters"
        ))
    }
}

fn parse_optional_key(value: &str) -> Result<Option<String>, String> {
    if value.is_empty() { Ok(None) } else { parse_key(value).map(Some) }
}

fn parse_key(value: &str) -> Result<String, String> {
    if names::is_qualified_name(value) {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "`{value}` is not a Kubernetes label/annotation key such as setGateway or example.com/gateway"
        ))
    }
}

fn parse_allowlist(value: &str) -> Result<Option<BTreeSet<String>>, String> {
    let gateways: BTreeSet<String> =
        value.split(',').map(str::trim).filter(|gateway| !gateway.is_empty()).map(String::from).collect();
    if let Some(bad) = gateways.iter().find(|g| !names::is_label_value(g)) {
        return Err(format!("`{bad}` is not a valid gateway name (a Kubernetes label value)"));
    }
    Ok((!gateways.is_empty()).then_some(gateways))
}

fn parse_deadline(value: &str) -> Result<Option<i64>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    match value.parse::<i64>() {
        Ok(seconds) if seconds > 0 => Ok(Some(seconds)),
        _ => Err(format!("`{value}` is not a positive whole number of seconds (or empty for none)")),
    }
}

fn parse_timeout(value: &str) -> Result<Duration, String> {
    match value.parse::<u64>() {
        Ok(seconds @ 1..=MAX_TIMEOUT_SECONDS) => Ok(Duration::from_secs(seconds)),
        _ => Err(format!("`{value}` is not a whole number of seconds from 1 to {MAX_TIMEOUT_SECONDS}")),
    }
}

fn parse_routing_guard(value: &str) -> Result<RoutingGuard, String> {
    match value {
        "gate" => Ok(RoutingGuard::Gate),
        "delete" => Ok(RoutingGuard::Delete),
        "off" => Ok(RoutingGuard::Off),
        _ => Err(format!("`{value}` is none of gate, delete, off")),
    }
}

/// A DNS name once `{gateway}` is replaced by a gateway name, such as
/// `pod-gateway-{gateway}-main.gateway-system.svc.cluster.local`.
fn parse_address_template(value: &str) -> Result<Option<String>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    if names::is_dns1123_subdomain(&value.replace(GATEWAY_PLACEHOLDER, "gateway")) {
        Ok(Some(value.to_owned()))
    } else {
        Err(format!(
            "`{value}` is not a DNS name with {GATEWAY_PLACEHOLDER} for the gateway's name, such as \
             pod-gateway-{GATEWAY_PLACEHOLDER}-main.gateway-system.svc.cluster.local"
        ))
    }
}

const MAX_AUTH_CACHE_SECONDS: u64 = 86_400;

/// The three `auth_*` variables; authentication is on when `auth_audience` is set.
fn read_auth(lookup: &impl Fn(&str) -> Result<String, String>) -> Result<Option<SenderAuth>, ConfigError> {
    let audience = read_variable(lookup, "auth_audience", &parse_audience)?;
    let allowed_senders = read_variable(lookup, "auth_allowed_senders", &parse_senders)?;
    let cache_seconds = read_variable(lookup, "auth_cache_seconds", &parse_cache_seconds)?;
    Ok(audience.map(|audience| SenderAuth { audience, allowed_senders, cache_seconds }))
}

fn parse_audience(value: &str) -> Result<Option<String>, String> {
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{value}` is not an audience (no spaces or control characters)"));
    }
    Ok((!value.is_empty()).then(|| value.to_owned()))
}

fn parse_senders(value: &str) -> Result<Vec<SenderPattern>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|sender| !sender.is_empty())
        .map(|sender| {
            let (body, prefix) = match sender.strip_suffix('*') {
                Some(body) => (body, true),
                None => (sender, false),
            };
            if body.contains('*') || body.chars().any(char::is_whitespace) {
                return Err(format!(
                    "`{sender}` is not a subject, exact or ending in `*` (e.g. system:serviceaccount:podgateway-system:*)"
                ));
            }
            Ok(if prefix { SenderPattern::Prefix(body.to_owned()) } else { SenderPattern::Exact(body.to_owned()) })
        })
        .collect()
}

fn parse_cache_seconds(value: &str) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(seconds @ 0..=MAX_AUTH_CACHE_SECONDS) => Ok(seconds),
        _ => Err(format!("`{value}` is not a whole number of seconds from 0 to {MAX_AUTH_CACHE_SECONDS}")),
    }
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("`{value}` is neither true nor false")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The defaults of spin.toml's `[variables]`, read from spin.toml itself.
    pub(crate) fn spin_defaults() -> HashMap<String, String> {
        static DEFAULTS: std::sync::OnceLock<HashMap<String, String>> = std::sync::OnceLock::new();
        DEFAULTS
            .get_or_init(|| {
                let manifest: toml::Table = include_str!("../spin.toml").parse().expect("spin.toml parses");
                manifest["variables"]
                    .as_table()
                    .expect("spin.toml has [variables]")
                    .iter()
                    .map(|(name, declaration)| {
                        let default = declaration["default"].as_str().expect("every variable has a default");
                        (name.clone(), default.to_owned())
                    })
                    .collect()
            })
            .clone()
    }

    pub(crate) fn template_owned() -> Owned<'static> {
        Owned {
            gateway_annotation: "setGateway",
            gateway_label: None,
            env: &OWNED_ENV,
            volume: EVENT_VOLUME,
            mount_path: EVENT_DIR,
        }
    }

    pub(crate) fn load_with(overrides: &[(&'static str, &str)]) -> Result<Config, ConfigError> {
        let mut variables = spin_defaults();
        for (name, value) in overrides {
            variables.insert(name.to_string(), value.to_string());
        }
        Config::load(|name| variables.get(name).cloned().ok_or_else(|| format!("undefined: {name}")))
    }

    fn problem_of(variable: &'static str, value: &str) -> ConfigError {
        let error = load_with(&[(variable, value)]).expect_err(value);
        assert_eq!(error.variable, variable, "{error}");
        error
    }

    #[test]
    fn spin_toml_defaults_give_the_documented_config() {
        let config = load_with(&[]).unwrap();
        assert_eq!(
            config,
            Config {
                api: ApiEndpoint { base: "https://kubernetes.default.svc".into() },
                token: None,
                client_namespace: "default".into(),
                client_image: None,
                client_command: None,
                client_restart_policy: None,
                pod_template: PodTemplate::parse("", false, &template_owned()).unwrap(),
                allow_event_args: false,
                client_name_prefix: "podgateway-client".into(),
                gateway_annotation: "setGateway".into(),
                gateway_label: None,
                allowed_gateways: None,
                active_deadline_seconds: None,
                api_timeout: Duration::from_secs(10),
                dry_run: false,
                routing_guard: RoutingGuard::Gate,
                gateway_address_template: None,
                reap_finished: true,
                auth: None,
            }
        );
    }

    #[test]
    fn every_variable_is_parsed() {
        let config = load_with(&[
            ("k8s_api_url", "http://127.0.0.1:8001/"),
            ("k8s_token", " tok.en-1\n"),
            ("client_namespace", "vpn-clients"),
            ("client_image", "ghcr.io/example/client:1.2"),
            ("client_command", r#"["sh", "-c", "curl -s ifconfig.me; sleep 3600"]"#),
            ("client_name_prefix", "vpn"),
            ("gateway_annotation", "example.com/gateway"),
            ("gateway_label", "setGateway"),
            ("allowed_gateways", " foo, bar ,,"),
            ("client_active_deadline_seconds", "3600"),
            ("k8s_timeout_seconds", "3"),
            ("dry_run", "true"),
            ("routing_guard", "delete"),
            ("gateway_address_template", "pod-gateway-{gateway}-main.gateway-system.svc.cluster.local"),
            ("reap_finished", "false"),
            ("auth_audience", "podgateway-client-provisioner"),
            ("auth_allowed_senders", "system:serviceaccount:podgateway-system:client-release-oidc-eventing.knative.dev-trigger, system:serviceaccount:ops:*"),
            ("auth_cache_seconds", "0"),
        ])
        .unwrap();
        assert_eq!(config.api.url("/api/v1/x"), "http://127.0.0.1:8001/api/v1/x");
        assert_eq!(config.token.as_ref().unwrap().authorization_header(), "Bearer tok.en-1");
        assert_eq!(config.client_namespace, "vpn-clients");
        assert_eq!(config.client_image.as_deref(), Some("ghcr.io/example/client:1.2"));
        assert_eq!(
            config.client_command.as_deref().unwrap(),
            ["sh", "-c", "curl -s ifconfig.me; sleep 3600"]
        );
        assert_eq!(config.client_name_prefix, "vpn");
        assert_eq!(config.gateway_annotation, "example.com/gateway");
        assert_eq!(config.gateway_label.as_deref(), Some("setGateway"));
        assert_eq!(config.allowed_gateways, Some(BTreeSet::from(["bar".to_string(), "foo".to_string()])));
        assert_eq!(config.active_deadline_seconds, Some(3600));
        assert_eq!(config.api_timeout, Duration::from_secs(3));
        assert!(config.dry_run);
        assert_eq!(config.routing_guard, RoutingGuard::Delete);
        assert!(!config.reap_finished);
        let auth = config.auth.clone().unwrap();
        assert_eq!(auth.audience, "podgateway-client-provisioner");
        assert_eq!(
            auth.allowed_senders,
            [
                SenderPattern::Exact("system:serviceaccount:podgateway-system:client-release-oidc-eventing.knative.dev-trigger".into()),
                SenderPattern::Prefix("system:serviceaccount:ops:".into())
            ]
        );
        assert_eq!(auth.cache_seconds, 0);
        assert_eq!(
            config.expected_gateway_address("foo").as_deref(),
            Some("pod-gateway-foo-main.gateway-system.svc.cluster.local")
        );
        assert_eq!(load_with(&[("routing_guard", "off")]).unwrap().routing_guard, RoutingGuard::Off);
        assert_eq!(load_with(&[]).unwrap().expected_gateway_address("foo"), None);
    }

    #[test]
    fn an_empty_command_means_the_image_entrypoint() {
        assert_eq!(load_with(&[("client_command", "[]")]).unwrap().client_command, Some(vec![]));
        assert_eq!(
            load_with(&[("client_command", "")]).unwrap().client_command,
            None,
            "unset: the template's"
        );
    }

    #[test]
    fn the_template_and_its_switches_are_read() {
        let template = r#"{"spec": {"initContainers": [{"name": "warm", "image": "busybox"}], "containers": [{"name": "client", "image": "c:1"}]}}"#;
        let config = load_with(&[
            ("client_pod_template", template),
            ("allow_template_init_containers", "true"),
            ("allow_event_args", "true"),
            ("client_restart_policy", "OnFailure"),
        ])
        .unwrap();
        assert_eq!(config.pod_template.client_container().unwrap()["image"], "c:1");
        assert!(config.allow_event_args);
        assert_eq!(config.client_restart_policy.as_deref(), Some("OnFailure"));
        // The owned keys follow gateway_annotation and gateway_label.
        let error = load_with(&[
            ("gateway_label", "gw"),
            ("client_pod_template", r#"{"metadata": {"labels": {"gw": "x"}}}"#),
        ])
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"Spin variable `client_pod_template`: metadata.labels["gw"] is the component's to set"#
        );
        let error = load_with(&[("client_pod_template", template)]).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("Spin variable `client_pod_template`: spec.initContainers run before"),
            "{error}"
        );
        let no_image = r#"{"spec": {"containers": [{"name": "client"}]}}"#;
        assert_eq!(
            load_with(&[("client_pod_template", no_image)]).unwrap_err().to_string(),
            "Spin variable `client_pod_template`: its `client` container has no image: give it one, or set client_image"
        );
        assert!(load_with(&[("client_pod_template", no_image), ("client_image", "c:2")]).is_ok());
    }

    #[test]
    fn bad_values_name_the_variable_and_the_problem() {
        let cases: &[(&'static str, &str, &str)] = &[
            ("k8s_api_url", "not a url", "is not a URL"),
            ("k8s_api_url", "kubernetes.default.svc", "must start with http:// or https://"),
            ("k8s_api_url", "ftp://host", "must start with http:// or https://"),
            ("k8s_api_url", "https://host/?x=1", "must be scheme://host[:port] only"),
            ("k8s_api_url", "https://rancher.example/k8s/clusters/c-1", "must be scheme://host[:port] only"),
            ("k8s_token", "two words", "cannot be sent in an HTTP header"),
            ("client_namespace", "Default", "is not a namespace name"),
            ("client_image", "alpine curl", "is not an image reference"),
            ("client_restart_policy", "always", "is none of Always, OnFailure, Never"),
            ("allow_event_args", "yes", "is neither true nor false"),
            ("reap_finished", "1", "is neither true nor false"),
            ("auth_audience", "two words", "is not an audience"),
            (
                "auth_allowed_senders",
                "system:serviceaccount:*:client",
                "is not a subject, exact or ending in `*`",
            ),
            ("auth_cache_seconds", "-1", "is not a whole number of seconds from 0 to 86400"),
            ("auth_cache_seconds", "86401", "is not a whole number of seconds from 0 to 86400"),
            ("allow_template_init_containers", "1", "is neither true nor false"),
            ("client_pod_template", "{", "is not JSON"),
            ("client_pod_template", r#"{"spec": {"containerz": []}}"#, r#"unknown field "spec.containerz""#),
            ("client_command", "sleep infinity", "is not a JSON array of strings"),
            ("client_command", r#"["sleep", 5]"#, "is not a JSON array of strings"),
            ("client_name_prefix", "Client", "cannot start pod names"),
            ("client_name_prefix", "client-", "cannot start pod names"),
            ("gateway_annotation", "", "is not a Kubernetes label/annotation key"),
            ("gateway_annotation", "bad key", "is not a Kubernetes label/annotation key"),
            ("gateway_label", "/x", "is not a Kubernetes label/annotation key"),
            ("allowed_gateways", "foo,-bar", "`-bar` is not a valid gateway name"),
            ("client_active_deadline_seconds", "1h", "is not a positive whole number"),
            ("client_active_deadline_seconds", "0", "is not a positive whole number"),
            ("k8s_timeout_seconds", "0", "from 1 to 3600"),
            ("k8s_timeout_seconds", "2.5", "from 1 to 3600"),
            ("k8s_timeout_seconds", "99999999999999999999", "from 1 to 3600"),
            ("dry_run", "yes", "is neither true nor false"),
            ("routing_guard", "check", "is none of gate, delete, off"),
            ("gateway_address_template", "Pod-Gateway-{gateway}", "is not a DNS name with {gateway}"),
            ("gateway_address_template", "https://pod-gateway-{gateway}-main", "is not a DNS name"),
        ];
        for (variable, value, expected) in cases {
            let error = problem_of(variable, value);
            assert!(error.problem.contains(expected), "{variable}={value:?}: {error}");
            assert!(error.to_string().starts_with(&format!("Spin variable `{variable}`: ")));
        }
    }

    #[test]
    fn the_longest_prefix_still_fits_a_label_value() {
        let longest = "p".repeat(MAX_NAME_PREFIX_LEN);
        assert!(load_with(&[("client_name_prefix", &longest)]).is_ok());
        let error = problem_of("client_name_prefix", &format!("{longest}p"));
        assert!(error.problem.contains(&format!("at most {MAX_NAME_PREFIX_LEN} characters")));
    }

    #[test]
    fn an_undefined_variable_is_reported_by_name() {
        let error = Config::load(|name| {
            if name == "dry_run" {
                Err(format!("undefined: {name}"))
            } else {
                Ok(spin_defaults()[name].clone())
            }
        })
        .unwrap_err();
        assert_eq!(error.variable, "dry_run");
        assert!(error.problem.contains("cannot be read (undefined: dry_run)"), "{error}");
    }

    #[test]
    fn the_token_never_shows_in_errors_or_debug_output() {
        let secret = "s3cret value";
        let error = problem_of("k8s_token", secret);
        assert!(!error.to_string().contains("s3cret"));
        let config = load_with(&[("k8s_token", "s3cret")]).unwrap();
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
