//! Reading the keyword arguments of template functions: strings, integers,
//! numbers and bounded counts, with errors naming the argument. Not the functions.

use std::collections::HashMap;

use serde_json::Value;
use tera::Result as TeraResult;

/// A value as text: strings without their JSON quotes.
pub(super) fn value_to_plain_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(super) fn arg_str(args: &HashMap<String, Value>, key: &str) -> Option<String> {
    args.get(key).map(value_to_plain_string)
}

pub(super) fn arg_i64(args: &HashMap<String, Value>, key: &str, default: i64) -> TeraResult<i64> {
    match args.get(key) {
        None => Ok(default),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or_else(|| tera::Error::msg(format!("`{key}` must be an integer"))),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| tera::Error::msg(format!("`{key}` must be an integer, got {s:?}"))),
        Some(other) => Err(tera::Error::msg(format!(
            "`{key}` must be an integer, got {other}"
        ))),
    }
}

pub(super) fn arg_f64(args: &HashMap<String, Value>, key: &str, default: f64) -> TeraResult<f64> {
    match args.get(key) {
        None => Ok(default),
        Some(Value::Number(n)) => Ok(n.as_f64().unwrap_or(default)),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| tera::Error::msg(format!("`{key}` must be a number, got {s:?}"))),
        Some(other) => Err(tera::Error::msg(format!(
            "`{key}` must be a number, got {other}"
        ))),
    }
}

/// Bounds a count argument so a template cannot ask for gigabytes.
pub(super) fn arg_count(
    args: &HashMap<String, Value>,
    key: &str,
    default: i64,
    max: i64,
) -> TeraResult<usize> {
    let n = arg_i64(args, key, default)?;
    if !(0..=max).contains(&n) {
        return Err(tera::Error::msg(format!(
            "`{key}` must be in 0..={max}, got {n}"
        )));
    }
    Ok(n as usize)
}
