//! The shape of a Kubernetes Pod, as a table of the fields each object type has, and a check
//! of a JSON value against it: every field known, every value of its type, as the apiserver's
//! strict decoding checks a body. The table (`schema_table.rs`) is generated from the JSON
//! schema k8s-openapi gives its types; a test regenerates it and fails when it is stale.
//! Deserializing into k8s-openapi's own `Pod` would check the same, but its (de)serializers
//! would take about half the component's size budget (BENCHMARKS.md).

use serde_json::Value;

use crate::json;

// Generated: rustfmt leaves it as the generator writes it.
#[rustfmt::skip]
#[path = "schema_table.rs"]
mod table;

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Num,
    Bool,
    /// `x-kubernetes-int-or-string` (an `IntOrString` or a `Quantity`).
    IntOrStr,
    /// Anything (a `RawExtension`).
    Any,
    /// An object of the type at this index of the table.
    Object(u16),
    List(&'static Kind),
    /// An object whose keys are free and whose values are of one kind.
    Map(&'static Kind),
}

/// The table's index of `io.k8s.api.core.v1.Pod`.
pub const POD: Kind = Kind::Object(0);

/// The first field of `value` (the whole value being of `kind`) that is unknown or of the
/// wrong type, as `unknown field "spec.containers[0].imagePolicy"` or
/// `spec.activeDeadlineSeconds: a string where an integer is expected`.
pub fn check(value: &Value, kind: Kind, path: &str) -> Result<(), String> {
    let mismatch =
        |expected: &str| Err(format!("{}: {} where {expected} is expected", shown(path), json::kind(value)));
    match (kind, value) {
        (_, Value::Null) | (Kind::Any, _) => Ok(()),
        (Kind::Str, Value::String(_)) | (Kind::Bool, Value::Bool(_)) => Ok(()),
        (Kind::IntOrStr, Value::String(_) | Value::Number(_)) | (Kind::Num, Value::Number(_)) => Ok(()),
        (Kind::Int, Value::Number(number)) if number.is_i64() || number.is_u64() => Ok(()),
        (Kind::List(item), Value::Array(items)) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item_value)| check(item_value, *item, &format!("{path}[{i}]"))),
        (Kind::Map(item), Value::Object(entries)) => {
            entries.iter().try_for_each(|(key, entry)| check(entry, *item, &format!("{path}[{key:?}]")))
        }
        (Kind::Object(index), Value::Object(entries)) => {
            let fields = table::TYPES[usize::from(index)];
            entries.iter().try_for_each(|(key, entry)| {
                let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match fields.iter().find(|(name, _)| name == key) {
                    Some((_, field_kind)) => check(entry, *field_kind, &child),
                    None => Err(format!("unknown field {child:?}")),
                }
            })
        }
        (Kind::Str, _) => mismatch("a string"),
        (Kind::Int, _) => mismatch("an integer"),
        (Kind::Num, _) => mismatch("a number"),
        (Kind::Bool, _) => mismatch("a boolean"),
        (Kind::IntOrStr, _) => mismatch("an integer or a string"),
        (Kind::List(_), _) => mismatch("an array"),
        (Kind::Map(_) | Kind::Object(_), _) => mismatch("an object"),
    }
}

