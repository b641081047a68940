//! How `clnrm` ends, as a shell or CI sees it: the exit code (0 all passed, 1 a test
//! failed or is invalid, 2 the command could not do its job), and what happens when the
//! reader of its output goes away (`clnrm run | head -1`, a closed stderr).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{clnrm_process, docker_ready, managed_containers, TestProject, IMAGE};

const PASSING: &str = r#"[meta]
name = "passing"
version = "1"

[service.box]
image = "busybox"

[[steps]]
name = "s"
command = ["true"]
"#;

#[test]
fn exit_codes_say_passed_invalid_or_could_not_do_its_job() {
    let project = TestProject::new();
    project.write("cleanroom.toml", "");

    // Nothing to test is the command failing its job, not a test failing.
    project
        .clnrm(&["validate"])
        .expect_code(2)
        .expect_contains("no tests found in .");
    project.clnrm(&["run", "--no-such-flag"]).expect_code(2);
    project.clnrm(&["--help"]).expect_code(0);
    project.clnrm(&["--version"]).expect_code(0);

    project.write("tests/passing.clnrm.toml", PASSING);
    project.clnrm(&["validate"]).expect_code(0);

    project.write("tests/broken.clnrm.toml", "[meta]\nname = \n");
    project
        .clnrm(&["validate"])
        .expect_code(1)
        .expect_contains("INVALID tests/broken.clnrm.toml");

    // A project is there already: init refuses, naming the file.
    project
        .clnrm(&["init"])
        .expect_code(2)
        .expect_contains("cleanroom.toml already exists");
}

/// A pipe whose reader is already closed: anything written to it fails with EPIPE.
fn pipe_without_reader() -> OwnedFd {
    let mut fds = [0; 2];
    // Close-on-exec, so clnrm processes other tests start meanwhile do not inherit
    // the reader and keep the pipe open.
    // SAFETY: `fds` has room for the two descriptors pipe2(2) writes.
    assert_eq!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) },
        0,
        "pipe2"
    );
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(reader);
    writer
}

#[test]
fn an_error_for_a_closed_stderr_still_exits_2_without_a_panic() {
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    let status = clnrm_process()
        .current_dir(project.root())
        .env("CLNRM_CACHE_DIR", project.path(".clnrm/cache"))
        .arg("validate")
        .stdout(Stdio::null())
        .stderr(Stdio::from(pipe_without_reader()))
        .status()
        .expect("run clnrm");
    // A panic while printing the error would be exit code 101.
    assert_eq!(status.code(), Some(2), "{status}");
}

/// A test that keeps its container busy for `seconds`.
fn sleeping_test(name: &str, seconds: u32) -> String {
    format!(
        "[meta]\nname = \"{name}\"\nversion = \"1\"\n\n[service.box]\nimage = \"{IMAGE}\"\n\n[[steps]]\nname = \"wait\"\ncommand = [\"sleep\", \"{seconds}\"]\n"
    )
}

/// Waits for `child` to end, at most `limit`; kills it (and fails) past that.
fn wait_at_most(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for clnrm") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("clnrm still running {limit:?} after its reader went away");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_reader_that_leaves_after_one_line_stops_the_run_and_leaves_no_container() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    // Run one at a time, all of them take 5 × 2 s plus five container starts.
    for n in 1..=5 {
        project.write(
            &format!("tests/t{n}.clnrm.toml"),
            &sleeping_test(&format!("t{n}"), 2),
        );
    }
    for format in ["json", "human"] {
        let started = Instant::now();
        let mut child = clnrm_process()
            .current_dir(project.root())
            .env("CLNRM_CACHE_DIR", project.path(".clnrm/cache"))
            .args(["run", "-j1", "--force", "--format", format])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start clnrm");
        let pid = child.id();
        let mut stderr = child.stderr.take().expect("stderr");
        let stderr_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });

        // `| head -1`: read one line, then close the pipe.
        let mut first_line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first_line)
            .expect("read the first line");
        assert!(!first_line.is_empty(), "{format}: clnrm printed nothing");

        let status = wait_at_most(&mut child, Duration::from_secs(30));
        let elapsed = started.elapsed();
        let stderr = stderr_reader.join().expect("stderr reader");
        assert_eq!(
            status.code(),
            Some(0),
            "{format}: a reader gone is a quiet exit\n--- stderr\n{stderr}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("error:"),
            "{format}: quiet means no error\n--- stderr\n{stderr}"
        );
        // All five tests take 10 s of sleep alone; the run stopped after the first.
        assert!(
            elapsed < Duration::from_secs(7),
            "{format}: the run went on for {elapsed:?} after its reader left"
        );
        let left = managed_containers(&format!("clnrm.pid={pid}"));
        assert!(
            left.is_empty(),
            "{format}: containers of the stopped run left behind: {left:?}"
        );
    }
}
