//! `skip_if` / `skip_reason` (docs/reference.md §4): a test skipped when an environment
//! variable of clnrm's is set and non-empty, shown as `skip` in every format, never a
//! failure and never a cached pass.

mod common;

use common::{docker_ready, json_events, outcomes, shell_test, TestProject};

const VAR: &str = "CLNRM_E2E_NO_BUILDS";

fn project() -> TestProject {
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    let skippable = shell_test("needs_builds", "true").replace(
        "version = \"1.0\"\n",
        &format!("version = \"1.0\"\nskip_if = {{ env = \"{VAR}\" }}\nskip_reason = \"needs local builds\"\n"),
    );
    project.write("tests/builds.clnrm.toml", &skippable);
    project.write("tests/plain.clnrm.toml", &shell_test("plain", "true"));
    project
}

#[test]
fn a_skipped_test_shows_as_skip_in_every_format_and_passes_the_run() {
    if !docker_ready() {
        return;
    }
    let project = project();
    let skip = [(VAR, "1")];
    let human = project.clnrm_with(&["run", "--junit", "junit.xml", "--html", "r.html"], &skip);
    human
        .expect_code(0)
        .expect_contains("SKIP tests/builds.clnrm.toml (needs_builds): needs local builds")
        .expect_contains("1 passed, 0 failed, 0 errors, 1 skipped, 0 cached");

    let xml = std::fs::read_to_string(project.path("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("JUnit parses");
    let case = doc
        .descendants()
        .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some("needs_builds"))
        .expect("the skipped test is a testcase");
    let skipped = case
        .children()
        .find(|n| n.has_tag_name("skipped"))
        .expect("<skipped>");
    assert_eq!(skipped.attribute("message"), Some("needs local builds"));
    let html = std::fs::read_to_string(project.path("r.html")).unwrap();
    assert!(html.contains("<span class=\"badge skip\">SKIP</span>"));
    assert!(html.contains("needs local builds"));

    let json = project.clnrm_with(&["run", "--format", "json"], &skip);
    json.expect_code(0);
    let finished = json_events(&json.stdout())
        .into_iter()
        .find(|e| e["event"] == "test_finished" && e["name"] == "needs_builds")
        .unwrap();
    assert_eq!(finished["status"], "skip");
    assert_eq!(finished["message"], "needs local builds");
    let summary = json_events(&json.stdout())
        .into_iter()
        .find(|e| e["event"] == "run_finished")
        .unwrap();
    assert_eq!(summary["skipped"], 1);

    let tap = project.clnrm_with(&["run", "--format", "tap"], &skip);
    tap.expect_code(0)
        .expect_contains("- tests/builds.clnrm.toml (needs_builds) # SKIP needs local builds");
    assert!(tap
        .stdout()
        .lines()
        .any(|l| l.starts_with("ok ") && l.ends_with("# SKIP needs local builds")));
}

#[test]
fn a_skip_is_never_cached_and_a_cached_pass_is_never_served_while_skipped() {
    if !docker_ready() {
        return;
    }
    let project = project();
    let skip = [(VAR, "yes")];
    // Skipped first: nothing stored, so the first run without the variable runs it.
    project.clnrm_with(&["run"], &skip).expect_code(0);
    let ran = project.clnrm(&["run", "--format", "json"]);
    assert_eq!(
        outcomes(&ran.stdout())["needs_builds"],
        ("pass".to_string(), false)
    );
    // A pass is cached, but while the variable is set the test is skipped, not served.
    let skipped = project.clnrm_with(&["run", "--format", "json"], &skip);
    assert_eq!(
        outcomes(&skipped.stdout())["needs_builds"],
        ("skip".to_string(), false)
    );
    // An empty variable does not skip: the cached pass is served again.
    let empty = project.clnrm_with(&["run", "--format", "json"], &[(VAR, "")]);
    assert_eq!(
        outcomes(&empty.stdout())["needs_builds"],
        ("pass".to_string(), true)
    );
    // --dry-run says so too.
    project
        .clnrm_with(&["run", "--dry-run"], &skip)
        .expect_code(0)
        .expect_contains("tests/builds.clnrm.toml (needs_builds): needs local builds");
}

#[test]
fn skip_keys_are_validated_with_their_line() {
    let project = TestProject::new();
    project.write(
        "tests/a.clnrm.toml",
        "[meta]\nname = \"a\"\nversion = \"1.0\"\nskip_reason = \"why\"\n[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n",
    );
    project.clnrm(&["validate"]).expect_code(1).expect_contains(
        "tests/a.clnrm.toml:4:1: meta.skip_reason: `skip_reason` without `skip_if`",
    );
    project.write(
        "tests/a.clnrm.toml",
        "[meta]\nname = \"a\"\nversion = \"1.0\"\nskip_if = { envv = \"X\" }\n[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n",
    );
    project
        .clnrm(&["--strict", "validate"])
        .expect_code(1)
        .expect_contains("tests/a.clnrm.toml:4:13: meta.skip_if.envv: unknown key `envv`")
        .expect_contains("did you mean `env`?");
    project.write(
        "tests/a.clnrm.toml",
        "[meta]\nname = \"a\"\nversion = \"1.0\"\nretries = -1\n[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n",
    );
    project
        .clnrm(&["validate"])
        .expect_code(1)
        .expect_contains("tests/a.clnrm.toml:4:11: meta.retries");
}
