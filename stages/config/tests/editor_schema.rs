//! The JSON Schema an editor checks tests with (`clnrm schema`) cannot drift from the parser:
//! it has exactly the keys of `clnrm_config::keys`, the parser reads exactly those, and every
//! key tells the editor what it is and gives an example. (Its verdicts on bad input are
//! checked by every validation test, through `common::errors`.)

mod common;

use std::collections::{BTreeMap, BTreeSet};

use clnrm_config::keys::{table_keys, TEST_FILE_TABLES};
use clnrm_config::{parse_duration_ms, test_file_schema, Diagnostic, DURATION_PATTERN};
use serde_json::Value;

use common::{parse, schema_verdict, HEAD};

/// Per table pattern: its keys, and those marked deprecated.
type KeyMap = BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>;

#[test]
fn the_schema_has_exactly_the_keys_the_parser_knows() {
    let schema = test_file_schema(true);
    let mut from_schema = KeyMap::new();
    collect_tables(&schema, &schema, "", &mut from_schema);
    // The schema without `--strict` allows unknown keys, and knows the same ones.
    let lenient = test_file_schema(false);
    let mut from_lenient = KeyMap::new();
    collect_tables(&lenient, &lenient, "", &mut from_lenient);
    assert_eq!(from_schema, from_lenient);

    let mut from_parser = KeyMap::new();
    for table in TEST_FILE_TABLES {
        let keys = table.keys.iter().map(|k| k.to_string()).collect();
        let ignored = table.ignored.iter().map(|k| k.to_string()).collect();
        from_parser.insert(table.table.to_string(), (keys, ignored));
    }
    // `[services.X]` is the legacy spelling of `[service.X]`: the same keys.
    for (pattern, keys) in from_parser.clone() {
        if let Some(rest) = pattern.strip_prefix("service.*") {
            from_parser.insert(format!("services.*{rest}"), keys);
        }
    }
    assert_eq!(from_schema, from_parser);
}

#[test]
fn the_parser_reads_every_listed_key_and_no_other() {
    for table in TEST_FILE_TABLES {
        for key in table.keys {
            let diagnostics = diagnostics(&file_with_key(table.table, key));
            assert!(
                !diagnostics
                    .iter()
                    .any(|d| d.message.starts_with("invalid TOML")),
                "{diagnostics:?}"
            );
            let unknown = format!("unknown key `{key}`");
            assert!(
                !diagnostics.iter().any(|d| d.message == unknown),
                "the parser does not know `{key}` in `{}`",
                table.table
            );
        }
        let diagnostics = diagnostics(&file_with_key(table.table, "zz_not_a_key"));
        assert!(
            diagnostics
                .iter()
                .any(|d| d.message == "unknown key `zz_not_a_key`"),
            "the parser takes any key in `{}`, but keys.rs lists them",
            table.table
        );
    }
}

