//! The test language's keys in the editor tools: `clnrm schema` covers every one, and a
//! file using them all keeps its meaning through `clnrm fmt` (the same plan, so the same
//! cache key).

mod common;

use clnrm_config::{parse_test, ParseInput};
use clnrm_plan::{plan, PlanInput};
use common::TestProject;

/// Every key of the language, in an order `fmt` changes.
const ALL_KEYS: &str = r#"[[teardown]]
run = "cat /tmp/log"
name = "dump"

[meta]
timeout = "2m"
version = "1.0"
name = "language"

[[steps]]
capture.item = { json = "$.id" }
capture.token = { regex = 'token=(\w+)', from = "stderr", redact = true }
retries = { count = 2, delay = "500ms" }
expected_stderr_regex_not = "warn"
expected_output_regex_not = "ERROR|panic"
expected_json = [
  { path = "$.id", exists = true },
  { path = "$.name", equals = "a" },
  { path = "$.tags[*]", count = 0 },
  { path = "$['x-trace']", matches = "^[0-9a-f]{32}$" },
]
command = ["echo", "{}"]
name = "create"

[[steps]]
wait_until = { interval = "200ms", timeout = "30s" }
env = { ID = "${captures.item}" }
command = ["echo", "${captures.item}", "$${literal}"]
name = "read"

[[setup]]
run = "echo set up > /tmp/log"
name = "seed"
"#;

fn plan_of(text: &str) -> clnrm_plan::TestPlan {
    let parsed = parse_test(&ParseInput {
        file: "tests/language.clnrm.toml".into(),
        text: text.into(),
        rendered_from_template: false,
        strict: true,
    })
    .unwrap_or_else(|d| panic!("{d:#?}"));
    plan(&PlanInput {
        test: parsed.config,
        default_image: "busybox".into(),
        default_step_timeout_ms: 60_000,
        test_dir: "tests".into(),
    })
    .unwrap()
}

#[test]
fn a_file_using_every_key_keeps_its_plan_through_fmt() {
    let p = TestProject::new();
    p.write("cleanroom.toml", "");
    p.write("tests/language.clnrm.toml", ALL_KEYS);
    p.clnrm(&["--strict", "validate"]).expect_code(0);
    p.clnrm(&["fmt", "tests"]).expect_code(0);
    let formatted = std::fs::read_to_string(p.path("tests/language.clnrm.toml")).unwrap();
    assert_ne!(formatted, ALL_KEYS, "fmt reorders the keys");
    assert!(
        formatted.find("[meta]").unwrap() < formatted.find("[[setup]]").unwrap()
            && formatted.find("[[setup]]").unwrap() < formatted.find("[[steps]]").unwrap()
            && formatted.find("[[steps]]").unwrap() < formatted.find("[[teardown]]").unwrap(),
        "{formatted}"
    );
    assert!(
        formatted.find("name = \"create\"").unwrap() < formatted.find("retries =").unwrap(),
        "{formatted}"
    );
    let before = serde_json::to_string(&plan_of(ALL_KEYS)).unwrap();
    let after = serde_json::to_string(&plan_of(&formatted)).unwrap();
    assert_eq!(before, after, "the same plan, so the same result key");
    // And fmt is done with it.
    p.clnrm(&["fmt", "--check", "tests"]).expect_code(0);
}

#[test]
fn the_schema_covers_every_key_of_the_language() {
    let p = TestProject::new();
    let run = p.clnrm(&["schema"]);
    run.expect_code(0);
    let schema: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let text = schema.to_string();
    for key in [
        "wait_until",
        "retries",
        "capture",
        "expected_json",
        "expected_output_regex_not",
        "expected_stderr_regex_not",
        "setup",
        "teardown",
        "timeout_seconds",
        "redact",
        "interval",
        "matches",
    ] {
        assert!(
            text.contains(&format!("\"{key}\"")),
            "the schema has no `{key}`"
        );
    }
    let step = &schema["$defs"]["Step"]["properties"];
    assert!(step["wait_until"].is_object(), "{step}");
    assert!(schema["properties"]["meta"].is_object());
}
