//! `clnrm fmt`'s layout, as a user sees it on a messy file: keys in docs/reference.md §4 order, one blank
//! line between tables, comments travelling with what they describe, and a second run that
//! changes nothing.

mod common;

use clnrm_config::format_test;

const MESSY: &str = r#"#:schema ./clnrm.schema.json

# The steps come first in this file.
[[steps]]
expected_output_regex = "hi"   # stdout
  command = ["echo", "hi"]
name="greet"


[meta]
version="1.0"
# Shown in reports.
name = "messy"
[service.web]
args = ["httpd", "-f"]
image = "busybox"
[[scenario]]
run = "true"
name = "check"
# trailing words
"#;

const TIDY: &str = r#"#:schema ./clnrm.schema.json

[meta]
# Shown in reports.
name = "messy"
version = "1.0"

[service.web]
image = "busybox"
args = ["httpd", "-f"]

# The steps come first in this file.
[[steps]]
name = "greet"
command = ["echo", "hi"]
expected_output_regex = "hi" # stdout

[[scenario]]
name = "check"
run = "true"

# trailing words
"#;

fn format(text: &str) -> String {
    format_test("tests/t.clnrm.toml", text).expect("TOML")
}

#[test]
fn a_messy_file_gets_the_canonical_layout() {
    assert_eq!(format(MESSY), TIDY);
}

#[test]
fn formatting_twice_changes_nothing() {
    assert_eq!(format(TIDY), TIDY);
    assert_eq!(format(&format(MESSY)), format(MESSY));
}

#[test]
fn the_formatted_file_is_the_same_test() {
    let before = common::ok(MESSY);
    let after = common::ok(&format(MESSY));
    assert_eq!(before.config, after.config);
}

#[test]
fn a_schema_directive_stays_on_the_first_line() {
    let text = "#:schema ./clnrm.schema.json\n# the step\n[[steps]]\nname = \"s\"\n\
                command = [\"true\"]\n\n[meta]\nname = \"t\"\nversion = \"1\"\n";
    assert_eq!(
        format(text),
        "#:schema ./clnrm.schema.json\n\n[meta]\nname = \"t\"\nversion = \"1\"\n\n\
         # the step\n[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n"
    );
}

#[test]
fn unknown_keys_and_free_form_tables_keep_their_order() {
    let text = "[meta]\nzeta = 1\nname = \"t\"\nalpha = 2\nversion = \"1\"\n\n\
                [vars]\nz = \"1\"\na = \"2\"\n";
    assert_eq!(
        format(text),
        "[meta]\nname = \"t\"\nversion = \"1\"\nzeta = 1\nalpha = 2\n\n\
         [vars]\nz = \"1\"\na = \"2\"\n"
    );
}

#[test]
fn values_are_left_as_written() {
    let text = "[meta]\nname = 'single quoted'\nversion = \"1\"\n\n[[steps]]\nname = \"s\"\n\
                command = [\n  \"echo\", # the program\n  \"hi\",\n]\n\
                env = { B = \"2\",  A = \"1\" }\n";
    assert_eq!(format(text), text);
}

#[test]
fn a_file_of_comments_only_keeps_them() {
    assert_eq!(format(""), "");
    assert_eq!(format("\n  # one\n\n# two\n"), "# one\n# two\n");
}

#[test]
fn text_that_is_not_toml_is_an_error_naming_file_and_line() {
    let errors = format_test("tests/bad.clnrm.toml", "[meta]\nname = \n").unwrap_err();
    assert_eq!(errors[0].file, "tests/bad.clnrm.toml");
    assert_eq!(errors[0].line_col.map(|(line, _)| line), Some(2));
}

mod any_layout {
    //! Random files built from the format's own tables and keys, in random order, with
    //! comments, blank lines and indentation anywhere: `fmt` is idempotent, keeps every
    //! comment, and the parser's verdict on the file does not change.

    use clnrm_config::{format_test, Diagnostic, TestConfig};
    use proptest::prelude::*;

    use super::common::parse;

