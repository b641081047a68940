//! Steps and assertions: each step runs in its service's container (by exec,
//! or through a pooled container's step runner: `step_runner`), in order,
//! and its exit code and output are checked. Nothing here starts or
//! removes a container.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clnrm_plan::{PlannedStep, TestPlan};
use regex::{Regex, RegexBuilder};

use super::progress::{lock, ms, Progress};
use super::services::{exited, memory_limit_words, tail_chars};
use crate::{
    Backend, ExecOutput, ExecRequest, Mismatch, SpanCollector, StepFailure, StepResult, StepStatus,
    TestOutcome,
};

/// Where [`steps_in`] records each finished step, so a cancelled run still reports them.
pub(crate) enum StepSink<'a> {
    Progress(&'a Mutex<Progress>),
    Steps(&'a Mutex<Vec<StepResult>>),
}

impl StepSink<'_> {
    fn push(&self, result: StepResult) {
        match self {
            StepSink::Progress(p) => lock(p).steps.push(result),
            StepSink::Steps(s) => lock(s).push(result),
        }
    }
}

/// 128 + SIGKILL: how a shell reports a process the OOM killer ended.
const SIGKILL_EXIT_CODE: i64 = 137;

pub(crate) type StepRegexes = Vec<(Option<Regex>, Option<Regex>)>;

/// Every step's regexes, compiled; the first bad one as an error message naming its key path.
pub(crate) fn compile_step_regexes(plan: &TestPlan) -> Result<StepRegexes, String> {
    let mut regexes = Vec::with_capacity(plan.steps.len());
    for step in &plan.steps {
        let compile = |what: &str, re: &Option<String>| -> Result<Option<Regex>, String> {
            re.as_deref()
                .map(compile_regex)
                .transpose()
                .map_err(|e| format!("{}.{what}: {e}", step.key_path))
        };
        regexes.push((
            compile("expected_output_regex", &step.expected_output_regex)?,
            compile("expected_stderr_regex", &step.expected_stderr_regex)?,
        ));
    }
    Ok(regexes)
}

/// Checks what can be checked of a plan before any container is involved (the
/// step regexes compile). `Err` carries the message of the `error` outcome.
pub fn check_plan(plan: &TestPlan) -> Result<(), String> {
    compile_step_regexes(plan).map(|_| ())
}

/// Runs only the steps of a plan, in order, in the given containers (container
/// ID by service name), with the same semantics as [`run_test`](crate::run_test): exit codes and
/// regexes checked, `continue_on_failure`, timeouts, a stopped container
/// reported with its output. Nothing is started or removed. With `collector`, a
/// service's first step waits for its `wait_for_span`.
///
/// Returns the outcome, the steps that ran and the time the steps took (ms).
/// When `cancel` completes first, the outcome is an `error` ("interrupted") and
/// the steps finished so far are returned.
pub async fn run_steps(
    backend: &dyn Backend,
    plan: &TestPlan,
    containers: &BTreeMap<String, String>,
    collector: Option<&dyn SpanCollector>,
    cancel: impl Future<Output = ()>,
) -> (TestOutcome, Vec<StepResult>, f64) {
    let regexes = match compile_step_regexes(plan) {
        Ok(r) => r,
        Err(message) => return (TestOutcome::Error { message }, Vec::new(), 0.0),
    };
    let steps = Mutex::new(Vec::new());
    let sink = StepSink::Steps(&steps);
    let started = Instant::now();
    let outcome = tokio::select! {
        outcome = steps_in(backend, plan, containers, &regexes, &sink, collector) => outcome,
        () = cancel => TestOutcome::Error { message: "interrupted".into() },
    };
    let execute_ms = ms(started.elapsed());
    let steps = steps.into_inner().unwrap_or_else(|e| e.into_inner());
    (outcome, steps, execute_ms)
}

