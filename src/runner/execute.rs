//! Running prepared tests: `jobs` at once on a [`TestExecutor`], cached ones served
//! and errors reported without starting anything, every report turned into events
//! and every pass stored. Not deciding what runs: that is `prepare.rs`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clnrm_exec::{
    Backend, BoxFuture, ResolvedImages, Session, SpanCollector, TestOutcome, TestReport, TestRun,
};
use clnrm_expect::ResourceType;
use clnrm_plan::TestPlan;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::cache::{Memo, Stage};
use crate::otel::export::Exporter;
use crate::otel::self_spans::TraceIds;
use crate::otel::DefaultBridge;
use crate::report::{
    isolation_label, ms, Attempt, Event, PlannedAction, Status, StepFailure, TestFinished,
    TestPlanned, TestTimings,
};

use super::attempts;
use super::checks::{apply_assertions, apply_should_fail, observed, own_spans, with_trace_context};
use super::container_use::ContainerUse;
use super::inputs::{PassRecord, ResultStage};
use super::spans::{judge, Judged};
use super::{Disposition, RunOptions, Runnable};

/// One test for a [`TestExecutor`]: its plan and images, and with `collector` the
/// receiver of its spans.
#[derive(Clone, Copy)]
pub struct TestToRun<'a> {
    pub identity: &'a str,
    pub plan: &'a TestPlan,
    pub images: &'a ResolvedImages,
    pub collector: Option<&'a dyn SpanCollector>,
}

/// Where a test's containers come from: fresh ones per test (`run`), or a warm pool
/// (`dev`, `run --reuse`).
pub trait TestExecutor: Send + Sync {
    fn run_test<'a>(
        &'a self,
        test: TestToRun<'a>,
        cancel: BoxFuture<'a, ()>,
    ) -> BoxFuture<'a, (TestReport, ContainerUse)>;
}

/// Fresh containers for every test, removed when it ends.
pub struct FreshContainers {
    pub backend: Arc<dyn Backend>,
    pub session: Session,
    pub root: std::path::PathBuf,
}

impl TestExecutor for FreshContainers {
    fn run_test<'a>(
        &'a self,
        test: TestToRun<'a>,
        cancel: BoxFuture<'a, ()>,
    ) -> BoxFuture<'a, (TestReport, ContainerUse)> {
        Box::pin(async move {
            let run = TestRun {
                backend: self.backend.as_ref(),
                session: &self.session,
                root: &self.root,
                plan: test.plan,
                images: Some(test.images),
            };
            let report = clnrm_exec::run_test_collecting(run, test.collector, cancel).await;
            let started = report.services.len();
            let used = ContainerUse {
                reused: 0,
                started,
                removed: started,
            };
            (report, used)
        })
    }
}

