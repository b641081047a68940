//! A result on containers an earlier run left (`isolation = "reuse"`) is labelled
//! `reused` in every output, and a fresh one never is (docs/reference.md §5, §8).
//! Needs the Docker engine and the fixture image; skipped with a notice without them,
//! a failure in CI.

mod common;

use common::{docker_ready, json_events, shell_test, TestProject};

/// Removes the project's pooled containers however the test ends.
struct PoolCleanup<'a>(&'a TestProject);

impl Drop for PoolCleanup<'_> {
    fn drop(&mut self) {
        let label = format!(
            "label=clnrm.pool={}",
            clnrm::pool::project_key(self.0.root())
        );
        let ids = std::process::Command::new("docker")
            .args(["ps", "-aq", "--filter", &label])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for id in ids.lines() {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", "-v", id])
                .output();
        }
    }
}

fn project(isolation: &str) -> TestProject {
    let project = TestProject::new();
    project.write(
        "cleanroom.toml",
        &format!("[dev]\nisolation = \"{isolation}\"\n"),
    );
    project.write("a.clnrm.toml", &shell_test("a", "echo hi"));
    project
}

/// Every report of one `run --reuse --force`: human, JSON, JUnit, TAP and HTML.
struct Reports {
    human: String,
    json: Vec<serde_json::Value>,
    junit: String,
    tap: String,
    html: String,
}

fn run_reuse(project: &TestProject) -> Reports {
    let reuse = ["run", "--reuse", "--force"];
    let human = project.clnrm(&[&reuse[..], &["--junit", "r.xml", "--html", "r.html"]].concat());
    human.expect_code(0);
    let json = project.clnrm(&[&reuse[..], &["--format", "json"]].concat());
    json.expect_code(0);
    let tap = project.clnrm(&[&reuse[..], &["--format", "tap"]].concat());
    tap.expect_code(0);
    Reports {
        human: human.stdout(),
        json: json_events(&json.stdout()),
        junit: std::fs::read_to_string(project.path("r.xml")).expect("the JUnit report"),
        tap: tap.stdout(),
        html: std::fs::read_to_string(project.path("r.html")).expect("the HTML report"),
    }
}

fn finished(json: &[serde_json::Value]) -> &serde_json::Value {
    json.iter()
        .find(|e| e["event"] == "test_finished")
        .expect("a test_finished event")
}

#[test]
fn a_result_on_reused_containers_says_so_in_every_output() {
    if !docker_ready() {
        return;
    }
    let project = project("reuse");
    let _cleanup = PoolCleanup(&project);
    // The first run starts the containers; the next ones run on them.
    project.clnrm(&["run", "--reuse", "--force"]).expect_code(0);
    let reports = run_reuse(&project);
    let line = reports
        .human
        .lines()
        .find(|l| l.starts_with("PASS a.clnrm.toml"))
        .unwrap_or_else(|| panic!("no PASS line: {}", reports.human));
    assert!(line.ends_with(" reused"), "{line}");
    let json = finished(&reports.json);
    assert_eq!(json["isolation"], "reused", "{json}");
    assert_eq!(json["timings"]["containers_reused"], 1, "{json}");
    let junit = roxmltree::Document::parse(&reports.junit).expect("JUnit XML parses");
    let property = junit
        .descendants()
        .find(|n| n.has_tag_name("property") && n.attribute("name") == Some("isolation"))
        .unwrap_or_else(|| panic!("no isolation property: {}", reports.junit));
    assert_eq!(property.attribute("value"), Some("reused"));
    assert!(
        reports
            .tap
            .contains("ok 1 - a.clnrm.toml (a) (reused containers)"),
        "{}",
        reports.tap
    );
    assert!(
        reports
            .html
            .contains("<span class=\"badge reused\">reused</span>"),
        "{}",
        reports.html
    );
}

#[test]
fn a_result_on_fresh_containers_is_never_labelled_reused() {
    if !docker_ready() {
        return;
    }
    let project = project("fresh");
    let _cleanup = PoolCleanup(&project);
    project.clnrm(&["run", "--reuse", "--force"]).expect_code(0);
    let reports = run_reuse(&project);
    assert!(!reports.human.contains("reused"), "{}", reports.human);
    let json = finished(&reports.json);
    assert!(json.get("isolation").is_none(), "{json}");
    assert_eq!(json["timings"]["containers_reused"], 0, "{json}");
    assert!(!reports.junit.contains("isolation"), "{}", reports.junit);
    assert!(!reports.tap.contains("reused"), "{}", reports.tap);
    assert!(!reports.html.contains("badge reused"), "{}", reports.html);
}

#[test]
fn a_test_that_chooses_reuse_in_its_meta_is_reused_while_the_others_stay_fresh() {
    if !docker_ready() {
        return;
    }
    let project = project("fresh");
    let _cleanup = PoolCleanup(&project);
    let own_choice = shell_test("b", "echo hi").replace(
        "version = \"1.0\"\n",
        "version = \"1.0\"\nisolation = \"reuse\"\n",
    );
    project.write("b.clnrm.toml", &own_choice);
    project.clnrm(&["run", "--reuse", "--force"]).expect_code(0);
    let reports = run_reuse(&project);
    let isolation = |test: &str| {
        reports
            .json
            .iter()
            .find(|e| e["event"] == "test_finished" && e["test"] == test)
            .unwrap_or_else(|| panic!("no result for {test}"))["isolation"]
            .clone()
    };
    assert_eq!(isolation("b.clnrm.toml"), "reused");
    assert_eq!(isolation("a.clnrm.toml"), serde_json::Value::Null);
}

#[test]
fn an_isolation_that_is_neither_fresh_nor_reuse_is_an_error_at_its_place() {
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    let test = shell_test("a", "echo hi").replace(
        "version = \"1.0\"\n",
        "version = \"1.0\"\nisolation = \"sometimes\"\n",
    );
    project.write("a.clnrm.toml", &test);
    let validate = project.clnrm(&["validate"]);
    validate.expect_code(1);
    validate.expect_contains("a.clnrm.toml:4:13");
    validate.expect_contains("expected \"fresh\" or \"reuse\"");
    let schema = project.clnrm(&["schema"]);
    schema.expect_code(0);
    schema.expect_contains("\"isolation\"");
}
