//! `clnrm run`: validated tests become plans, plans run in containers, results are
//! memoized. The runner produces [`Event`]s and knows nothing of terminals.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clnrm_exec::{
    Backend, ResolvedImage, ResolvedImages, Session, TestOutcome, TestReport, TestRun,
};
use clnrm_plan::{ImageSource, PlanInput, TestPlan};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::cache::{Key, Memo, Stage};
use crate::discover::TestFile;
use crate::pipeline::{Checked, ValidTest};
use crate::project::Project;
use crate::report::{ms, Event, Status, StepFailure, TestFinished, TestTimings};

/// The default image of a test that declares no service, when cleanroom.toml names none.
pub const FALLBACK_IMAGE: &str = "alpine:3.20";
/// The default step timeout when neither the step nor cleanroom.toml sets one.
pub const FALLBACK_STEP_TIMEOUT_MS: u64 = 60_000;

struct PlanStage;

impl Stage for PlanStage {
    const NAME: &'static str = "plan";
    const VERSION: u32 = clnrm_plan::STAGE_VERSION;
    type Output = TestPlan;
}

/// A passing result, stored under the hash of everything the test depends on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PassRecord {
    pub duration_ms: f64,
}

struct ResultStage;

impl Stage for ResultStage {
    const NAME: &'static str = "result";
    const VERSION: u32 = clnrm_exec::STAGE_VERSION;
    type Output = PassRecord;
}

/// The last inputs seen for a test (by identity), to explain why it runs again.
const RESULT_INDEX: &str = "result-index";

/// Everything a test's result depends on (SPEC §5).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResultInputs {
    /// blake3 of the plan: rendered config, specs, steps.
    pub plan: [u8; 32],
    /// Image ID by service (build images carry their context hash in the ID).
    pub images: BTreeMap<String, String>,
    /// blake3 of the contents of every volume host path.
    pub volumes: [u8; 32],
    /// blake3 of cleanroom.toml.
    pub project: [u8; 32],
}

impl ResultInputs {
    pub fn key(&self) -> Key {
        Key::of::<ResultStage>(&bincode::serialize(self).expect("result inputs serialize"))
    }

    /// What differs from `before`, in words.
    pub fn changed_since(&self, before: &ResultInputs) -> String {
        let mut changes = Vec::new();
        if self.plan != before.plan {
            changes.push("the test changed".to_string());
        }
        for (service, id) in &self.images {
            if before.images.get(service) != Some(id) {
                changes.push(format!("image of `{service}` changed ({})", short_id(id)));
            }
        }
        if self.volumes != before.volumes {
            changes.push("a mounted volume's content changed".to_string());
        }
        if self.project != before.project {
            changes.push("cleanroom.toml changed".to_string());
        }
        if changes.is_empty() {
            "its last run did not pass".to_string()
        } else {
            changes.join(", ")
        }
    }
}

fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

/// Options of `clnrm run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub jobs: usize,
    pub fail_fast: bool,
    pub force: bool,
    pub dry_run: bool,
}

/// A test ready to run: valid, planned, images resolved.
#[derive(Debug, Clone)]
pub struct Runnable {
    pub test: TestFile,
    pub name: String,
    pub plan: TestPlan,
    pub images: ResolvedImages,
    pub inputs: ResultInputs,
}

/// What happens to each selected test before anything starts.
#[derive(Debug, Clone)]
pub enum Disposition {
    /// Runs, for the reason given.
    Run(Box<Runnable>, String),
    /// Passed before with the same inputs, in the given milliseconds.
    Cached(Box<Runnable>, f64),
    /// Cannot run: (test, name, message).
    Error(TestFile, String, String),
}

impl Disposition {
    pub fn test(&self) -> &TestFile {
        match self {
            Disposition::Run(runnable, _) | Disposition::Cached(runnable, _) => &runnable.test,
            Disposition::Error(test, _, _) => test,
        }
    }

    /// The result inputs, for tests that got as far as having them.
    pub fn inputs(&self) -> Option<&ResultInputs> {
        match self {
            Disposition::Run(runnable, _) | Disposition::Cached(runnable, _) => {
                Some(&runnable.inputs)
            }
            Disposition::Error(..) => None,
        }
    }
}

/// Containers a test used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerUse {
    pub reused: usize,
    pub started: usize,
    pub removed: usize,
}

