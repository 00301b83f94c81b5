//! Finding and parsing the manifest files, and looking objects up in them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use k8s_openapi::api::core::v1::ConfigMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::crds::{PodGatewayValues, SpinApp, round_trip};

/// The folders whose YAML files are Kubernetes manifests (or Helm values / kustomization).
const MANIFEST_DIRS: [&str; 2] = ["deploy", "runtime-class"];

/// One YAML document of a manifest file.
#[derive(Clone, Debug)]
pub struct Doc {
    pub file: String,
    pub value: Value,
}

impl Doc {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }
    pub fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or("")
    }
    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }
    pub fn namespace(&self) -> Option<&str> {
        self.value["metadata"]["namespace"].as_str()
    }
    pub fn describe(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{} {}/{} ({})", self.kind(), ns, self.name(), self.file),
            None => format!("{} {} ({})", self.kind(), self.name(), self.file),
        }
    }
    /// The document as a `T`; the error names the document.
    pub fn typed<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_value(self.value.clone()).map_err(|e| format!("{}: {e}", self.describe()))
    }
}

/// Everything the checks look at, as plain data so that tests can break a copy of it.
#[derive(Clone, Debug)]
pub struct Manifests {
    /// Kubernetes objects of deploy/ and runtime-class/, in file order.
    pub docs: Vec<Doc>,
    /// pod-gateway Helm values, by file name.
    pub helm_values: BTreeMap<String, Value>,
    /// The release each values file is for, from the `helm upgrade --install` command in its
    /// header comment; by file name.
    pub helm_releases: BTreeMap<String, HelmRelease>,
    /// deploy/kustomization.yaml.
    pub kustomization: Value,
    /// spin.toml.
    pub spin: toml::Table,
}

/// A Helm release as the command that installs it says: `helm upgrade --install <name>
/// <chart> --version <version> --namespace <namespace> …`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HelmRelease {
    pub name: String,
    pub chart: String,
    pub version: String,
    pub namespace: String,
}

impl HelmRelease {
    /// From the comment lines at the top of a values file.
    fn from_header(text: &str) -> Option<Self> {
        let header: Vec<&str> = text
            .lines()
            .take_while(|line| line.starts_with('#'))
            .flat_map(|line| line.trim_start_matches('#').split_whitespace())
            .collect();
        let after =
            |flag: &str| header.iter().position(|word| *word == flag).and_then(|at| header.get(at + 1));
        let install = header.iter().position(|word| *word == "--install")?;
        Some(Self {
            name: header.get(install + 1)?.to_string(),
            chart: header.get(install + 2)?.to_string(),
            version: after("--version")?.to_string(),
            namespace: after("--namespace")?.to_string(),
        })
    }
}

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn is_helm_values(file: &str) -> bool {
    file.ends_with("-values.yaml")
}

/// The YAML files of the manifest folders, as `folder/name`, sorted.
pub fn yaml_files() -> Vec<String> {
    let mut files = Vec::new();
    for dir in MANIFEST_DIRS {
        let entries = fs::read_dir(root().join(dir)).unwrap_or_else(|e| panic!("reading {dir}/: {e}"));
        for entry in entries {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".yaml") || name.ends_with(".yml") {
                files.push(format!("{dir}/{name}"));
            }
        }
    }
    files.sort();
    files
}