/// Runs prepared tests, `options.jobs` at once, streaming events as tests finish;
/// serves cached ones and reports errors without starting anything for them.
pub async fn execute(
    executor: Arc<dyn TestExecutor>,
    memo: &Memo,
    dispositions: Vec<Disposition>,
    options: &RunOptions,
    events: mpsc::UnboundedSender<Event>,
    cancel: watch::Receiver<bool>,
    started: Instant,
) {
    let _ = events.send(Event::RunStarted {
        tests: dispositions.len(),
        jobs: options.jobs,
    });
    let flaky_fails = options.flaky_fails;
    let mut stats = crate::report::RunStats::default();
    let mut to_run = Vec::new();
    for disposition in dispositions {
        let event = match disposition {
            Disposition::Run(runnable, why) => {
                tracing::info!(test = %runnable.test.key(), stage = "result", "miss: {why}");
                to_run.push(*runnable);
                continue;
            }
            Disposition::Cached(runnable, duration_ms) => {
                tracing::info!(test = %runnable.test.key(), stage = "result", "hit");
                Event::TestFinished(TestFinished::without_steps(
                    runnable.test.key(),
                    runnable.name,
                    Status::Pass,
                    true,
                    duration_ms,
                    None,
                ))
            }
            Disposition::Error(test, name, message) => {
                Event::TestFinished(TestFinished::without_steps(
                    test.key(),
                    name,
                    Status::Error,
                    false,
                    0.0,
                    Some(message),
                ))
            }
            Disposition::Skip(test, name, reason) => {
                tracing::info!(test = %test.key(), stage = "result", "skipped: {reason}");
                Event::TestFinished(TestFinished::without_steps(
                    test.key(),
                    name,
                    Status::Skip,
                    false,
                    0.0,
                    Some(reason),
                ))
            }
        };
        stats.record(&event);
        let _ = events.send(event);
    }

    // Containers hold no store: other runs on this cache directory read and write it
    // meanwhile, and this run's results are written in one batch when it ends.
    if !to_run.is_empty() {
        super::prepare::off_the_runtime(|| memo.release());
    }
    let stop_scheduling = Arc::new(AtomicBool::new(
        options.fail_fast && stats.errors + stats.failed > 0,
    ));
    let semaphore = Arc::new(Semaphore::new(options.jobs.max(1)));
    // Bound at the first one-service test collecting spans, closed when the run ends.
    let bridge = Arc::new(DefaultBridge::default());
    let mut tasks = tokio::task::JoinSet::new();
    // A finished test: its event, counted and sent as it comes.
    let report_finished = |(runnable, report, used, judged, attempts): (_, _, _, _, _),
                           stats: &mut crate::report::RunStats,
                           events: &mpsc::UnboundedSender<Event>| {
        let event = finish(
            memo,
            &runnable,
            &report,
            used,
            judged,
            attempts,
            flaky_fails,
        );
        stats.record(&event);
        let _ = events.send(event);
    };
    for runnable in to_run {
        let permit = semaphore
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore open");
        if stop_scheduling.load(Ordering::SeqCst) || *cancel.borrow() {
            drop(permit);
            let reason = if *cancel.borrow() {
                "not run: interrupted"
            } else {
                "not run: --fail-fast after an earlier failure"
            };
            let event = not_run(&runnable, reason);
            stats.record(&event);
            let _ = events.send(event);
            continue;
        }
        let executor = executor.clone();
        let task_events = events.clone();
        let cancel = cancel.clone();
        let stop = stop_scheduling.clone();
        let fail_fast = options.fail_fast;
        let bridge = bridge.clone();
        let export = options.export.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let _ = task_events.send(Event::TestStarted {
                test: runnable.test.key(),
                name: runnable.name.clone(),
            });
            // `[meta] retries`: each attempt on the executor's containers for a new run
            // (fresh ones in `run`); a pass after a failed attempt is flaky.
            let mut attempts = Vec::new();
            let (mut report, used, judged) = loop {
                let mut watch = cancel.clone();
                let interrupted = Box::pin(async move {
                    let _ = watch.wait_for(|stop| *stop).await;
                });
                let (report, used, judged) = run_once(
                    executor.as_ref(),
                    &runnable,
                    &bridge,
                    export.as_deref(),
                    interrupted,
                )
                .await;
                let last = report.outcome.is_pass()
                    || attempts.len() as u32 >= runnable.retries
                    || *cancel.borrow();
                if last {
                    break (report, used, judged);
                }
                tracing::info!(
                    test = %runnable.test.key(),
                    "attempt {} of {} did not pass; retrying on new containers",
                    attempts.len() + 1,
                    runnable.retries + 1
                );
                attempts.push(attempt_of(attempts.len() as u32 + 1, &report));
            };
            if !attempts.is_empty() {
                attempts.push(attempt_of(attempts.len() as u32 + 1, &report));
            }
            report.timings.total_ms += attempts
                .iter()
                .rev()
                .skip(1)
                .map(|a| a.duration_ms)
                .sum::<f64>();
            for event in step_events(&runnable.test.key(), &report) {
                let _ = task_events.send(event);
            }
            if fail_fast && !report.outcome.is_pass() {
                stop.store(true, Ordering::SeqCst);
            }
            for problem in &report.teardown_errors {
                tracing::warn!(test = %runnable.test.key(), "cleanup: {problem}");
            }
            (runnable, report, used, judged, attempts)
        });
        // Collect whatever finished meanwhile, so results stream as they come.
        while let Some(done) = tasks.try_join_next() {
            if let Ok(done) = done {
                report_finished(done, &mut stats, &events);
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok(done) = done {
            report_finished(done, &mut stats, &events);
        }
    }
    let _ = events.send(stats.finished(ms(started.elapsed())));
}

