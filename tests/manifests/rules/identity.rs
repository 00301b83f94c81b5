//! Who the component is to the API server and how it trusts it: the SpinApp's
//! ServiceAccount and its token Secret, and the runtime config that trusts the cluster CA
//! for the API host.

use k8s_openapi::api::core::v1::Secret;

use crate::crds::RuntimeConfigToml;
use crate::load::{Doc, Manifests};

/// Where every pod with a ServiceAccount gets the cluster CA.
const SERVICE_ACCOUNT_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

/// The host of an absolute URL such as `https://kubernetes.default.svc:443/prefix`; `None`
/// without a scheme.
pub fn url_host(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    uri.scheme().and(uri.host()).filter(|host| !host.is_empty()).map(str::to_owned)
}

/// The SpinApp runs as a ServiceAccount of these manifests (the Role is bound to it).
pub fn check_service_account(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((app_doc, app)) = m.spin_app(&mut problems) else { return problems };
    let ns = app_doc.namespace();
    match app.spec.service_account_name.as_deref() {
        None => problems.push("SpinApp: serviceAccountName must be set (the Role is bound to it)".into()),
        Some(account) if m.find("ServiceAccount", ns, account).is_none() => {
            problems.push(format!("SpinApp serviceAccountName {account} is not a ServiceAccount in {ns:?}"));
        }
        Some(_) => {}
    }
    problems
}

/// The token variable comes from key `token` of a token Secret of the SpinApp's very
/// ServiceAccount.
pub fn check_token_secret(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((app_doc, app)) = m.spin_app(&mut problems) else { return problems };
    let account = app.spec.service_account_name.as_deref().unwrap_or_default();
    let token_secret = app
        .spec
        .variables
        .iter()
        .find(|v| v.name == "k8s_token")
        .and_then(|v| v.value_from.as_ref()?.secret_key_ref.as_ref());
    let Some(sk) = token_secret else {
        problems.push("SpinApp variable k8s_token must come from a Secret".into());
        return problems;
    };
    if sk.key != "token" {
        problems.push(format!("k8s_token must read key `token` of {}, reads {}", sk.name, sk.key));
    }
    // A Secret that is not there is reported by check_variable_sources.
    let Some(Ok(secret)) = m.find("Secret", app_doc.namespace(), &sk.name).map(Doc::typed::<Secret>) else {
        return problems;
    };
    if secret.type_.as_deref() != Some("kubernetes.io/service-account-token") {
        problems.push(format!("Secret {} must be of type kubernetes.io/service-account-token", sk.name));
    }
    let named =
        secret.metadata.annotations.as_ref().and_then(|a| a.get("kubernetes.io/service-account.name"));
    if named.map(String::as_str) != Some(account) {
        problems.push(format!(
            "Secret {}: annotation kubernetes.io/service-account.name is {named:?}, \
             the SpinApp runs as {account}",
            sk.name
        ));
    }
    problems
}

/// The runtime config of the SpinApp: `runtimeConfig.loadFromSecret` names a Secret here
/// whose `runtime-config.toml` parses.
pub fn runtime_config(m: &Manifests, problems: &mut Vec<String>) -> Option<RuntimeConfigToml> {
    let (app_doc, app) = m.spin_app(problems)?;
    let ns = app_doc.namespace();
    let Some(secret_name) = app.spec.runtime_config.as_ref().and_then(|r| r.load_from_secret.as_deref())
    else {
        problems.push("SpinApp: runtimeConfig.loadFromSecret must name the runtime config Secret".into());
        return None;
    };
    let Some(Ok(secret)) = m.find("Secret", ns, secret_name).map(Doc::typed::<Secret>) else {
        problems.push(format!("runtimeConfig.loadFromSecret {secret_name} is not a Secret in {ns:?}"));
        return None;
    };
    let text =
        secret.string_data.as_ref().and_then(|d| d.get("runtime-config.toml").cloned()).or_else(|| {
            let bytes = secret.data.as_ref()?.get("runtime-config.toml")?;
            String::from_utf8(bytes.0.clone()).ok()
        });
    let Some(text) = text else {
        problems.push(format!("Secret {secret_name} has no key runtime-config.toml"));
        return None;
    };
    toml::from_str(&text)
        .map_err(|e| problems.push(format!("Secret {secret_name}: runtime-config.toml: {e}")))
        .ok()
}

/// The runtime config trusts the cluster CA for the API host (the host of k8s_api_url),
/// for a component of spin.toml.
pub fn check_api_host_trusted(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(runtime_config) = runtime_config(m, &mut problems) else { return problems };
    let api_url = m.component_config(&mut problems).and_then(|(_, c)| c.get("k8s_api_url").cloned());
    let api_host = api_url.as_deref().and_then(url_host).unwrap_or_default();
    let components = m.spin_component_ids();
    match runtime_config.client_tls.iter().find(|t| t.hosts.contains(&api_host)) {
        None => problems.push(format!(
            "runtime-config.toml: no [[client_tls]] for the API host `{api_host}` (k8s_api_url {api_url:?})"
        )),
        Some(tls) => {
            if !tls.component_ids.iter().any(|id| components.contains(id)) {
                problems.push(format!(
                    "runtime-config.toml: component_ids {:?} name none of spin.toml's components {components:?}",
                    tls.component_ids
                ));
            }
            if tls.ca_roots_file.as_deref() != Some(SERVICE_ACCOUNT_CA) {
                problems.push(format!("runtime-config.toml: ca_roots_file must be {SERVICE_ACCOUNT_CA}"));
            }
        }
    }
    problems
}

/// Every `[[client_tls]]` entry of the runtime config names components of spin.toml and
/// host names (not URLs).
pub fn check_client_tls_entries(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(runtime_config) = runtime_config(m, &mut problems) else { return problems };
    let components = m.spin_component_ids();
    for tls in &runtime_config.client_tls {
        for id in &tls.component_ids {
            if !components.contains(id) {
                problems.push(format!("runtime-config.toml: component id {id} is not in spin.toml"));
            }
        }
        for host in &tls.hosts {
            if host.contains("://") || host.contains('/') {
                problems.push(format!("runtime-config.toml: hosts takes host names, not `{host}`"));
            }
        }
    }
    problems
}
