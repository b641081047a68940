//! Test helpers shared by the stage crates' tests and the end-to-end tests of the
//! `clnrm` binary: notices that `cargo test` shows, the rule for when container tests
//! may be skipped, and where the compatibility corpus is. Not part of clnrm itself.

use std::io::Write;
use std::path::PathBuf;

/// Writes a line to the process's real stderr. The test harness captures `eprintln!`
/// (and shows it only for failing tests); a direct write to the stderr handle is not
/// captured, so a skip is visible in every `cargo test` run.
pub fn notice(message: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "NOTICE: {message}");
}

/// Whether container tests must run: `CI` set to any non-empty value other than
/// `false` (GitHub, GitLab and most CI systems set `CI=true`; some set `CI=1`).
pub fn containers_required() -> bool {
    ci_requires(std::env::var("CI").ok().as_deref())
}

fn ci_requires(value: Option<&str>) -> bool {
    match value.map(str::trim) {
        None | Some("") => false,
        Some(v) => !v.eq_ignore_ascii_case("false"),
    }
}

/// A container test that cannot run: a visible notice outside CI, a failure in CI.
/// Returns so the caller can `return` from the test.
pub fn skip_container_test(test: &str, why: &str) {
    if containers_required() {
        panic!("container test `{test}` cannot run under CI: {why}");
    }
    notice(&format!("skipping container test `{test}`: {why}"));
}

/// The compatibility corpus (the original clnrm's test files), from `$CLNRM_CORPUS`.
/// `None`, with a visible notice naming the test, when it is unset: a clone of the
/// repository alone has no corpus. Set but not a directory is a setup error.
pub fn corpus_dir(test: &str) -> Option<PathBuf> {
    match std::env::var_os("CLNRM_CORPUS") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            assert!(
                dir.is_dir(),
                "CLNRM_CORPUS={} is not a directory",
                dir.display()
            );
            Some(dir)
        }
        _ => {
            notice(&format!(
                "skipping `{test}`: CLNRM_CORPUS is not set (point it at the clnrm corpus to check compatibility)"
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ci_requires;

    #[test]
    fn ci_requires_containers_for_any_value_but_false() {
        assert!(!ci_requires(None));
        assert!(!ci_requires(Some("")));
        assert!(!ci_requires(Some("false")));
        assert!(!ci_requires(Some("FALSE")));
        assert!(ci_requires(Some("true")));
        assert!(ci_requires(Some("1")));
        assert!(ci_requires(Some("yes")));
    }
}
