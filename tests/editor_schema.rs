//! `clnrm schema` as an editor uses it: the printed schema is the parse stage's, and every
//! test that `clnrm validate` accepts (the fixtures, the valid files of the compatibility
//! corpus) passes it, read the way taplo reads TOML. Bad input is checked against it by the
//! config crate's validation tests.

mod common;

use std::path::{Path, PathBuf};

use clnrm_config::{parse_test, toml_as_json, ParseInput};
use common::{clnrm_command, repo, Run, TestProject};
use serde_json::Value;

/// The schema `clnrm schema` prints, compiled by a draft 2020-12 validator.
struct Validator {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl Validator {
    /// `clnrm schema`, or `clnrm --strict schema` under `strict`.
    fn from_cli(strict: bool) -> Validator {
        let mut command = clnrm_command();
        if strict {
            command.arg("--strict");
        }
        let run = Run(command.arg("schema").output().unwrap());
        run.expect_code(0);
        let schema: Value = serde_json::from_str(&run.stdout()).expect("clnrm schema prints JSON");
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        compiler.add_resource("clnrm.schema.json", schema).unwrap();
        let index = compiler
            .compile("clnrm.schema.json", &mut schemas)
            .expect("a valid draft 2020-12 schema");
        Validator { schemas, index }
    }

    /// `Err` with the validator's complaints.
    fn check(&self, toml: &str) -> Result<(), String> {
        let json = toml_as_json(toml).map_err(|e| e.to_string())?;
        self.schemas
            .validate(&json, self.index)
            .map_err(|e| format!("{e:#}"))
    }
}

#[test]
fn clnrm_schema_prints_the_parse_stages_schema() {
    for (args, strict) in [
        (&["schema"][..], false),
        (&["--strict", "schema"][..], true),
    ] {
        let run = Run(clnrm_command().args(args).output().unwrap());
        run.expect_code(0);
        let printed: Value = serde_json::from_str(&run.stdout()).unwrap();
        assert_eq!(printed, clnrm_config::test_file_schema(strict));
        assert_eq!(
            printed["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(printed["title"], "clnrm test");
    }
}

#[test]
fn every_fixture_test_validates_against_the_schema() {
    // The fixtures pass `--strict`, so they pass both schemas.
    let validators = [Validator::from_cli(false), Validator::from_cli(true)];
    let fixtures = repo().join("fixtures");
    let tests = test_files(&fixtures);
    assert!(tests.len() >= 6, "fixtures found: {tests:?}");
    let mut failures = Vec::new();
    for path in &tests {
        let toml = rendered(path, &repo());
        let parsed = parse_test(&input(path, &toml, true));
        assert!(parsed.is_ok(), "{}: {parsed:?}", path.display());
        for validator in &validators {
            if let Err(complaint) = validator.check(&toml) {
                failures.push(format!("{}: {complaint}", path.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_valid_corpus_test_validates_against_the_schema() {
    let Some(corpus) = clnrm_test_support::corpus_dir("every valid corpus test against the schema")
    else {
        return;
    };
    let validators = [Validator::from_cli(false), Validator::from_cli(true)];
    let outside = tempfile::tempdir().unwrap();
    let (mut valid, mut strictly_valid, mut failures) = (0, 0, Vec::new());
    for path in test_files(&corpus) {
        // A test `clnrm validate` accepts: it renders, and its TOML parses and validates.
        let run = Run(clnrm_command()
            .current_dir(outside.path())
            .env("HOME", "/home/clnrm")
            .args([
                "render",
                "--seed",
                "42",
                "--freeze-clock",
                "2025-01-01T00:00:00Z",
            ])
            .arg(&path)
            .output()
            .unwrap());
        if run.code() != 0 {
            continue;
        }
        let toml = run.stdout();
        // Valid, and valid under `--strict`: each against its schema.
        for (strict, validator) in [false, true].into_iter().zip(&validators) {
            if parse_test(&input(&path, &toml, strict)).is_err() {
                continue;
            }
            if strict {
                strictly_valid += 1;
            } else {
                valid += 1;
            }
            if let Err(complaint) = validator.check(&toml) {
                failures.push(format!(
                    "{} (strict: {strict}): {complaint}",
                    path.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(valid >= 9, "only {valid} valid corpus tests found");
    eprintln!(
        "corpus: {valid} valid tests pass the schema, {strictly_valid} valid under --strict \
         pass the --strict schema"
    );
}

/// The invalid files of tests/validate.rs, by what a schema can do with them.
#[test]
fn the_cli_bad_inputs_a_schema_can_express_are_rejected() {
    let validator = Validator::from_cli(false);
    // An empty test: no `[meta]`, no steps.
    assert!(validator.check("").is_err());
    assert!(validator.check("# only a comment\n").is_err());
    // Not TOML (a bad value, template syntax): a schema never sees it.
    for text in [
        "[meta]\nname = \"x\"\nversion = 1.0.0\n",
        "[meta]\nname = {{ svc }}\n",
    ] {
        assert!(toml_as_json(text).is_err(), "{text}");
    }
    // An undeclared service and a regex that does not compile: only the parser can tell.
    let semantic = "[meta]\nname = \"x\"\nversion = \"1\"\n[service.a]\nimage = \"i\"\n\
                    [[steps]]\nname = \"s\"\nservice = \"nope\"\ncommand = [\"true\"]\n\
                    expected_output_regex = \"(\"\n";
    assert_eq!(validator.check(semantic), Ok(()));
}

#[test]
fn a_test_that_points_its_editor_at_the_schema_stays_a_valid_test() {
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    let schema = project.clnrm(&["schema"]);
    schema.expect_code(0);
    project.write("clnrm.schema.json", &schema.stdout());
    project.write(
        "tests/hello.clnrm.toml",
        "#:schema ../clnrm.schema.json\n\n[meta]\nname = \"hello\"\nversion = \"1.0\"\n\n\
         [[steps]]\nname = \"hi\"\ncommand = [\"echo\", \"hi\"]\n",
    );
    project
        .clnrm(&["validate"])
        .expect_code(0)
        .expect_contains("1 valid, 0 invalid");
    // The directive is a comment to clnrm, and `fmt` keeps it on the first line.
    project.clnrm(&["fmt", "--check"]).expect_code(0);
}

/// Every test file under `dir` (plain and template), libraries left out.
fn test_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                pending.push(path);
            } else if !name.starts_with('_')
                && (name.ends_with(".clnrm.toml") || name.ends_with(".toml.tera"))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The test's TOML: the file itself, or a template's output of `clnrm render`.
fn rendered(path: &Path, cwd: &Path) -> String {
    if !path.to_string_lossy().ends_with(".tera") {
        return std::fs::read_to_string(path).unwrap();
    }
    let run = Run(clnrm_command()
        .current_dir(cwd)
        .arg("render")
        .arg(path)
        .output()
        .unwrap());
    run.expect_code(0);
    run.stdout()
}

fn input(path: &Path, toml: &str, strict: bool) -> ParseInput {
    ParseInput {
        file: path.display().to_string(),
        text: toml.to_string(),
        rendered_from_template: path.to_string_lossy().ends_with(".tera"),
        strict,
    }
}
