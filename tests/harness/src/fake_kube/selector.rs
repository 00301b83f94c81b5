//! `labelSelector` and `fieldSelector` of a pod LIST.

use serde_json::Value;

enum Requirement {
    Exists(String),
    NotExists(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed label selector; `Err` is the message of a 400 BadRequest.
pub(super) struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    pub fn parse(selector: &str) -> Result<Self, String> {
        split_top_level(selector).into_iter().map(parse_requirement).collect::<Result<_, _>>().map(Self)
    }

    pub fn matches(&self, pod: &Value) -> bool {
        let labels = &pod["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
            Requirement::Equals(k, v) => get(k) == Some(v),
            Requirement::NotEquals(k, v) => get(k) != Some(v),
            Requirement::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|l| vs.iter().all(|v| v != l)),
        })
    }
}

/// Commas separate requirements, except inside `in (a,b)`.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.retain(|p| !p.trim().is_empty());
    parts
}

fn parse_requirement(req: &str) -> Result<Requirement, String> {
    let req = req.trim();
    let bad = || format!("unable to parse requirement: {req:?} is not a valid label selector requirement");
    let key = |k: &str| {
        let k = k.trim();
        if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) {
            Ok(k.to_owned())
        } else {
            Err(bad())
        }
    };
    let value = |v: &str| {
        let v = v.trim();
        if v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            Ok(v.to_owned())
        } else {
            Err(bad())
        }
    };
    let set = |s: &str| -> Result<Vec<String>, String> {
        let inner = s.trim().strip_prefix('(').and_then(|s| s.strip_suffix(')')).ok_or_else(bad)?;
        inner.split(',').map(value).collect()
    };
    if let Some(k) = req.strip_prefix('!') {
        return Ok(Requirement::NotExists(key(k)?));
    }
    if let Some((k, v)) = req.split_once("!=") {
        return Ok(Requirement::NotEquals(key(k)?, value(v)?));
    }
    if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
        return Ok(Requirement::Equals(key(k)?, value(v)?));
    }
    if let Some((k, s)) = req.split_once(" notin ") {
        return Ok(Requirement::NotIn(key(k)?, set(s)?));
    }
    if let Some((k, s)) = req.split_once(" in ") {
        return Ok(Requirement::In(key(k)?, set(s)?));
    }
    Ok(Requirement::Exists(key(req)?))
}

/// The fields a pod LIST can select on, with `=`, `==` and `!=`.
pub(super) struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(selector: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for req in selector.split(',').filter(|r| !r.trim().is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = req.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
                (f, true, v)
            } else {
                return Err(format!("invalid selector: '{selector}'; can't understand '{req}'"));
            };
            let field = field.trim();
            if pod_field(&Value::Null, field).is_none() {
                return Err(format!("field label not supported: {field}"));
            }
            reqs.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(Self(reqs))
    }

    pub fn matches(&self, pod: &Value) -> bool {
        self.0
            .iter()
            .all(|(field, equal, value)| (pod_field(pod, field).as_deref() == Some(value.as_str())) == *equal)
    }
}

/// The value a field selector compares; `None` for fields pods do not support.
fn pod_field(pod: &Value, field: &str) -> Option<String> {
    let path = match field {
        "metadata.name"
        | "metadata.namespace"
        | "spec.nodeName"
        | "spec.restartPolicy"
        | "spec.schedulerName"
        | "spec.serviceAccountName"
        | "status.phase"
        | "status.podIP"
        | "status.nominatedNodeName" => field,
        "spec.hostNetwork" => return Some(pod["spec"]["hostNetwork"].as_bool().unwrap_or(false).to_string()),
        _ => return None,
    };
    let value = path.split('.').fold(pod, |v, key| &v[key]);
    Some(value.as_str().unwrap_or("").to_owned())
}
