//! A test's volumes are part of what its result depends on. Their contents are
//! hashed only when a file changed (by its stat), and a file that cannot be read is
//! an error naming it: never skipped, so never a stale `PASS (cached)`.

mod common;

use std::path::Path;
use std::time::Duration;

use clnrm::cache::{Memo, MemoOptions};
use clnrm::discover::TestFile;
use clnrm::pipeline::{FsWorld, Pipeline};
use clnrm::project::{Overrides, Project};
use clnrm::runner::{plan_test, volumes_hash, RACY_SECS, VOLUME_FILE_STAGE};
use clnrm_plan::TestPlan;
use common::{json_events, TestProject, IMAGE};

const VOLUME_TEST: &str = "tests/vol.clnrm.toml";

fn volume_project() -> TestProject {
    let project = TestProject::new();
    project
        .write("cleanroom.toml", "[project]\nname = \"volumes\"\n")
        .write(
            VOLUME_TEST,
            &format!(
                "[meta]\nname = \"vol\"\nversion = \"1\"\n\n[service.reader]\nimage = \"{IMAGE}\"\n\
                 volumes = [{{ host_path = \"data\", container_path = \"/data\", read_only = true }}]\n\n\
                 [[steps]]\nname = \"read\"\nservice = \"reader\"\ncommand = [\"cat\", \"/data/a.txt\"]\n"
            ),
        )
        .write("tests/data/a.txt", "alpha\n")
        .write("tests/data/sub/b.txt", "bravo\n");
    project
}

/// The plan of the project's volume test, through the real pipeline.
fn plan_of(root: &Path, memo: &Memo) -> (Project, TestPlan) {
    let project = Project::load(root, &Overrides::default()).unwrap();
    let test = TestFile {
        identity: VOLUME_TEST.to_string(),
        path: root.join(VOLUME_TEST),
        is_template: false,
        instance: None,
    };
    let valid = Pipeline::new(&project, &FsWorld, memo)
        .check_one(&test)
        .unwrap_or_else(|problem| panic!("{problem}"));
    let plan = plan_test(memo, &project, &test, &valid).unwrap();
    (project, plan)
}

/// (hits, misses, writes) of the volume file records.
fn volume_counts(memo: &Memo) -> (u64, u64, u64) {
    let stats = memo.stats();
    let s = stats
        .stages
        .get(VOLUME_FILE_STAGE)
        .copied()
        .unwrap_or_default();
    (s.hits, s.misses, s.writes)
}

/// Files changed less than [`RACY_SECS`] ago are not trusted to their stat.
fn let_files_settle() {
    std::thread::sleep(Duration::from_secs(RACY_SECS) + Duration::from_millis(200));
}

#[test]
fn unchanged_files_are_hashed_once_and_an_edit_that_keeps_size_and_mtime_is_seen() {
    let project = volume_project();
    let memo = Memo::in_memory(MemoOptions::default());
    let (loaded, plan) = plan_of(project.root(), &memo);
    let_files_settle();

    let first = volumes_hash(&memo, &loaded.root, &plan).unwrap();
    assert_eq!(
        volume_counts(&memo),
        (0, 2, 2),
        "both files hashed and recorded"
    );
    let again = volumes_hash(&memo, &loaded.root, &plan).unwrap();
    assert_eq!(again, first);
    assert_eq!(volume_counts(&memo), (2, 2, 2), "second time: no file read");

    // Same size, same modification time, other bytes: the change time still moves.
    let b = project.path("tests/data/sub/b.txt");
    let modified = std::fs::metadata(&b).unwrap().modified().unwrap();
    std::fs::write(&b, "BRAVO\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&b)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    let edited = volumes_hash(&memo, &loaded.root, &plan).unwrap();
    assert_ne!(edited, first, "an edit kept the old hash");
    assert_eq!(
        volume_counts(&memo).0,
        3,
        "a.txt still served from its record"
    );
}

#[test]
fn a_file_changed_just_now_is_hashed_every_time_until_it_settles() {
    let project = volume_project();
    let memo = Memo::in_memory(MemoOptions::default());
    let (loaded, plan) = plan_of(project.root(), &memo);
    volumes_hash(&memo, &loaded.root, &plan).unwrap();
    volumes_hash(&memo, &loaded.root, &plan).unwrap();
    assert_eq!(
        volume_counts(&memo),
        (0, 4, 0),
        "fresh files were trusted to their stat"
    );
}

#[test]
fn an_unreadable_volume_file_is_an_error_naming_it() {
    let project = volume_project();
    let memo = Memo::in_memory(MemoOptions::default());
    let (loaded, plan) = plan_of(project.root(), &memo);
    // A link to nothing cannot be read, whoever runs the test (root reads any mode).
    std::os::unix::fs::symlink("missing-target", project.path("tests/data/sub/gone.txt")).unwrap();
    let err = volumes_hash(&memo, &loaded.root, &plan).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("gone.txt"), "{message}");
    assert!(message.contains("data"), "{message}");
}

#[test]
fn run_reports_a_test_with_an_unreadable_volume_file_as_an_error_and_caches_nothing() {
    if !common::docker_ready() {
        clnrm_test_support::skip_container_test(
            "run_reports_a_test_with_an_unreadable_volume_file_as_an_error_and_caches_nothing",
            "no Docker engine or fixture image",
        );
        return;
    }
    let project = volume_project();
    std::os::unix::fs::symlink("missing-target", project.path("tests/data/gone.txt")).unwrap();
    for attempt in 0..2 {
        let run = project.clnrm(&["run", "--format", "json"]);
        let events = json_events(&run.stdout());
        let finished: Vec<_> = events
            .iter()
            .filter(|e| e["event"] == "test_finished")
            .collect();
        assert_eq!(finished.len(), 1, "{}", run.all());
        let event = finished[0];
        assert_eq!(event["status"], "error", "attempt {attempt}: {}", run.all());
        assert_eq!(event["cached"], false, "attempt {attempt}: {}", run.all());
        let message = event["message"].as_str().unwrap_or_default();
        assert!(message.contains("gone.txt"), "attempt {attempt}: {message}");
    }
}
