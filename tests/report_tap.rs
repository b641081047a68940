//! `clnrm run --format tap`, read by Perl's TAP::Parser (core Perl, what `prove`
//! uses): a CI that speaks TAP sees the plan, a point per test, and the failure's
//! step and line in the YAML block.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use clnrm_test_support::{containers_required, notice};
use common::{docker_ready, TestProject, IMAGE};

/// What TAP::Parser made of a stream: one `key=value` per line, then its parse errors.
const PARSE: &str = r#"
use TAP::Parser;
local $/; my $tap = <STDIN>;
my $parser = TAP::Parser->new({ tap => $tap });
while (my $result = $parser->next) {
    if ($result->is_test) { print "point=", ($result->is_ok ? "ok" : "not ok"), " ", $result->description, "\n" }
    if ($result->is_yaml) { my $d = $result->data; print "yaml=$d->{step} line $d->{line} $d->{severity}\n" }
}
print "planned=", $parser->tests_planned, "\n";
print "passed=", scalar($parser->passed), "\n";
print "failed=", scalar($parser->failed), "\n";
print "parse_error=$_\n" for $parser->parse_errors;
"#;

fn tap_parser(tap: &str) -> Option<String> {
    let spawned = Command::new("perl")
        .args(["-e", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let Ok(mut perl) = spawned else {
        if containers_required() {
            panic!("perl (TAP::Parser) is missing under CI");
        }
        notice("skipping the TAP check: perl is not installed");
        return None;
    };
    perl.stdin
        .take()
        .unwrap()
        .write_all(tap.as_bytes())
        .unwrap();
    let out = perl.wait_with_output().unwrap();
    assert!(out.status.success(), "TAP::Parser did not run");
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn a_tap_consumer_reads_the_plan_every_test_and_where_the_failure_is() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    project.write(
        "cleanroom.toml",
        &format!("[defaults]\nimage = \"{IMAGE}\"\n"),
    );
    project.write(
        "tests/ok.clnrm.toml",
        "[meta]\nname = \"ok\"\nversion = \"1.0\"\n\n[[steps]]\nname = \"hi\"\ncommand = [\"echo\", \"hi\"]\n",
    );
    project.write(
        "tests/broken.clnrm.toml",
        "[meta]\nname = \"broken # not a directive\"\nversion = \"1.0\"\n\n[[steps]]\nname = \"first\"\n\
         command = [\"true\"]\n\n[[steps]]\nname = \"second\"\ncommand = [\"sh\", \"-c\", \"echo '--- # not yaml'; exit 3\"]\n",
    );
    let run = project.clnrm(&["run", "--format", "tap"]);
    run.expect_code(1);
    let tap = run.stdout();
    assert!(tap.starts_with("TAP version 14\n1..2\n"), "{tap}");
    let Some(parsed) = tap_parser(&tap) else {
        return;
    };
    let lines: Vec<&str> = parsed.lines().collect();
    assert!(lines.contains(&"planned=2"), "{parsed}");
    assert!(lines.contains(&"passed=1"), "{parsed}");
    assert!(lines.contains(&"failed=1"), "{parsed}");
    assert!(
        lines.contains(&"point=not ok - tests/broken.clnrm.toml (broken \\# not a directive)"),
        "{parsed}"
    );
    assert!(
        lines.contains(&"point=ok - tests/ok.clnrm.toml (ok)"),
        "{parsed}"
    );
    // The failing step, the line of its table in the file, and why.
    assert!(lines.contains(&"yaml=second line 9 fail"), "{parsed}");
    // TAP::Parser 3.44 knows TAP 13 at most; the stream uses nothing TAP 13 lacks, so
    // the version line is the only thing a TAP 13 parser may object to.
    let errors: Vec<&&str> = lines
        .iter()
        .filter(|line| line.starts_with("parse_error="))
        .filter(|line| !line.contains("version 14"))
        .collect();
    assert!(
        errors.is_empty(),
        "TAP::Parser found errors: {errors:?}\n{tap}"
    );
}

#[test]
fn an_invalid_test_is_a_not_ok_point_with_its_message() {
    // Nothing starts: the only test is invalid, so no engine is needed beyond the check.
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    project.write(
        "tests/bad.clnrm.toml",
        "[meta]\nname = \"bad\"\nversion = \"1.0\"\n\n[[steps]]\nname = \"s\"\ncommand = [\"true\"]\nexpected_exit_code = \"zero\"\n",
    );
    let run = project.clnrm(&["run", "--format", "tap"]);
    run.expect_code(1);
    let tap = run.stdout();
    assert!(
        tap.contains("not ok 1 - tests/bad.clnrm.toml (bad.clnrm.toml)"),
        "{tap}"
    );
    assert!(tap.contains("  severity: \"error\"\n"), "{tap}");
    assert!(
        tap.contains("  line: 8\n"),
        "the line of the bad value: {tap}"
    );
}
