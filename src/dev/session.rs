//! One `clnrm dev` session's state between runs: from a batch of changed paths to
//! the tests it affects, through the memoized pipeline, onto warm containers. Each
//! run becomes a [`DevRun`]. Not the loop that feeds it batches (see `engine`), and
//! knows nothing of terminals.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use clnrm_exec::Backend;
use tokio::sync::{mpsc, watch};

use super::DevOptions;
use super::{Budget, DevRun, DevTimings, HitsMisses, ResourceSample, RunResources, DEV_RUN_EVENT};
use crate::cache::remote::UPLOAD_DRAIN_TIMEOUT;
use crate::cache::Memo;
use crate::discover::{self, TestFile};
use crate::pipeline::{FsWorld, Pipeline};
use crate::pool::Pool;
use crate::project::Project;
use crate::report::{ms, Event, Status, TestFinished};
use crate::runner::{self, ContainerUse, Disposition, ResultInputs, RunOptions, TestExecutor};
use crate::watch::{affected_tests, ChangeBatch, DependencyIndex};

/// The state `clnrm dev` keeps between runs.
pub struct DevSession {
    /// What `clnrm dev` was started with; `options.project` is reloaded when
    /// `cleanroom.toml` changes. The cache (`options.cache`) is opened for each run
    /// and closed after it, so that `clnrm run`, `validate` or `cache stats` in another
    /// terminal never wait on an idle `clnrm dev` (one process holds a cache directory
    /// at a time).
    options: DevOptions,
    backend: Arc<dyn Backend>,
    pool: Arc<Pool>,
    /// Known tests by identity.
    tests: BTreeMap<String, TestFile>,
    /// What each test's last render read, for affected-test selection.
    index: DependencyIndex,
    /// The inputs of each test's last completed run: an edit that changes none of
    /// them runs nothing.
    last_inputs: HashMap<String, ResultInputs>,
    /// Tests whose last check failed: retried on every change, since what would fix
    /// them (a missing import, say) is not in any record.
    broken: BTreeSet<String>,
    /// The tests the last run checked (executed, served from cache or found invalid).
    last_run_tests: BTreeSet<String>,
    runs: usize,
}

impl DevSession {
    pub fn new(options: DevOptions, backend: Arc<dyn Backend>, pool: Arc<Pool>) -> DevSession {
        DevSession {
            options,
            backend,
            pool,
            tests: BTreeMap::new(),
            index: DependencyIndex::new(),
            last_inputs: HashMap::new(),
            broken: BTreeSet::new(),
            last_run_tests: BTreeSet::new(),
            runs: 0,
        }
    }

    /// Whether changes to `paths` (released or still settling) replace content the
    /// last run read: then its results are not to be shown.
    pub fn is_superseded_by(&self, paths: &BTreeSet<String>, rescan: bool) -> bool {
        if self.last_run_tests.is_empty() {
            return false;
        }
        if rescan {
            return true;
        }
        let affected = affected_tests(paths, &self.index);
        affected.all
            || affected
                .tests
                .iter()
                .chain(&affected.test_files)
                .any(|test| self.last_run_tests.contains(test))
    }

    /// Forgets what the last run saw of its tests, so that the next run of them
    /// executes (or is served from the result cache) instead of being skipped as
    /// unchanged: its results were never shown.
    pub fn discard_last_run(&mut self) {
        for test in std::mem::take(&mut self.last_run_tests) {
            self.last_inputs.remove(&test);
        }
    }

    /// What each known test's last render and plan read.
    pub fn dependencies(&self) -> &DependencyIndex {
        &self.index
    }

    pub fn test_count(&self) -> usize {
        self.tests.len()
    }

    /// Every file and folder a known test's last render read or its plan names
    /// (imports, includes, build contexts, volume host paths), root-relative: what the
    /// watcher must see, wherever it lies under the root.
    pub fn inputs(&self) -> BTreeSet<String> {
        self.index
            .tests()
            .filter_map(|test| self.index.deps_of(test))
            .flatten()
            .cloned()
            .collect()
    }

    /// The first run: every selected test.
    pub async fn first_run(&mut self, cancel: watch::Receiver<bool>) -> DevRun {
        let started = Instant::now();
        let mut warnings = Vec::new();
        if let Err(err) = self.rediscover() {
            warnings.push(err);
        }
        let selected: BTreeSet<String> = self.tests.keys().cloned().collect();
        let mut run = self
            .run(selected, Vec::new(), Vec::new(), cancel, true)
            .await;
        run.warnings.extend(warnings);
        run.clock_start = Some(started);
        run
    }

