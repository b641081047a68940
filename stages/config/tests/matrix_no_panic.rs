//! `[matrix]` is read from a template's raw text (before rendering): whatever that text is,
//! reading it never panics, an error is located on the file's own line, and every
//! combination is distinct.

use std::collections::BTreeSet;

use clnrm_config::read_matrix;
use proptest::prelude::*;

fn line() -> impl Strategy<Value = String> {
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn reading_a_matrix_never_panics(lines in prop::collection::vec(line(), 0..20)) {
        let text = lines.join("\n");
        match read_matrix("t.clnrm.toml.tera", &text) {
            Ok(None) => {}
            Ok(Some(instances)) => {
                prop_assert!(!instances.is_empty());
                let labels: BTreeSet<String> = instances.iter().map(|i| i.label()).collect();
                prop_assert_eq!(labels.len(), instances.len());
            }
            Err(diags) => {
                prop_assert!(diags.iter().any(|d| d.is_error()));
                for d in &diags {
                    if let (Some((line, _)), Some(shown)) = (d.line_col, &d.line_text) {
                        let actual = text.lines().nth(line - 1).unwrap_or("");
                        prop_assert_eq!(actual.trim_end_matches('\r'), shown.as_str());
                    }
                    let _ = d.to_string();
                }
            }
        }
    }
}