#[test]
fn every_key_has_a_description_and_an_example() {
    let schema = test_file_schema(true);
    let mut missing = Vec::new();
    let mut tables = KeyMap::new();
    collect_tables(&schema, &schema, "", &mut tables);
    for pattern in tables.keys() {
        let object = object_at(&schema, pattern);
        for (key, property) in object["properties"].as_object().unwrap() {
            let described = property.get("description").and_then(Value::as_str);
            let examples = property.get("examples").and_then(Value::as_array);
            if described.is_none_or(str::is_empty) || examples.is_none_or(Vec::is_empty) {
                missing.push(format!("{pattern}.{key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "keys without a description or example: {missing:?}"
    );
}

#[test]
fn the_schema_is_draft_2020_12_and_accepts_both_formats() {
    let schema = test_file_schema(true);
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let v1 = format!(
        "{HEAD}[service.web]\nimage = \"alpine:3.20\"\n\
         [[scenario]]\nname = \"check\"\nrun = \"echo ok\"\n"
    );
    let legacy = "[test.metadata]\nname = \"t\"\n[services.box]\nimage = \"busybox\"\n\
                  [[steps]]\nname = \"s\"\ncommand = [\"true\"]\n";
    for text in [v1.as_str(), legacy] {
        assert_eq!(schema_verdict(text, true), Some(Ok(())), "{text}");
        assert_eq!(schema_verdict(text, false), Some(Ok(())), "{text}");
        assert!(parse(text).is_ok(), "{text}");
    }
}

#[test]
fn an_editor_sees_the_mistakes_a_schema_can_see() {
    let step = "[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n";
    let rejected = [
        // A typo in a key, which leaves the step without a command.
        format!("{HEAD}[[steps]]\nname = \"s\"\ncomand = [\"true\"]\n"),
        // Wrong types and values.
        format!("[meta]\nname = \"t\"\nversion = 1.0\n{step}"),
        format!("{HEAD}[service.web]\nimage = \"i\"\nports = [0]\n{step}"),
        format!("{HEAD}{step}timeout = \"10\"\n"),
        format!("{HEAD}[service.web]\nimage = \"i\"\nvolumes = [\"data:relative\"]\n{step}"),
        // Both `image` and `build`; a plugin that is not supported.
        format!("{HEAD}[service.web]\nimage = \"i\"\nbuild = \"dir\"\n{step}"),
        format!("{HEAD}[service.web]\nplugin = \"redis\"\nimage = \"i\"\n{step}"),
        // A step with both `command` and `run`; a scenario check without its `run`.
        format!("{HEAD}{step}run = \"true\"\n"),
        format!("{HEAD}[[scenario]]\nname = \"a\"\nexpected_exit_code = 1\nsteps = []\n"),
    ];
    for text in &rejected {
        assert!(parse(text).is_err(), "the parser accepts:\n{text}");
        for strict in [false, true] {
            assert!(
                matches!(schema_verdict(text, strict), Some(Err(_))),
                "the schema (strict: {strict}) accepts:\n{text}"
            );
        }
    }
}

#[test]
fn an_unknown_key_is_rejected_by_the_strict_schema_only() {
    let text = format!("{HEAD}[[steps]]\nname = \"s\"\ncommand = [\"true\"]\nretry = 3\n");
    // `clnrm validate` warns, `clnrm validate --strict` fails; the two schemas agree.
    assert_eq!(parse(&text).unwrap().warnings.len(), 1);
    assert_eq!(schema_verdict(&text, false), Some(Ok(())));
    let complaint = schema_verdict(&text, true).unwrap().unwrap_err();
    assert!(complaint.contains("retry"), "{complaint}");
}

/// Every diagnostic of `text`, valid or not.
fn diagnostics(text: &str) -> Vec<Diagnostic> {
    match parse(text) {
        Ok(parsed) => parsed.warnings,
        Err(diagnostics) => diagnostics,
    }
}

/// A test file with `key = 1` in a table matching `pattern` (after the headers that open it).
fn file_with_key(pattern: &str, key: &str) -> String {
    let mut text = String::new();
    if !pattern.is_empty() {
        let segments: Vec<&str> = pattern.split('.').collect();
        for (i, segment) in segments.iter().enumerate() {
            let path: Vec<&str> = segments[..=i]
                .iter()
                .map(|s| s.trim_end_matches("[]"))
                .map(|s| if s == "*" { "a" } else { s })
                .collect();
            let path = path.join(".");
            let last = i == segments.len() - 1;
            if segment.ends_with("[]") {
                text.push_str(&format!("[[{path}]]\n"));
                if !last {
                    text.push_str("name = \"n\"\n");
                }
            } else if last {
                text.push_str(&format!("[{path}]\n"));
            }
        }
    }
    text.push_str(&format!("{key} = 1\n"));
    text
}

/// Collects every table of the schema that has fixed keys, by pattern (`*` for a map's
/// entries, `[]` for an array's elements).
fn collect_tables(root: &Value, node: &Value, pattern: &str, out: &mut KeyMap) {
    let node = resolve(root, node);
    for alternatives in ["anyOf", "oneOf"] {
        for alternative in node[alternatives].as_array().into_iter().flatten() {
            collect_tables(root, alternative, pattern, out);
        }
    }
    if let Some(properties) = node["properties"].as_object() {
        let mut keys = BTreeSet::new();
        let mut deprecated = BTreeSet::new();
        for (key, property) in properties {
            keys.insert(key.clone());
            if property["deprecated"] == true {
                deprecated.insert(key.clone());
            }
            let child = if pattern.is_empty() {
                key.clone()
            } else {
                format!("{pattern}.{key}")
            };
            collect_tables(root, property, &child, out);
        }
        out.insert(pattern.to_string(), (keys, deprecated));
    }
    if node["additionalProperties"].is_object() {
        collect_tables(
            root,
            &node["additionalProperties"],
            &format!("{pattern}.*"),
            out,
        );
    }
    if node["items"].is_object() {
        collect_tables(root, &node["items"], &format!("{pattern}[]"), out);
    }
}

/// The object schema with fixed keys at `pattern`.
fn object_at<'s>(root: &'s Value, pattern: &str) -> &'s Value {
    let mut node = root;
    if !pattern.is_empty() {
        for segment in pattern.split('.') {
            let (name, element) = match segment.strip_suffix("[]") {
                Some(name) => (name, true),
                None => (segment, false),
            };
            let object = with_properties(root, node);
            node = if name == "*" {
                &object["additionalProperties"]
            } else {
                &object["properties"][name]
            };
            if element {
                node = &resolve(root, node)["items"];
            }
        }
    }
    with_properties(root, node)
}

/// `node`, or the alternative of it, that has `properties` or `additionalProperties`.
fn with_properties<'s>(root: &'s Value, node: &'s Value) -> &'s Value {
    let node = resolve(root, node);
    if node.get("properties").is_some() || node["additionalProperties"].is_object() {
        return node;
    }
    node["anyOf"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|alternative| resolve(root, alternative))
        .find(|alternative| alternative.get("properties").is_some())
        .unwrap_or(node)
}

/// Follows a `$ref` into `$defs`.
fn resolve<'s>(root: &'s Value, node: &'s Value) -> &'s Value {
    match node["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/$defs/");
            &root["$defs"][name]
        }
        None => node,
    }
}

#[test]
fn services_spelled_either_way_have_the_same_keys() {
    assert_eq!(table_keys("services.*"), table_keys("service.*"));
    assert_eq!(
        table_keys("services.*.health_check"),
        table_keys("service.*.health_check")
    );
}

#[test]
fn the_schemas_durations_are_the_parsers() {
    let pattern = regex::Regex::new(DURATION_PATTERN).unwrap();
    let spellings = [
        "200ms", "10s", "1m", "2h", "30d", "1m30s", "1.5s", " 0s ", "5sec", "2mins", "", "10", "s",
        "10x", "1.2.3s", "-1s", "10 s", "1m 30s", "1w", "2hours", "1M", ".5s", "5.s",
    ];
    for spelling in spellings {
        assert_eq!(
            pattern.is_match(spelling),
            parse_duration_ms(spelling).is_ok(),
            "{spelling:?}"
        );
    }
}