/// One attempt of a test: run on `executor` in a trace of its own (clnrm's own spans and
/// the services' join it), `should_fail` applied, its spans judged when every step passed,
/// then its `[assertions]` on what the attempt observed. With `export`, the attempt's trace
/// is the run's and clnrm's own spans of it are queued for the collector.
async fn run_once(
    executor: &dyn TestExecutor,
    runnable: &Runnable,
    bridge: &Arc<DefaultBridge>,
    export: Option<&Exporter>,
    interrupted: BoxFuture<'_, ()>,
) -> (TestReport, ContainerUse, Option<Judged>) {
    let receiver = runnable
        .spans
        .as_ref()
        .map(|spans| spans.receiver(Some(bridge.clone())));
    let key = runnable.test.key();
    let ids = match export {
        Some(export) => export.test_ids(&key),
        None => TraceIds::new(&key),
    };
    let plan = with_trace_context(&runnable.plan, &ids);
    let test = TestToRun {
        identity: &key,
        plan: &plan,
        images: &runnable.images,
        collector: receiver.as_ref().map(|r| r as &dyn SpanCollector),
    };
    let started_at = std::time::SystemTime::now();
    let (mut report, used) = executor.run_test(test, interrupted).await;
    apply_should_fail(&mut report, &runnable.checks);
    let own = |report: &TestReport| {
        let images: BTreeMap<String, String> = runnable
            .images
            .iter()
            .map(|(service, image)| (service.clone(), image.reference.clone()))
            .collect();
        own_spans(
            (&runnable.name, &key),
            ids,
            started_at,
            report,
            &images,
            &runnable.checks,
        )
    };
    // Before judging: the expectations may ask for clnrm's own spans.
    if let (true, Some(receiver)) = (runnable.checks.own_spans, &receiver) {
        receiver.add_own(own(&report));
    }
    // Judged only when every step passed: a failed step already decides.
    let judged = match (&runnable.spans, &receiver) {
        (Some(spans), Some(receiver)) if report.outcome.is_pass() => {
            Some(judge(spans, receiver, &run_resources(&report, &plan)))
        }
        _ => None,
    };
    if let Some(failed) = judged.as_ref().and_then(|j| j.first_failed.as_ref()) {
        report.outcome = TestOutcome::Fail(clnrm_exec::StepFailure {
            step: failed.expectation.clone(),
            service: String::new(),
            expected: failed.expected.clone(),
            actual: failed.actual.clone(),
            stdout: judged
                .as_ref()
                .and_then(|j| j.failure.clone())
                .unwrap_or_default(),
            stderr: String::new(),
        });
    }
    if !runnable.checks.assertions.is_empty() {
        let spans = receiver.as_ref().map(|r| r.spans()).unwrap_or_default();
        let run = observed(
            &report,
            &plan,
            &runnable.checks,
            used,
            receiver.is_some(),
            spans,
        );
        apply_assertions(&mut report, &runnable.checks.assertions, &run);
    }
    // After judging, so the exported result is the attempt's final one.
    if let Some(export) = export {
        export.timed(|| export.add_test(&ids, own(&report)));
    }
    (report, used, judged)
}

/// How one attempt of a test ended, for the `attempts` of its report.
fn attempt_of(attempt: u32, report: &TestReport) -> Attempt {
    let (status, failed_step, message, failure) = outcome_parts(&report.outcome);
    Attempt {
        attempt,
        status,
        duration_ms: report.timings.total_ms,
        failed_step,
        message,
        failure,
    }
}

/// A test outcome as a report status, the failed step, an error's message and the failure.
fn outcome_parts(
    outcome: &TestOutcome,
) -> (Status, Option<String>, Option<String>, Option<StepFailure>) {
    match outcome {
        TestOutcome::Pass => (Status::Pass, None, None, None),
        TestOutcome::Fail(failure) => (
            Status::Fail,
            Some(failure.step.clone()),
            None,
            Some(StepFailure {
                expected: failure.expected.clone(),
                actual: failure.actual.clone(),
                stdout: failure.stdout.clone(),
                stderr: failure.stderr.clone(),
            }),
        ),
        TestOutcome::Error { message } => (Status::Error, None, Some(message.clone()), None),
    }
}

/// What the run had, for `[[expect.resource]]`: its services' containers and the volumes
/// mounted into them (by host and by container path).
fn run_resources(report: &TestReport, plan: &TestPlan) -> Vec<(ResourceType, String)> {
    let mut out: Vec<(ResourceType, String)> = report
        .services
        .iter()
        .map(|s| (ResourceType::Container, s.service.clone()))
        .collect();
    for container in &plan.containers {
        for volume in &container.volumes {
            out.push((ResourceType::Volume, volume.host_path.clone()));
            out.push((ResourceType::Volume, volume.container_path.clone()));
        }
    }
    out
}

fn not_run(runnable: &Runnable, reason: &str) -> Event {
    Event::TestFinished(TestFinished::without_steps(
        runnable.test.key(),
        runnable.name.clone(),
        Status::Error,
        false,
        0.0,
        Some(reason.to_string()),
    ))
}

