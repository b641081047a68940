//! Steps and assertions: each step runs in its service's container (by exec,
//! or through a pooled container's step runner: `step_runner`), in order,
//! as often as its `wait_until` / `retries` say, and each attempt is judged by
//! the pure judge (`clnrm_judge`: exit code, regexes, JSON paths, captures).
//! Setup steps run first, teardown steps last whatever happened. Nothing here
//! starts or removes a container.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clnrm_judge::captures::{env_name, substitute, substitute_expectations};
use clnrm_judge::{judge, Compiled, StepRun};
use clnrm_plan::{Attempts, PlannedStep, TestPlan};

use super::progress::{ms, Progress};
use super::services::{exited, memory_limit_words, tail_chars};
use crate::lock;
use crate::{
    AttemptResult, Backend, CapturedValue, ExecOutput, ExecRequest, Mismatch, SpanCollector,
    StepFailure, StepResult, StepStatus, TestOutcome,
};

/// Where the steps record each finished step, so a cancelled run still reports them.
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

/// How long the teardown may take after the test's own time is up (a whole-test
/// timeout, Ctrl-C).
pub(crate) const TEARDOWN_BOUND: Duration = Duration::from_secs(30);

/// Every step of a plan in run order: setup, steps, teardown.
fn all_steps(plan: &TestPlan) -> impl Iterator<Item = &PlannedStep> {
    plan.setup.iter().chain(&plan.steps).chain(&plan.teardown)
}

/// Checks what can be checked of a plan before any container is involved (every
/// step's regexes and JSON paths compile; a part made of a capture is checked
/// with a stand-in value). `Err` carries the message of the `error` outcome.
pub fn check_plan(plan: &TestPlan) -> Result<(), String> {
    for step in all_steps(plan) {
        let stand_in = |_: &str| Some("x".to_string());
        let expectations = substitute_expectations(&step.expectations(), &stand_in)
            .map_err(|name| format!("{}: `${{captures.{name}}}`", step.key_path))?;
        Compiled::new(&expectations)
            .map_err(|e| format!("{}.{}: {}", step.key_path, e.key, e.message))?;
    }
    Ok(())
}

/// What the steps of one test share: where they run, and until when.
pub(crate) struct StepsRun<'a> {
    pub backend: &'a dyn Backend,
    pub plan: &'a TestPlan,
    pub containers: &'a BTreeMap<String, String>,
    pub sink: &'a StepSink<'a>,
    pub collector: Option<&'a dyn SpanCollector>,
    /// The whole-test `timeout`, as an instant.
    pub deadline: Option<Instant>,
}

/// What the steps of one test hand on to each other.
#[derive(Default)]
pub(crate) struct StepsState {
    /// Capture name → value.
    captures: BTreeMap<String, String>,
    /// Services whose first step has begun: `wait_for_span` holds only the first.
    services_begun: BTreeSet<String>,
    /// Services whose container was killed (a timed-out step that could not be
    /// ended inside it): why, for the steps that would have run there.
    killed: BTreeMap<String, String>,
}

/// Runs only the steps of a plan (setup, steps, then teardown whatever happened),
/// in the given containers (container ID by service name), with the same
/// semantics as [`run_test`](crate::run_test): expectations judged, attempts,
/// captures, `continue_on_failure`, timeouts, a stopped container reported
/// with its output. Nothing is started or removed. With `collector`, a
/// service's first step waits for its `wait_for_span`.
///
/// Returns the outcome, the steps that ran and the time the steps took (ms).
/// When `cancel` completes first, the outcome is an `error` ("interrupted"),
/// the teardown still runs, and the steps finished so far are returned.
pub async fn run_steps(
    backend: &dyn Backend,
    plan: &TestPlan,
    containers: &BTreeMap<String, String>,
    collector: Option<&dyn SpanCollector>,
    cancel: impl Future<Output = ()>,
) -> (TestOutcome, Vec<StepResult>, f64) {
    if let Err(message) = check_plan(plan) {
        return (TestOutcome::Error { message }, Vec::new(), 0.0);
    }
    let steps = Mutex::new(Vec::new());
    let sink = StepSink::Steps(&steps);
    let started = Instant::now();
    let run = StepsRun {
        backend,
        plan,
        containers,
        sink: &sink,
        collector,
        deadline: plan.timeout_ms.map(|t| started + Duration::from_millis(t)),
    };
    let mut state = StepsState::default();
    let outcome = tokio::select! {
        outcome = setup_and_steps(&run, &mut state) => outcome,
        () = cancel => TestOutcome::Error { message: "interrupted".into() },
    };
    let outcome = teardown(&run, &mut state, outcome).await;
    let execute_ms = ms(started.elapsed());
    let steps = steps.into_inner().unwrap_or_else(|e| e.into_inner());
    (outcome, steps, execute_ms)
}

