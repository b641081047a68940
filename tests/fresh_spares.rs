//! Fresh spares (docs/reference.md §12) as a user meets them: `clnrm dev` on tests that
//! leave state behind (rows in PostgreSQL, a file, a background process) gives on every
//! save the result `clnrm run` would give, on containers no run used before, while the
//! next set starts in the background; `isolation = "reuse"` keeps the old warm reuse,
//! labelled; nothing is left on the engine after `dev` ends, or after it is killed and
//! the next `clnrm dev` starts.

mod common;

use std::time::Duration;

use common::{
    docker_ready, postgres_db_service, services_image_ready, DevRuns, TestProject, IMAGE,
};
use serde_json::Value;

/// A PostgreSQL test that creates a table, inserts two rows and counts them; `variant`
/// changes only the count step (as an edit of it would). On a database an earlier run
/// used, the create step fails: `relation "items" already exists`.
fn postgres_rows(variant: u32) -> String {
    format!(
        r#"[meta]
name = "postgres_rows"
version = "1"

{db}
[[steps]]
name = "create_table"
command = ["psql", "--set=ON_ERROR_STOP=1", "--command=CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)"]

[[steps]]
name = "insert_two_rows"
command = ["psql", "--set=ON_ERROR_STOP=1", "--command=INSERT INTO items (name) VALUES ('apple'), ('pear')"]

[[steps]]
name = "count_rows"
command = ["psql", "--set=ON_ERROR_STOP=1", "--tuples-only", "--no-align", "--command=SELECT count(*) FROM items WHERE {variant} = {variant}"]
expected_output_regex = "^2$"
"#,
        db = postgres_db_service()
    )
}

/// A busybox test whose first step fails if an earlier run left its file or its
/// background process behind, then leaves both behind itself.
fn leaves_a_file_and_a_process(variant: u32) -> String {
    format!(
        r#"[meta]
name = "leftovers"
version = "1"

[service.box]
image = "{IMAGE}"

[[steps]]
name = "nothing_left_from_before"
run = "test ! -e /tmp/mark && ! ps | grep -v grep | grep -q 'sleep 777'"

[[steps]]
name = "leave_state"
run = "touch /tmp/mark; (sleep 777 > /dev/null 2>&1 &); echo {variant}"
"#
    )
}

/// `clnrm dev --format json` in a project; runs come within 120 s.
struct Dev(DevRuns);

impl Dev {
    fn start(project: &TestProject) -> Dev {
        Dev(DevRuns::start(project))
    }

    #[track_caller]
    fn next_run(&self) -> Value {
        self.0.run_within(Duration::from_secs(120))
    }

    fn signal(&mut self, signal: i32) -> Option<i32> {
        self.0.signal(signal)
    }
}

/// The one result of a run: its status, and how it got its containers.
fn result_of(run: &Value, test: &str) -> (String, Value) {
    let results = run["results"].as_array().expect("results");
    let result = results
        .iter()
        .find(|r| r["test"] == test)
        .unwrap_or_else(|| panic!("no result of {test}: {run}"));
    (
        result["status"].as_str().unwrap().to_string(),
        run["isolation"][test].clone(),
    )
}

fn docker_lines(args: &[&str]) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// Containers and networks of this project's pool (spares included), running or not.
fn pool_objects(project: &TestProject) -> Vec<String> {
    let label = format!(
        "label=clnrm.pool={}",
        clnrm::pool::project_key(project.root())
    );
    let mut objects = docker_lines(&["ps", "-aq", "--filter", &label]);
    objects.extend(docker_lines(&["network", "ls", "-q", "--filter", &label]));
    objects
}

#[test]
fn a_postgres_test_saved_ten_times_passes_ten_times_on_fresh_spares() {
    if !services_image_ready("a_postgres_test_saved_ten_times_passes_ten_times_on_fresh_spares") {
        return;
    }
    let volumes_before = docker_lines(&["volume", "ls", "-q"]);
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write("pg.clnrm.toml", &postgres_rows(0));
    let mut dev = Dev::start(&project);
    let first = dev.next_run();
    assert_eq!(result_of(&first, "pg.clnrm.toml").0, "pass", "{first}");
    for save in 1..=10 {
        // Saves 4 s apart: the next spare is up and healthy by the time of the save.
        std::thread::sleep(Duration::from_secs(4));
        project.write("pg.clnrm.toml", &postgres_rows(save));
        let run = dev.next_run();
        let (status, isolation) = result_of(&run, "pg.clnrm.toml");
        assert_eq!(status, "pass", "save {save}: {run}");
        assert_eq!(isolation["isolation"], "fresh", "save {save}: {run}");
        assert_eq!(isolation["spare_ready"], true, "save {save}: {run}");
        assert_eq!(isolation["waited_ms"], 0, "save {save}: {run}");
        let spares = &run["spares"];
        let held = spares["ready"].as_u64().unwrap() + spares["preparing"].as_u64().unwrap();
        assert_eq!(held, 1, "{run}");
        if save > 1 {
            // A PostgreSQL at rest: some MB, as `docker stats` says.
            let mb = spares["memory_mb"].as_f64().unwrap_or(0.0);
            assert!(mb > 2.0 && mb < 500.0, "the spare's memory: {run}");
        }
    }
    assert_eq!(dev.signal(libc::SIGINT), Some(0));
    assert_eq!(
        pool_objects(&project),
        Vec::<String>::new(),
        "left after dev"
    );
    assert_eq!(docker_lines(&["volume", "ls", "-q"]), volumes_before);
}