/// Stores a pass (never a flaky one), and turns a report into its `test_finished` event.
/// `attempts` is every whole-test attempt when there was more than one; `flaky_fails`
/// (`--flaky-result fail`) makes a flaky pass a failure.
fn finish(
    memo: &Memo,
    runnable: &Runnable,
    report: &TestReport,
    used: ContainerUse,
    judged: Option<Judged>,
    attempts: Vec<Attempt>,
    flaky_fails: bool,
) -> Event {
    let judged = judged.unwrap_or_default();
    let duration_ms = report.timings.total_ms;
    // A step with `retries` that passed after a failed attempt.
    let flaky_step = report
        .outcome
        .is_pass()
        .then(|| attempts::flaky_step(report))
        .flatten();
    let (mut status, mut failed_step, message, mut failure) = outcome_parts(&report.outcome);
    if status == Status::Pass {
        if attempts.is_empty() && flaky_step.is_none() {
            memo.put_value(
                ResultStage::NAME,
                &runnable.inputs.key(),
                &PassRecord { duration_ms },
            );
        } else {
            // A pass after a failed attempt, of the whole test or of a step, is flaky:
            // reported so, and run again next time.
            status = Status::Flaky;
        }
    }
    if status == Status::Flaky && flaky_fails {
        // `--flaky-result fail`: the flaky pass is a failure, naming where it was flaky.
        status = Status::Fail;
        (failed_step, failure) = match &flaky_step {
            Some(step) => (
                Some(step.0.clone()),
                Some(attempts::flaky_failure(report, step)),
            ),
            None => (
                attempts.iter().rev().find_map(|a| a.failed_step.clone()),
                Some(attempts::flaky_test_failure(
                    attempts.len() as u32,
                    runnable.retries + 1,
                )),
            ),
        };
    }
    let timings = TestTimings {
        render_ms: runnable.stage_ms.render_ms,
        parse_ms: runnable.stage_ms.parse_ms,
        plan_ms: runnable.stage_ms.plan_ms,
        containers_ms: report.timings.containers_ms,
        execute_ms: report.timings.execute_ms,
        teardown_ms: report.timings.teardown_ms,
        containers_reused: used.reused,
        containers_started: used.started,
        containers_removed: used.removed,
        spans_ms: judged.wait_ms,
    };
    Event::TestFinished(TestFinished {
        test: runnable.test.key(),
        name: runnable.name.clone(),
        status,
        cached: false,
        duration_ms,
        message,
        failed_step,
        failure,
        timings: Some(timings),
        isolation: isolation_label(&timings),
        spans_wait: judged.wait.clone(),
        expectations: judged.verdicts.iter().map(|v| v.to_json()).collect(),
        line: None,
        max_attempts: (!attempts.is_empty()).then_some(runnable.retries + 1),
        attempts,
        step_attempts: attempts::step_attempts(report),
        captures: attempts::captures(report),
        teardown: if matches!(status, Status::Pass | Status::Flaky) {
            Vec::new()
        } else {
            attempts::teardown_output(&runnable.plan, report)
        },
    })
}

fn step_events(test: &str, report: &TestReport) -> Vec<Event> {
    report
        .steps
        .iter()
        .map(|step| Event::StepFinished {
            test: test.to_string(),
            step: step.name.clone(),
            service: step.service.clone(),
            status: match step.status {
                clnrm_exec::StepStatus::Pass => Status::Pass,
                clnrm_exec::StepStatus::Fail => Status::Fail,
            },
            exit_code: step.exit_code,
            duration_ms: step.duration_ms,
            failure: step.failure.as_ref().map(|mismatch| StepFailure {
                expected: mismatch.expected.clone(),
                actual: mismatch.actual.clone(),
                stdout: step.stdout.clone(),
                stderr: step.stderr.clone(),
            }),
            line: None,
        })
        .collect()
}

pub(super) fn dry_run_event(disposition: &Disposition) -> Event {
    let (test, name, action, reason) = match disposition {
        Disposition::Run(runnable, why) => (
            &runnable.test,
            &runnable.name,
            PlannedAction::Run,
            why.clone(),
        ),
        Disposition::Cached(runnable, _) => (
            &runnable.test,
            &runnable.name,
            PlannedAction::Cached,
            "passed before with the same inputs".to_string(),
        ),
        Disposition::Error(test, name, message) => {
            (test, name, PlannedAction::Error, message.clone())
        }
        Disposition::Skip(test, name, reason) => (test, name, PlannedAction::Skip, reason.clone()),
    };
    Event::TestPlanned(TestPlanned {
        test: test.key(),
        name: name.clone(),
        action,
        reason,
    })
}
