//! `clnrm validate`, `render` and `init` as a user meets them.

mod common;

use common::{clnrm_command, repo, Run, TestProject};

const GOOD: &str = r#"
[meta]
name = "good"
version = "1.0"

[service.box]
image = "busybox"

[[steps]]
name = "hi"
command = ["echo", "hi"]
expected_output_regex = "hi"
"#;

#[test]
fn the_example_project_validates() {
    let run = clnrm_command()
        .current_dir(repo())
        .args(["validate", "fixtures/example"])
        .env("CLNRM_CACHE_DIR", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    let run = common::Run(run);
    run.expect_code(0)
        .expect_contains("tests/hello.clnrm.toml")
        .expect_contains("tests/greet.clnrm.toml.tera (greet_hello)")
        .expect_contains("6 valid, 0 invalid");
}

#[test]
fn init_writes_a_project_that_validates() {
    let project = TestProject::new();
    project
        .clnrm(&["init"])
        .expect_code(0)
        .expect_contains("created cleanroom.toml");
    assert!(project.path("tests/hello.clnrm.toml").is_file());
    project
        .clnrm(&["validate"])
        .expect_code(0)
        .expect_contains("1 valid, 0 invalid");
    // A second init refuses to overwrite.
    project
        .clnrm(&["init"])
        .expect_code(2)
        .expect_contains("already exists");
}

#[test]
fn invalid_toml_names_file_line_and_column() {
    validate_invalid(&[(
        "tests/bad.clnrm.toml",
        "[meta]\nname = \"x\"\nversion = 1.0.0\n",
    )])
    .expect_contains("tests/bad.clnrm.toml:3:")
    .expect_contains("version = 1.0.0");
}

#[test]
fn a_plain_file_with_template_syntax_gets_a_hint() {
    validate_invalid(&[("t.clnrm.toml", "[meta]\nname = {{ svc }}\n")])
        .expect_contains(".clnrm.toml.tera");
}

#[test]
fn semantic_errors_name_the_key_path() {
    validate_invalid(&[
        ("t.clnrm.toml", "[meta]\nname = \"x\"\nversion = \"1\"\n[service.a]\nimage = \"i\"\n[[steps]]\nname = \"s\"\nservice = \"nope\"\ncommand = [\"true\"]\nexpected_output_regex = \"(\"\n"),
    ])
        .expect_contains("steps[0].service")
        .expect_contains("steps[0].expected_output_regex");
}

#[test]
fn template_errors_name_the_construct_and_place() {
    validate_invalid(&[
        ("syntax.clnrm.toml.tera", "[meta]\nname = \"{{ svc \"\n"),
        (
            "undefined.clnrm.toml.tera",
            "[meta]\nname = \"{{ nope }}\"\n",
        ),
        (
            "missing.clnrm.toml.tera",
            "{% import \"_gone.tera\" as g %}\n[meta]\n",
        ),
        ("cycle.clnrm.toml.tera", "{% import \"_a.tera\" as a %}\n"),
        ("_a.tera", "{% import \"_b.tera\" as b %}\n"),
        ("_b.tera", "{% import \"_a.tera\" as a %}\n"),
    ])
    .expect_contains("syntax.clnrm.toml.tera:2:")
    .expect_contains("nope")
    .expect_contains("_gone.tera")
    .expect_contains("cycle")
    .expect_contains("0 valid, 4 invalid");
}

#[test]
fn unreadable_and_degenerate_files_are_invalid_not_panics() {
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write_bytes("latin1.clnrm.toml", b"[meta]\nname = \"caf\xe9\"\n");
    project.write("empty.clnrm.toml", "");
    let mut big = String::from("[meta]\nname = \"big\"\nversion = \"1\"\n");
    while big.len() < 10 * 1024 * 1024 {
        big.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    big.push_str("[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n");
    project.write("big.clnrm.toml", &big);
    let run = project.clnrm(&["validate"]);
    run.expect_code(1)
        .expect_contains("latin1.clnrm.toml: not UTF-8")
        .expect_contains("empty.clnrm.toml")
        .expect_contains("1 valid, 2 invalid");
    assert!(!run.all().contains("panicked"));
}

#[test]
fn usage_errors_exit_2() {
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write("notes/readme.txt", "no tests here");
    project
        .clnrm(&["validate", "notes"])
        .expect_code(2)
        .expect_contains("no tests found in notes");
    project
        .clnrm(&["validate", "does/not/exist"])
        .expect_code(2)
        .expect_contains("does/not/exist: no such file or directory");
    project.write("cleanroom.toml", "[vars\n");
    project.write("t.clnrm.toml", GOOD);
    project
        .clnrm(&["validate"])
        .expect_code(2)
        .expect_contains("cleanroom.toml:1:");
}

#[test]
fn gitignored_tests_are_not_discovered() {
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write(".gitignore", "generated/\n");
    project.write("a.clnrm.toml", GOOD);
    project.write("generated/b.clnrm.toml", "not toml at all [");
    project.write("target/c.clnrm.toml", "not toml at all [");
    project.write("Cargo.toml", "[package]\n");
    project
        .clnrm(&["validate"])
        .expect_code(0)
        .expect_contains("1 valid, 0 invalid");
}

#[test]
fn render_prints_the_rendered_toml_with_vars_and_determinism() {
    let project = TestProject::new();
    project.write("cleanroom.toml", "[vars]\nwho = \"project\"\n");
    project.write(
        "t.clnrm.toml.tera",
        "[meta]\nname = \"{{ who }}\"\nversion = \"1\"\nat = \"{{ now_rfc3339() }}\"\nn = \"{{ fake_int_range(min=1, max=1000000) }}\"\n",
    );
    let seeded_at_a_frozen_clock = [
        "render",
        "t.clnrm.toml.tera",
        "--seed",
        "5",
        "--freeze-clock",
        "2024-02-03T04:05:06Z",
    ];
    let first = project.clnrm(&seeded_at_a_frozen_clock);
    first
        .expect_code(0)
        .expect_contains("name = \"project\"")
        .expect_contains("2024-02-03T04:05:06");
    let second = project.clnrm(&seeded_at_a_frozen_clock);
    assert_eq!(
        first.stdout(),
        second.stdout(),
        "same seed and clock, same bytes"
    );
    project
        .clnrm(&["render", "t.clnrm.toml.tera", "--var", "who=cli"])
        .expect_code(0)
        .expect_contains("name = \"cli\"");
}

#[test]
fn env_defaults_feed_templates() {
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write(
        "t.clnrm.toml.tera",
        "[meta]\nname = \"{{ svc }}-{{ vars.env }}\"\nversion = \"1\"\n",
    );
    project
        .clnrm_with(
            &["render", "t.clnrm.toml.tera"],
            &[("SERVICE_NAME", "api"), ("ENV", "stage")],
        )
        .expect_code(0)
        .expect_contains("name = \"api-stage\"");
}

/// `clnrm validate` in a project of `files` (path, text) and an empty
/// `cleanroom.toml`, which is to find invalid tests (exit 1).
fn validate_invalid(files: &[(&str, &str)]) -> Run {
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    for (path, text) in files {
        project.write(path, text);
    }
    let run = project.clnrm(&["validate"]);
    run.expect_code(1);
    run
}
