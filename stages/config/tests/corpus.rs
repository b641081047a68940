//! Every plain `*.clnrm.toml` of the compatibility corpus (the original clnrm's test files,
//! found through `$CLNRM_CORPUS`) has a checked outcome here. Templates (`*.tera`) need the render stage
//! and are checked by the workspace's end-to-end corpus test.

use std::path::Path;

use clnrm_config::{parse_test, Diagnostic, ParseInput, ParsedTest, Severity};

enum Outcome {
    /// Valid, with this many steps, these span expectations the runner cannot evaluate, and
    /// these `[expect.*]` kinds it judges.
    Valid {
        steps: usize,
        unevaluated: &'static [&'static str],
        judged: &'static [&'static str],
    },
    /// Invalid; the first error (in file order) has this key path (`""` for a TOML syntax
    /// error), line, and message fragment; `errors` errors in all.
    Invalid {
        key_path: &'static str,
        line: usize,
        message: &'static str,
        errors: usize,
    },
}
use Outcome::*;

const TABLE: &[(&str, Outcome)] = &[
    (
        "crates/clnrm-core/examples/simple-echo.clnrm.toml",
        // The `alpine` plugin.
        Valid {
            steps: 4,
            unevaluated: &[],
            judged: &[],
        },
    ),
    (
        "examples/multi-service-demo.clnrm.toml",
        // A surrealdb service, then 4 steps that do not say which of the 2 services runs them.
        Invalid {
            key_path: "steps[0].service",
            line: 30,
            message:
                "the test has several services (app_server, database); say which one runs this step",
            errors: 4,
        },
    ),
    (
        "examples/otel-validation/basic-otel-validation.clnrm.toml",
        Valid {
            steps: 5,
            unevaluated: &[],
            judged: &[],
        },
    ),
    (
        "examples/templates/simple-variables.clnrm.toml",
        // Multi-line inline table: not TOML. (Also gets the "looks like a template" hint.)
        Invalid {
            key_path: "",
            line: 17,
            message: "invalid TOML: invalid inline table",
            errors: 1,
        },
    ),
    (
        "examples/volume-mount-demo.clnrm.toml",
        // The `alpine` plugin and a `should_fail` step (volume host paths are the engine's).
        Valid {
            steps: 7,
            unevaluated: &[],
            judged: &[],
        },
    ),
    (
        "tests/basic.clnrm.toml",
        Valid {
            steps: 2,
            unevaluated: &[],
            judged: &[],
        },
    ),
    (
        "tests/determinism_docker_test.clnrm.toml",
        Valid {
            steps: 1,
            unevaluated: &[],
            judged: &[],
        },
    ),
    (
        "tests/fake_green/missing_edges.clnrm.toml",
        Valid {
            steps: 2,
            unevaluated: &[],
            judged: &[],
        },
    ),
    (
        "tests/fake_green_detection/clnrm_otel_full_surface.clnrm.toml",
        // `;` between key/value pairs: not TOML.
        Invalid {
            key_path: "",
            line: 7,
            message: "invalid TOML: expected newline",
            errors: 1,
        },
    ),
    (
        "tests/integration/prd_otel_workflow.clnrm.toml",
        Valid {
            steps: 4,
            unevaluated: &[],
            judged: &["graph", "hermeticity", "span", "status"],
        },
    ),
    (
        "tests/red_team/attack_a_echo.clnrm.toml",
        Valid {
            steps: 1,
            unevaluated: &[],
            judged: &["span"],
        },
    ),
    (
        "tests/red_team/legitimate_self_test.clnrm.toml",
        Valid {
            steps: 1,
            unevaluated: &[],
            judged: &["counts", "graph", "span", "status"],
        },
    ),
    (
        "tests/rosetta-stone/temporal-ordering-rosetta.clnrm.toml",
        Valid {
            steps: 4,
            unevaluated: &[],
            judged: &["otel_validation"],
        },
    ),
    (
        "tests/self-test/inner-test.clnrm.toml",
        Valid {
            steps: 2,
            unevaluated: &[],
            judged: &[],
        },
    ),
    (
        "tests/surrealdb/basic-connection.clnrm.toml",
        // Only `type = "surrealdb"`: read as the plugin.
        Valid {
            steps: 4,
            unevaluated: &[],
            judged: &[],
        },
    ),
];