    /// A run for a batch of changes (already coalesced by the caller).
    pub async fn on_change(
        &mut self,
        batch: &ChangeBatch,
        cancel: watch::Receiver<bool>,
    ) -> DevRun {
        let mut warnings = Vec::new();
        let affected = affected_tests(&batch.paths, &self.index);
        let mut selected: BTreeSet<String> = affected.tests.clone();
        let mut removed = Vec::new();
        if affected.all || batch.rescan {
            match Project::load(&self.options.project.root, &self.options.overrides) {
                Ok(project) => self.options.project = project,
                Err(err) => warnings.push(format!("cleanroom.toml: {err}")),
            }
            // A new project file can change every input: forget what ran before.
            self.last_inputs.clear();
        }
        if affected.all || batch.rescan || affected.rediscover {
            let before: BTreeSet<String> = self.tests.keys().cloned().collect();
            if let Err(err) = self.rediscover() {
                warnings.push(err);
            }
            let after: BTreeSet<String> = self.tests.keys().cloned().collect();
            removed.extend(before.difference(&after).cloned());
            if affected.all || batch.rescan {
                selected = after;
            } else {
                selected.extend(after.difference(&before).cloned());
            }
        }
        for path in &affected.test_files {
            let absolute = self.options.project.root.join(path);
            if absolute.is_file() {
                if !self.tests.contains_key(path) && self.is_selected(&absolute) {
                    if let Ok(found) = discover::discover(
                        &self.options.project.root,
                        &[absolute],
                        &self.options.cwd,
                    ) {
                        for test in found {
                            self.tests.insert(test.identity.clone(), test);
                        }
                    }
                }
                if self.tests.contains_key(path) {
                    selected.insert(path.clone());
                }
            } else if self.tests.remove(path).is_some() {
                removed.push(path.clone());
            }
        }
        selected.retain(|test| {
            let exists = self.tests.get(test).is_some_and(|t| t.path.is_file());
            if !exists && self.tests.remove(test).is_some() {
                removed.push(test.clone());
            }
            exists
        });
        selected.extend(
            self.broken
                .iter()
                .filter(|t| self.tests.contains_key(*t))
                .cloned(),
        );
        removed.sort();
        removed.dedup();
        for test in &removed {
            self.index.remove(test);
            self.last_inputs.remove(test);
            self.broken.remove(test);
            self.pool.forget_test(test).await;
        }
        // An editor's temp file that was renamed away (sed -i, some IDEs) is no change
        // of its own: show what exists or was known.
        let changed: Vec<String> = batch
            .paths
            .iter()
            .filter(|path| {
                self.options.project.root.join(path).exists()
                    || removed.contains(path)
                    || self.index.tests().any(|test| {
                        self.index
                            .deps_of(test)
                            .is_some_and(|deps| deps.contains(*path))
                    })
            })
            .cloned()
            .collect();
        let mut run = self.run(selected, changed, removed, cancel, false).await;
        run.warnings.extend(warnings);
        run.timings_ms.detect = ms(batch.detect);
        run.timings_ms.debounce = ms(batch
            .released_at
            .saturating_duration_since(batch.first_event_at));
        run.clock_start = Some(
            batch
                .first_event_at
                .checked_sub(batch.detect)
                .unwrap_or(batch.first_event_at),
        );
        run
    }

    fn is_selected(&self, absolute: &std::path::Path) -> bool {
        self.options.paths.is_empty()
            || self
                .options
                .paths
                .iter()
                .any(|p| absolute.starts_with(discover::absolute(p, &self.options.cwd)))
    }

    /// Re-walks the selected paths: the set of tests as it is on disk now.
    fn rediscover(&mut self) -> Result<(), String> {
        let paths = if self.options.paths.is_empty() {
            vec![self.options.project.root.clone()]
        } else {
            self.options.paths.clone()
        };
        let found = discover::discover(&self.options.project.root, &paths, &self.options.cwd)
            .map_err(|err| err.to_string())?;
        self.tests = found.into_iter().map(|t| (t.identity.clone(), t)).collect();
        Ok(())
    }