/// The setup steps, then the steps. A failed setup step makes the test an `error`.
pub(crate) async fn setup_and_steps(run: &StepsRun<'_>, state: &mut StepsState) -> TestOutcome {
    match steps_in(run, state, &run.plan.setup).await {
        TestOutcome::Pass => {}
        TestOutcome::Fail(f) if !f.expected.starts_with(TEST_TIMEOUT) => {
            return TestOutcome::Error {
                message: format!(
                    "setup step `{}` failed: expected {}, actual {}",
                    f.step, f.expected, f.actual
                ),
            }
        }
        other => return other,
    }
    steps_in(run, state, &run.plan.steps).await
}

/// The teardown steps, each attempted whatever the others did, within
/// [`TEARDOWN_BOUND`]. A failing one makes a passing test an `error` naming it;
/// any other outcome stands.
pub(crate) async fn teardown(
    run: &StepsRun<'_>,
    state: &mut StepsState,
    outcome: TestOutcome,
) -> TestOutcome {
    if run.plan.teardown.is_empty() {
        return outcome;
    }
    // Teardown has its own time: the test's may be what ended it.
    let bounded = StepsRun {
        deadline: Some(Instant::now() + TEARDOWN_BOUND),
        ..*run
    };
    let mut failed = Vec::new();
    for step in &run.plan.teardown {
        match run_step(&bounded, state, step).await {
            StepEnd::Ran(result) => {
                if let Some(m) = &result.failure {
                    failed.push(format!(
                        "teardown step `{}` failed: expected {}, actual {}",
                        step.name, m.expected, m.actual
                    ));
                }
                run.sink.push(result);
            }
            StepEnd::TestTimeout(result) => {
                failed.push(format!(
                    "teardown step `{}` was still running after {}s",
                    step.name,
                    TEARDOWN_BOUND.as_secs()
                ));
                run.sink.push(result);
            }
            StepEnd::Error(message) => failed.push(format!("teardown: {message}")),
        }
    }
    match outcome {
        TestOutcome::Pass if !failed.is_empty() => TestOutcome::Error {
            message: failed.join("; "),
        },
        other => {
            for problem in failed {
                tracing::warn!(test = %run.plan.name, "{problem}");
            }
            other
        }
    }
}

/// How a whole-test timeout's failure begins (its `expected`).
pub(crate) const TEST_TIMEOUT: &str = "the test to finish within";

/// How one step ended.
enum StepEnd {
    /// It ran (perhaps several times); its last attempt decides.
    Ran(StepResult),
    /// The whole test's time ran out while it ran.
    TestTimeout(StepResult),
    /// It could not be run or judged: the test is an `error`.
    Error(String),
}

