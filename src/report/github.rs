//! The GitHub Actions consumer: a workflow command `::error file=…,line=…::…` for
//! every test that failed or errored, which GitHub shows on that line of the pull
//! request. It prints nothing else: it runs next to the human output.

use super::{Event, Status, TestFinished};

/// Turns failures into annotation lines; the caller writes them.
#[derive(Debug, Default)]
pub struct GithubAnnotations {
    /// The project root as the workflow sees paths (relative to where clnrm runs,
    /// `/`-separated, empty or ending in `/`), put before every test identity.
    root_prefix: String,
}

impl GithubAnnotations {
    pub fn new(root_prefix: &str) -> GithubAnnotations {
        let mut root_prefix = root_prefix.replace('\\', "/");
        if !root_prefix.is_empty() && !root_prefix.ends_with('/') {
            root_prefix.push('/');
        }
        GithubAnnotations { root_prefix }
    }

    /// The annotation `event` calls for, if any.
    pub fn record(&self, event: &Event) -> Option<String> {
        match event {
            Event::TestFinished(finished)
                if matches!(finished.status, Status::Fail | Status::Error) =>
            {
                Some(self.annotation(finished))
            }
            _ => None,
        }
    }

    fn annotation(&self, finished: &TestFinished) -> String {
        let mut properties = format!(
            "file={}",
            escape_property(&format!(
                "{}{}",
                self.root_prefix,
                crate::discover::file_of(&finished.test)
            ))
        );
        if let Some(line) = finished.line {
            properties.push_str(&format!(",line={line}"));
        }
        let (title, message) = match (&finished.failed_step, &finished.failure) {
            (Some(step), failure) => {
                let details = failure
                    .as_ref()
                    .map(|f| format!("\nexpected: {}\nactual:   {}", f.expected, f.actual))
                    .unwrap_or_default();
                (
                    format!("clnrm: {} failed", finished.name),
                    format!("step `{step}` failed{details}"),
                )
            }
            (None, _) => (
                format!("clnrm: {} could not run", finished.name),
                finished
                    .message
                    .clone()
                    .unwrap_or_else(|| "error".to_string()),
            ),
        };
        properties.push_str(&format!(",title={}", escape_property(&title)));
        format!("::error {properties}::{}", escape_data(&message))
    }
}

/// Whether annotations go out without `--format github`: on GitHub Actions, when
/// stdout is a log rather than a terminal (docs/reference.md §11).
pub fn github_actions_log(github_actions: Option<&str>, stdout_is_terminal: bool) -> bool {
    github_actions == Some("true") && !stdout_is_terminal
}

// The escaping of GitHub's workflow-command parser (actions/toolkit `command.ts`).
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::StepFailure;

    fn failed() -> TestFinished {
        TestFinished {
            test: "tests/mismatch.clnrm.toml".into(),
            name: "mismatch".into(),
            status: Status::Fail,
            cached: false,
            duration_ms: 5.0,
            message: None,
            failed_step: Some("greet".into()),
            failure: Some(StepFailure {
                expected: "stdout matches `^bye`".into(),
                actual: "50% done, ok".into(),
                stdout: String::new(),
                stderr: String::new(),
            }),
            timings: None,
            isolation: None,
            spans_wait: None,
            line: Some(6),
            expectations: Vec::new(),
            attempts: Vec::new(),
            max_attempts: None,
            step_attempts: Vec::new(),
            captures: Vec::new(),
            teardown: Vec::new(),
        }
    }

    #[test]
    fn a_failed_step_is_an_error_on_its_line_with_expected_and_actual() {
        let annotations = GithubAnnotations::new("fixtures/failing");
        let line = annotations
            .record(&Event::TestFinished(failed()))
            .expect("an annotation");
        assert_eq!(
            line,
            "::error file=fixtures/failing/tests/mismatch.clnrm.toml,line=6,\
             title=clnrm%3A mismatch failed::step `greet` failed%0A\
             expected: stdout matches `^bye`%0Aactual:   50%25 done, ok"
        );
    }

    #[test]
    fn passes_are_not_annotated_and_errors_carry_their_message() {
        let annotations = GithubAnnotations::new("");
        let mut passed = failed();
        passed.status = Status::Pass;
        assert_eq!(annotations.record(&Event::TestFinished(passed)), None);
        let mut invalid = failed();
        invalid.status = Status::Error;
        invalid.failed_step = None;
        invalid.failure = None;
        invalid.line = None;
        invalid.message = Some("unknown key".into());
        assert_eq!(
            annotations.record(&Event::TestFinished(invalid)).unwrap(),
            "::error file=tests/mismatch.clnrm.toml,title=clnrm%3A mismatch could not run::unknown key"
        );
    }

    #[test]
    fn a_matrix_combination_is_annotated_on_its_file_and_skips_and_flaky_passes_are_not() {
        let annotations = GithubAnnotations::new("");
        let mut combination = failed();
        combination.test = "tests/api.clnrm.toml.tera[os=a,ver=1]".into();
        combination.name = "api[os=a,ver=1]".into();
        let line = annotations
            .record(&Event::TestFinished(combination.clone()))
            .unwrap();
        assert!(
            line.starts_with("::error file=tests/api.clnrm.toml.tera,line=6,"),
            "{line}"
        );
        assert!(
            line.contains("title=clnrm%3A api[os=a%2Cver=1] failed"),
            "{line}"
        );
        for status in [Status::Skip, Status::Flaky] {
            combination.status = status;
            assert_eq!(
                annotations.record(&Event::TestFinished(combination.clone())),
                None
            );
        }
    }

    #[test]
    fn automatic_only_in_a_github_actions_log() {
        assert!(github_actions_log(Some("true"), false));
        assert!(!github_actions_log(Some("true"), true));
        assert!(!github_actions_log(None, false));
        assert!(!github_actions_log(Some("false"), false));
    }
}
