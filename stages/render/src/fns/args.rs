//! Reading the keyword arguments of template functions: strings, integers,
//! numbers and bounded counts, with errors naming the argument. Not the functions.

use std::collections::HashMap;
use std::str::FromStr;

use serde_json::{Number, Value};
use tera::Result as TeraResult;

/// A value as text: strings without their JSON quotes.
pub(super) fn value_to_plain_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A string argument (any other value as its JSON text).
pub(super) fn arg_str(args: &HashMap<String, Value>, key: &str) -> Option<String> {
    args.get(key).map(value_to_plain_string)
}

/// An integer argument (a number is truncated, a string parsed).
pub(super) fn arg_i64(args: &HashMap<String, Value>, key: &str, default: i64) -> TeraResult<i64> {
    arg_number(args, key, default, "an integer", |n| {
        n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))
    })
}

/// A number argument (a string is parsed).
pub(super) fn arg_f64(args: &HashMap<String, Value>, key: &str, default: f64) -> TeraResult<f64> {
    arg_number(args, key, default, "a number", |n| {
        Some(n.as_f64().unwrap_or(default))
    })
}

/// Argument `key` as a `T`: `default` when absent, `from_json` of a JSON number,
/// a string parsed; else an error saying it must be `what`.
fn arg_number<T: FromStr>(
    args: &HashMap<String, Value>,
    key: &str,
    default: T,
    what: &str,
    from_json: impl Fn(&Number) -> Option<T>,
) -> TeraResult<T> {
    let must_be = |got: String| tera::Error::msg(format!("`{key}` must be {what}{got}"));
    match args.get(key) {
        None => Ok(default),
        Some(Value::Number(n)) => from_json(n).ok_or_else(|| must_be(String::new())),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| must_be(format!(", got {s:?}"))),
        Some(other) => Err(must_be(format!(", got {other}"))),
    }
}

/// Bounds a count argument so a template cannot ask for gigabytes.
pub(super) fn arg_count(
    args: &HashMap<String, Value>,
    key: &str,
    default: i64,
    max: i64,
) -> TeraResult<usize> {
    let count = arg_i64(args, key, default)?;
    if !(0..=max).contains(&count) {
        return Err(tera::Error::msg(format!(
            "`{key}` must be in 0..={max}, got {count}"
        )));
    }
    Ok(count as usize)
}