/// Parses every document of a YAML text; `Err` names the document that does not parse.
pub fn parse_yaml_documents(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|e| format!("document {index}: {e}"))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// Reads the manifests and spin.toml; panics on a file that does not parse.
pub fn load() -> Manifests {
    let mut docs = Vec::new();
    let mut helm_values = BTreeMap::new();
    let mut helm_releases = BTreeMap::new();
    let mut kustomization = Value::Null;
    for file in yaml_files() {
        let text = fs::read_to_string(root().join(&file)).unwrap();
        let values = parse_yaml_documents(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        if is_helm_values(&file) {
            assert_eq!(values.len(), 1, "{file}: one document of Helm values");
            if let Some(release) = HelmRelease::from_header(&text) {
                helm_releases.insert(file.clone(), release);
            }
            helm_values.insert(file, values.into_iter().next().unwrap());
        } else if file == "deploy/kustomization.yaml" {
            kustomization = values.into_iter().next().unwrap_or(Value::Null);
        } else {
            docs.extend(values.into_iter().map(|value| Doc { file: file.clone(), value }));
        }
    }
    let spin = fs::read_to_string(root().join("spin.toml")).unwrap().parse::<toml::Table>().unwrap();
    Manifests { docs, helm_values, helm_releases, kustomization, spin }
}

impl Manifests {
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Doc> + 'a {
        self.docs.iter().filter(move |d| d.kind() == kind)
    }

    pub fn find(&self, kind: &str, namespace: Option<&str>, name: &str) -> Option<&Doc> {
        self.docs.iter().find(|d| d.kind() == kind && d.name() == name && d.namespace() == namespace)
    }

    /// The typed objects of a kind, with the problems of those that do not parse.
    pub fn all<T: DeserializeOwned>(&self, kind: &str, problems: &mut Vec<String>) -> Vec<(Doc, T)> {
        self.of_kind(kind)
            .filter_map(|d| match d.typed::<T>() {
                Ok(t) => Some((d.clone(), t)),
                Err(e) => {
                    problems.push(e);
                    None
                }
            })
            .collect()
    }

    /// The single SpinApp (the component).
    pub fn spin_app(&self, problems: &mut Vec<String>) -> Option<(Doc, SpinApp)> {
        let mut apps = self.all::<SpinApp>("SpinApp", problems);
        if apps.len() != 1 {
            problems.push(format!("expected exactly one SpinApp, found {}", apps.len()));
            return None;
        }
        apps.pop()
    }

    /// The ConfigMap the SpinApp reads its variables from, as key → value.
    pub fn component_config(&self, problems: &mut Vec<String>) -> Option<(Doc, BTreeMap<String, String>)> {
        let (app_doc, app) = self.spin_app(problems)?;
        let names: BTreeSet<&str> = app
            .spec
            .variables
            .iter()
            .filter_map(|v| v.value_from.as_ref()?.config_map_key_ref.as_ref())
            .map(|r| r.name.as_str())
            .collect();
        if names.len() != 1 {
            problems.push(format!(
                "the SpinApp should read its settings from one ConfigMap, reads from {names:?}"
            ));
            return None;
        }
        let name = names.into_iter().next().unwrap();
        let Some(doc) = self.find("ConfigMap", app_doc.namespace(), name) else {
            problems.push(format!(
                "ConfigMap {name} (SpinApp variables) does not exist in {:?}",
                app_doc.namespace()
            ));
            return None;
        };
        let map: ConfigMap = doc.typed().map_err(|e| problems.push(e)).ok()?;
        Some((doc.clone(), map.data.unwrap_or_default()))
    }

    /// The namespace the component creates client Pods in (config: client_namespace).
    pub fn client_namespace(&self, problems: &mut Vec<String>) -> Option<String> {
        let (doc, config) = self.component_config(problems)?;
        let value = config.get("client_namespace").cloned();
        if value.is_none() {
            problems.push(format!("{}: no client_namespace key", doc.describe()));
        }
        value
    }

    /// Spin variables: name → its declaration in spin.toml's `[variables]`.
    pub fn spin_variables(&self) -> BTreeMap<String, toml::Table> {
        self.spin
            .get("variables")
            .and_then(toml::Value::as_table)
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.as_table().cloned().unwrap_or_default())).collect())
            .unwrap_or_default()
    }

    /// The ids of spin.toml's components.
    pub fn spin_component_ids(&self) -> BTreeSet<String> {
        self.spin
            .get("component")
            .and_then(toml::Value::as_table)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The pod-gateway Helm values, by file, with the problems of those that do not parse.
    pub fn helm(&self, problems: &mut Vec<String>) -> Vec<(String, PodGatewayValues)> {
        let mut out = Vec::new();
        for (file, value) in &self.helm_values {
            match round_trip::<PodGatewayValues>(value) {
                Ok(v) => out.push((file.clone(), v)),
                Err(e) => problems.push(format!("{file}: {e}")),
            }
        }
        out
    }
}
