//! The validation rules of `CreateOptions` and Pods that the fake enforces, with
//! apimachinery's messages (`pkg/util/validation`, `pkg/apis/core/validation`).

use serde_json::Value;

use super::status::{FieldError, go_is_print};

const LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const SUBDOMAIN_FMT: &str = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

pub(super) const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
const FIELD_MANAGER_MAX_LENGTH: usize = 128;

fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    // The double space in "'a',  or 'b'" is apimachinery's.
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!("{msg} (e.g. {}regex used for validation is '{fmt}')", examples.join(" or "))
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn is_dns_label(s: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    edge(s.chars().next())
        && edge(s.chars().last())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_qualified_name_part(s: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    edge(s.chars().next())
        && edge(s.chars().last())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(super) fn dns1123_label(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !is_dns_label(v) {
        errs.push(regex_error(LABEL_MSG, LABEL_FMT, &["my-name", "123-abc"]));
    }
    errs
}

pub(super) fn dns1123_subdomain(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !v.split('.').all(is_dns_label) {
        errs.push(regex_error(SUBDOMAIN_MSG, SUBDOMAIN_FMT, &["example.com"]));
    }
    errs
}

/// Label and annotation keys: `[prefix/]name`.
pub(super) fn qualified_name(v: &str) -> Vec<String> {
    let name_rule = || regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"]);
    let mut errs = Vec::new();
    let name = match v.split('/').collect::<Vec<_>>()[..] {
        [name] => name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_owned());
            } else {
                errs.extend(dns1123_subdomain(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            name
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                name_rule()
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !is_qualified_name_part(name) {
        errs.push(format!("name part {}", name_rule()));
    }
    errs
}

pub(super) fn label_value(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !(v.is_empty() || is_qualified_name_part(v)) {
        errs.push(regex_error(LABEL_VALUE_MSG, LABEL_VALUE_FMT, &["MyValue", "my_value", "12345"]));
    }
    errs
}

/// `ValidateCreateOptions`: fieldManager, dryRun, fieldValidation.
pub(super) fn create_options(
    dry_run: &[String],
    field_manager: &str,
    field_validation: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if field_manager.len() > FIELD_MANAGER_MAX_LENGTH {
        errs.push(FieldError::too_long("fieldManager", FIELD_MANAGER_MAX_LENGTH));
    }
    for (i, c) in field_manager.char_indices() {
        if !go_is_print(c) {
            errs.push(FieldError::invalid(
                "fieldManager",
                field_manager,
                format!("invalid character U+{:04X} (at position {i})", c as u32),
            ));
        }
    }
    errs.extend(dry_run_errors(dry_run));
    if !["", "Ignore", "Warn", "Strict"].contains(&field_validation) {
        errs.push(FieldError::not_supported(
            "fieldValidation",
            field_validation,
            &["Ignore", "Strict", "Warn"],
        ));
    }
    errs
}

pub(super) fn dry_run_errors(dry_run: &[String]) -> Vec<FieldError> {
    if dry_run.iter().all(|v| v == "All") {
        return Vec::new();
    }
    vec![FieldError::not_supported("dryRun", dry_run.to_vec(), &["All"])]
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `ValidatePodCreate`, for the rules the fake implements. `pod` is decoded and defaulted.
pub(super) fn pod(pod: &Value) -> Vec<FieldError> {
    let mut errs = object_meta(&pod["metadata"]);
    let spec = &pod["spec"];
    let list = |name: &str| spec.get(name).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let containers = list("containers");
    let every =
        list("initContainers").iter().enumerate().map(|(i, c)| (format!("spec.initContainers[{i}]"), c));
    let every = every.chain(containers.iter().enumerate().map(|(i, c)| (format!("spec.containers[{i}]"), c)));
    // Names are unique across init and regular containers.
    let mut names: Vec<&str> = Vec::new();
    for (path, c) in every {
        let name = str_at(c, "name");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{path}.name"), ""));
        } else {
            errs.extend(
                dns1123_label(name).into_iter().map(|m| FieldError::invalid(format!("{path}.name"), name, m)),
            );
        }
        if str_at(c, "image").is_empty() {
            errs.push(FieldError::required(format!("{path}.image"), ""));
        }
        let pull = str_at(c, "imagePullPolicy");
        if !["Always", "IfNotPresent", "Never"].contains(&pull) {
            errs.push(FieldError::not_supported(
                format!("{path}.imagePullPolicy"),
                pull,
                &["Always", "IfNotPresent", "Never"],
            ));
        }
        if names.contains(&name) {
            errs.push(FieldError::duplicate(format!("{path}.name"), name));
        } else {
            names.push(name);
        }
    }
    if containers.is_empty() {
        errs.push(FieldError::required("spec.containers", ""));
    }
    match str_at(spec, "restartPolicy") {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(FieldError::required("spec.restartPolicy", "")),
        other => errs.push(FieldError::not_supported(
            "spec.restartPolicy",
            other,
            &["Always", "OnFailure", "Never"],
        )),
    }
    let dns = str_at(spec, "dnsPolicy");
    if !["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"].contains(&dns) {
        errs.push(FieldError::not_supported(
            "spec.dnsPolicy",
            dns,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        ));
    }
    if let Some(deadline) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64)
        && !(1..=i64::from(i32::MAX)).contains(&deadline)
    {
        errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            deadline,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    for (i, c) in containers.iter().enumerate() {
        let image = str_at(c, "image");
        if image.trim() != image {
            errs.push(FieldError::invalid(
                format!("spec.containers[{i}].image"),
                image,
                "must not have leading or trailing whitespace",
            ));
        }
    }
    errs
}

/// `ValidateObjectMeta` for a namespaced object named as a DNS subdomain.
fn object_meta(meta: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let generate_name = str_at(meta, "generateName");
    if !generate_name.is_empty() {
        // A trailing dash is fine in a prefix: apimachinery masks it before checking.
        let masked = match generate_name.strip_suffix('-') {
            Some(rest) if !rest.is_empty() => format!("{rest}a"),
            _ => generate_name.to_owned(),
        };
        errs.extend(
            dns1123_subdomain(&masked)
                .into_iter()
                .map(|m| FieldError::invalid("metadata.generateName", generate_name, m)),
        );
    }
    let name = str_at(meta, "name");
    if name.is_empty() {
        errs.push(FieldError::required("metadata.name", "name or generateName is required"));
    } else {
        errs.extend(
            dns1123_subdomain(name).into_iter().map(|m| FieldError::invalid("metadata.name", name, m)),
        );
    }
    let namespace = str_at(meta, "namespace");
    if namespace.is_empty() {
        errs.push(FieldError::required("metadata.namespace", ""));
    } else {
        errs.extend(
            dns1123_label(namespace)
                .into_iter()
                .map(|m| FieldError::invalid("metadata.namespace", namespace, m)),
        );
    }
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        for (key, value) in labels {
            let value = value.as_str().unwrap_or("");
            errs.extend(
                qualified_name(key)
                    .into_iter()
                    .map(|m| FieldError::invalid("metadata.labels", key.as_str(), m)),
            );
            errs.extend(
                label_value(value).into_iter().map(|m| FieldError::invalid("metadata.labels", value, m)),
            );
        }
    }
    if let Some(annotations) = meta.get("annotations").and_then(Value::as_object) {
        for key in annotations.keys() {
            // Annotation keys are case-insensitive qualified names.
            let lower = key.to_lowercase();
            errs.extend(
                qualified_name(&lower)
                    .into_iter()
                    .map(|m| FieldError::invalid("metadata.annotations", key.as_str(), m)),
            );
        }
        let size: usize = annotations.iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum();
        if size > TOTAL_ANNOTATION_SIZE_LIMIT {
            errs.push(FieldError::too_long("metadata.annotations", TOTAL_ANNOTATION_SIZE_LIMIT));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(dns1123_subdomain("a.b-c.d1").is_empty());
        assert_eq!(dns1123_subdomain("Bad_Name").len(), 1);
        assert_eq!(dns1123_subdomain(&"a".repeat(254)), [max_len_error(253)]);
        assert!(dns1123_label("c1").is_empty());
        assert_eq!(dns1123_label("a.b").len(), 1);
    }

    #[test]
    fn qualified_names() {
        assert!(qualified_name("example.com/My_name.x").is_empty());
        assert_eq!(qualified_name("/x"), ["prefix part must be non-empty"]);
        assert_eq!(qualified_name("a/b/c").len(), 1);
        assert_eq!(qualified_name("x/").len(), 2, "empty name: non-empty and regex");
        assert!(label_value("").is_empty());
        assert_eq!(label_value("-x").len(), 1);
    }

    #[test]
    fn regex_error_spacing() {
        assert_eq!(
            regex_error("m", "f", &["a", "b"]),
            "m (e.g. 'a',  or 'b', regex used for validation is 'f')"
        );
    }
}
