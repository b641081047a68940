//! Captures (docs/reference.md §15): a value one step prints reaches later steps' argv,
//! env and expectations whole, however many spaces and quotes it has; a capture that finds
//! nothing fails its step by name; a reference to a later capture fails `validate`.

mod common;

use common::{docker_ready, json_events, TestProject, IMAGE};

fn project(name: &str, steps: &str) -> TestProject {
    let p = TestProject::new();
    p.write("cleanroom.toml", "");
    p.write(
        &format!("tests/{name}.clnrm.toml"),
        &format!(
            "[meta]\nname = \"{name}\"\nversion = \"1.0\"\n\n[service.box]\nimage = \"{IMAGE}\"\n\n{steps}"
        ),
    );
    p
}

/// The id the first step prints, as JSON: spaces, double and single quotes, a `$`.
const ID: &str = r#"it's "id 7" $HOME"#;

const STEPS: &str = r#"
[[steps]]
name = "create"
command = ["cat", "/tmp/answer.json"]
capture.id = { json = "$.id" }
capture.secret = { regex = 'secret=(\w+)', from = "stderr", redact = true }

[[steps]]
name = "argv"
command = ["sh", "-c", "echo $#; printf '[%s]\\n' \"$1\"", "sh", "${captures.id}"]
expected_output_regex = '^1\n\[${captures.id}\]$'

[[steps]]
name = "env"
command = ["sh", "-c", "test \"$GOT\" = \"$CLNRM_CAPTURE_ID\" && printf '%s' \"$GOT\""]
env = { GOT = "${captures.id}" }
expected_output_regex = '^${captures.id}$'

[[steps]]
name = "run_line"
run = "printf '%s|%s' \"$CLNRM_CAPTURE_ID\" \"$CLNRM_CAPTURE_SECRET\""
expected_output_regex = '^${captures.id}\|s3cr3t$'
"#;

#[test]
fn an_id_with_spaces_and_quotes_reaches_argv_env_and_expectations_whole() {
    if !docker_ready() {
        return;
    }
    let setup = format!(
        "[[setup]]\nname = \"write_answer\"\nrun = {:?}\n",
        format!(
            "printf '%s' {} > /tmp/answer.json",
            shell_quote(&serde_json::json!({ "id": ID }).to_string())
        )
    );
    // The step that captures prints the secret on stderr.
    let steps = STEPS.replace(
        "command = [\"cat\", \"/tmp/answer.json\"]",
        "command = [\"sh\", \"-c\", \"cat /tmp/answer.json; echo secret=s3cr3t >&2\"]",
    );
    let p = project("captures", &format!("{setup}{steps}"));
    p.clnrm(&["validate"]).expect_code(0);
    let run = p.clnrm(&["run", "--format", "json"]);
    let events = json_events(&run.stdout());
    let t = events
        .iter()
        .find(|e| e["event"] == "test_finished")
        .unwrap();
    assert_eq!(t["status"], "pass", "{}", run.all());
    let captures = t["captures"].as_array().unwrap();
    assert_eq!(captures[0]["name"], "id");
    assert_eq!(captures[0]["value"], ID);
    assert_eq!(captures[0]["step"], "create");
    assert_eq!(captures[1]["value"], "[redacted]");
    assert!(
        !run.stdout().contains("s3cr3t\""),
        "a redacted value is not shown"
    );
    run.expect_code(0);
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[test]
fn a_capture_that_finds_nothing_fails_its_step_naming_it() {
    if !docker_ready() {
        return;
    }
    let p = project(
        "no_token",
        "[[steps]]\nname = \"login\"\ncommand = [\"echo\", \"welcome\"]\n\
         capture.token = { regex = 'token=(\\w+)' }\n\n\
         [[steps]]\nname = \"use\"\ncommand = [\"echo\", \"${captures.token}\"]\n",
    );
    let run = p.clnrm(&["run"]);
    run.expect_code(1);
    let out = run.stdout();
    assert!(out.contains("step `login` failed"), "{out}");
    assert!(
        out.contains("expected: capture.token: stdout matching /token=(\\w+)/"),
        "{out}"
    );
    assert!(out.contains("actual:   stdout: welcome"), "{out}");
    assert!(out.contains("tests/no_token.clnrm.toml"), "{out}");
}

#[test]
fn a_reference_to_a_capture_of_a_later_step_fails_validate_with_line_col() {
    let p = project(
        "later",
        "[[steps]]\nname = \"use\"\ncommand = [\"echo\", \"${captures.id}\"]\n\n\
         [[steps]]\nname = \"make\"\ncommand = [\"echo\", \"1\"]\ncapture.id = { regex = '(\\d+)' }\n",
    );
    let run = p.clnrm(&["validate"]);
    run.expect_code(1);
    let all = run.all();
    assert!(
        all.contains("tests/later.clnrm.toml:10:20"),
        "the error names the file and line:col of the reference: {all}"
    );
    assert!(
        all.contains("`${captures.id}` is captured by step `make`, which runs later"),
        "{all}"
    );
}
