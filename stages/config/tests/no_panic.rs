//! Arbitrary input never panics the parser: random strings, and random TOML-ish documents
//! built from the keys the parser knows (so the validation paths are reached, not just the
//! TOML syntax check), and reading a template's `[matrix]` from its raw text never panics.

use std::collections::BTreeSet;

use clnrm_config::{parse_project, parse_test, read_matrix, Diagnostic, ParseInput};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

fn input(text: String, rendered: bool, strict: bool) -> ParseInput {
    ParseInput {
        file: "p.clnrm.toml".into(),
        text,
        rendered_from_template: rendered,
        strict,
    }
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "name",
        "version",
        "service",
        "command",
        "run",
        "image",
        "plugin",
        "type",
        "ports",
        "env",
        "volumes",
        "health_check",
        "cmd",
        "interval",
        "timeout",
        "timeout_ms",
        "retries",
        "steps",
        "expected_output_regex",
        "expected_exit_code",
        "seed",
        "freeze_clock",
        "build",
        "context",
        "host_path",
        "container_path",
        "cpu_millicores",
        "sample_ratio",
        "expect_success",
        "zz",
    ])
    .prop_map(str::to_string)
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        "[a-z0-9 ()*{}\\[\\]\\\\.+?|^$]{0,12}".prop_map(|s| format!("{s:?}")),
        Just("true".to_string()),
        Just("1.5".to_string()),
        Just("2025-01-01T00:00:00Z".to_string()),
        Just("\"10s\"".to_string()),
        Just("[\"sh\", \"-c\", \"true\"]".to_string()),
        Just("[8080, 0, 70000]".to_string()),
        Just("{ cmd = \"x\", interval = \"1x\" }".to_string()),
        Just("[{ host_path = \"a\", container_path = \"b\" }, \"x:y:ro\"]".to_string()),
        Just("{}".to_string()),
        Just("[]".to_string()),
    ]
}

fn header() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "[meta]",
        "[test.metadata]",
        "[[steps]]",
        "[[scenario]]",
        "[[scenario.steps]]",
        "[service.web]",
        "[services.db]",
        "[service.web.env]",
        "[[service.web.volumes]]",
        "[determinism]",
        "[limits]",
        "[otel]",
        "[[expect.span]]",
        "[otel_validation]",
        "[vars]",
        "[matrix]",
        "[report]",
        "[assertions]",
        "[steps.env]",
    ])
    .prop_map(str::to_string)
}

fn document() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        header(),
        (key(), value()).prop_map(|(k, v)| format!("{k} = {v}")),
        Just("{{ oops }}".to_string()),
        "[ -~]{0,20}",
    ];
    prop::collection::vec(line, 0..30).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_do_not_panic(text in any::<String>(), rendered: bool, strict: bool) {
        let result = parse_test(&input(text.clone(), rendered, strict));
        if let Err(diags) = result {
            prop_assert!(diags.iter().any(|d| d.is_error()));
            for d in &diags {
                let _ = d.to_string();
            }
        }
        let _ = parse_project("cleanroom.toml", &text, strict);
    }

    #[test]
    fn toml_ish_documents_do_not_panic(text in document(), strict: bool) {
        match parse_test(&input(text.clone(), false, strict)) {
            Ok(p) => {
                prop_assert!(!p.config.name.is_empty());
                prop_assert!(!p.config.steps.is_empty());
                prop_assert!(p.warnings.iter().all(|w| !w.is_error()));
            }
            Err(diags) => errors_on_their_lines(&text, &diags)?,
        }
        let _ = parse_project("cleanroom.toml", &text, strict);
    }

    /// `[matrix]` is read from a template's raw text, before rendering.
    #[test]
    fn reading_a_matrix_never_panics(lines in prop::collection::vec(matrix_line(), 0..20)) {
        let text = lines.join("\n");
        match read_matrix("t.clnrm.toml.tera", &text) {
            Ok(None) => {}
            Ok(Some(instances)) => {
                prop_assert!(!instances.is_empty());
                let labels: BTreeSet<String> = instances.iter().map(|i| i.label()).collect();
                prop_assert_eq!(labels.len(), instances.len());
            }
            Err(diags) => errors_on_their_lines(&text, &diags)?,
        }
    }
}

/// At least one error, and every located diagnostic's line text is the text's line.
fn errors_on_their_lines(text: &str, diags: &[Diagnostic]) -> Result<(), TestCaseError> {
    prop_assert!(diags.iter().any(|d| d.is_error()));
    for d in diags {
        if let (Some((line, _)), Some(shown)) = (d.line_col, &d.line_text) {
            let actual = text.lines().nth(line - 1).unwrap_or("");
            prop_assert_eq!(actual.trim_end_matches('\r'), shown.as_str());
        }
        let _ = d.to_string();
    }
    Ok(())
}

fn matrix_line() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "[matrix]",
            "[[matrix.exclude]]",
            "[meta]",
            "[[steps]]",
            "exclude = [{ os = \"a\" }]",
            "exclude = [{ ver = 1, os = \"b\" }, { zz = 1 }]",
            "exclude = \"a\"",
            "os = [\"a\", \"b\"]",
            "os = [\"a\", \"a\"]",
            "ver = [1, 2, true]",
            "ver = []",
            "ver = [1.5]",
            "os = \"{{ x }}\"",
            "os = [",
            "  \"c\",",
            "]",
            "  [\"nested\"]",
            "{% if x %}",
            "name = \"x\"",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,16}",
    ]
}
