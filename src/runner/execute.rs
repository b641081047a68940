//! Running prepared tests: `jobs` at once on a [`TestExecutor`], cached ones served
//! and errors reported without starting anything, every report turned into events
//! and every pass stored. Not deciding what runs: that is `prepare.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clnrm_exec::{
    Backend, BoxFuture, ResolvedImages, Session, SpanCollector, TestOutcome, TestReport, TestRun,
};
use clnrm_plan::TestPlan;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::cache::{Memo, Stage};
use crate::otel::DefaultBridge;
use crate::report::{
    ms, Event, Outcome, PlannedAction, Status, StepFailure, TestFinished, TestPlanned, TestTimings,
};

use super::attempts;
use super::inputs::{PassRecord, ResultStage};
use super::spans::{judge, Judged};
use super::{Disposition, RunOptions, Runnable};

/// Containers a test used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerUse {
    pub reused: usize,
    pub started: usize,
    pub removed: usize,
}

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
                tracing::info!(test = %runnable.test.identity, stage = "result", "miss: {why}");
                to_run.push(*runnable);
                continue;
            }
            Disposition::Cached(runnable, duration_ms) => {
                tracing::info!(test = %runnable.test.identity, stage = "result", "hit");
                Event::TestFinished(TestFinished::without_steps(
                    runnable.test.identity,
                    runnable.name,
                    Status::Pass,
                    true,
                    duration_ms,
                    None,
                ))
            }
            Disposition::Error(test, name, message) => {
                Event::TestFinished(TestFinished::without_steps(
                    test.identity,
                    name,
                    Status::Error,
                    false,
                    0.0,
                    Some(message),
                ))
            }
        };
        stats.record(&event);
        let _ = events.send(event);
    }

    let stop_scheduling = Arc::new(AtomicBool::new(
        options.fail_fast && stats.errors + stats.failed > 0,
    ));
    let semaphore = Arc::new(Semaphore::new(options.jobs.max(1)));
    // Bound at the first one-service test collecting spans, closed when the run ends.
    let bridge = Arc::new(DefaultBridge::default());
    let mut tasks = tokio::task::JoinSet::new();
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
        let mut cancel = cancel.clone();
        let stop = stop_scheduling.clone();
        let fail_fast = options.fail_fast;
        let bridge = bridge.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let _ = task_events.send(Event::TestStarted {
                test: runnable.test.identity.clone(),
                name: runnable.name.clone(),
            });
            let interrupted = Box::pin(async move {
                let _ = cancel.wait_for(|stop| *stop).await;
            });
            let receiver = runnable
                .spans
                .as_ref()
                .map(|spans| spans.receiver(Some(bridge.clone())));
            let test = TestToRun {
                identity: &runnable.test.identity,
                plan: &runnable.plan,
                images: &runnable.images,
                collector: receiver.as_ref().map(|r| r as &dyn SpanCollector),
            };
            let (mut report, used) = executor.run_test(test, interrupted).await;
            // Judged only when every step passed: a failed step already decides.
            let judged = match (&runnable.spans, &receiver) {
                (Some(spans), Some(receiver)) if report.outcome.is_pass() => {
                    Some(judge(spans, receiver))
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
            for event in step_events(&runnable.test.identity, &report) {
                let _ = task_events.send(event);
            }
            if fail_fast && !report.outcome.is_pass() {
                stop.store(true, Ordering::SeqCst);
            }
            for problem in &report.teardown_errors {
                tracing::warn!(test = %runnable.test.identity, "cleanup: {problem}");
            }
            (runnable, report, used, judged)
        });
        // Collect whatever finished meanwhile, so results stream as they come.
        while let Some(done) = tasks.try_join_next() {
            if let Ok((runnable, report, used, judged)) = done {
                let event = finish(memo, &runnable, &report, used, judged, flaky_fails);
                stats.record(&event);
                let _ = events.send(event);
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok((runnable, report, used, judged)) = done {
            let event = finish(memo, &runnable, &report, used, judged, flaky_fails);
            stats.record(&event);
            let _ = events.send(event);
        }
    }
    let _ = events.send(stats.finished(ms(started.elapsed())));
}

fn not_run(runnable: &Runnable, reason: &str) -> Event {
    Event::TestFinished(TestFinished::without_steps(
        runnable.test.identity.clone(),
        runnable.name.clone(),
        Status::Error,
        false,
        0.0,
        Some(reason.to_string()),
    ))
}

/// Stores a pass, and turns a report into its `test_finished` event.
fn finish(
    memo: &Memo,
    runnable: &Runnable,
    report: &TestReport,
    used: ContainerUse,
    judged: Option<Judged>,
    flaky_fails: bool,
) -> Event {
    let judged = judged.unwrap_or_default();
    let duration_ms = report.timings.total_ms;
    let flaky = report
        .outcome
        .is_pass()
        .then(|| attempts::flaky_step(report))
        .flatten();
    let (status, message, failed_step, failure) = match &report.outcome {
        // A flaky pass is never stored: the next run runs it again.
        TestOutcome::Pass if flaky.is_some() => match &flaky {
            Some(f) if flaky_fails => (
                Status::Fail,
                None,
                Some(f.0.clone()),
                Some(attempts::flaky_failure(report, f)),
            ),
            _ => (Status::Pass, None, None, None),
        },
        TestOutcome::Pass => {
            memo.put_value(
                ResultStage::NAME,
                &runnable.inputs.key(),
                &PassRecord { duration_ms },
            );
            (Status::Pass, None, None, None)
        }
        TestOutcome::Fail(failure) => (
            Status::Fail,
            None,
            Some(failure.step.clone()),
            Some(StepFailure {
                expected: failure.expected.clone(),
                actual: failure.actual.clone(),
                stdout: failure.stdout.clone(),
                stderr: failure.stderr.clone(),
            }),
        ),
        TestOutcome::Error { message } => (Status::Error, Some(message.clone()), None, None),
    };
    Event::TestFinished(TestFinished {
        test: runnable.test.identity.clone(),
        name: runnable.name.clone(),
        status,
        cached: false,
        duration_ms,
        message,
        failed_step,
        failure,
        timings: Some(TestTimings {
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
        }),
        expectations: judged.verdicts.iter().map(|v| v.to_json()).collect(),
        line: None,
        outcome: flaky.map(|_| Outcome::Flaky),
        attempts: attempts::attempts(report),
        captures: attempts::captures(report),
        teardown: if status == Status::Pass {
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
    };
    Event::TestPlanned(TestPlanned {
        test: test.identity.clone(),
        name: name.clone(),
        action,
        reason,
    })
}