    async fn run(
        &mut self,
        selected: BTreeSet<String>,
        changed: Vec<String>,
        removed: Vec<String>,
        cancel: watch::Receiver<bool>,
        first_time: bool,
    ) -> DevRun {
        self.runs += 1;
        let resources_start = ResourceSample::now();
        let started = Instant::now();
        self.last_run_tests = selected.clone();
        let tests: Vec<TestFile> = selected
            .iter()
            .filter_map(|id| self.tests.get(id).cloned())
            .collect();

        let (mut memo, cache_warnings) =
            Memo::open(&self.options.cache.dir, self.options.cache.options.clone());
        // The remote is read when a run may find others' results there (the session's
        // first run, a checkout or pull, a library edit); a save of one test asks only the
        // local cache, so the inner loop never waits on the network. Passes go up always.
        let read_remote = first_time || tests.len() > 1;
        if let Some(remote) = self
            .options
            .cache
            .remote
            .as_ref()
            .and_then(|remote| remote.for_another_run(read_remote))
        {
            memo.attach_remote(remote);
        }
        let cache_open_ms = ms(started.elapsed());
        // Render and parse (memoized; pure work on the rayon pool).
        let pipeline = Pipeline::new(&self.options.project, &FsWorld, &memo);
        let checked = pipeline.check_all(&tests);
        let (render_hits, render_misses) = pipeline.render_count.get();
        let (parse_hits, parse_misses) = pipeline.parse_count.get();
        let render_ms = pipeline.render_count.millis();
        let parse_ms = pipeline.parse_count.millis();
        drop(pipeline);

        let mut problems = Vec::new();
        for item in &checked {
            let identity = &item.test.identity;
            match &item.outcome {
                Ok(valid) => {
                    self.broken.remove(identity);
                    let mut deps: Vec<String> = valid
                        .record
                        .files
                        .iter()
                        .filter(|dep| !dep.path.starts_with("builtin:"))
                        .map(|dep| dep.path.clone())
                        .collect();
                    deps.push(identity.clone());
                    self.index.update(identity, deps);
                }
                Err(problem) => {
                    self.broken.insert(identity.clone());
                    self.index.update(identity, [identity.clone()]);
                    problems.push(format!("{identity}\n{}", problem));
                }
            }
        }

        // Plan, resolve images, decide (result memo).
        let plan_started = Instant::now();
        let dispositions = runner::prepare(
            self.backend.as_ref(),
            &memo,
            &self.options.project,
            checked,
            false,
        )
        .await;
        // Build contexts and volumes feed the next affected-test selection.
        for disposition in &dispositions {
            if let Disposition::Run(runnable, _) | Disposition::Cached(runnable, _) = disposition {
                let extra = runnable.plan.containers.iter().flat_map(|container| {
                    let build = match &container.image {
                        clnrm_plan::ImageSource::Build { context, .. } => Some(context.clone()),
                        clnrm_plan::ImageSource::Reference { .. } => None,
                    };
                    build
                        .into_iter()
                        .chain(container.volumes.iter().map(|v| v.host_path.clone()))
                });
                let mut deps: Vec<String> = self
                    .index
                    .deps_of(&runnable.test.identity)
                    .map(|d| d.iter().cloned().collect())
                    .unwrap_or_default();
                deps.extend(extra);
                self.index.update(&runnable.test.identity, deps);
            }
        }
        // An edit that leaves every input of a test as it was runs nothing.
        let dispositions: Vec<Disposition> = dispositions
            .into_iter()
            .filter(|d| {
                first_time
                    || d.inputs().is_none()
                    || self.last_inputs.get(&d.test().key()) != d.inputs()
            })
            .collect();
        let plan_ms = ms(plan_started.elapsed());
        let inputs: HashMap<String, ResultInputs> = dispositions
            .iter()
            .filter_map(|d| Some((d.test().key(), d.inputs()?.clone())))
            .collect();

        // Execute on warm containers.
        let execute_started = Instant::now();
        let (events_tx, mut events_rx) = mpsc::unbounded_channel();
        let options = RunOptions {
            jobs: self.options.jobs,
            fail_fast: false,
            force: false,
            dry_run: false,
            export: None,
            flaky_fails: false,
        };
        runner::execute(
            self.pool.clone(),
            &memo,
            dispositions,
            &options,
            events_tx,
            cancel,
            started,
        )
        .await;
        let mut results: Vec<TestFinished> = Vec::new();
        let mut containers = ContainerUse::default();
        let mut isolation = BTreeMap::new();
        let (mut containers_ms, mut execute_ms, mut spans_ms) = (0.0, 0.0, 0.0);
        let (mut result_hits, mut result_misses) = (0, 0);
        while let Ok(event) = events_rx.try_recv() {
            let Event::TestFinished(mut finished) = event else {
                continue;
            };
            if finished.cached {
                result_hits += 1;
            } else if finished.status != Status::Error || finished.timings.is_some() {
                result_misses += 1;
            }
            // The run's totals carry the timings; a dev result stays as docs/reference.md §8 shows it.
            if let Some(t) = finished.timings.take() {
                if let Some(got) = self.pool.last_isolation(&finished.test) {
                    isolation.insert(finished.test.clone(), got);
                }
                containers_ms += t.containers_ms;
                execute_ms += t.execute_ms;
                spans_ms += t.spans_ms;
                containers.reused += t.containers_reused;
                containers.started += t.containers_started;
                containers.removed += t.containers_removed;
            }
            // Only runs that finished count as seen; an error (engine down) retries.
            if finished.status != Status::Error {
                if let Some(seen) = inputs.get(&finished.test) {
                    self.last_inputs.insert(finished.test.clone(), seen.clone());
                }
            } else {
                self.last_inputs.remove(&finished.test);
            }
            results.push(finished);
        }
        results.sort_by(|a, b| a.test.cmp(&b.test));
        // Tests run side by side: split the phase's wall time between getting containers
        // and running steps in the proportion of their summed times, so the panel adds up.
        let phase_ms = ms(execute_started.elapsed());
        let busy_ms = containers_ms + execute_ms + spans_ms;
        if busy_ms > phase_ms && busy_ms > 0.0 {
            containers_ms *= phase_ms / busy_ms;
            execute_ms *= phase_ms / busy_ms;
            spans_ms *= phase_ms / busy_ms;
        }
        // Uploads end with the run, so a failed one is among its warnings.
        memo.finish_remote(UPLOAD_DRAIN_TIMEOUT);
        let mut warnings = cache_warnings;
        warnings.extend(memo.take_warnings());
        let closing = Instant::now();
        drop(memo);
        tracing::debug!(
            cache_open_ms,
            cache_close_ms = ms(closing.elapsed()),
            "cache opened and closed for the run"
        );
        DevRun {
            event: DEV_RUN_EVENT,
            run: self.runs,
            changed,
            ran: results.iter().map(|r| r.test.clone()).collect(),
            results,
            timings_ms: DevTimings {
                render: render_ms,
                parse: parse_ms,
                plan: plan_ms,
                containers: containers_ms,
                execute: execute_ms,
                spans: spans_ms,
                ..DevTimings::default()
            },
            cache: BTreeMap::from([
                (
                    "render",
                    HitsMisses {
                        hits: render_hits,
                        misses: render_misses,
                    },
                ),
                (
                    "parse",
                    HitsMisses {
                        hits: parse_hits,
                        misses: parse_misses,
                    },
                ),
                (
                    "result",
                    HitsMisses {
                        hits: result_hits,
                        misses: result_misses,
                    },
                ),
            ]),
            containers,
            isolation,
            spares: self.pool.spare_summary(),
            resources: RunResources::default(),
            budget: Budget {
                budget_ms: self.options.budget.as_secs_f64() * 1000.0,
                ..Budget::default()
            },
            removed,
            problems,
            warnings,
            clock_start: None,
            resources_start,
        }
    }
}

/// Warm containers: a test's service containers stay up between its runs.
impl TestExecutor for crate::pool::Pool {
    fn run_test<'a>(
        &'a self,
        test: runner::TestToRun<'a>,
        cancel: runner::BoxFuture<'a, ()>,
    ) -> runner::BoxFuture<'a, (clnrm_exec::TestReport, ContainerUse)> {
        Box::pin(async move {
            let (report, used) = crate::pool::Pool::run_test(
                self,
                test.identity,
                test.plan,
                test.images,
                test.collector,
                cancel,
            )
            .await;
            let used = ContainerUse {
                reused: used.reused,
                started: used.started,
                removed: used.removed,
            };
            (report, used)
        })
    }
}