fn plain_tests(dir: &Path, root: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read corpus dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            plain_tests(&path, root, out);
        } else if path.to_string_lossy().ends_with(".clnrm.toml") {
            let rel = path.strip_prefix(root).expect("under root");
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

fn show(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn corpus_outcomes() {
    let Some(dir) = clnrm_test_support::corpus_dir("config corpus") else {
        return;
    };
    let mut found = Vec::new();
    plain_tests(&dir, &dir, &mut found);
    let listed: Vec<&str> = TABLE.iter().map(|(f, _)| *f).collect();
    assert_eq!(
        found, listed,
        "the table must list exactly the corpus's plain tests, in path order"
    );

    for (file, outcome) in TABLE {
        let text = std::fs::read_to_string(dir.join(file)).expect("read corpus file");
        let input = ParseInput {
            file: file.to_string(),
            text,
            rendered_from_template: false,
            strict: false,
        };
        let result: Result<ParsedTest, Vec<Diagnostic>> = parse_test(&input);
        match (outcome, result) {
            (
                Valid {
                    steps,
                    unevaluated,
                    judged,
                },
                Ok(p),
            ) => {
                assert_eq!(p.config.steps.len(), *steps, "{file}");
                assert_eq!(p.config.unevaluated_expectations, *unevaluated, "{file}");
                let mut kinds: Vec<String> = match &p.config.otel.expect {
                    Some(table) => {
                        table
                            .expectations()
                            .expect("a validated [expect] deserialises");
                        let doc: toml_edit::DocumentMut = table.toml.parse().expect("TOML");
                        doc.iter().map(|(k, _)| k.to_string()).collect()
                    }
                    None => Vec::new(),
                };
                kinds.sort();
                assert_eq!(kinds, *judged, "{file}");
                assert!(p
                    .warnings
                    .iter()
                    .all(|w| w.severity == Severity::Warning && w.file == *file));
            }
            (Valid { .. }, Err(diags)) => panic!("{file} should be valid:\n{}", show(&diags)),
            (Invalid { .. }, Ok(p)) => panic!("{file} should be invalid, parsed as {:?}", p.config),
            (
                Invalid {
                    key_path,
                    line,
                    message,
                    errors,
                },
                Err(diags),
            ) => {
                let errs: Vec<&Diagnostic> = diags.iter().filter(|d| d.is_error()).collect();
                let first = errs[0];
                assert_eq!(first.file, *file);
                assert_eq!(
                    first.key_path.as_deref().unwrap_or(""),
                    *key_path,
                    "{file}:\n{}",
                    show(&diags)
                );
                assert_eq!(
                    first.line_col.map(|l| l.0),
                    Some(*line),
                    "{file}:\n{}",
                    show(&diags)
                );
                assert!(first.line_text.is_some(), "{file}");
                assert!(first.message.contains(message), "{file}: {}", first.message);
                assert_eq!(errs.len(), *errors, "{file}:\n{}", show(&diags));
            }
        }
    }
}

/// Warnings the valid corpus files get, pinned so a change in what counts as known is seen.
#[test]
fn corpus_warnings() {
    let Some(dir) = clnrm_test_support::corpus_dir("config corpus warnings") else {
        return;
    };
    let warn_keys = |file: &str| -> Vec<String> {
        let text = std::fs::read_to_string(dir.join(file)).expect("read");
        let p = parse_test(&ParseInput {
            file: file.into(),
            text,
            rendered_from_template: false,
            strict: false,
        })
        .expect("valid");
        p.warnings
            .iter()
            .map(|w| w.key_path.clone().unwrap_or_default())
            .collect()
    };
    assert_eq!(
        warn_keys("tests/fake_green/missing_edges.clnrm.toml"),
        [
            "test.metadata.hermetic",
            "test.metadata.fake_mode",
            "services.alpine_fake.environment",
            "otel_expectations"
        ]
    );
    // A service declared by the legacy `type` keeps its `args` unrun, as the original did.
    assert_eq!(
        warn_keys("tests/determinism_docker_test.clnrm.toml"),
        ["service.test_container.args"]
    );
    // `artifacts.collect = ["spans:default"]` asks for what clnrm does anyway.
    assert_eq!(
        warn_keys("tests/red_team/attack_a_echo.clnrm.toml"),
        Vec::<String>::new()
    );
    assert_eq!(
        warn_keys("tests/rosetta-stone/temporal-ordering-rosetta.clnrm.toml"),
        ["services.otel_collector.type"]
    );
}
