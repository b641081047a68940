//! `${captures.NAME}` references in a step's strings: finding them (the config stage checks
//! each names a capture of an earlier step) and replacing them with captured values (the exec
//! stage, before a step runs). `$${` writes a literal `${`; any other `${...}` (a shell's
//! `${HOME}`) is left as it is.

use serde_json::Value;

use crate::{Expectations, JsonCheckKind};

const OPEN: &str = "${captures.";
/// The environment variable prefix under which `run` steps also get the captures.
pub const ENV_PREFIX: &str = "CLNRM_CAPTURE_";

/// A `${captures.NAME}` in a string, at byte `offset` (its `$`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub name: String,
    pub offset: usize,
}

/// A capture name: a letter or `_`, then letters, digits and `_` (it is also part of an
/// environment variable's name).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `CLNRM_CAPTURE_NAME`: the variable a `run` step gets a capture as.
pub fn env_name(name: &str) -> String {
    format!("{ENV_PREFIX}{}", name.to_ascii_uppercase())
}

/// One piece of a string: text as is, or a reference.
enum Piece<'a> {
    Text(&'a str),
    Ref(&'a str, usize),
}

/// Splits `text` into pieces; `Err` with the byte offset and the problem for a reference
/// without its `}` or with a name that is not a capture name.
fn pieces(text: &str) -> Result<Vec<Piece<'_>>, (usize, String)> {
    let mut out = Vec::new();
    let mut rest_start = 0;
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        if text[i..].starts_with("$${") {
            out.push(Piece::Text(&text[rest_start..i]));
            out.push(Piece::Text("${"));
            i += 3;
            rest_start = i;
        } else if text[i..].starts_with(OPEN) {
            let name_start = i + OPEN.len();
            let Some(len) = text[name_start..].find('}') else {
                return Err((i, "`${captures.` has no closing `}`".to_string()));
            };
            let name = &text[name_start..name_start + len];
            if !valid_name(name) {
                return Err((
                    i,
                    format!(
                        "`{name}` is not a capture name (letters, digits and `_`, not starting \
                         with a digit)"
                    ),
                ));
            }
            out.push(Piece::Text(&text[rest_start..i]));
            out.push(Piece::Ref(name, i));
            i = name_start + len + 1;
            rest_start = i;
        } else {
            i += 1;
        }
    }
    out.push(Piece::Text(&text[rest_start..]));
    Ok(out)
}

/// The references in `text`, in order.
pub fn references(text: &str) -> Result<Vec<Reference>, (usize, String)> {
    if !text.contains('$') {
        return Ok(Vec::new());
    }
    Ok(pieces(text)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Ref(name, offset) => Some(Reference {
                name: name.to_string(),
                offset,
            }),
            Piece::Text(_) => None,
        })
        .collect())
}

/// `text` with each reference replaced by `lookup(name)` (and `$${` by `${`); `Err` names a
/// capture that has no value.
pub fn substitute(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    if !text.contains('$') {
        return Ok(text.to_string());
    }
    let pieces = pieces(text).map_err(|(_, why)| why)?;
    let mut out = String::with_capacity(text.len());
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Ref(name, _) => out.push_str(&lookup(name).ok_or_else(|| name.to_string())?),
        }
    }
    Ok(out)
}

/// The expectations with captures substituted: in regexes a value matches itself literally
/// (it is escaped); in `equals` it replaces references inside the value's strings.
pub fn substitute_expectations(
    e: &Expectations,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Expectations, String> {
    let literal = |name: &str| lookup(name).map(|v| regex::escape(&v));
    let pattern = |p: &Option<String>| p.as_deref().map(|p| substitute(p, &literal)).transpose();
    let mut out = Expectations {
        exit_code: e.exit_code,
        output_regex: pattern(&e.output_regex)?,
        stderr_regex: pattern(&e.stderr_regex)?,
        output_regex_not: pattern(&e.output_regex_not)?,
        stderr_regex_not: pattern(&e.stderr_regex_not)?,
        json: e.json.clone(),
        captures: e.captures.clone(),
    };
    for check in &mut out.json {
        check.path = substitute(&check.path, lookup)?;
        match &mut check.check {
            JsonCheckKind::Matches(p) => *p = substitute(p, &literal)?,
            JsonCheckKind::Equals(text) if text.contains("${") => {
                let mut value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
                substitute_value(&mut value, lookup)?;
                *text = value.to_string();
            }
            _ => {}
        }
    }
    Ok(out)
}

fn substitute_value(v: &mut Value, lookup: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    match v {
        Value::String(s) => *s = substitute(s, lookup)?,
        Value::Array(items) => {
            for item in items {
                substitute_value(item, lookup)?;
            }
        }
        Value::Object(map) => {
            for item in map.values_mut() {
                substitute_value(item, lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}
