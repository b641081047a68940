//! `toml_encode` and `toml_key`: template values written as TOML (inline tables and
//! arrays, strings quoted as TOML needs), by the `toml` crate. Not TOML parsing.

use serde::Serialize;
use serde_json::Value;

/// `value` as one TOML value (tables inline). `null` is the empty string, as Tera
/// prints it; an integer beyond the range of TOML's (64-bit signed) is an error.
pub(crate) fn toml_value(value: &Value) -> tera::Result<String> {
    let mut out = String::new();
    to_toml(value)?
        .serialize(toml::ser::ValueSerializer::new(&mut out))
        .map_err(|e| tera::Error::msg(format!("toml_encode: {e}")))?;
    Ok(out)
}

/// A bare key when it can be one, else a quoted key.
pub(crate) fn toml_key(key: &str) -> tera::Result<String> {
    // The `toml` crate writes keys only as part of a table: write a one-entry table.
    let mut table = toml::Table::new();
    table.insert(key.to_string(), toml::Value::Integer(0));
    let line = toml::to_string(&table).map_err(|e| tera::Error::msg(format!("toml_key: {e}")))?;
    match line.strip_suffix(" = 0\n") {
        Some(encoded) => Ok(encoded.to_string()),
        None => Err(tera::Error::msg(format!(
            "toml_key: unexpected encoding {line:?}"
        ))),
    }
}

fn to_toml(value: &Value) -> tera::Result<toml::Value> {
    Ok(match value {
        Value::Null => toml::Value::String(String::new()),
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => toml::Value::Integer(i),
            (None, Some(u)) => {
                return Err(tera::Error::msg(format!(
                    "toml_encode: {u} is beyond the largest TOML integer ({})",
                    i64::MAX
                )))
            }
            (None, None) => toml::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(items) => {
            toml::Value::Array(items.iter().map(to_toml).collect::<tera::Result<_>>()?)
        }
        Value::Object(entries) => {
            let mut table = toml::Table::new();
            for (key, entry) in entries {
                table.insert(key.clone(), to_toml(entry)?);
            }
            toml::Value::Table(table)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `encoded` read back as the value of `v = ...` in a TOML document.
    fn read_back(encoded: &str) -> toml::Value {
        let doc: toml::Table = toml::from_str(&format!("v = {encoded}\n"))
            .unwrap_or_else(|e| panic!("not valid TOML: {encoded}\n{e}"));
        doc["v"].clone()
    }

    #[test]
    fn strings_numbers_bools_arrays_and_tables_read_back_as_given() {
        let value = json!({
            "a b": [1, "x\"y", true, 1.5],
            "k": {},
            "nested": {"list": [[1, 2], ["a"]], "neg": -7, "big": 1e300},
            "tricky": "back\\slash 'single' \"double\" tab\t bell\u{7} é",
            "lines": "one\ntwo\r\nthree",
            "": "empty key",
        });
        let encoded = toml_value(&value).unwrap();
        assert!(!encoded.contains("\n\n"), "{encoded}");
        let expected: toml::Value = toml::Value::try_from(&value).unwrap();
        assert_eq!(read_back(&encoded), expected, "{encoded}");
    }

    #[test]
    fn scalars_are_written_as_toml_writes_them() {
        assert_eq!(toml_value(&json!("plain")).unwrap(), r#""plain""#);
        assert_eq!(toml_value(&json!(42)).unwrap(), "42");
        assert_eq!(toml_value(&json!(-1.5)).unwrap(), "-1.5");
        assert_eq!(toml_value(&json!(2.0)).unwrap(), "2.0");
        assert_eq!(toml_value(&json!(false)).unwrap(), "false");
        assert_eq!(toml_value(&json!([])).unwrap(), "[]");
        assert_eq!(toml_value(&json!({})).unwrap(), "{}");
        assert_eq!(toml_value(&json!(null)).unwrap(), r#""""#);
        assert_eq!(
            toml_value(&json!({"k": 1, "a b": "x"})).unwrap(),
            r#"{ "a b" = "x", k = 1 }"#
        );
        assert_eq!(
            read_back(&toml_value(&json!("a\nb\\")).unwrap()),
            "a\nb\\".into()
        );
    }

    #[test]
    fn integers_beyond_toml_are_an_error() {
        let e = toml_value(&json!(u64::MAX)).unwrap_err();
        assert!(e.to_string().contains("largest TOML integer"), "{e}");
    }

    #[test]
    fn keys_are_bare_when_they_can_be() {
        assert_eq!(toml_key("web-1_a").unwrap(), "web-1_a");
        for key in ["a b", "", "x.y", "quote\"d", "new\nline", "é"] {
            let encoded = toml_key(key).unwrap();
            let doc: toml::Table = toml::from_str(&format!("{encoded} = 1\n"))
                .unwrap_or_else(|e| panic!("not a valid key: {encoded}\n{e}"));
            assert!(doc.contains_key(key), "{key:?} -> {encoded}");
        }
    }
}
