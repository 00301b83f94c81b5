//! JSON helpers: a value's kind in words for error messages, and editing a pod as JSON, where
//! the objects and lists on the way are made when missing (or when a value of another type
//! stands there, which a checked template never has).

use serde_json::{Map, Value};

/// What a JSON value is, in words for error messages: `a string`, `a fractional number`, ….
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(number) if number.is_f64() => "a fractional number",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The string field `name` of an object; absent or `null` is `None`.
pub fn string_field(fields: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(format!("`{name}` must be a string, not {}", kind(other))),
    }
}

/// The value as an object, made one (empty) if it is not.
pub fn as_object(value: &mut Value) -> &mut Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => {
            *other = Value::Object(Map::new());
            as_object(other)
        }
    }
}

fn as_list(value: &mut Value) -> &mut Vec<Value> {
    match value {
        Value::Array(list) => list,
        other => {
            *other = Value::Array(Vec::new());
            as_list(other)
        }
    }
}

pub fn object_at<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    as_object(map.entry(key).or_insert(Value::Null))
}

pub fn list_at<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    as_list(map.entry(key).or_insert(Value::Null))
}