#[test]
fn with_isolation_reuse_the_second_run_sees_the_first_runs_table_and_says_reused() {
    if !services_image_ready(
        "with_isolation_reuse_the_second_run_sees_the_first_runs_table_and_says_reused",
    ) {
        return;
    }
    let project = TestProject::new();
    project.write("cleanroom.toml", "[dev]\nisolation = \"reuse\"\n");
    project.write("pg.clnrm.toml", &postgres_rows(0));
    let dev = Dev::start(&project);
    let first = dev.next_run();
    assert_eq!(result_of(&first, "pg.clnrm.toml").0, "pass", "{first}");
    project.write("pg.clnrm.toml", &postgres_rows(1));
    let run = dev.next_run();
    let (status, isolation) = result_of(&run, "pg.clnrm.toml");
    assert_eq!(isolation["isolation"], "reused", "{run}");
    assert_eq!(
        status, "fail",
        "the table the first run made is still there: {run}"
    );
    assert!(run.to_string().contains("already exists"), "{run}");
}

#[test]
fn a_test_leaving_a_file_and_a_process_passes_on_every_save() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write("left.clnrm.toml", &leaves_a_file_and_a_process(0));
    let dev = Dev::start(&project);
    let first = dev.next_run();
    assert_eq!(result_of(&first, "left.clnrm.toml").0, "pass", "{first}");
    for save in 1..=4 {
        std::thread::sleep(Duration::from_millis(1500));
        project.write("left.clnrm.toml", &leaves_a_file_and_a_process(save));
        let run = dev.next_run();
        let (status, isolation) = result_of(&run, "left.clnrm.toml");
        assert_eq!(status, "pass", "save {save}: {run}");
        assert_eq!(isolation["isolation"], "fresh", "{run}");
    }
}

#[test]
fn saves_faster_than_a_start_wait_for_the_spare_and_never_run_on_used_containers() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write("left.clnrm.toml", &leaves_a_file_and_a_process(0));
    let dev = Dev::start(&project);
    dev.next_run();
    let mut waited = 0;
    for save in 1..=5 {
        project.write("left.clnrm.toml", &leaves_a_file_and_a_process(save));
        let run = dev.next_run();
        let (status, isolation) = result_of(&run, "left.clnrm.toml");
        assert_eq!(status, "pass", "save {save}: {run}");
        assert_eq!(isolation["isolation"], "fresh", "{run}");
        if isolation["spare_ready"] == false {
            waited += 1;
        }
    }
    assert!(
        waited > 0,
        "saves right after a run wait for the spare being made"
    );
}

#[test]
fn spares_stay_within_max_spare_sets_least_recently_run_first() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    project.write("cleanroom.toml", "[dev]\nmax_spare_sets = 1\n");
    project.write("a.clnrm.toml", &leaves_a_file_and_a_process(0));
    project.write("b.clnrm.toml", &leaves_a_file_and_a_process(0));
    let dev = Dev::start(&project);
    let first = dev.next_run();
    let held = |run: &Value| {
        run["spares"]["ready"].as_u64().unwrap() + run["spares"]["preparing"].as_u64().unwrap()
    };
    assert_eq!(held(&first), 1, "two tests ran, one spare kept: {first}");
    std::thread::sleep(Duration::from_secs(1));
    project.write("a.clnrm.toml", &leaves_a_file_and_a_process(1));
    let run = dev.next_run();
    assert_eq!(result_of(&run, "a.clnrm.toml").0, "pass", "{run}");
    assert_eq!(held(&run), 1, "{run}");
    // The spare kept is a's, the test just run: b's next run waits for a start.
    std::thread::sleep(Duration::from_secs(2));
    project.write("b.clnrm.toml", &leaves_a_file_and_a_process(2));
    let run = dev.next_run();
    let (status, isolation) = result_of(&run, "b.clnrm.toml");
    assert_eq!(status, "pass", "{run}");
    assert_eq!(
        isolation["spare_ready"], false,
        "b's spare was evicted: {run}"
    );
}

#[test]
fn run_reuse_twice_passes_a_stateful_test_twice() {
    if !services_image_ready("run_reuse_twice_passes_a_stateful_test_twice") {
        return;
    }
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write("pg.clnrm.toml", &postgres_rows(0));
    for round in 0..2 {
        let run = project.clnrm(&["run", "--reuse", "--force"]);
        assert_eq!(run.code(), 0, "round {round}: {}", run.all());
    }
    assert_eq!(pool_objects(&project), Vec::<String>::new());
}

#[test]
fn a_killed_dev_leaves_spares_the_next_dev_removes() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write("left.clnrm.toml", &leaves_a_file_and_a_process(0));
    let mut dev = Dev::start(&project);
    dev.next_run();
    // Wait for the spare to be up, then kill dev where it stands.
    std::thread::sleep(Duration::from_secs(2));
    dev.signal(libc::SIGKILL);
    let left = pool_objects(&project);
    assert!(!left.is_empty(), "the killed dev left its spare");

    let mut dev = Dev::start(&project);
    let first = dev.next_run();
    assert_eq!(result_of(&first, "left.clnrm.toml").0, "pass", "{first}");
    let now = pool_objects(&project);
    for object in &left {
        assert!(
            !now.contains(object),
            "{object} of the killed dev is still there"
        );
    }
    assert_eq!(dev.signal(libc::SIGINT), Some(0));
    assert_eq!(pool_objects(&project), Vec::<String>::new());
}
