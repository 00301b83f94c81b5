//! The SpinApp and spin.toml: the executor chain down to the shim, the image, the Spin
//! variables and the values the component's ConfigMap gives them, the key-value stores.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ConfigMap, ConfigMapKeySelector, Secret, SecretKeySelector};
use k8s_openapi::api::node::v1::RuntimeClass;

use podgateway_client_provisioner::config::Config;

use crate::crds::{SpinAppExecutor, SpinVar};
use crate::load::{Doc, Manifests};
use crate::rules::identity;

/// The RuntimeClass handler the node installer registers (runtime-class/README.md).
const SHIM_HANDLER: &str = "spin";
/// The key-value store Spin provides without runtime config: under containerd-shim-spin
/// (Spin 3.6.3) a SQLite file in the pod, `/.spin/sqlite_key_value.db` (spin
/// crates/runtime-config key_value_config_resolver; the shim's local app dir is `/`).
const DEFAULT_KEY_VALUE_STORE: &str = "default";
/// The keys Kubernetes fills in a `kubernetes.io/service-account-token` Secret.
const SERVICE_ACCOUNT_TOKEN_KEYS: [&str; 3] = ["token", "ca.crt", "namespace"];

/// The SpinApp runs on the shim: executor → RuntimeClass → handler `spin`.
pub fn check_executor_chain(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((app_doc, app)) = m.spin_app(&mut problems) else { return problems };
    let Some(executor_doc) = m.find("SpinAppExecutor", app_doc.namespace(), &app.spec.executor) else {
        problems.push(format!(
            "SpinApp executor `{}` is not a SpinAppExecutor in namespace {:?} (executors are namespaced)",
            app.spec.executor,
            app_doc.namespace()
        ));
        return problems;
    };
    let executor: SpinAppExecutor = match executor_doc.typed() {
        Ok(e) => e,
        Err(e) => return vec![e],
    };
    if !executor.spec.create_deployment {
        problems.push(format!("{}: createDeployment must be true", executor_doc.describe()));
    }
    let class = executor.spec.deployment_config.as_ref().and_then(|c| c.runtime_class_name.as_deref());
    match class.and_then(|name| m.find("RuntimeClass", None, name)) {
        None => problems.push(format!(
            "{}: runtimeClassName {class:?} is not a RuntimeClass of runtime-class/",
            executor_doc.describe()
        )),
        Some(class_doc) => {
            if let Ok(class) = class_doc.typed::<RuntimeClass>()
                && class.handler != SHIM_HANDLER
            {
                problems.push(format!(
                    "{}: handler `{}`, but the node installer registers `{SHIM_HANDLER}`",
                    class_doc.describe(),
                    class.handler
                ));
            }
        }
    }
    problems
}

/// The SpinApp's image has a version tag (or a digest); replicas and autoscaling are not
/// both set.
pub fn check_spin_app_spec(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((_, app)) = m.spin_app(&mut problems) else { return problems };
    if app.spec.replicas.is_some() && app.spec.enable_autoscaling == Some(true) {
        problems.push("SpinApp: replicas cannot be set with enableAutoscaling".into());
    }
    let image = &app.spec.image;
    let tag = image.rsplit_once('/').map_or(image.as_str(), |(_, last)| last).split_once(':').map(|(_, t)| t);
    if !matches!(tag, Some(t) if !t.is_empty() && t != "latest") && !image.contains('@') {
        problems
            .push(format!("SpinApp image `{image}` needs a version tag (a moved tag is not pulled again)"));
    }
    problems
}

/// The SpinApp sets every variable of spin.toml, once, and nothing else.
pub fn check_variables_match_spin_toml(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((_, app)) = m.spin_app(&mut problems) else { return problems };
    let declared = m.spin_variables();
    let mut provided = BTreeSet::new();
    for var in &app.spec.variables {
        if !provided.insert(var.name.as_str()) {
            problems.push(format!("SpinApp variable {} is set twice", var.name));
        }
        if !declared.contains_key(&var.name) {
            problems.push(format!("SpinApp variable {} is not a variable of spin.toml", var.name));
        }
    }
    for (name, declaration) in &declared {
        if provided.contains(name.as_str()) {
            continue;
        }
        let required = declaration.get("required").and_then(toml::Value::as_bool) == Some(true)
            || declaration.get("default").is_none();
        problems.push(if required {
            format!("spin.toml variable {name} has no default and the SpinApp does not set it")
        } else {
            format!(
                "spin.toml variable {name} is not set by the SpinApp: add it to config.yaml and spinapp.yaml \
                 so that every setting is in one place"
            )
        });
    }
    problems
}

