//! The test language's step keys (docs/reference.md §13) as the parse stage reads them:
//! `wait_until`, `retries`, `capture`, `expected_json`, `*_regex_not`, `[[setup]]`,
//! `[[teardown]]`, the whole-test `timeout`, and `${captures.NAME}` references.

mod common;

use clnrm_config::{Attempts, Capture, CaptureSource, JsonCheck, JsonCheckKind, Stream};

use common::{error, errors, key, ok, HEAD};

const ALL: &str = r#"[meta]
name = "items_api"
version = "1.0"
timeout = "2m"

[service.api]
image = "busybox"

[[setup]]
name = "migrate"
run = "echo migrated"

[[steps]]
name = "ready"
command = ["wget", "-qO-", "http://api:8080/health"]
expected_output_regex = '"ok"'
wait_until = { timeout = "30s", interval = "200ms" }

[[steps]]
name = "create"
command = ["wget", "-qO-", "--post-data", "name=a", "http://api:8080/items"]
retries = { count = 2, delay = "500ms" }
expected_json = [
  { path = "$.id", exists = true },
  { path = "$.name", equals = "a" },
  { path = "$.tags[*]", count = 0 },
  { path = "$['x-trace']", matches = "^[0-9a-f]{32}$" },
]
expected_output_regex_not = "ERROR|panic"
expected_stderr_regex_not = "warn"
capture.item = { json = "$.id" }
capture.token = { regex = 'token=(\w+)', from = "stderr", redact = true }

[[steps]]
name = "read_back"
command = ["wget", "-qO-", "http://api:8080/items/${captures.item}"]
env = { TOKEN = "${captures.token}" }
expected_output_regex = "${captures.item}"
retries = 1

[[teardown]]
name = "dump_logs"
run = "echo ${captures.item} $${captures.literal}"
"#;

#[test]
fn every_key_of_the_language_is_read() {
    let parsed = ok(ALL);
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let t = parsed.config;
    assert_eq!(t.timeout_ms, Some(120_000));
    assert_eq!(t.setup.len(), 1);
    assert_eq!(t.setup[0].key_path, "setup[0]");
    assert_eq!(t.teardown[0].name, "dump_logs");
    assert_eq!(t.teardown[0].service.as_deref(), Some("api"));
    let names: Vec<&str> = t.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["ready", "create", "read_back"]);
    assert_eq!(
        t.steps[0].attempts,
        Attempts::WaitUntil {
            timeout_ms: 30_000,
            interval_ms: 200
        }
    );
    let create = &t.steps[1];
    assert_eq!(
        create.attempts,
        Attempts::Retries {
            count: 2,
            delay_ms: 500
        }
    );
    assert_eq!(
        t.steps[2].attempts,
        Attempts::Retries {
            count: 1,
            delay_ms: 0
        }
    );
    assert_eq!(
        create.expected_json,
        vec![
            JsonCheck {
                path: "$.id".into(),
                check: JsonCheckKind::Exists(true)
            },
            JsonCheck {
                path: "$.name".into(),
                check: JsonCheckKind::Equals("\"a\"".into())
            },
            JsonCheck {
                path: "$.tags[*]".into(),
                check: JsonCheckKind::Count(0)
            },
            JsonCheck {
                path: "$['x-trace']".into(),
                check: JsonCheckKind::Matches("^[0-9a-f]{32}$".into())
            },
        ]
    );
    assert_eq!(
        create.expected_output_regex_not.as_deref(),
        Some("ERROR|panic")
    );
    assert_eq!(create.expected_stderr_regex_not.as_deref(), Some("warn"));
    assert_eq!(
        create.captures,
        vec![
            Capture {
                name: "item".into(),
                source: CaptureSource::Json("$.id".into()),
                redact: false
            },
            Capture {
                name: "token".into(),
                source: CaptureSource::Regex {
                    pattern: "token=(\\w+)".into(),
                    from: Stream::Stderr
                },
                redact: true
            },
        ]
    );
}