fn shown(path: &str) -> &str {
    if path.is_empty() { "the pod" } else { path }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_of_many_fields_is_known() {
        let pod = json!({
            "metadata": {"labels": {"a": "b"}, "annotations": {"c": "d"}},
            "spec": {
                "serviceAccountName": "crawler", "priorityClassName": "low", "restartPolicy": "Never",
                "activeDeadlineSeconds": 600, "nodeSelector": {"kubernetes.io/arch": "amd64"},
                "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
                "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
                "volumes": [{"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}}],
                "containers": [{
                    "name": "client", "image": "crawler:1", "args": ["--depth", "2"],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                    "resources": {"requests": {"cpu": "100m", "memory": 64}, "limits": {"memory": "256Mi"}},
                    "ports": [{"containerPort": 8080}],
                    "livenessProbe": {"httpGet": {"path": "/", "port": "http"}},
                    "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
                    "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}
                }]
            }
        });
        assert_eq!(check(&pod, POD, ""), Ok(()));
    }

    #[test]
    fn unknown_fields_are_named_by_their_path() {
        let pod = json!({"spec": {"containers": [{"name": "client", "imagePolicy": "Always"}]}});
        assert_eq!(check(&pod, POD, ""), Err(r#"unknown field "spec.containers[0].imagePolicy""#.into()));
        assert_eq!(check(&json!({"metdata": {}}), POD, ""), Err(r#"unknown field "metdata""#.into()));
        let deep = json!({"spec": {"volumes": [{"name": "v", "configMap": {"name": "c", "itemz": []}}]}});
        assert_eq!(check(&deep, POD, ""), Err(r#"unknown field "spec.volumes[0].configMap.itemz""#.into()));
    }

    #[test]
    fn values_of_the_wrong_type_are_named() {
        let cases = [
            (
                json!({"spec": {"activeDeadlineSeconds": "600"}}),
                "spec.activeDeadlineSeconds: a string where an integer is expected",
            ),
            (
                json!({"spec": {"containers": {"name": "client"}}}),
                "spec.containers: an object where an array is expected",
            ),
            (
                json!({"metadata": {"labels": {"a": 1}}}),
                r#"metadata.labels["a"]: a number where a string is expected"#,
            ),
            (
                json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": true}}}]}}),
                r#"spec.containers[0].resources.limits["cpu"]: a boolean where an integer or a string is expected"#,
            ),
            (
                json!({"spec": {"terminationGracePeriodSeconds": 1.5}}),
                "spec.terminationGracePeriodSeconds: a fractional number where an integer is expected",
            ),
            (json!([1]), "the pod: an array where an object is expected"),
        ];
        for (pod, expected) in cases {
            assert_eq!(check(&pod, POD, ""), Err(expected.into()), "{pod}");
        }
    }

    /// The table is k8s-openapi's schema of `Pod`, written out; `UPDATE_POD_SCHEMA=1` rewrites it.
    #[test]
    fn the_table_is_the_schema_of_k8s_openapis_pod() {
        let generated = generate::table();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/pod/schema_table.rs");
        if std::env::var_os("UPDATE_POD_SCHEMA").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        assert!(
            generated == include_str!("schema_table.rs"),
            "src/pod/schema_table.rs is not what k8s-openapi's schema gives: \
             run `UPDATE_POD_SCHEMA=1 cargo test --lib pod::schema` and commit it"
        );
    }

    /// Writes the table from the JSON schema of k8s-openapi's `Pod` (schemars).
    mod generate {
        use std::collections::BTreeMap;
        use std::fmt::Write;

        use serde_json::Value;

        const POD: &str = "io.k8s.api.core.v1.Pod";

        pub fn table() -> String {
            let schema =
                serde_json::to_value(schemars::schema_for!(k8s_openapi::api::core::v1::Pod)).unwrap();
            let mut definitions: BTreeMap<String, Value> =
                schema["$defs"].as_object().unwrap().clone().into_iter().collect();
            definitions.insert(POD.into(), schema.clone());
            // Object types only, the Pod first; their indices are the table's.
            let mut names: Vec<&String> =
                definitions.iter().filter(|(_, d)| d.get("properties").is_some()).map(|(n, _)| n).collect();
            names.sort_by_key(|name| (name.as_str() != POD, name.as_str()));
            let index = |name: &str| names.iter().position(|n| *n == name);
            let mut out = String::from(
                "// The fields of every object type of a Kubernetes Pod, from k8s-openapi 0.29's JSON schema\n\
                 // (Kubernetes 1.33). Generated by `UPDATE_POD_SCHEMA=1 cargo test --lib pod::schema`;\n\
                 // do not edit.\n\n\
                 use super::Kind::{self, *};\n\n\
                 pub(super) static TYPES: &[&[(&str, Kind)]] = &[\n",
            );
            for name in &names {
                let properties = definitions[name.as_str()]["properties"].as_object().unwrap();
                write!(out, "    // {}: {name}\n    &[", index(name).unwrap()).unwrap();
                for (i, (field, field_schema)) in properties.iter().enumerate() {
                    let separator = if i == 0 { "" } else { ", " };
                    let kind = kind(field_schema, &definitions, &index);
                    write!(out, "{separator}(\"{field}\", {kind})").unwrap();
                }
                out.push_str("],\n");
            }
            out.push_str("];\n");
            out
        }

        fn kind(
            schema: &Value,
            definitions: &BTreeMap<String, Value>,
            index: &dyn Fn(&str) -> Option<usize>,
        ) -> String {
            if let Some(reference) = schema["$ref"].as_str() {
                let name = reference.trim_start_matches("#/$defs/");
                return match index(name) {
                    Some(i) => format!("Object({i})"),
                    None => kind(&definitions[name], definitions, index),
                };
            }
            if schema["x-kubernetes-int-or-string"] == Value::Bool(true) {
                return "IntOrStr".into();
            }
            match schema["type"].as_str() {
                Some("string") => "Str".into(),
                Some("integer") => "Int".into(),
                Some("number") => "Num".into(),
                Some("boolean") => "Bool".into(),
                Some("array") => format!("List(&{})", kind(&schema["items"], definitions, index)),
                Some("object") if schema.get("additionalProperties").is_some() => {
                    format!("Map(&{})", kind(&schema["additionalProperties"], definitions, index))
                }
                _ => "Any".into(),
            }
        }
    }
}
