// Shared helpers for the integration tests (each test file includes it with `mod common;`).
#![allow(dead_code)]

use std::sync::OnceLock;

use clnrm_config::{
    parse_test, test_file_schema, toml_as_json, Diagnostic, ParseInput, ParsedTest, Severity,
};

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

/// The errors of an invalid test. Each bad input is also shown to the JSON Schema: when the
/// schema accepts it, every error must be one a schema cannot express.
pub fn errors(text: &str) -> Vec<Diagnostic> {
    let errors: Vec<Diagnostic> = match parse(text) {
        Ok(p) => panic!("expected errors, got a valid test: {:?}", p.config),
        Err(diags) => {
            assert!(diags.iter().any(|d| d.severity == Severity::Error));
            diags
                .into_iter()
                .filter(|d| d.severity == Severity::Error)
                .collect()
        }
    };
    if schema_verdict(text, false) == Some(Ok(())) {
        for error in &errors {
            assert!(
                beyond_schema(error),
                "the schema accepts a test with an error it could express: {error}\n{text}"
            );
        }
    }
    errors
}

/// Errors no JSON Schema can express: they relate one key to another part of the file, or
/// need Rust's regex parser.
const BEYOND_SCHEMA: &[&str] = &[
    "is not declared",
    "duplicate step name",
    "say which one runs this step",
    "is declared twice",
    "invalid regex",
    "invalid JSONPath",
    "captures`",
    "${captures.",
    "is already defined by step",
    "the step has both `wait_until` and `retries`",
    "has both `json` and `regex`",
    "says nowhere to take its value from",
    "an `expected_json` entry has one of",
    "says nothing about the nodes",
    "has no `path`",
    "has no `timeout`",
    "has no `count`",
    // A duration pattern cannot say "not zero".
    "a whole-test timeout must be greater than 0",
];

fn beyond_schema(error: &Diagnostic) -> bool {
    BEYOND_SCHEMA.iter().any(|m| error.message.contains(m))
}

/// The verdict of the JSON Schema (the `--strict` one under `strict`) on `text`: `Err` with
/// its complaints, or `None` when the text is not TOML (a schema never sees it).
pub fn schema_verdict(text: &str, strict: bool) -> Option<Result<(), String>> {
    static SCHEMAS: OnceLock<[(boon::Schemas, boon::SchemaIndex); 2]> = OnceLock::new();
    let compiled = SCHEMAS.get_or_init(|| [compile(false), compile(true)]);
    let (schemas, index) = &compiled[usize::from(strict)];
    let json = toml_as_json(text).ok()?;
    Some(
        schemas
            .validate(&json, *index)
            .map_err(|e| format!("{e:#}")),
    )
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

fn compile(strict: bool) -> (boon::Schemas, boon::SchemaIndex) {
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource("clnrm.schema.json", test_file_schema(strict))
        .expect("the schema is JSON");
    let index = compiler
        .compile("clnrm.schema.json", &mut schemas)
        .expect("the schema is a valid draft 2020-12 schema");
    (schemas, index)
}
