//! `expected_json` and JSON captures: RFC 9535 JSONPath (serde_json_path) over stdout parsed
//! as JSON, and what a failure shows (the path, the expectation, the nodes found).

use regex::Regex;
use serde_json::Value;
use serde_json_path::JsonPath;

use crate::json_fast::{self, Want};
use crate::show::{cut, nodes, value};
use crate::{compile_regex, CompileError, JsonCheck, JsonCheckKind, Mismatch};

/// A JSONPath, compiled; the error names the character it failed at.
pub fn parse_json_path(path: &str) -> Result<JsonPath, String> {
    JsonPath::parse(path).map_err(|e| {
        format!(
            "invalid JSONPath (RFC 9535) at character {}: {}",
            e.position() + 1,
            e.message()
        )
    })
}

/// Where `text` stopped being JSON: serde_json's message, and the line it points at.
pub fn json_error_at(text: &str, e: &serde_json::Error) -> String {
    if text.trim().is_empty() {
        return "stdout was empty, not JSON".to_string();
    }
    let line_text = text.lines().nth(e.line().saturating_sub(1)).unwrap_or("");
    // Long lines (minified JSON) are shown around the column.
    let col = e.column().saturating_sub(1).min(line_text.len());
    let mut start = col.saturating_sub(60);
    while !line_text.is_char_boundary(start) {
        start -= 1;
    }
    let excerpt = cut(&line_text[start..], 120);
    let lead = if start > 0 { "…" } else { "" };
    format!("stdout is not JSON: {e}: `{lead}{excerpt}`",)
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledJsonCheck {
    key: String,
    path: String,
    compiled: JsonPath,
    /// The same path for the fast path, when it is in the subset that path evaluates.
    fast: Option<json_fast::Query>,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Exists(bool),
    Equals(Value),
    Matches(Regex),
    Count(u64),
}

impl CompiledJsonCheck {
    pub(crate) fn new(i: usize, check: &JsonCheck) -> Result<Self, CompileError> {
        let key = format!("expected_json[{i}]");
        let error = |message: String| CompileError {
            key: key.clone(),
            message,
        };
        let compiled = parse_json_path(&check.path).map_err(error)?;
        let kind = match &check.check {
            JsonCheckKind::Exists(b) => Kind::Exists(*b),
            JsonCheckKind::Equals(text) => Kind::Equals(
                serde_json::from_str(text).map_err(|e| error(format!("`equals`: {e}")))?,
            ),
            JsonCheckKind::Matches(pattern) => {
                Kind::Matches(compile_regex(pattern).map_err(|e| error(format!("`matches`: {e}")))?)
            }
            JsonCheckKind::Count(n) => Kind::Count(*n),
        };
        Ok(CompiledJsonCheck {
            key,
            path: check.path.clone(),
            compiled,
            fast: json_fast::compile(&check.path),
            kind,
        })
    }

    /// The fast path's form of this check.
    pub(crate) fn fast(&self) -> (Option<&json_fast::Query>, Want<'_>) {
        let want = match &self.kind {
            Kind::Exists(b) => Want::Exists(*b),
            Kind::Count(n) => Want::Count(*n),
            Kind::Equals(v) => Want::Equals(v),
            Kind::Matches(re) => Want::Matches(re),
        };
        (self.fast.as_ref(), want)
    }

    /// The mismatch, when the nodes `doc` has at the path are not what is expected.
    pub(crate) fn judge(&self, doc: &Value) -> Option<Mismatch> {
        let found = self.compiled.query(doc).all();
        let path = &self.path;
        let expected = match &self.kind {
            Kind::Exists(true) if found.is_empty() => format!("`{path}` to select a node"),
            Kind::Exists(false) if !found.is_empty() => format!("`{path}` to select nothing"),
            Kind::Exists(_) => return None,
            Kind::Count(n) if found.len() as u64 != *n => {
                format!(
                    "`{path}` to select {n} node{}",
                    if *n == 1 { "" } else { "s" }
                )
            }
            Kind::Count(_) => return None,
            Kind::Equals(want) => {
                if let [one] = found.as_slice() {
                    if same_value(one, want) {
                        return None;
                    }
                }
                format!("`{path}` to be exactly one node equal to {}", value(want))
            }
            Kind::Matches(re) => {
                let all_match = !found.is_empty()
                    && found
                        .iter()
                        .all(|node| node.as_str().is_some_and(|s| re.is_match(s)));
                if all_match {
                    return None;
                }
                format!("`{path}` to select strings matching /{}/", re.as_str())
            }
        };
        Some(Mismatch {
            key: self.key.clone(),
            expected,
            actual: nodes(&found),
        })
    }
}

/// Numbers compare by value (`1` equals `1.0`); everything else as JSON does.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| same_value(a, b)))
        }
        _ => a == b,
    }
}

/// A JSON capture's value: the one node's string, or its JSON text when it is not a string.
pub(crate) fn capture(
    path: &str,
    compiled: &JsonPath,
    doc: &Value,
) -> Result<String, (String, String)> {
    let found = compiled.query(doc).all();
    match found.as_slice() {
        [Value::String(s)] => Ok(s.clone()),
        [one] => Ok(one.to_string()),
        _ => Err((
            format!("`{path}` to select exactly one node"),
            nodes(&found),
        )),
    }
}