/// Where a SpinApp variable reads its value: one key of a ConfigMap or of a Secret.
enum Source<'a> {
    ConfigMap(&'a ConfigMapKeySelector),
    Secret(&'a SecretKeySelector),
}

/// The key a variable reads, if it reads exactly one (and has no literal value).
fn source(var: &SpinVar) -> Option<Source<'_>> {
    let from = var.value_from.as_ref();
    match (
        &var.value,
        from.and_then(|s| s.config_map_key_ref.as_ref()),
        from.and_then(|s| s.secret_key_ref.as_ref()),
    ) {
        (None, Some(cm), None) => Some(Source::ConfigMap(cm)),
        (None, None, Some(sk)) => Some(Source::Secret(sk)),
        _ => None,
    }
}

/// Every variable of spin.toml that the SpinApp sets is read from exactly one key that
/// exists, of a ConfigMap or a Secret; a secret variable from a Secret.
pub fn check_variable_sources(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((app_doc, app)) = m.spin_app(&mut problems) else { return problems };
    let declared = m.spin_variables();
    let ns = app_doc.namespace();
    for var in &app.spec.variables {
        // A variable spin.toml does not declare is reported by check_variables_match_spin_toml.
        let Some(declaration) = declared.get(&var.name) else { continue };
        let secret = declaration.get("secret").and_then(toml::Value::as_bool) == Some(true);
        match source(var) {
            Some(Source::ConfigMap(cm)) => {
                problems.extend(config_map_key_problems(m, ns, &var.name, cm, secret));
            }
            Some(Source::Secret(sk)) => problems.extend(secret_key_problems(m, ns, &var.name, sk)),
            None => problems.push(format!(
                "SpinApp variable {}: set it with exactly one valueFrom.configMapKeyRef or secretKeyRef",
                var.name
            )),
        }
    }
    problems
}

/// What is wrong with variable `var` reading `cm` (in namespace `ns`).
fn config_map_key_problems(
    m: &Manifests,
    ns: Option<&str>,
    var: &str,
    cm: &ConfigMapKeySelector,
    secret: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    if secret {
        problems.push(format!(
            "SpinApp variable {var} is secret in spin.toml but read from ConfigMap {}",
            cm.name
        ));
    }
    if cm.optional == Some(true) {
        problems.push(format!("SpinApp variable {var}: the ConfigMap key must not be optional"));
    }
    match m.find("ConfigMap", ns, &cm.name).map(Doc::typed::<ConfigMap>) {
        None => problems.push(format!("SpinApp variable {var}: no ConfigMap {}", cm.name)),
        Some(Err(e)) => problems.push(e),
        Some(Ok(map)) => {
            if !map.data.unwrap_or_default().contains_key(&cm.key) {
                problems.push(format!("SpinApp variable {var}: ConfigMap {} has no key {}", cm.name, cm.key));
            }
        }
    }
    problems
}

/// What is wrong with variable `var` reading `sk` (in namespace `ns`).
fn secret_key_problems(m: &Manifests, ns: Option<&str>, var: &str, sk: &SecretKeySelector) -> Vec<String> {
    match m.find("Secret", ns, &sk.name).map(Doc::typed::<Secret>) {
        None => vec![format!("SpinApp variable {var}: no Secret {}", sk.name)],
        Some(Err(e)) => vec![e],
        Some(Ok(secret)) => {
            let filled_by_kubernetes = secret.type_.as_deref() == Some("kubernetes.io/service-account-token")
                && SERVICE_ACCOUNT_TOKEN_KEYS.contains(&sk.key.as_str());
            let has_key = secret.data.as_ref().is_some_and(|d| d.contains_key(&sk.key))
                || secret.string_data.as_ref().is_some_and(|d| d.contains_key(&sk.key));
            if filled_by_kubernetes || has_key {
                Vec::new()
            } else {
                vec![format!("SpinApp variable {var}: Secret {} has no key {}", sk.name, sk.key)]
            }
        }
    }
}