/// A future the executor may hold across awaits.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Where a test's containers come from: fresh ones per test (`run`), or a warm pool
/// (`dev`, `run --reuse`).
pub trait TestExecutor: Send + Sync {
    fn run_test<'a>(
        &'a self,
        identity: &'a str,
        plan: &'a TestPlan,
        images: &'a ResolvedImages,
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
        _identity: &'a str,
        plan: &'a TestPlan,
        images: &'a ResolvedImages,
        cancel: BoxFuture<'a, ()>,
    ) -> BoxFuture<'a, (TestReport, ContainerUse)> {
        Box::pin(async move {
            let report = clnrm_exec::run_test_until(
                TestRun {
                    backend: self.backend.as_ref(),
                    session: &self.session,
                    root: &self.root,
                    plan,
                    images: Some(images),
                },
                cancel,
            )
            .await;
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

/// Plans a validated test (memoized).
pub fn plan_test(
    memo: &Memo,
    project: &Project,
    test: &TestFile,
    valid: &ValidTest,
) -> Result<TestPlan, String> {
    let test_dir = test
        .identity
        .rsplit_once('/')
        .map(|(dir, _)| dir.to_string())
        .unwrap_or_default();
    let input = PlanInput {
        test: valid.config.clone(),
        default_image: project
            .config
            .default_image
            .clone()
            .unwrap_or_else(|| FALLBACK_IMAGE.to_string()),
        default_step_timeout_ms: project
            .config
            .default_step_timeout_ms
            .unwrap_or(FALLBACK_STEP_TIMEOUT_MS),
        test_dir,
    };
    let bytes = bincode::serialize(&input).expect("plan input serializes");
    memo.get_or_run::<PlanStage, _>(&bytes, || clnrm_plan::plan(&input))
        .map(|(plan, _)| plan)
        .map_err(|err| err.to_string())
}

/// blake3 over the contents and relative paths of every volume host path of a plan.
fn volumes_hash(root: &Path, plan: &TestPlan) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    for container in &plan.containers {
        for volume in &container.volumes {
            let path = root.join(&volume.host_path);
            hasher.update(volume.host_path.as_bytes());
            for entry in walkdir_sorted(&path) {
                hasher.update(entry.0.as_bytes());
                hasher.update(&entry.1);
            }
        }
    }
    *hasher.finalize().as_bytes()
}

/// (relative path, content hash) of every file under `path`, sorted.
fn walkdir_sorted(path: &Path) -> Vec<(String, [u8; 32])> {
    let mut files = Vec::new();
    if path.is_file() {
        if let Ok(bytes) = std::fs::read(path) {
            files.push((String::new(), *blake3::hash(&bytes).as_bytes()));
        }
        return files;
    }
    for entry in ignore::WalkBuilder::new(path)
        .standard_filters(false)
        .build()
        .flatten()
    {
        if entry.file_type().is_some_and(|t| t.is_file()) {
            if let Ok(bytes) = std::fs::read(entry.path()) {
                let rel = entry
                    .path()
                    .strip_prefix(path)
                    .unwrap_or(entry.path())
                    .to_string_lossy()
                    .into_owned();
                files.push((rel, *blake3::hash(&bytes).as_bytes()));
            }
        }
    }
    files.sort();
    files
}

/// `clnrm run`: reaps leftovers, prepares, and runs the selected tests on `executor`
/// (fresh containers, or the warm pool with `--reuse`), sending every event to
/// `events`. Returns when all ended.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    backend: Arc<dyn Backend>,
    executor: Arc<dyn TestExecutor>,
    memo: &Memo,
    project: &Project,
    checked: Vec<Checked>,
    options: &RunOptions,
    events: mpsc::UnboundedSender<Event>,
    cancel: watch::Receiver<bool>,
) {
    let started = Instant::now();
    if !options.dry_run {
        // Leftovers of killed clnrm processes go before we add our own (about 2 ms).
        match clnrm_exec::reap_orphans(backend.as_ref()).await {
            Ok(reaped) if !reaped.containers.is_empty() => tracing::warn!(
                "removed {} container(s) left by a clnrm process that is gone",
                reaped.containers.len()
            ),
            Ok(_) => {}
            Err(err) => tracing::warn!("could not look for leftover containers: {err}"),
        }
    }
    let dispositions = prepare(backend.as_ref(), memo, project, checked, options.force).await;
    if options.dry_run {
        let _ = events.send(Event::RunStarted {
            tests: dispositions.len(),
            jobs: options.jobs,
        });
        for disposition in &dispositions {
            let _ = events.send(dry_run_event(disposition));
        }
        return;
    }
    execute(
        executor,
        memo,
        dispositions,
        options,
        events,
        cancel,
        started,
    )
    .await;
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
                Event::TestFinished(TestFinished {
                    test: runnable.test.identity,
                    name: runnable.name,
                    status: Status::Pass,
                    cached: true,
                    duration_ms,
                    message: None,
                    failed_step: None,
                    failure: None,
                    timings: None,
                })
            }
            Disposition::Error(test, name, message) => Event::TestFinished(TestFinished {
                test: test.identity,
                name,
                status: Status::Error,
                cached: false,
                duration_ms: 0.0,
                message: Some(message),
                failed_step: None,
                failure: None,
                timings: None,
            }),
        };
        stats.record(&event);
        let _ = events.send(event);
    }

    let stop_scheduling = Arc::new(AtomicBool::new(
        options.fail_fast && stats.errors + stats.failed > 0,
    ));
    let semaphore = Arc::new(Semaphore::new(options.jobs.max(1)));
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
        tasks.spawn(async move {
            let _permit = permit;
            let _ = task_events.send(Event::TestStarted {
                test: runnable.test.identity.clone(),
                name: runnable.name.clone(),
            });
            let interrupted = Box::pin(async move {
                let _ = cancel.wait_for(|stop| *stop).await;
            });
            let (report, used) = executor
                .run_test(
                    &runnable.test.identity,
                    &runnable.plan,
                    &runnable.images,
                    interrupted,
                )
                .await;
            for event in step_events(&runnable.test.identity, &report) {
                let _ = task_events.send(event);
            }
            if fail_fast && !report.outcome.is_pass() {
                stop.store(true, Ordering::SeqCst);
            }
            for problem in &report.teardown_errors {
                tracing::warn!(test = %runnable.test.identity, "cleanup: {problem}");
            }
            (runnable, report, used)
        });
        // Collect whatever finished meanwhile, so results stream as they come.
        while let Some(done) = tasks.try_join_next() {
            if let Ok((runnable, report, used)) = done {
                let event = finish(memo, &runnable, &report, used);
                stats.record(&event);
                let _ = events.send(event);
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok((runnable, report, used)) = done {
            let event = finish(memo, &runnable, &report, used);
            stats.record(&event);
            let _ = events.send(event);
        }
    }
    let _ = events.send(stats.finished(ms(started.elapsed())));
}

