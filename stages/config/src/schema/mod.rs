//! The test format as an editor sees it: the file's layout as Rust types (both formats, every
//! key with its description and an example), from which `schemars` derives the JSON Schema
//! (draft 2020-12) that `clnrm schema` prints, plus the TOML-to-JSON reading editors apply
//! before validating. It is not the parser: `parse_test` walks the TOML itself to keep spans,
//! and tests hold the two to the same keys ([`crate::keys`]) and the same verdicts.
//!
//! What a schema cannot say is left to `clnrm validate`: which service a step names, unique
//! step names, whether a regex compiles, several services with a step that names none.

// The layout types are only described to `schemars`, never built or read.
#![allow(dead_code)]

use std::collections::BTreeMap;

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{Map, Number, Value};
use toml_edit::{ImDocument, Item};

use layout::TestFile;

mod layout;

/// The JSON Schema of a test file (draft 2020-12): both the v1.0 format (`[meta]`,
/// `[service.X]`, `[[scenario]]`) and the legacy one (`[test.metadata]`, `[services.X]`,
/// `[[steps]]`). Under `strict`, unknown keys are rejected, as `--strict` does; otherwise
/// they are allowed, as `clnrm validate` only warns about them (a schema cannot warn).
pub fn test_file_schema(strict: bool) -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let mut schema = generator.into_root_schema_for::<TestFile>().to_value();
    drop_null(&mut schema);
    if !strict {
        allow_unknown_keys(&mut schema);
    }
    schema
}

/// A TOML document as the JSON value a schema is checked against (what taplo and Even Better
/// TOML do): tables are objects, date-times their RFC 3339 text, a non-finite float its TOML
/// spelling.
pub fn toml_as_json(text: &str) -> Result<Value, toml_edit::TomlError> {
    let doc = ImDocument::parse(text)?;
    Ok(item_as_json(doc.as_item()))
}

pub(crate) fn item_as_json(item: &Item) -> Value {
    match item {
        Item::None => Value::Null,
        Item::Value(value) => value_as_json(value),
        Item::Table(table) => Value::Object(
            table
                .iter()
                .map(|(key, item)| (key.to_string(), item_as_json(item)))
                .collect(),
        ),
        Item::ArrayOfTables(tables) => Value::Array(
            tables
                .iter()
                .map(|table| item_as_json(&Item::Table(table.clone())))
                .collect(),
        ),
    }
}

fn value_as_json(value: &toml_edit::Value) -> Value {
    use toml_edit::Value as V;
    match value {
        V::String(s) => Value::String(s.value().clone()),
        V::Integer(i) => Value::Number((*i.value()).into()),
        V::Float(f) => match Number::from_f64(*f.value()) {
            Some(n) => Value::Number(n),
            None => Value::String(f.value().to_string()),
        },
        V::Boolean(b) => Value::Bool(*b.value()),
        V::Datetime(d) => Value::String(d.value().to_string()),
        V::Array(array) => Value::Array(array.iter().map(value_as_json).collect()),
        V::InlineTable(table) => Value::Object(
            table
                .iter()
                .map(|(key, value)| (key.to_string(), value_as_json(value)))
                .collect::<Map<String, Value>>(),
        ),
    }
}

/// TOML has no null, so an absent key is the only way to leave a value out: `Option`'s
/// `null` alternative goes.
fn drop_null(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            if let Some(Value::Array(types)) = object.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    object.insert("type".into(), only);
                }
            }
            for key in ["anyOf", "oneOf"] {
                if let Some(Value::Array(options)) = object.get_mut(key) {
                    options.retain(|o| o.get("type").and_then(Value::as_str) != Some("null"));
                    if options.len() == 1 {
                        let Some(Value::Object(only)) = object.remove(key).map(|mut o| o[0].take())
                        else {
                            continue;
                        };
                        for (k, v) in only {
                            object.entry(k).or_insert(v);
                        }
                    }
                }
            }
            object.values_mut().for_each(drop_null);
        }
        Value::Array(values) => values.iter_mut().for_each(drop_null),
        _ => {}
    }
}

/// Drops every `additionalProperties: false` (tables of known keys); maps keep their value
/// schemas.
fn allow_unknown_keys(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            if object.get("additionalProperties") == Some(&Value::Bool(false)) {
                object.remove("additionalProperties");
            }
            object.values_mut().for_each(allow_unknown_keys);
        }
        Value::Array(values) => values.iter_mut().for_each(allow_unknown_keys),
        _ => {}
    }
}

/// The spellings `parse_duration_ms` accepts: `<number><unit>` parts, no spaces inside.
pub const DURATION_PATTERN: &str = r"^\s*([0-9]+(\.[0-9]+)?(ms|secs|sec|s|mins|min|m|h|d))+\s*$";
/// An RFC 3339 date-time with an offset.
const DATE_TIME_PATTERN: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$";
/// Docker's short volume form, `HOST:CONTAINER[:ro|rw]`, with an absolute container path.
const SHORT_VOLUME_PATTERN: &str = r"^[^:]+:/[^:]*(:(ro|rw))?$";
/// A service name is a container host name.
const SERVICE_NAME_PATTERN: &str = r"^[A-Za-z0-9_.-]+$";
/// Not blank.
const NON_BLANK_PATTERN: &str = r"\S";