/// Every key of the component's ConfigMap is read by a variable of spin.toml: a key that
/// no variable reads is a setting that does nothing.
pub fn check_config_keys_read(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((_, app)) = m.spin_app(&mut problems) else { return problems };
    let declared = m.spin_variables();
    let read: BTreeSet<(&str, &str)> = app
        .spec
        .variables
        .iter()
        .filter(|var| declared.contains_key(&var.name))
        .filter_map(|var| match source(var)? {
            Source::ConfigMap(cm) => Some((cm.name.as_str(), cm.key.as_str())),
            Source::Secret(_) => None,
        })
        .collect();
    let Some((doc, config)) = m.component_config(&mut problems) else { return problems };
    for key in config.keys() {
        if !read.contains(&(doc.name(), key.as_str())) {
            problems.push(format!("{}: key {key} is not read by any SpinApp variable", doc.describe()));
        }
    }
    problems
}

/// The values of the component's ConfigMap are ones the component accepts: they go through
/// the component's own configuration loader (the token comes from a Secret, not from here).
pub fn check_config_values(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((doc, config)) = m.component_config(&mut problems) else { return problems };
    let loaded = Config::load(|name| match name {
        "k8s_token" => Ok("token-from-the-secret".into()),
        _ => config.get(name).cloned().ok_or_else(|| format!("no key {name} in the ConfigMap")),
    });
    match loaded {
        Err(error) => problems.push(format!("{}: {error}", doc.describe())),
        Ok(_) if !config.get("k8s_api_url").is_some_and(|url| url.trim().starts_with("https://")) => {
            problems.push(format!("{}: k8s_api_url: must be an https:// URL in the cluster", doc.describe()));
        }
        Ok(_) => {}
    }
    problems
}

/// Every key-value store a component of spin.toml declares exists in the cluster: `default`
/// always does; any other needs a `[key_value_store.<label>]` table in the runtime config
/// (the Secret of `loadFromSecret`, with which the operator ignores
/// `runtimeConfig.keyValueStores`, so that field must then be empty).
pub fn check_key_value_stores(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((_, app)) = m.spin_app(&mut problems) else { return problems };
    let from_secret = app.spec.runtime_config.as_ref().and_then(|r| r.load_from_secret.as_deref()).is_some();
    let in_spec: BTreeSet<String> = app
        .spec
        .runtime_config
        .iter()
        .flat_map(|r| &r.key_value_stores)
        .map(|store| store.name.clone())
        .collect();
    let configured: BTreeSet<String> = if from_secret {
        if !in_spec.is_empty() {
            problems.push(format!(
                "SpinApp: runtimeConfig.keyValueStores {in_spec:?} is ignored with loadFromSecret: put \
                 [key_value_store.<label>] tables in the Secret's runtime-config.toml"
            ));
        }
        identity::runtime_config(m, &mut problems)
            .map(|config| config.key_value_store.into_keys().collect())
            .unwrap_or_default()
    } else {
        in_spec
    };
    let components = m.spin.get("component").and_then(toml::Value::as_table).cloned().unwrap_or_default();
    for (id, component) in &components {
        let labels =
            component.get("key_value_stores").and_then(toml::Value::as_array).cloned().unwrap_or_default();
        for label in labels {
            let Some(label) = label.as_str() else {
                problems
                    .push(format!("spin.toml component {id}: key_value_stores holds {label}, not a label"));
                continue;
            };
            if label != DEFAULT_KEY_VALUE_STORE && !configured.contains(label) {
                problems.push(format!(
                    "spin.toml component {id} uses key-value store {label}, which the cluster's runtime config \
                     does not define (only `{DEFAULT_KEY_VALUE_STORE}` needs none)"
                ));
            }
        }
    }
    problems
}