    fn table() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "[meta]",
            "[test.metadata]",
            "[service.web]",
            "[services.db]",
            "[service.web.health_check]",
            "[[steps]]",
            "[[scenario]]",
            "[[scenario.steps]]",
            "[limits]",
            "[determinism]",
            "[vars]",
        ])
    }

    fn key() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "name",
            "version",
            "image",
            "args",
            "service",
            "command",
            "run",
            "cmd",
            "retries",
            "expected_exit_code",
            "timeout",
            "env",
            "seed",
            "memory_mb",
            "zz",
        ])
    }

    fn value() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "\"t\"",
            "\"1.0\"",
            "[\"true\"]",
            "3",
            "\"10s\"",
            "{ A = \"1\" }",
            "true",
            "[\n  \"echo\", # inside\n  \"hi\",\n]",
        ])
    }

    /// Text above a line: nothing, blank lines, or a comment.
    fn above() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("\n\n".to_string()),
            "[a-z ]{0,10}".prop_map(|c| format!("# {c}\n")),
            "[a-z]{1,5}".prop_map(|c| format!("\n#{c}\n\n")),
        ]
    }

    fn entry() -> impl Strategy<Value = String> {
        (
            above(),
            prop::sample::select(vec!["", "  "]),
            key(),
            value(),
            any::<bool>(),
        )
            .prop_map(|(above, indent, key, value, trailing)| {
                let comment = if trailing { "  # why" } else { "" };
                format!("{above}{indent}{key}={value}{comment}\n")
            })
    }

    fn document() -> impl Strategy<Value = String> {
        let section = (above(), table(), prop::collection::vec(entry(), 0..4));
        (
            prop::collection::vec(entry(), 0..2),
            prop::collection::vec(section, 0..6),
            above(),
        )
            .prop_map(|(root, sections, end)| {
                let mut text = root.concat();
                for (above, header, entries) in sections {
                    text.push_str(&format!("{above}{header}\n{}", entries.concat()));
                }
                text.push_str(&end);
                text
            })
    }

    /// Every comment, sorted (no generated value holds a `#` outside a comment).
    fn comments(text: &str) -> Vec<String> {
        let mut found: Vec<String> = text
            .lines()
            .filter_map(|line| line.find('#').map(|at| line[at..].trim().to_string()))
            .collect();
        found.sort();
        found
    }

    /// A warning's key path and message.
    type Warning = (Option<String>, String);

    /// The parser's verdict without positions: the test and its warnings (key path and
    /// message), or only that it is invalid. (Which errors an invalid file gets may depend on
    /// the order of its tables: with both `[meta]` and `[test.metadata]`, the second is the
    /// one reported.)
    fn verdict(text: &str) -> Option<(TestConfig, Vec<Warning>)> {
        let parsed = parse(text).ok()?;
        let mut warnings: Vec<_> = parsed
            .warnings
            .into_iter()
            .map(|d: Diagnostic| (d.key_path, d.message))
            .collect();
        warnings.sort();
        Some((parsed.config, warnings))
    }

    /// A valid test: these tables, each with its keys in a random order and a random text
    /// above it, the tables in a random order too.
    fn valid_test() -> impl Strategy<Value = String> {
        let tables: Vec<(&str, Vec<&str>)> = vec![
            (
                "[meta]",
                vec!["name = \"t\"", "version = \"1.0\"", "description = \"d\""],
            ),
            (
                "[service.web]",
                vec![
                    "image = \"busybox\"",
                    "env = { A = \"1\" }",
                    "ports = [8080]",
                ],
            ),
            (
                "[service.db]",
                vec!["image = \"busybox\"", "args = [\"sleep\", \"9\"]"],
            ),
            (
                "[[steps]]",
                vec![
                    "name = \"one\"",
                    "service = \"web\"",
                    "command = [\"true\"]",
                    "timeout = \"5s\"",
                ],
            ),
            (
                "[[steps]]",
                vec![
                    "name = \"two\"",
                    "service = \"db\"",
                    "run = \"echo 2\"",
                    "expected_output_regex = \"2\"",
                ],
            ),
            (
                "[[scenario]]",
                vec![
                    "name = \"sc\"",
                    "service = \"web\"",
                    "run = \"true\"",
                    "timeout_ms = 100",
                ],
            ),
            ("[limits]", vec!["memory_mb = 64", "cpu_millicores = 500"]),
            (
                "[determinism]",
                vec!["seed = 7", "freeze_clock = \"2025-01-01T00:00:00Z\""],
            ),
        ];
        let sections: Vec<_> = tables
            .into_iter()
            .map(|(header, keys)| (above(), Just(header), Just(keys).prop_shuffle()))
            .collect();
        sections.prop_shuffle().prop_map(|sections| {
            sections
                .into_iter()
                .map(|(above, header, keys)| format!("{above}{header}\n{}\n", keys.join("\n")))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn a_valid_test_in_any_order_stays_the_same_test(text in valid_test()) {
            let before = verdict(&text);
            prop_assert!(before.is_some(), "{}", text);
            let formatted = format_test("t.clnrm.toml", &text).unwrap();
            prop_assert_eq!(before, verdict(&formatted));
            prop_assert_eq!(&format_test("t.clnrm.toml", &formatted).unwrap(), &formatted);
            prop_assert_eq!(comments(&text), comments(&formatted));
        }

        #[test]
        fn fmt_is_idempotent_keeps_comments_and_the_verdict(text in document()) {
            match format_test("t.clnrm.toml", &text) {
                Ok(formatted) => {
                    prop_assert_eq!(&format_test("t.clnrm.toml", &formatted).unwrap(), &formatted);
                    prop_assert_eq!(comments(&text), comments(&formatted));
                    prop_assert_eq!(verdict(&text), verdict(&formatted));
                }
                // Duplicate keys or tables: not TOML, for the parser too.
                Err(_) => prop_assert!(parse(&text).is_err()),
            }
        }
    }
}
