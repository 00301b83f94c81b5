//! Decoding a create body as the apiserver's create handler does (`decoder.Decode` into the
//! resource's type, then `transformDecodeError`): the 400 messages for a body that is not
//! JSON, of another kind or version, or with a field of the wrong type, and the unknown fields
//! that give `Warning` headers.

use serde_json::{Map, Value};

use super::status::go_quote;

/// A decoded object and the unknown fields found in it (`spec.foo`, `spec.containers[0].bar`).
pub(super) struct Decoded {
    /// The body as sent, with `apiVersion` and `kind` filled in.
    pub object: Value,
    /// The body through the typed round trip: what the Go object holds (no unknown fields).
    pub known: Value,
    pub unknown_fields: Vec<String>,
}

/// What the decoder of one resource knows.
pub(super) struct ObjectKind {
    /// The group/version the endpoint serves, and the default for a body without one.
    pub api_version: &'static str,
    pub kind: &'static str,
    /// The internal type it converts to, e.g. `core.Pod`.
    pub internal: &'static str,
    /// Other kinds registered in `api_version` (converting them gives "unknown conversion").
    pub same_version_kinds: &'static [&'static str],
    /// Other versions of the group whose `kind` the scheme still decodes; the handler then
    /// refuses the version.
    pub other_served_versions: &'static [&'static str],
    pub ty: &'static Ty,
    /// The typed round trip (k8s-openapi) that finds unknown fields and any type error the
    /// fake does not word itself.
    pub typed: fn(Value) -> Result<Value, String>,
}

/// Decodes a create body; `Err` is the message of a 400 BadRequest.
pub(super) fn decode(body: &[u8], kind: &ObjectKind) -> Result<Decoded, String> {
    let expected = kind.kind;
    let unrecognized = |why: String| {
        format!(
            "the object provided is unrecognized (must be of type {expected}): couldn't get version/kind; json parse error: {why} ({})",
            summarize(body)
        )
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(unrecognized("unexpected end of JSON input".into()));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| unrecognized(e.to_string()))?;
    let type_meta_error = |v: &Value| {
        unrecognized(format!(
            r#"json: cannot unmarshal {} into Go value of type struct {{ APIVersion string "json:\"apiVersion,omitempty\""; Kind string "json:\"kind,omitempty\"" }}"#,
            json_type(v)
        ))
    };
    let Value::Object(mut object) = value else {
        return Err(type_meta_error(&value));
    };
    let api_version = match object.get("apiVersion") {
        None | Some(Value::Null) => kind.api_version.to_owned(),
        Some(Value::String(s)) if s.is_empty() => kind.api_version.to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(type_meta_error(other)),
    };
    let body_kind = match object.get("kind") {
        None | Some(Value::Null) => expected.to_owned(),
        Some(Value::String(s)) if s.is_empty() => expected.to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(type_meta_error(other)),
    };
    let version = api_version.rsplit('/').next().unwrap_or_default().to_owned();
    let cannot_handle = |why: String| {
        format!(r#"{body_kind} in version {} cannot be handled as a {expected}: {why}"#, go_quote(&version))
    };
    let not_registered = |kind: &str, version: &str| {
        format!(
            r#"no kind {} is registered for version {} in scheme "pkg/api/legacyscheme/scheme.go:30""#,
            go_quote(kind),
            go_quote(version)
        )
    };
    if body_kind == expected && kind.other_served_versions.contains(&api_version.as_str()) {
        return Err(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            kind.api_version
        ));
    }
    if api_version != kind.api_version {
        return Err(cannot_handle(not_registered(&body_kind, &api_version)));
    }
    if body_kind != expected {
        let why = if kind.same_version_kinds.contains(&body_kind.as_str()) {
            format!("converting (v1.{body_kind}) to ({}): unknown conversion", kind.internal)
        } else {
            not_registered(&body_kind, kind.api_version)
        };
        return Err(cannot_handle(why));
    }
    object.insert("apiVersion".into(), kind.api_version.into());
    object.insert("kind".into(), expected.into());
    let object = Value::Object(object);

    check(&object, kind.ty, expected, "").map_err(cannot_handle)?;
    let known = (kind.typed)(object.clone()).map_err(cannot_handle)?;
    let mut unknown_fields = Vec::new();
    unknown(&object, &known, "", &mut unknown_fields);
    Ok(Decoded { object, known, unknown_fields })
}

