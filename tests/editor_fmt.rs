//! `clnrm fmt` as a user meets it: on every fixture it is idempotent, keeps every comment and
//! leaves the test the same (the same plan, byte for byte); `--check` lists what would
//! change and exits 1; templates are left alone with a note.

mod common;

use std::path::{Path, PathBuf};

use clnrm_config::{format_test, parse_test, ParseInput, TestConfig};
use clnrm_plan::PlanInput;
use common::{repo, TestProject};

#[test]
fn fmt_on_every_fixture_is_idempotent_keeps_comments_and_the_plan() {
    let fixtures = plain_tests(&repo().join("fixtures"));
    assert!(fixtures.len() >= 4, "fixtures found: {fixtures:?}");
    for path in fixtures {
        let name = path.display().to_string();
        let original = std::fs::read_to_string(&path).unwrap();
        let once = format_test(&name, &original).unwrap();
        let twice = format_test(&name, &once).unwrap();
        assert_eq!(once, twice, "{name}: a second fmt changes the file");
        assert_eq!(
            comments(&original),
            comments(&once),
            "{name}: fmt lost or changed a comment"
        );
        let (before, after) = (parsed(&name, &original), parsed(&name, &once));
        assert_eq!(before, after, "{name}: fmt changed the parsed test");
        assert_eq!(plan_hash(before), plan_hash(after), "{name}: a new plan");
    }
}

#[test]
fn fmt_then_check_on_the_example_project() {
    let project = TestProject::new();
    copy_dir(&repo().join("fixtures/example"), project.root());
    let run = project.clnrm(&["fmt"]);
    run.expect_code(0)
        .expect_contains("skipped   tests/greet.clnrm.toml.tera: a template is not formatted")
        .expect_contains("2 templates skipped");
    project
        .clnrm(&["fmt", "--check"])
        .expect_code(0)
        .expect_contains("0 would be reformatted");
    // What the command wrote is the library's layout of the original file.
    for path in plain_tests(&repo().join("fixtures/example")) {
        let relative = path.strip_prefix(repo().join("fixtures/example")).unwrap();
        let original = std::fs::read_to_string(&path).unwrap();
        let written = std::fs::read_to_string(project.root().join(relative)).unwrap();
        assert_eq!(written, format_test("t", &original).unwrap());
    }
    project
        .clnrm(&["validate"])
        .expect_code(0)
        .expect_contains("0 invalid");
}

#[test]
fn check_lists_the_files_that_would_change_and_changes_nothing() {
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    let messy = "[[steps]]\ncommand=[\"true\"]\nname=\"s\"\n[meta]\nversion=\"1\"\nname=\"t\"\n";
    let tidy =
        "[meta]\nname = \"t\"\nversion = \"1\"\n\n[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n";
    project.write("tests/messy.clnrm.toml", messy);
    project.write("tests/tidy.clnrm.toml", tidy);
    project.write("tests/t.clnrm.toml.tera", "[meta]\nname = \"{{ svc }}\"\n");

    let check = project.clnrm(&["fmt", "--check"]);
    check
        .expect_code(1)
        .expect_contains("would reformat tests/messy.clnrm.toml")
        .expect_contains("1 would be reformatted, 1 unchanged, 1 templates skipped");
    assert!(!check.stdout().contains("would reformat tests/tidy"));
    assert_eq!(
        std::fs::read_to_string(project.path("tests/messy.clnrm.toml")).unwrap(),
        messy
    );

    project
        .clnrm(&["fmt", "tests"])
        .expect_code(0)
        .expect_contains("formatted tests/messy.clnrm.toml");
    assert_eq!(
        std::fs::read_to_string(project.path("tests/messy.clnrm.toml")).unwrap(),
        tidy
    );
    project.clnrm(&["fmt", "--check"]).expect_code(0);
}

#[test]
fn a_file_that_is_not_toml_is_reported_at_its_line_and_left_alone() {
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    let broken = "[meta]\nname = \"t\"\nversion = 1.0.0\n";
    project.write("bad.clnrm.toml", broken);
    project
        .clnrm(&["fmt"])
        .expect_code(1)
        .expect_contains("bad.clnrm.toml:3:")
        .expect_contains("1 not TOML");
    assert_eq!(
        std::fs::read_to_string(project.path("bad.clnrm.toml")).unwrap(),
        broken
    );
}

fn parsed(name: &str, text: &str) -> TestConfig {
    let input = ParseInput {
        file: name.to_string(),
        text: text.to_string(),
        rendered_from_template: false,
        strict: true,
    };
    parse_test(&input).expect("a valid fixture").config
}

/// The plan's content hash: what the memo keys the run on.
fn plan_hash(test: TestConfig) -> blake3::Hash {
    let input = PlanInput {
        test,
        default_image: "alpine:3.20".to_string(),
        default_step_timeout_ms: 60_000,
        test_dir: "tests".to_string(),
    };
    let plan = clnrm_plan::plan(&input).expect("a plannable fixture");
    blake3::hash(&serde_json::to_vec(&plan).unwrap())
}

/// Every comment of a TOML text (`#` to the end of the line, outside strings), trimmed and
/// sorted: a multiset to compare before and after.
fn comments(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut chars = text.char_indices().peekable();
    // The string being read: its closing quote, and whether it is multi-line.
    let mut in_string: Option<(&str, bool)> = None;
    while let Some((i, c)) = chars.next() {
        let rest = &text[i..];
        match in_string {
            Some((quote, _)) if rest.starts_with(quote) => {
                for _ in 1..quote.len() {
                    chars.next();
                }
                in_string = None;
            }
            Some((quote, _)) if c == '\\' && quote.starts_with('"') => {
                chars.next();
            }
            Some(_) => {}
            None if rest.starts_with("\"\"\"") || rest.starts_with("'''") => {
                in_string = Some((&rest[..3], true));
                chars.next();
                chars.next();
            }
            None if c == '"' || c == '\'' => in_string = Some((&rest[..1], false)),
            None if c == '#' => {
                let end = rest.find('\n').unwrap_or(rest.len());
                found.push(rest[..end].trim().to_string());
                for _ in rest[..end].chars().skip(1) {
                    chars.next();
                }
            }
            None => {}
        }
    }
    found.sort();
    found
}

/// Plain `*.clnrm.toml` tests under `dir`.
fn plain_tests(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.to_string_lossy().ends_with(".clnrm.toml") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
