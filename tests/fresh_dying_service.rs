//! A service that dies before the steps end is explained (issue 18): the error names
//! the service, its exit code and the last lines of its own output, in the human
//! output, the JSON events and the JUnit report, not "Container 0821…ef88b1 is not
//! running".

mod common;

use common::{json_events, services_image_ready, TestProject};

/// PostgreSQL started by hand, without `start-postgres` making /var/run/postgresql: it
/// cannot create its lock file there and exits with code 1 while its health check waits.
const POSTGRES_WITHOUT_ITS_SOCKET_DIR: &str = r#"[meta]
name = "pg_dies"
version = "1"

[service.db]
image = "clnrm-fixture/services:latest"
args = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "postgres", "-D", "/var/lib/postgresql/data"]
health_check = { cmd = ["pg_isready", "--quiet"], interval = "100ms", timeout = "5s", retries = 300 }

[[steps]]
name = "count"
command = ["psql", "--command=SELECT 1"]
"#;

/// What a user must be told: which service, how it ended, and what it said.
#[track_caller]
fn explains_the_death(text: &str) {
    assert!(text.contains("db"), "names the service: {text}");
    assert!(text.contains("code 1"), "gives the exit code: {text}");
    assert!(
        text.contains("FATAL") && text.contains("could not create lock file"),
        "shows PostgreSQL's own last lines: {text}"
    );
    assert!(
        !text.contains("is not running"),
        "no bare engine error: {text}"
    );
}

#[test]
fn a_postgres_that_exits_while_its_health_check_waits_is_explained_in_every_output() {
    if !services_image_ready(
        "a_postgres_that_exits_while_its_health_check_waits_is_explained_in_every_output",
    ) {
        return;
    }
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write("die.clnrm.toml", POSTGRES_WITHOUT_ITS_SOCKET_DIR);

    let human = project.clnrm(&["run", "--force"]);
    human.expect_code(1);
    assert!(
        human.stdout().contains("ERROR die.clnrm.toml"),
        "{}",
        human.all()
    );
    explains_the_death(&human.stdout());

    let junit = project.path("junit.xml");
    let json = project.clnrm(&[
        "run",
        "--force",
        "--format",
        "json",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    json.expect_code(1);
    let finished = json_events(&json.stdout())
        .into_iter()
        .find(|e| e["event"] == "test_finished")
        .expect("a test_finished event");
    assert_eq!(finished["status"], "error", "{finished}");
    explains_the_death(finished["message"].as_str().unwrap());
    explains_the_death(&std::fs::read_to_string(&junit).unwrap());
}