#[test]
fn the_legacy_whole_test_timeout_is_read_not_ignored() {
    let step = "[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n";
    for (header, ms) in [
        ("timeout = \"90s\"", 90_000),
        ("timeout = 60", 60_000),
        ("timeout_seconds = 30", 30_000),
    ] {
        let parsed = ok(&format!("[test.metadata]\nname = \"t\"\n{header}\n{step}"));
        assert!(
            parsed.warnings.is_empty(),
            "{header}: {:?}",
            parsed.warnings
        );
        assert_eq!(parsed.config.timeout_ms, Some(ms), "{header}");
    }
    let d = error(&format!("{HEAD}timeout = \"0s\"\n{step}"));
    assert_eq!(key(&d), "meta.timeout");
    assert_eq!(d.line_col, Some((4, 11)));
}

#[test]
fn a_json_path_with_a_syntax_error_is_an_error_at_the_path() {
    let d = error(&format!(
        "{HEAD}[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n\
         expected_json = [ {{ path = \"$.items[?@.x ==]\", exists = true }} ]\n"
    ));
    assert_eq!(key(&d), "steps[0].expected_json[0].path");
    assert_eq!(d.line_col, Some((7, 28)));
    assert!(
        d.message
            .starts_with("invalid JSONPath (RFC 9535) at character"),
        "{}",
        d.message
    );
    let d = error(&format!(
        "{HEAD}[[steps]]\nname = \"s\"\ncommand = [\"true\"]\ncapture.id = {{ json = \"id\" }}\n"
    ));
    assert_eq!(key(&d), "steps[0].capture.id.json");
    assert_eq!(d.line_col, Some((7, 23)));
}

