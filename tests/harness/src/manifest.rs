//! Reads a `spin.toml` (manifest v2) and resolves one component's variables,
//! `allowed_outbound_hosts` and `key_value_stores` the way Spin does when it loads the
//! application.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail, ensure};
use toml::{Table, Value};

/// One component of a Spin application, resolved and ready for [`crate::host::SpinHost`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpinApp {
    pub component_id: String,
    /// The HTTP trigger route, e.g. `/...`.
    pub route: String,
    /// What `fermyon:spin/variables.get` answers: only the component's `[component.<id>.variables]`.
    pub variables: BTreeMap<String, String>,
    /// `allowed_outbound_hosts`, templates resolved.
    pub allowed_outbound_hosts: Vec<String>,
    /// `key_value_stores`: the store labels the component may open (none when absent). Spin
    /// takes them literally (no templates) and rejects a label that is not a kebab-case or
    /// snake_case id (`crates/manifest/src/schema/v2.rs`, `kebab_or_snake_case`).
    pub key_value_stores: Vec<String>,
}

impl SpinApp {
    /// Loads the manifest's only component. `overrides` play the part of
    /// `SPIN_VARIABLE_<NAME>` / `spin up --variable name=value`; names may be given either way.
    pub fn from_manifest<K: AsRef<str>, V: Into<String>>(
        path: impl AsRef<Path>,
        overrides: impl IntoIterator<Item = (K, V)>,
    ) -> anyhow::Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_toml(&text, None, overrides).with_context(|| format!("loading {}", path.display()))
    }

    /// Like [`SpinApp::from_manifest`], from the manifest's text, optionally naming the component.
    pub fn from_toml<K: AsRef<str>, V: Into<String>>(
        manifest: &str,
        component_id: Option<&str>,
        overrides: impl IntoIterator<Item = (K, V)>,
    ) -> anyhow::Result<Self> {
        let manifest: Table = manifest.parse()?;
        ensure!(
            manifest.get("spin_manifest_version").and_then(Value::as_integer) == Some(2),
            "only spin_manifest_version = 2 is supported"
        );
        let app_vars = resolve_app_variables(table(&manifest, "variables")?, overrides)?;

        let (component_id, component) = component(&manifest, component_id)?;

        let mut variables = BTreeMap::new();
        for (key, template) in table(component, "variables")? {
            validate_key(key)?;
            let template =
                template.as_str().with_context(|| format!("component variable {key:?} must be a string"))?;
            variables.insert(key.clone(), render(template, &app_vars)?);
        }

        let mut allowed_outbound_hosts = Vec::new();
        if let Some(hosts) = component.get("allowed_outbound_hosts") {
            let hosts = hosts.as_array().context("allowed_outbound_hosts must be an array")?;
            for host in hosts {
                let host = host.as_str().context("allowed_outbound_hosts entries must be strings")?;
                allowed_outbound_hosts.push(render(host, &app_vars)?);
            }
        }

        let mut key_value_stores = Vec::new();
        if let Some(labels) = component.get("key_value_stores") {
            let labels = labels.as_array().context("key_value_stores must be an array")?;
            for label in labels {
                let label = label.as_str().context("key_value_stores entries must be strings")?;
                if let Some(reason) = crate::host::key_value_label_error(label) {
                    bail!("key_value_stores: {label:?}: expected kebab-case or snake_case ({reason})");
                }
                key_value_stores.push(label.to_owned());
            }
        }

        Ok(Self {
            route: http_route(&manifest, &component_id)?,
            component_id,
            variables,
            allowed_outbound_hosts,
            key_value_stores,
        })
    }
}

/// The id of the manifest's only component.
pub fn component_id(manifest: &str) -> anyhow::Result<String> {
    Ok(component(&manifest.parse()?, None)?.0)
}

/// What the suite may replace in the only component's section of `spin.toml`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ComponentOverrides<'a> {
    /// Replaces `allowed_outbound_hosts`.
    pub allowed_outbound_hosts: Option<&'a [String]>,
    /// Replaces `key_value_stores` (`Some(&[])`: the component may open no store).
    pub key_value_stores: Option<&'a [String]>,
}

/// The manifest for `spin up` outside its directory: the only component's `source` is `wasm`
/// (an absolute path) and, when given, its `allowed_outbound_hosts` are replaced.
pub fn with_source(
    manifest: &str,
    wasm: &Path,
    allowed_outbound_hosts: Option<&[String]>,
) -> anyhow::Result<String> {
    with_overrides(manifest, wasm, ComponentOverrides { allowed_outbound_hosts, ..Default::default() })
}

