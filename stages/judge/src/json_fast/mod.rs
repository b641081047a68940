//! A fast path that only decides that a step's JSON checks pass and its JSON captures take
//! a string: stdout read into a borrowed document ([`doc`]), paths compiled for a subset of
//! RFC 9535 ([`path`]) and evaluated over it ([`eval`]). Building serde_json's `Value`
//! (a map and a `String` per key) was most of the judge's time. Whenever this path is not
//! sure, the judge runs the serde_json / serde_json_path code, which stays the reference
//! for semantics and for every message.

pub(crate) mod doc;
pub(crate) mod eval;
pub(crate) mod path;

use regex::Regex;
use serde_json::Value as JsonValue;

use doc::{number, Doc, Number, Value};
pub(crate) use path::Query;

/// `path` compiled for the fast path, or None when it uses what the fast path leaves to
/// serde_json_path (function extensions, …).
pub(crate) fn compile(path: &str) -> Option<Query> {
    path::compile(path)
}

/// What one JSON check wants of the nodes, borrowed from the compiled check.
pub(crate) enum Want<'c> {
    Exists(bool),
    Count(u64),
    Equals(&'c JsonValue),
    Matches(&'c Regex),
}

/// The values of the step's JSON captures (in order), when stdout parses, every check has a
/// fast path and passes, and every capture selects exactly one string; None otherwise.
pub(crate) fn judge<'c>(
    stdout: &str,
    checks: impl IntoIterator<Item = (Option<&'c Query>, Want<'c>)>,
    captures: impl IntoIterator<Item = Option<&'c Query>>,
) -> Option<Vec<String>> {
    let doc = Doc::parse(stdout)?;
    for (query, want) in checks {
        if !passes(&doc, &eval::select(&doc, query?, 0), want) {
            return None;
        }
    }
    captures
        .into_iter()
        .map(|query| match eval::select(&doc, query?, 0).as_slice() {
            [one] => match &doc.node(*one).value {
                Value::String(s) => Some(s.to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// json.rs's verdict for the same nodes, when it is a pass.
fn passes(doc: &Doc, found: &[usize], want: Want) -> bool {
    match want {
        Want::Exists(b) => found.is_empty() != b,
        Want::Count(n) => found.len() as u64 == n,
        Want::Equals(v) => matches!(found, [one] if same_value(doc, *one, v)),
        Want::Matches(re) => {
            !found.is_empty()
                && found.iter().all(|&n| match &doc.node(n).value {
                    Value::String(s) => re.is_match(s),
                    _ => false,
                })
        }
    }
}

/// json.rs's `same_value` between a node and a value: numbers by value (as i64 when both
/// are, else as f64), containers member by member, the rest as JSON.
fn same_value(doc: &Doc, node: usize, want: &JsonValue) -> bool {
    let n = doc.node(node);
    match (&n.value, want) {
        (Value::Null, JsonValue::Null) => true,
        (Value::Bool(x), JsonValue::Bool(y)) => x == y,
        (Value::String(x), JsonValue::String(y)) => x == y,
        (Value::Number(x), JsonValue::Number(y)) => {
            let (x, y) = (number(x), Number::of_serde(y));
            match (x.as_i64(), y.as_i64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            }
        }
        (Value::Array, JsonValue::Array(ys)) => {
            n.len as usize == ys.len()
                && doc
                    .children(node)
                    .zip(ys)
                    .all(|(x, y)| same_value(doc, x, y))
        }
        (Value::Object, JsonValue::Object(ys)) => {
            n.len as usize == ys.len()
                && ys
                    .iter()
                    .all(|(k, y)| doc.member(node, k).is_some_and(|x| same_value(doc, x, y)))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