/// Runs `steps` in order. The first failure ends them, unless `continue_on_failure`.
async fn steps_in(
    run: &StepsRun<'_>,
    state: &mut StepsState,
    steps: &[PlannedStep],
) -> TestOutcome {
    let mut first_failure = None;
    for step in steps {
        let result = match run_step(run, state, step).await {
            StepEnd::Ran(result) => result,
            StepEnd::Error(message) => return TestOutcome::Error { message },
            StepEnd::TestTimeout(result) => {
                let limit = run.plan.timeout_ms.unwrap_or_default();
                let failure = StepFailure {
                    step: step.name.clone(),
                    service: step.service.clone(),
                    expected: format!("{TEST_TIMEOUT} {} (its `timeout`)", human_ms(limit)),
                    actual: format!(
                        "the test's timeout ended while step `{}` was running",
                        step.name
                    ),
                    stdout: result.stdout.clone(),
                    stderr: result.stderr.clone(),
                };
                run.sink.push(result);
                return TestOutcome::Fail(first_failure.unwrap_or(failure));
            }
        };
        run.sink.push(result.clone());
        if let Some(m) = &result.failure {
            if first_failure.is_none() {
                first_failure = Some(StepFailure {
                    step: step.name.clone(),
                    service: step.service.clone(),
                    expected: m.expected.clone(),
                    actual: m.actual.clone(),
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

/// A step made ready to run: captures substituted into its argv, env and
/// expectations (and given as `CLNRM_CAPTURE_NAME`), expectations compiled.
struct Prepared {
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    judge: Compiled,
}

/// `Err` is the mismatch the step fails with (a capture without a value, an
/// expectation that does not compile once substituted).
fn prepare(step: &PlannedStep, captures: &BTreeMap<String, String>) -> Result<Prepared, Mismatch> {
    let lookup = |name: &str| captures.get(name).cloned();
    let missing = |name: String| Mismatch {
        expected: format!("`${{captures.{name}}}` to have a value"),
        actual: format!("no step before `{}` captured `{name}`", step.name),
    };
    let argv = step
        .argv
        .iter()
        .map(|arg| substitute(arg, &lookup))
        .collect::<Result<Vec<_>, _>>()
        .map_err(missing)?;
    let mut env = BTreeMap::new();
    for (name, value) in &step.env {
        env.insert(name.clone(), substitute(value, &lookup).map_err(missing)?);
    }
    for (name, value) in captures {
        env.entry(env_name(name)).or_insert_with(|| value.clone());
    }
    let expectations = substitute_expectations(&step.expectations(), &lookup).map_err(missing)?;
    let judge = Compiled::new(&expectations).map_err(|e| Mismatch {
        expected: format!("{} to compile once captures are in", e.key),
        actual: e.message,
    })?;
    Ok(Prepared { argv, env, judge })
}

/// The most attempts a step may take, when it is a number.
fn attempts_allowed(step: &PlannedStep) -> Option<u32> {
    match step.attempts {
        Attempts::Retries { count, .. } => Some(count + 1),
        Attempts::Once | Attempts::WaitUntil { .. } => None,
    }
}

/// Runs one step, as often as its attempts allow, and judges it.
async fn run_step(run: &StepsRun<'_>, state: &mut StepsState, step: &PlannedStep) -> StepEnd {
    let backend = run.backend;
    if let Some(collector) = run.collector {
        if state.services_begun.insert(step.service.clone()) {
            if let Err(message) = collector.before_first_step(&step.service).await {
                return StepEnd::Error(message);
            }
        }
    }
    let Some(container) = run.containers.get(&step.service) else {
        return StepEnd::Error(format!(
            "{}: no container for service `{}`",
            step.key_path, step.service
        ));
    };
    if let Some(why) = state.killed.get(&step.service) {
        return StepEnd::Error(format!(
            "step `{}` (service `{}`) cannot run: {why}",
            step.name, step.service
        ));
    }
    let memory_bytes = run
        .plan
        .containers
        .iter()
        .find(|c| c.service == step.service)
        .and_then(|c| c.limits.memory_bytes);
    let first_started = Instant::now();
    let mut attempts: Vec<AttemptResult> = Vec::new();
    let mut last: Option<(ExecOutput, Option<Mismatch>, Vec<CapturedValue>)> = None;
    let mut out_of_time = false;
    let step_timeout = Duration::from_millis(step.timeout_ms);
    loop {
        let t = Instant::now();
        let prepared = match prepare(step, &state.captures) {
            Ok(p) => p,
            Err(mismatch) => {
                last = Some((ExecOutput::default(), Some(mismatch), Vec::new()));
                break;
            }
        };
        let mut timeout = step_timeout;
        if let Some(deadline) = run.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                out_of_time = true;
                break;
            }
            timeout = timeout.min(left);
        }
        let request = ExecRequest {
            argv: prepared.argv,
            env: prepared.env,
            workdir: step.workdir.clone(),
            timeout,
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
                return StepEnd::Error(message);
            }
        };
        let duration_ms = ms(t.elapsed());
        log_step_phases(step, duration_ms, &output.phases);
        // Ended by the test's time, not the step's own.
        out_of_time = output.timed_out && timeout < step_timeout;
        let judgement = judge(
            &prepared.judge,
            &StepRun {
                exit_code: output.exit_code,
                timed_out: output.timed_out,
                timeout_ms: step.timeout_ms,
                stdout: &output.stdout,
                stderr: &output.stderr,
            },
        );
        let failure = first_mismatch(&judgement.mismatches);
        attempts.push(AttemptResult {
            attempt: attempts.len() as u32 + 1,
            status: if failure.is_some() {
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
        });
        let captured: Vec<CapturedValue> = judgement
            .captured
            .iter()
            .map(|c| CapturedValue {
                name: c.name.clone(),
                value: if c.redact {
                    "[redacted]".to_string()
                } else {
                    c.value.clone()
                },
            })
            .collect();
        let passed = failure.is_none();
        if passed {
            for c in judgement.captured {
                state.captures.insert(c.name, c.value);
            }
        }
        let killed = output.killed_container.is_some();
        last = Some((output, failure, captured));
        if passed || out_of_time || killed {
            break;
        }
        let pause = match step.attempts {
            Attempts::Once => None,
            Attempts::Retries { count, delay_ms } => {
                (attempts.len() as u32 <= count).then_some(delay_ms)
            }
            Attempts::WaitUntil {
                timeout_ms,
                interval_ms,
            } => (first_started.elapsed() + Duration::from_millis(interval_ms)
                < Duration::from_millis(timeout_ms))
            .then_some(interval_ms),
        };
        let Some(pause_ms) = pause else { break };
        // A service that died is not waited on: the checks below say so.
        if !matches!(backend.container_status(container).await, Ok(s) if s.running) {
            break;
        }
        let mut pause = Duration::from_millis(pause_ms);
        if let Some(deadline) = run.deadline {
            pause = pause.min(deadline.saturating_duration_since(Instant::now()));
        }
        tokio::time::sleep(pause).await;
    }
    let mut result = StepResult {
        name: step.name.clone(),
        service: step.service.clone(),
        status: StepStatus::Pass,
        exit_code: None,
        timed_out: false,
        duration_ms: ms(first_started.elapsed()),
        failure: None,
        stdout: String::new(),
        stderr: String::new(),
        continued: false,
        attempts_allowed: attempts_allowed(step),
        attempts: Vec::new(),
        flaky: false,
        captured: Vec::new(),
    };
    let Some((output, failure, captured)) = last else {
        // The test's time ended before the step could start.
        result.status = StepStatus::Fail;
        return StepEnd::TestTimeout(result);
    };
    result.exit_code = output.exit_code;
    result.timed_out = output.timed_out;
    result.stdout = tail(&output.stdout);
    result.stderr = tail(&output.stderr);
    result.captured = captured;
    if out_of_time {
        result.status = StepStatus::Fail;
        result.attempts = attempts;
        return StepEnd::TestTimeout(result);
    }
    let failed = failure.is_some();
    if let Some(why) = &output.killed_container {
        // The step timed out (a failure as any other timeout); its
        // container is gone, which later steps on it are told.
        state.killed.insert(
            step.service.clone(),
            format!("step `{}` timed out and {why}", step.name),
        );
    } else if failed && !attempts.is_empty() {
        // A step that failed because its service died, or was killed for
        // its memory, is an error, not an assertion.
        if let Ok(status) = settled_status(backend, container, &output).await {
            if !status.running {
                let why = exited(backend, container, status, memory_bytes).await;
                return StepEnd::Error(format!("service `{}`: {why}", step.service));
            }
            if output.exit_code == Some(SIGKILL_EXIT_CODE)
                && (status.oom_killed || oom_kills_recorded(backend, container).await)
            {
                if let Some(limit) = memory_limit_words(memory_bytes) {
                    return StepEnd::Error(format!(
                        "step `{}` (service `{}`) was killed for using more than {limit}",
                        step.name, step.service
                    ));
                }
            }
        }
    }
    result.status = if failed {
        StepStatus::Fail
    } else {
        StepStatus::Pass
    };
    result.flaky =
        !failed && attempts.len() > 1 && matches!(step.attempts, Attempts::Retries { .. });
    result.continued = failed && step.continue_on_failure;
    result.failure = failure;
    if step.attempts != Attempts::Once {
        result.attempts = attempts;
    }
    StepEnd::Ran(result)
}

/// The mismatch a step reports: the first, naming its key where the text does
/// not, and how many more there were.
fn first_mismatch(mismatches: &[clnrm_judge::Mismatch]) -> Option<Mismatch> {
    let first = mismatches.first()?;
    let mut expected =
        if first.key.starts_with("expected_json") || first.key.starts_with("capture.") {
            format!("{}: {}", first.key, first.expected)
        } else {
            first.expected.clone()
        };
    if mismatches.len() > 1 {
        let others: Vec<&str> = mismatches[1..].iter().map(|m| m.key.as_str()).collect();
        expected.push_str(&format!(
            " (and {} more: {})",
            others.len(),
            others.join(", ")
        ));
    }
    Some(Mismatch {
        expected,
        actual: first.actual.clone(),
    })
}

pub(crate) fn human_ms(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
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

/// The last 20 lines, at most 4 KiB.
pub(crate) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(20);
    tail_chars(&lines[start..].join("\n"), 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step() -> PlannedStep {
        PlannedStep {
            name: "s".into(),
            service: "default".into(),
            argv: vec!["echo".into(), "${captures.id}".into()],
            expected_exit_code: 0,
            expected_output_regex: Some("^${captures.id}$".into()),
            expected_stderr_regex: None,
            workdir: None,
            env: BTreeMap::from([("ID".to_string(), "<${captures.id}>".to_string())]),
            timeout_ms: 1000,
            continue_on_failure: false,
            key_path: "steps[0]".into(),
            expected_output_regex_not: None,
            expected_stderr_regex_not: None,
            expected_json: Vec::new(),
            captures: Vec::new(),
            attempts: Attempts::Once,
        }
    }

    #[test]
    fn a_step_is_prepared_with_its_captures_whole_and_in_its_environment() {
        let captures = BTreeMap::from([("id".to_string(), "a b \"c\"".to_string())]);
        let p = prepare(&step(), &captures).unwrap();
        assert_eq!(p.argv, ["echo", "a b \"c\""]);
        assert_eq!(p.env["ID"], "<a b \"c\">");
        assert_eq!(p.env["CLNRM_CAPTURE_ID"], "a b \"c\"");
        let run = StepRun {
            exit_code: Some(0),
            timed_out: false,
            timeout_ms: 1000,
            stdout: "a b \"c\"\n",
            stderr: "",
        };
        assert!(judge(&p.judge, &run).passed());
        let m = prepare(&step(), &BTreeMap::new()).err().unwrap();
        assert_eq!(m.expected, "`${captures.id}` to have a value");
        assert_eq!(m.actual, "no step before `s` captured `id`");
    }

    #[test]
    fn the_first_mismatch_names_its_key_and_counts_the_others() {
        let m = |key: &str| clnrm_judge::Mismatch {
            key: key.into(),
            expected: "e".into(),
            actual: "a".into(),
        };
        let first = first_mismatch(&[m("expected_json[1]"), m("capture.id")]).unwrap();
        assert_eq!(
            first.expected,
            "expected_json[1]: e (and 1 more: capture.id)"
        );
        let first = first_mismatch(&[m("expected_output_regex")]).unwrap();
        assert_eq!(first.expected, "e");
        assert_eq!(first_mismatch(&[]), None);
    }

    #[test]
    fn check_plan_compiles_expectations_with_a_stand_in_for_captures() {
        let mut plan = TestPlan {
            name: "t".into(),
            containers: Vec::new(),
            steps: vec![step()],
            setup: Vec::new(),
            teardown: Vec::new(),
            timeout_ms: None,
            isolation: None,
        };
        assert_eq!(check_plan(&plan), Ok(()));
        plan.teardown.push(PlannedStep {
            expected_stderr_regex: Some("(".into()),
            key_path: "teardown[0]".into(),
            ..step()
        });
        let err = check_plan(&plan).unwrap_err();
        assert!(
            err.starts_with("teardown[0].expected_stderr_regex: "),
            "{err}"
        );
    }

    #[test]
    fn tails_keep_the_end() {
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let t = tail(&text);
        assert!(t.starts_with("line 80"), "{t}");
        assert!(t.ends_with("line 99"));
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
        assert_eq!(human_ms(1500), "1500ms");
    }
}