/// [`with_source`] with every [`ComponentOverrides`] applied.
pub fn with_overrides(
    manifest: &str,
    wasm: &Path,
    overrides: ComponentOverrides<'_>,
) -> anyhow::Result<String> {
    let ComponentOverrides { allowed_outbound_hosts, key_value_stores } = overrides;
    let mut manifest: Table = manifest.parse()?;
    let id = component(&manifest, None)?.0;
    let component = manifest
        .get_mut("component")
        .and_then(|components| components.get_mut(&id))
        .and_then(Value::as_table_mut)
        .context("no component")?;
    let wasm = wasm.canonicalize().with_context(|| format!("{}", wasm.display()))?;
    component.insert("source".into(), Value::String(wasm.to_string_lossy().into_owned()));
    if let Some(hosts) = allowed_outbound_hosts {
        let hosts = hosts.iter().cloned().map(Value::String).collect();
        component.insert("allowed_outbound_hosts".into(), Value::Array(hosts));
    }
    if let Some(labels) = key_value_stores {
        let labels = labels.iter().cloned().map(Value::String).collect();
        component.insert("key_value_stores".into(), Value::Array(labels));
    }
    Ok(toml::to_string(&manifest)?)
}

/// The `[component.<id>.build] command` of the manifest's only component: what `spin build`
/// runs.
pub fn build_command(path: impl AsRef<Path>) -> anyhow::Result<String> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let manifest: Table = text.parse().with_context(|| format!("parsing {}", path.display()))?;
    let (id, component) = component(&manifest, None)?;
    table(component, "build")?
        .get("command")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no [component.{id}.build] command in {}", path.display()))
}

/// The component named `component_id`, or the only one.
fn component<'a>(manifest: &'a Table, component_id: Option<&str>) -> anyhow::Result<(String, &'a Table)> {
    let components = table(manifest, "component")?;
    let component_id = match component_id {
        Some(id) => id.to_owned(),
        None if components.len() == 1 => components.keys().next().cloned().unwrap_or_default(),
        None => bail!("the manifest has {} components: name the one to run", components.len()),
    };
    let component = components
        .get(&component_id)
        .and_then(Value::as_table)
        .with_context(|| format!("no [component.{component_id}]"))?;
    Ok((component_id, component))
}

fn table<'a>(parent: &'a Table, key: &str) -> anyhow::Result<&'a Table> {
    static EMPTY: std::sync::OnceLock<Table> = std::sync::OnceLock::new();
    match parent.get(key) {
        None => Ok(EMPTY.get_or_init(Table::new)),
        Some(v) => v.as_table().with_context(|| format!("`{key}` must be a table")),
    }
}

/// Application variables: `default` or `required = true` (exactly one), `secret`, `description`.
fn resolve_app_variables<K: AsRef<str>, V: Into<String>>(
    declared: &Table,
    overrides: impl IntoIterator<Item = (K, V)>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut defaults = BTreeMap::new();
    for (name, decl) in declared {
        validate_key(name)?;
        let decl = decl.as_table().with_context(|| format!("variable {name:?} must be a table"))?;
        if let Some(unknown) =
            decl.keys().find(|k| !["default", "required", "secret", "description"].contains(&k.as_str()))
        {
            bail!("variable {name:?}: unknown field `{unknown}`");
        }
        let required =
            decl.get("required").map(|v| v.as_bool().context("`required` must be a boolean")).transpose()?;
        let default =
            decl.get("default").map(|v| v.as_str().context("`default` must be a string")).transpose()?;
        match (required.unwrap_or(false), default) {
            (false, Some(default)) => defaults.insert(name.clone(), Some(default.to_owned())),
            (true, None) => defaults.insert(name.clone(), None),
            _ => bail!("variable {name:?} must have either a default or `required = true`, not both"),
        };
    }
    for (name, value) in overrides {
        let name = name.as_ref();
        let key =
            name.strip_prefix("SPIN_VARIABLE_").map_or_else(|| name.to_owned(), str::to_ascii_lowercase);
        let slot = defaults
            .get_mut(&key)
            .with_context(|| format!("variable {key:?} is overridden but not declared in [variables]"))?;
        *slot = Some(value.into());
    }
    defaults
        .into_iter()
        .map(|(k, v)| match v {
            Some(v) => Ok((k, v)),
            None => bail!("no provider resolved required variable {k:?}"),
        })
        .collect()
}

/// A Spin template: literal text with `{{ variable }}` expressions.
fn render(template: &str, vars: &BTreeMap<String, String>) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let (expr, after) = rest[start + 2..]
            .split_once("}}")
            .context("invalid variable template: unmatched '{{' in template")?;
        let name = expr.trim();
        out.push_str(
            vars.get(name)
                .with_context(|| format!("invalid variable template: unknown variable {name:?}"))?,
        );
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

/// Spin's variable-name rule (`spin_expressions::Key`); the host reports the same message.
pub(crate) fn validate_key(key: &str) -> anyhow::Result<()> {
    key_error(key).map_or(Ok(()), |reason| bail!("invalid variable name: {key:?}: {reason}"))
}

pub(crate) fn key_error(key: &str) -> Option<String> {
    let Some(first) = key.bytes().next() else {
        return Some("must not be empty".into());
    };
    if let Some(c) = key.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')) {
        Some(format!(
            "invalid character {c:?}. Variable names may contain only lower-case letters, numbers, and underscores."
        ))
    } else if !first.is_ascii_lowercase() {
        Some("must start with a lowercase ASCII letter".into())
    } else if !key.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        Some("must end with a lowercase ASCII letter or digit".into())
    } else if key.contains("__") {
        Some("must not contain multiple consecutive underscores".into())
    } else {
        None
    }
}