fn not_run(runnable: &Runnable, reason: &str) -> Event {
    Event::TestFinished(TestFinished {
        test: runnable.test.identity.clone(),
        name: runnable.name.clone(),
        status: Status::Error,
        cached: false,
        duration_ms: 0.0,
        message: Some(reason.to_string()),
        failed_step: None,
        failure: None,
        timings: None,
    })
}

/// Stores a pass, and turns a report into its `test_finished` event.
fn finish(memo: &Memo, runnable: &Runnable, report: &TestReport, used: ContainerUse) -> Event {
    let duration_ms = report.timings.total_ms;
    let (status, message, failed_step, failure) = match &report.outcome {
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
            containers_ms: report.timings.containers_ms,
            execute_ms: report.timings.execute_ms,
            teardown_ms: report.timings.teardown_ms,
            containers_reused: used.reused,
            containers_started: used.started,
            containers_removed: used.removed,
        }),
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
        })
        .collect()
}

fn dry_run_event(disposition: &Disposition) -> Event {
    let (test, name, action, reason) = match disposition {
        Disposition::Run(runnable, why) => (&runnable.test, &runnable.name, "run", why.clone()),
        Disposition::Cached(runnable, _) => (
            &runnable.test,
            &runnable.name,
            "cached",
            "passed before with the same inputs".to_string(),
        ),
        Disposition::Error(test, name, message) => (test, name, "error", message.clone()),
    };
    Event::TestPlanned {
        test: test.identity.clone(),
        name: name.clone(),
        action: action.to_string(),
        reason,
    }
}