/// apimachinery's `summarizeData(body, 30)` for decode errors.
fn summarize(body: &[u8]) -> String {
    let cut = &body[..body.len().min(30)];
    let more = if body.len() > 30 { " ..." } else { "" };
    match body.first() {
        None => "<empty>".into(),
        Some(b'{') => format!("{}{more}", String::from_utf8_lossy(cut)),
        Some(_) => format!("{}{more}", cut.iter().map(|b| format!("{b:02x}")).collect::<String>()),
    }
}

fn json_type(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(n) if n.is_f64() => format!("number {n}"),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
    }
}

/// The Go type of the fields whose type errors the fake reports in Go's words.
pub(super) enum Ty {
    Str(&'static str),
    Int64,
    Bool,
    StrMap,
    StrList,
    Struct(&'static str, &'static [(&'static str, Ty)]),
    StructList(&'static str, &'static [(&'static str, Ty)]),
}

impl Ty {
    fn go_name(&self) -> String {
        match self {
            Ty::Str(t) | Ty::Struct(t, _) => (*t).into(),
            Ty::Int64 => "int64".into(),
            Ty::Bool => "bool".into(),
            Ty::StrMap => "map[string]string".into(),
            Ty::StrList => "[]string".into(),
            Ty::StructList(t, _) => format!("[]{t}"),
        }
    }
}

/// `encoding/json`'s `UnmarshalTypeError`: "Go struct field <Struct>.<path> of type <T>".
fn check(v: &Value, ty: &Ty, parent: &str, path: &str) -> Result<(), String> {
    let mismatch = |v: &Value, go: String| {
        Err(format!(
            "json: cannot unmarshal {} into Go struct field {parent}.{path} of type {go}",
            json_type(v)
        ))
    };
    match (ty, v) {
        (_, Value::Null) => Ok(()),
        (Ty::Str(_), Value::String(_)) | (Ty::Bool, Value::Bool(_)) => Ok(()),
        (Ty::Int64, Value::Number(n)) if n.is_i64() => Ok(()),
        (Ty::StrMap, Value::Object(m)) => match m.values().find(|v| !(v.is_string() || v.is_null())) {
            Some(bad) => mismatch(bad, "string".into()),
            None => Ok(()),
        },
        (Ty::StrList, Value::Array(a)) => match a.iter().find(|v| !(v.is_string() || v.is_null())) {
            Some(bad) => mismatch(bad, "string".into()),
            None => Ok(()),
        },
        (Ty::Struct(go, fields), Value::Object(m)) => check_fields(m, go, fields, path),
        (Ty::StructList(go, fields), Value::Array(items)) => items.iter().try_for_each(|item| match item {
            Value::Object(m) => check_fields(m, go, fields, path),
            Value::Null => Ok(()),
            other => mismatch(other, (*go).into()),
        }),
        (ty, v) => mismatch(v, ty.go_name()),
    }
}

fn check_fields(m: &Map<String, Value>, go: &str, fields: &[(&str, Ty)], path: &str) -> Result<(), String> {
    let parent = go.trim_start_matches("v1.");
    for (name, ty) in fields {
        if let Some(v) = m.get(*name) {
            let child = if path.is_empty() { (*name).to_owned() } else { format!("{path}.{name}") };
            check(v, ty, parent, &child)?;
        }
    }
    Ok(())
}

/// Fields of `input` that the typed round trip dropped.
fn unknown(input: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(i), Value::Object(k)) => {
            for (key, value) in i.iter().filter(|(_, v)| !v.is_null()) {
                let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match k.get(key) {
                    Some(kv) => unknown(value, kv, &child, out),
                    None => out.push(child),
                }
            }
        }
        (Value::Array(i), Value::Array(k)) => {
            for (n, (iv, kv)) in i.iter().zip(k).enumerate() {
                unknown(iv, kv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}
