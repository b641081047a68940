//! Fault: the disk under the cache is full. The cache directory is a small tmpfs
//! (mounting one needs root, as on the project's machines and CI; elsewhere the test is
//! skipped with a notice, and under CI that is a failure), filled to a few sizes of room
//! left, from none to a little. The user's story: clnrm warns, every test still gets its
//! right outcome, and the exit code is the one a run without the cache gives. Needs the
//! Docker engine and the fixture image.

mod common;

use std::path::{Path, PathBuf};

use common::{docker_ready, figures, leftovers, outcomes, shell_test, TestProject};

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }

    /// Fills the filesystem until `room` bytes or less are left.
    fn fill_leaving(&self, room: u64) {
        let filler = self.0.join("filler");
        let _ = std::fs::remove_file(&filler);
        let mut file = std::fs::File::create(&filler).expect("create filler");
        let chunk = vec![0x5a_u8; 4096];
        use std::io::Write;
        while free_bytes(&self.0) > room {
            if file.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = file.sync_all();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn free_bytes(dir: &Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(dir)
        .output()
        .expect("df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_full_disk_under_the_cache_warns_and_changes_no_outcome() {
    if !docker_ready() {
        return;
    }
    let pid = std::process::id();
    let pass = format!("fault_disk_pass_{pid}");
    let fail = format!("fault_disk_fail_{pid}");
    let project = TestProject::new();
    project.write("cleanroom.toml", "");
    project.write("tests/pass.clnrm.toml", &shell_test(&pass, "echo fine"));
    project.write("tests/fail.clnrm.toml", &shell_test(&fail, "exit 5"));
    let cache = project.path("full-disk");
    let disk = match Tmpfs::mount(&cache, "1m") {
        Ok(disk) => disk,
        Err(why) => {
            clnrm_test_support::skip_container_test(
                "a_full_disk_under_the_cache_warns_and_changes_no_outcome",
                &why,
            );
            return;
        }
    };
    let cache_dir = cache.join("cache");
    let cache_arg = cache_dir.to_str().unwrap();

    // What the same commands give without a cache: the reference exit codes.
    let reference_all = project.clnrm(&["--no-cache", "run"]).code();
    let reference_pass = project
        .clnrm(&["--no-cache", "run", "tests/pass.clnrm.toml"])
        .code();
    assert_eq!((reference_all, reference_pass), (1, 0));

    let mut trials = 0;
    let mut correct = 0;
    let mut warned = 0;
    let mut wrong = Vec::new();
    // From a disk with no room at all (the store cannot even be created) to one with a
    // little room (it opens, then its writes fail), each with a fresh store.
    for room in [0_u64, 4 << 10, 16 << 10, 64 << 10, 256 << 10] {
        let _ = std::fs::remove_dir_all(&cache_dir);
        disk.fill_leaving(room);
        for (args, want_code) in [
            (vec!["run", "--format", "json"], reference_all),
            (
                vec!["run", "--format", "json", "tests/pass.clnrm.toml"],
                reference_pass,
            ),
            (vec!["run", "--format", "json"], reference_all),
        ] {
            trials += 1;
            let mut full = vec!["--cache-dir", cache_arg];
            full.extend(args.iter().copied());
            let run = project.clnrm(&full);
            let seen = outcomes(&run.stdout());
            let whole = args.len() == 3;
            let right = run.code() == want_code
                && seen.get(&pass).map(|(s, _)| s.as_str()) == Some("pass")
                && (!whole || seen.get(&fail) == Some(&("fail".to_string(), false)))
                && !run.all().contains("panicked");
            if run.stderr().contains("warning") {
                warned += 1;
            }
            if right {
                correct += 1;
            } else {
                wrong.push(format!(
                    "{} bytes free, {args:?}: exit {} (want {want_code}), {seen:?}\n{}",
                    room,
                    run.code(),
                    run.all()
                ));
            }
        }
        let left = leftovers(&[&pass, &fail]);
        assert!(left.is_empty(), "left {left:?}");
    }
    figures(
        "full disk under the cache",
        trials,
        correct,
        &format!("{warned} runs warned"),
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    assert!(warned > 0, "a full disk under the cache is warned about");
}