/// Plans every valid test, resolves its images (each distinct image once), and
/// decides whether it runs, is served from the result cache, or is an error.
pub async fn prepare(
    backend: &dyn Backend,
    memo: &Memo,
    project: &Project,
    checked: Vec<Checked>,
    force: bool,
) -> Vec<Disposition> {
    let mut image_cache: HashMap<ImageSource, Result<ResolvedImage, String>> = HashMap::new();
    let mut out = Vec::with_capacity(checked.len());
    for item in checked {
        let valid = match item.outcome {
            Ok(valid) => valid,
            Err(problem) => {
                let name = display_name(&item.test);
                out.push(Disposition::Error(item.test, name, problem.to_string()));
                continue;
            }
        };
        let name = valid.config.name.clone();
        if !valid.config.unevaluated_expectations.is_empty() {
            let message = format!(
                "{} not evaluated by this version",
                valid.config.unevaluated_expectations.join(", ")
            );
            out.push(Disposition::Error(item.test, name, message));
            continue;
        }
        let plan = match plan_test(memo, project, &item.test, &valid) {
            Ok(plan) => plan,
            Err(message) => {
                out.push(Disposition::Error(item.test, name, message));
                continue;
            }
        };
        let mut images = ResolvedImages::new();
        let mut image_error = None;
        for container in &plan.containers {
            if !image_cache.contains_key(&container.image) {
                let resolved = backend
                    .ensure_image(&container.image, &project.root)
                    .await
                    .map_err(|err| err.to_string());
                image_cache.insert(container.image.clone(), resolved);
            }
            match &image_cache[&container.image] {
                Ok(image) => {
                    images.insert(container.service.clone(), image.clone());
                }
                Err(message) => {
                    image_error = Some(format!("service `{}`: {message}", container.service));
                    break;
                }
            }
        }
        if let Some(message) = image_error {
            out.push(Disposition::Error(item.test, name, message));
            continue;
        }
        let inputs = ResultInputs {
            plan: *blake3::hash(&bincode::serialize(&plan).expect("plan serializes")).as_bytes(),
            images: images
                .iter()
                .map(|(service, image)| (service.clone(), image.id.clone()))
                .collect(),
            volumes: volumes_hash(&project.root, &plan),
            project: project.file_hash,
        };
        let index_key = Key::new(RESULT_INDEX, 1, item.test.identity.as_bytes());
        let previous: Option<ResultInputs> = memo.get_value(ResultStage::NAME, &index_key);
        memo.put_value(ResultStage::NAME, &index_key, &inputs);
        let cached = if force {
            None
        } else {
            memo.get_value::<PassRecord>(ResultStage::NAME, &inputs.key())
        };
        let runnable = Box::new(Runnable {
            test: item.test,
            name,
            plan,
            images,
            inputs,
        });
        match cached {
            Some(record) => {
                memo.record_hit(ResultStage::NAME);
                out.push(Disposition::Cached(runnable, record.duration_ms));
            }
            None => {
                memo.record_miss(ResultStage::NAME);
                let why = if force {
                    "--force".to_string()
                } else {
                    match &previous {
                        None => "never run with this cache".to_string(),
                        Some(before) => runnable.inputs.changed_since(before),
                    }
                };
                out.push(Disposition::Run(runnable, why));
            }
        }
    }
    out
}

fn display_name(test: &TestFile) -> String {
    test.identity
        .rsplit('/')
        .next()
        .unwrap_or(&test.identity)
        .to_string()
}

/// `--shard K/N`: whether a test belongs to shard K (1-based) of N, stably by identity.
pub fn in_shard(identity: &str, shard: (u64, u64)) -> bool {
    let hash = blake3::hash(identity.as_bytes());
    let bytes: [u8; 8] = hash.as_bytes()[..8].try_into().expect("8 bytes");
    u64::from_le_bytes(bytes) % shard.1 == shard.0 - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_tests() {
        let tests: Vec<String> = (0..200).map(|i| format!("tests/t{i}.clnrm.toml")).collect();
        let mut seen = 0;
        for k in 1..=3 {
            let mine = tests.iter().filter(|t| in_shard(t, (k, 3))).count();
            assert!(mine > 30, "shard {k} has {mine}");
            seen += mine;
        }
        assert_eq!(seen, tests.len());
    }

    #[test]
    fn changed_inputs_are_explained() {
        let before = ResultInputs {
            plan: [0; 32],
            images: BTreeMap::from([("web".into(), "sha256:aaaaaaaaaaaaaaaa".into())]),
            volumes: [0; 32],
            project: [0; 32],
        };
        let mut after = before.clone();
        after
            .images
            .insert("web".into(), "sha256:bbbbbbbbbbbbbbbbbb".into());
        assert_eq!(
            after.changed_since(&before),
            "image of `web` changed (bbbbbbbbbbbb)"
        );
        assert_ne!(after.key(), before.key());
        assert_eq!(before.changed_since(&before), "its last run did not pass");
    }
}