#[test]
fn a_reference_to_a_later_or_the_same_or_no_capture_fails_with_line_col() {
    let text = format!(
        "{HEAD}[[steps]]\nname = \"use\"\ncommand = [\"echo\", \"${{captures.id}}\"]\n\
         [[steps]]\nname = \"make\"\nrun = \"echo ${{captures.id}}\"\ncapture.id = {{ regex = '(.*)' }}\n\
         env = {{ X = \"${{captures.idd}}\" }}\n"
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert_eq!(key(&errs[0]), "steps[0].command[1]");
    assert_eq!(errs[0].line_col, Some((6, 20)));
    assert_eq!(
        errs[0].message,
        "`${captures.id}` is captured by step `make`, which runs later"
    );
    assert_eq!(key(&errs[1]), "steps[1].run");
    assert_eq!(errs[1].line_col, Some((9, 7)));
    assert!(
        errs[1].message.contains("captured by this same step"),
        "{}",
        errs[1].message
    );
    assert_eq!(key(&errs[2]), "steps[1].env.X");
    assert_eq!(
        errs[2].message,
        "`${captures.idd}`: no earlier step captures `idd`"
    );
    assert!(
        errs[2]
            .hint
            .as_deref()
            .unwrap()
            .starts_with("no earlier step has a capture"),
        "{:?}",
        errs[2].hint
    );
}

#[test]
fn references_reach_argv_env_expectations_setup_and_teardown() {
    let text = format!(
        "{HEAD}[[setup]]\nname = \"login\"\nrun = \"echo t=1\"\ncapture.token = {{ regex = 't=(.*)' }}\n\
         [[steps]]\nname = \"a\"\ncommand = [\"echo\", \"${{captures.token}}\"]\n\
         env = {{ T = \"${{captures.token}}\" }}\nexpected_output_regex = \"^${{captures.token}}$\"\n\
         expected_json = [ {{ path = \"$.a\", equals = {{ t = \"${{captures.token}}\" }} }} ]\n\
         [[teardown]]\nname = \"z\"\nrun = \"echo ${{captures.token}}\"\n"
    );
    let t = ok(&text).config;
    assert_eq!(t.setup[0].captures[0].name, "token");
    assert_eq!(
        t.steps[0].expected_json[0].check,
        JsonCheckKind::Equals(r#"{"t":"${captures.token}"}"#.into())
    );
}

#[test]
fn an_undefined_capture_suggests_a_close_name() {
    let text = format!(
        "{HEAD}[[steps]]\nname = \"a\"\nrun = \"echo\"\ncapture.item_id = {{ regex = '(.*)' }}\n\
         [[steps]]\nname = \"b\"\ncommand = [\"echo\", \"${{captures.item_di}}\"]\n"
    );
    let d = error(&text);
    assert_eq!(d.hint.as_deref(), Some("did you mean `item_id`?"));
    let d = error(&format!(
        "{HEAD}[[steps]]\nname = \"a\"\ncommand = [\"echo\", \"${{captures.x\"]\n"
    ));
    assert_eq!(d.message, "`${captures.` has no closing `}`");
}

#[test]
fn attempts_are_polled_or_retried_not_both() {
    let step = format!("{HEAD}[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n");
    let d = error(&format!(
        "{step}wait_until = {{ timeout = \"5s\" }}\nretries = 2\n"
    ));
    assert_eq!(key(&d), "steps[0].retries");
    assert_eq!(d.line_col, Some((8, 1)));
    assert_eq!(d.message, "the step has both `wait_until` and `retries`");
    let d = error(&format!("{step}wait_until = {{ interval = \"1s\" }}\n"));
    assert_eq!(
        d.message,
        "`wait_until` has no `timeout`: how long to keep polling"
    );
    let d = error(&format!("{step}retries = 1000\n"));
    assert_eq!(d.message, "1000 retries is too many (at most 100)");
    let d = error(&format!("{step}retries = \"2\"\n"));
    assert_eq!(d.message, "expected an integer or a table, found a string");
    let parsed = ok(&format!(
        "{step}wait_until = {{ timeout = \"5s\", intervall = \"1s\" }}\n"
    ));
    assert_eq!(parsed.warnings[0].message, "unknown key `intervall`");
    assert_eq!(
        parsed.warnings[0].hint.as_deref(),
        Some("did you mean `interval`?")
    );
}

#[test]
fn json_checks_and_captures_say_one_thing_each() {
    let step = format!("{HEAD}[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n");
    let d = error(&format!(
        "{step}expected_json = [ {{ path = \"$.a\", exists = true, count = 1 }} ]\n"
    ));
    assert_eq!(key(&d), "steps[0].expected_json[0].count");
    let d = error(&format!("{step}expected_json = [ {{ path = \"$.a\" }} ]\n"));
    assert_eq!(
        d.message,
        "the `expected_json` entry says nothing about the nodes"
    );
    let d = error(&format!("{step}expected_json = [ {{ exists = true }} ]\n"));
    assert_eq!(d.message, "the `expected_json` entry has no `path`");
    let d = error(&format!(
        "{step}capture.a = {{ json = \"$.a\", regex = \"a\" }}\n"
    ));
    assert_eq!(d.message, "capture `a` has both `json` and `regex`");
    let d = error(&format!(
        "{step}capture.a = {{ regex = \"a\", from = \"both\" }}\n"
    ));
    assert_eq!(
        d.message,
        "`from` is \"stdout\" or \"stderr\", not \"both\""
    );
    let d = error(&format!(
        "{step}capture.a = {{ regex = \"a\" }}\n[[steps]]\nname = \"t\"\ncommand = [\"true\"]\n\
         capture.a = {{ regex = \"b\" }}\n"
    ));
    assert_eq!(d.message, "capture `a` is already defined by step `s`");
    assert_eq!(d.line_col, Some((11, 9)));
}

#[test]
fn step_names_are_unique_across_setup_steps_and_teardown() {
    let d = error(&format!(
        "{HEAD}[[setup]]\nname = \"s\"\nrun = \"true\"\n[[steps]]\nname = \"s\"\nrun = \"true\"\n"
    ));
    assert_eq!(
        d.message,
        "duplicate step name `s` (first used by setup[0])"
    );
}