fn http_route(manifest: &Table, component_id: &str) -> anyhow::Result<String> {
    let triggers = table(manifest, "trigger")?.get("http").and_then(Value::as_array);
    triggers
        .into_iter()
        .flatten()
        .filter_map(Value::as_table)
        .find(|t| t.get("component").and_then(Value::as_str) == Some(component_id))
        .and_then(|t| t.get("route").and_then(Value::as_str))
        .map(str::to_owned)
        .with_context(|| format!("no [[trigger.http]] with a route for component {component_id:?}"))
}

#[cfg(test)]
mod tests {
    use super::SpinApp;

    const MANIFEST: &str = r#"
        spin_manifest_version = 2
        [application]
        name = "t"
        [variables]
        url = { default = "https://kubernetes.default.svc" }
        token = { required = true, secret = true }
        unused = { default = "x" }
        [[trigger.http]]
        route = "/..."
        component = "c"
        [component.c]
        source = "c.wasm"
        allowed_outbound_hosts = ["{{ url }}"]
        [component.c.variables]
        api = "{{url}}/api"
        token = "{{ token }}"
    "#;

    #[test]
    fn resolves_defaults_overrides_and_templates() {
        let app = SpinApp::from_toml(
            MANIFEST,
            None,
            [("SPIN_VARIABLE_TOKEN", "s3cret"), ("url", "http://127.0.0.1:8001")],
        )
        .unwrap();
        assert_eq!(app.component_id, "c");
        assert_eq!(app.route, "/...");
        assert_eq!(app.variables["api"], "http://127.0.0.1:8001/api");
        assert_eq!(app.variables["token"], "s3cret");
        assert!(!app.variables.contains_key("unused"), "only the component's variables are exposed");
        assert_eq!(app.allowed_outbound_hosts, ["http://127.0.0.1:8001"]);
    }

    #[test]
    fn required_without_value_is_an_error() {
        let err = SpinApp::from_toml(MANIFEST, None, [("url", "http://x")]).unwrap_err();
        assert!(format!("{err:#}").contains("no provider resolved required variable \"token\""), "{err:#}");
    }

    #[test]
    fn undeclared_override_is_an_error() {
        let err = SpinApp::from_toml(MANIFEST, None, [("token", "t"), ("nope", "x")]).unwrap_err();
        assert!(format!("{err:#}").contains("\"nope\""), "{err:#}");
    }

    /// Spin checks the entries only when the component sends a request (see
    /// `AllowedHosts::resolve`): the application loads.
    #[test]
    fn an_invalid_outbound_host_is_kept_as_resolved() {
        let app = SpinApp::from_toml(MANIFEST, None, [("token", "t"), ("url", "not a url")]).unwrap();
        assert_eq!(app.allowed_outbound_hosts, ["not a url"]);
    }

    #[test]
    fn key_value_stores_are_read_literally_and_checked() {
        let app = SpinApp::from_toml(MANIFEST, None, [("token", "t")]).unwrap();
        assert!(app.key_value_stores.is_empty(), "absent: no store");
        let m = MANIFEST.replace(
            "[component.c.variables]",
            "key_value_stores = [\"default\", \"{{ url }}\"]\n[component.c.variables]",
        );
        let err = SpinApp::from_toml(&m, None, [("token", "t")]).unwrap_err();
        assert!(format!("{err:#}").contains("expected kebab-case or snake_case"), "{err:#}");
        let m = MANIFEST.replace(
            "[component.c.variables]",
            "key_value_stores = [\"default\", \"my_cache\"]\n[component.c.variables]",
        );
        let app = SpinApp::from_toml(&m, None, [("token", "t")]).unwrap();
        assert_eq!(app.key_value_stores, ["default", "my_cache"]);
    }

    #[test]
    fn overrides_replace_hosts_and_stores() {
        let wasm = std::env::current_exe().unwrap();
        let hosts = vec!["http://127.0.0.1:1".to_owned()];
        let text = super::with_overrides(
            MANIFEST,
            &wasm,
            super::ComponentOverrides { allowed_outbound_hosts: Some(&hosts), key_value_stores: Some(&[]) },
        )
        .unwrap();
        let table: toml::Table = text.parse().unwrap();
        let c = &table["component"]["c"];
        assert_eq!(c["source"].as_str(), Some(wasm.canonicalize().unwrap().to_str().unwrap()));
        assert_eq!(c["allowed_outbound_hosts"].as_array().unwrap().len(), 1);
        assert_eq!(c["key_value_stores"].as_array().map(Vec::len), Some(0));
        let untouched = super::with_source(MANIFEST, &wasm, None).unwrap();
        assert!(
            untouched.parse::<toml::Table>().unwrap()["component"]["c"].get("key_value_stores").is_none()
        );
    }

    #[test]
    fn unknown_template_variable_is_an_error() {
        let m = MANIFEST.replace("{{ token }}", "{{ tokn }}");
        let err = SpinApp::from_toml(&m, None, [("token", "t")]).unwrap_err();
        assert!(format!("{err:#}").contains("unknown variable \"tokn\""), "{err:#}");
    }
}
