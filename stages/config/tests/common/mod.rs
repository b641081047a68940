// Shared helpers for the integration tests (each test file includes it with `mod common;`).
#![allow(dead_code)]

use clnrm_config::{parse_test, Diagnostic, ParseInput, ParsedTest, Severity};

pub const FILE: &str = "tests/t.clnrm.toml";

pub fn input(text: &str) -> ParseInput {
    ParseInput {
        file: FILE.to_string(),
        text: text.to_string(),
        rendered_from_template: false,
        strict: false,
    }
}

pub fn parse(text: &str) -> Result<ParsedTest, Vec<Diagnostic>> {
    parse_test(&input(text))
}

pub fn ok(text: &str) -> ParsedTest {
    match parse(text) {
        Ok(p) => p,
        Err(diags) => panic!(
            "expected a valid test, got:\n{}",
            diags
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

pub fn errors(text: &str) -> Vec<Diagnostic> {
    match parse(text) {
        Ok(p) => panic!("expected errors, got a valid test: {:?}", p.config),
        Err(diags) => {
            assert!(diags.iter().any(|d| d.severity == Severity::Error));
            diags
                .into_iter()
                .filter(|d| d.severity == Severity::Error)
                .collect()
        }
    }
}

/// The only error of `text`.
pub fn error(text: &str) -> Diagnostic {
    let mut errs = errors(text);
    assert_eq!(
        errs.len(),
        1,
        "expected exactly one error, got:\n{}",
        errs.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    errs.remove(0)
}

pub fn key(d: &Diagnostic) -> &str {
    d.key_path.as_deref().unwrap_or("")
}

/// A minimal valid v1.0 test to extend.
pub const HEAD: &str = "[meta]\nname = \"t\"\nversion = \"1.0\"\n";