pub(crate) async fn steps_in(
    backend: &dyn Backend,
    plan: &TestPlan,
    containers: &BTreeMap<String, String>,
    regexes: &StepRegexes,
    sink: &StepSink<'_>,
    collector: Option<&dyn SpanCollector>,
) -> TestOutcome {
    let mut first_failure = None;
    // Services whose first step has begun: `wait_for_span` holds only the first.
    let mut services_begun = std::collections::BTreeSet::new();
    // Services whose container was killed (a timed-out step that could not be
    // ended inside it): why, for the steps that would have run there.
    let mut killed: BTreeMap<&str, String> = BTreeMap::new();
    for (step, (out_re, err_re)) in plan.steps.iter().zip(regexes) {
        if let Some(collector) = collector {
            if services_begun.insert(step.service.as_str()) {
                if let Err(message) = collector.before_first_step(&step.service).await {
                    return TestOutcome::Error { message };
                }
            }
        }
        let Some(container) = containers.get(&step.service) else {
            return TestOutcome::Error {
                message: format!(
                    "{}: no container for service `{}`",
                    step.key_path, step.service
                ),
            };
        };
        if let Some(why) = killed.get(step.service.as_str()) {
            return TestOutcome::Error {
                message: format!(
                    "step `{}` (service `{}`) cannot run: {why}",
                    step.name, step.service
                ),
            };
        }
        let memory_bytes = plan
            .containers
            .iter()
            .find(|c| c.service == step.service)
            .and_then(|c| c.limits.memory_bytes);
        let t = Instant::now();
        let request = ExecRequest {
            argv: step.argv.clone(),
            env: step.env.clone(),
            workdir: step.workdir.clone(),
            timeout: Duration::from_millis(step.timeout_ms),
        };
        let output = match backend.exec(container, &request).await {
            Ok(o) => o,
            Err(e) => {
                // Most often the service's container has stopped: say so, with its output.
                let message = match backend.container_status(container).await {
                    Ok(status) if !status.running => {
                        let why = exited(backend, container, status, memory_bytes).await;
                        format!("service `{}`: {why}", step.service)
                    }
                    _ => format!("step `{}` (service `{}`): {e}", step.name, step.service),
                };
                return TestOutcome::Error { message };
            }
        };
        let duration_ms = ms(t.elapsed());
        log_step_phases(step, duration_ms, &output.phases);
        let failure = check(step, &output, out_re.as_ref(), err_re.as_ref());
        let failed = failure.is_some();
        if let Some(why) = &output.killed_container {
            // The step timed out (a failure as any other timeout); its
            // container is gone, which later steps on it are told.
            killed.insert(
                step.service.as_str(),
                format!("step `{}` timed out and {why}", step.name),
            );
        } else if failed {
            // A step that failed because its service died, or was killed for
            // its memory, is an error, not an assertion.
            if let Ok(status) = settled_status(backend, container, &output).await {
                if !status.running {
                    let why = exited(backend, container, status, memory_bytes).await;
                    return TestOutcome::Error {
                        message: format!("service `{}`: {why}", step.service),
                    };
                }
                if output.exit_code == Some(SIGKILL_EXIT_CODE)
                    && (status.oom_killed || oom_kills_recorded(backend, container).await)
                {
                    if let Some(limit) = memory_limit_words(memory_bytes) {
                        return TestOutcome::Error {
                            message: format!(
                                "step `{}` (service `{}`) was killed for using more than {limit}",
                                step.name, step.service
                            ),
                        };
                    }
                }
            }
        }
        let result = StepResult {
            name: step.name.clone(),
            service: step.service.clone(),
            status: if failed {
                StepStatus::Fail
            } else {
                StepStatus::Pass
            },
            exit_code: output.exit_code,
            timed_out: output.timed_out,
            duration_ms,
            failure: failure.clone(),
            stdout: tail(&output.stdout),
            stderr: tail(&output.stderr),
            continued: failed && step.continue_on_failure,
        };
        sink.push(result.clone());
        if let Some(m) = failure {
            if first_failure.is_none() {
                first_failure = Some(StepFailure {
                    step: step.name.clone(),
                    service: step.service.clone(),
                    expected: m.expected,
                    actual: m.actual,
                    stdout: result.stdout,
                    stderr: result.stderr,
                });
            }
            if !step.continue_on_failure {
                break;
            }
        }
    }
    // A step that failed under `continue_on_failure` still fails the test: the
    // flag lets later steps run (and report), it does not turn a failed
    // assertion into a pass.
    match first_failure {
        Some(f) => TestOutcome::Fail(f),
        None => TestOutcome::Pass,
    }
}

/// Where a step's time went (`-v`): the engine's calls, and clnrm's own
/// share (the step's time minus the engine's).
fn log_step_phases(step: &PlannedStep, duration_ms: f64, phases: &crate::ExecPhases) {
    let engine_ms = ms(phases.engine());
    if phases.calls == 0 {
        tracing::info!(
            step = %step.name,
            service = %step.service,
            "step took {duration_ms:.1} ms through the container's step runner ({:.1} ms in it, \
             no engine call); clnrm's own share {:.2} ms",
            ms(phases.wait),
            (duration_ms - engine_ms).max(0.0),
        );
        return;
    }
    tracing::info!(
        step = %step.name,
        service = %step.service,
        "step took {duration_ms:.1} ms: create {:.1}, start/attach {:.1}, wait {:.1}, inspect {:.1} ms \
         ({} engine calls); clnrm's own share {:.2} ms",
        ms(phases.create),
        ms(phases.start),
        ms(phases.wait),
        ms(phases.inspect),
        phases.calls,
        (duration_ms - engine_ms).max(0.0),
    );
}

/// The container's status after a step; after a SIGKILL (which is what every
/// process gets when the container's main process dies) the engine may not
/// have recorded the container's end yet, so it is asked again briefly.
async fn settled_status(
    backend: &dyn Backend,
    container: &str,
    output: &ExecOutput,
) -> Result<crate::ContainerStatus, crate::ExecError> {
    let mut status = backend.container_status(container).await?;
    if output.exit_code == Some(SIGKILL_EXIT_CODE) {
        for _ in 0..10 {
            if !status.running {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            status = backend.container_status(container).await?;
        }
    }
    Ok(status)
}

/// Whether the kernel's OOM killer has ended a process of a running
/// container: the engine marks only a container whose main process it
/// killed, so the container's memory cgroup is read from inside it (cgroup v2
/// `memory.events`, v1 `memory.oom_control`: `oom_kill <count>`).
async fn oom_kills_recorded(backend: &dyn Backend, container: &str) -> bool {
    let request = ExecRequest {
        argv: vec![
            "cat".into(),
            "/sys/fs/cgroup/memory.events".into(),
            "/sys/fs/cgroup/memory/memory.oom_control".into(),
        ],
        env: BTreeMap::new(),
        workdir: None,
        timeout: Duration::from_secs(5),
    };
    // One of the two files is missing on any host: the exit code says nothing.
    let Ok(out) = backend.exec(container, &request).await else {
        return false;
    };
    out.stdout.lines().any(|line| {
        line.strip_prefix("oom_kill ")
            .and_then(|n| n.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
    })
}

/// `^` and `$` match at line starts and ends, as with grep: output almost always
/// ends with a newline, and `"^hello$"` should match `hello\n`.
fn compile_regex(re: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(re).multi_line(true).build()
}

/// The first assertion of a step that did not hold.
fn check(
    step: &PlannedStep,
    out: &ExecOutput,
    out_re: Option<&Regex>,
    err_re: Option<&Regex>,
) -> Option<Mismatch> {
    if out.timed_out {
        return Some(Mismatch {
            expected: format!("to finish within {}", human_duration(step.timeout_ms)),
            actual: format!("timed out after {}", human_duration(step.timeout_ms)),
        });
    }
    if out.exit_code != Some(i64::from(step.expected_exit_code)) {
        return Some(Mismatch {
            expected: format!("exit code {}", step.expected_exit_code),
            actual: match out.exit_code {
                Some(c) => format!("exit code {c}"),
                None => "no exit code".to_string(),
            },
        });
    }
    for (name, re, text) in [
        ("stdout", out_re, &out.stdout),
        ("stderr", err_re, &out.stderr),
    ] {
        if let Some(re) = re {
            if !re.is_match(text) {
                return Some(Mismatch {
                    expected: format!("{name} matching /{}/", re.as_str()),
                    actual: if text.is_empty() {
                        format!("{name} was empty")
                    } else {
                        format!("{name}: {}", tail_chars(text.trim_end(), 500))
                    },
                });
            }
        }
    }
    None
}

fn human_duration(ms: u64) -> String {
    if (ms / 1000) * 1000 == ms {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// The last 20 lines, at most 4 KiB.
pub(crate) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(20);
    tail_chars(&lines[start..].join("\n"), 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(code: i32) -> PlannedStep {
        PlannedStep {
            name: "s".into(),
            service: "default".into(),
            argv: vec!["x".into()],
            expected_exit_code: code,
            expected_output_regex: None,
            expected_stderr_regex: None,
            workdir: None,
            env: BTreeMap::new(),
            timeout_ms: 1000,
            continue_on_failure: false,
            key_path: "steps[0]".into(),
            expected_output_regex_not: None,
            expected_stderr_regex_not: None,
            expected_json: Vec::new(),
            captures: Vec::new(),
            attempts: clnrm_plan::Attempts::Once,
        }
    }

    fn out(code: Option<i64>, stdout: &str) -> ExecOutput {
        ExecOutput {
            exit_code: code,
            stdout: stdout.into(),
            ..Default::default()
        }
    }

    #[test]
    fn exit_codes_and_regexes_are_checked_in_order() {
        assert_eq!(check(&step(0), &out(Some(0), ""), None, None), None);
        assert_eq!(check(&step(3), &out(Some(3), ""), None, None), None);
        let m = check(&step(0), &out(Some(1), ""), None, None).unwrap();
        assert_eq!(
            (m.expected.as_str(), m.actual.as_str()),
            ("exit code 0", "exit code 1")
        );
        let re = compile_regex("^hello$").unwrap();
        assert_eq!(
            check(&step(0), &out(Some(0), "x\nhello\n"), Some(&re), None),
            None
        );
        let m = check(&step(0), &out(Some(0), "bye\n"), Some(&re), None).unwrap();
        assert_eq!(m.expected, "stdout matching /^hello$/");
        assert_eq!(m.actual, "stdout: bye");
        let m = check(&step(0), &out(Some(0), ""), None, Some(&re)).unwrap();
        assert_eq!(m.actual, "stderr was empty");
        let timed_out = ExecOutput {
            timed_out: true,
            ..Default::default()
        };
        let m = check(&step(0), &timed_out, None, None).unwrap();
        assert_eq!(m.actual, "timed out after 1s");
    }

    #[test]
    fn tails_keep_the_end() {
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let t = tail(&text);
        assert!(t.starts_with("line 80"), "{t}");
        assert!(t.ends_with("line 99"));
        let long = "é".repeat(5000);
        let t = tail_chars(&long, 4096);
        assert!(t.len() <= 4096 + 4);
    }

    #[test]
    fn outcomes_serialize_with_a_status_tag() {
        let json = serde_json::to_value(TestOutcome::Error {
            message: "m".into(),
        })
        .unwrap();
        assert_eq!(json["status"], "error");
        let json = serde_json::to_value(TestOutcome::Pass).unwrap();
        assert_eq!(json["status"], "pass");
        assert_eq!(human_duration(1500), "1500ms");
    }
}
