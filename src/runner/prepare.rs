//! Each selected test's fate before anything starts: planned, its volumes hashed and
//! its images resolved, then run, served from the result cache, or an error. Not
//! running anything: that is `execute.rs`.

use std::collections::HashMap;

use clnrm_exec::{Backend, ResolvedImage, ResolvedImages};
use clnrm_plan::{ImageSource, TestPlan};

use crate::cache::{Key, Memo, Stage};
use crate::discover::TestFile;
use crate::pipeline::Checked;
use crate::project::Project;

use super::checks::{plan_should_fail, TestChecks};
use super::inputs::{plan_test, PassRecord, ResultInputs, ResultStage, RESULT_INDEX};
use super::spans::SpanPlan;
use super::volumes::volumes_hash;

/// A test ready to run: valid, planned, images resolved.
#[derive(Debug, Clone)]
pub struct Runnable {
    pub test: TestFile,
    pub name: String,
    pub plan: TestPlan,
    pub images: ResolvedImages,
    pub inputs: ResultInputs,
    /// Time spent validating and planning this test, for its report.
    pub stage_ms: StageTimes,
    /// Span collection and expectations (docs/reference.md §9), when the test has them.
    pub spans: Option<SpanPlan>,
    /// `[meta] retries`: whole-test attempts after a failed one.
    pub retries: u32,
    /// `should_fail`, `[assertions]`, clnrm's own spans (docs/reference.md §14).
    pub checks: TestChecks,
}

/// Time one test spent in the stages before it ran, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    pub render_ms: f64,
    pub parse_ms: f64,
    pub plan_ms: f64,
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
    /// Not run because its `skip_if` holds: (test, name, reason). Decided before the result
    /// cache is asked, so a cached pass is never served for a test that is now skipped,
    /// and a skip is never stored.
    Skip(TestFile, String, String),
}

impl Disposition {
    pub fn test(&self) -> &TestFile {
        match self {
            Disposition::Run(runnable, _) | Disposition::Cached(runnable, _) => &runnable.test,
            Disposition::Error(test, _, _) | Disposition::Skip(test, _, _) => test,
        }
    }

    /// The result inputs, for tests that got as far as having them.
    pub fn inputs(&self) -> Option<&ResultInputs> {
        match self {
            Disposition::Run(runnable, _) | Disposition::Cached(runnable, _) => {
                Some(&runnable.inputs)
            }
            Disposition::Error(..) | Disposition::Skip(..) => None,
        }
    }
}

/// A valid test with its plan and the hash of its volumes: everything of its
/// result inputs that comes from files.
struct Planned {
    test: TestFile,
    name: String,
    plan: TestPlan,
    volumes: [u8; 32],
    stage_ms: StageTimes,
    spans: Option<SpanPlan>,
    retries: u32,
    /// What of the test's `[meta]` enters its result inputs besides the plan.
    meta_hash: [u8; 32],
    checks: TestChecks,
}

/// Why a test stops before its images are resolved: (test, name, message or reason).
enum Unplannable {
    Error(Box<TestFile>, String, String),
    Skip(Box<TestFile>, String, String),
}

/// Plans every valid test and hashes its volumes (reading files, off the async
/// runtime), resolves its images (each distinct image once, recording the build
/// images used), and decides whether it runs, is served from the result cache, or is
/// an error.
pub async fn prepare(
    backend: &dyn Backend,
    memo: &Memo,
    project: &Project,
    checked: Vec<Checked>,
    force: bool,
) -> Vec<Disposition> {
    let planned: Vec<Result<Planned, Unplannable>> = off_the_runtime(|| {
        checked
            .into_iter()
            .map(|item| plan_one(memo, project, item))
            .collect()
    });
    let mut image_cache: HashMap<ImageSource, Result<ResolvedImage, String>> = HashMap::new();
    // Tests decided early (errors) keep their place; the rest wait for the lookups.
    let mut out: Vec<Option<Disposition>> = Vec::with_capacity(planned.len());
    let mut undecided = Vec::new();
    for item in planned {
        let Planned {
            test,
            name,
            plan,
            volumes,
            stage_ms,
            spans,
            retries,
            meta_hash,
            checks,
        } = match item {
            Ok(planned) => planned,
            Err(Unplannable::Error(test, name, message)) => {
                out.push(Some(Disposition::Error(*test, name, message)));
                continue;
            }
            Err(Unplannable::Skip(test, name, reason)) => {
                out.push(Some(Disposition::Skip(*test, name, reason)));
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
                if let Ok(image) = &resolved {
                    if image.context_hash.is_some() {
                        memo.record_build_image(&image.reference);
                    }
                }
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
            out.push(Some(Disposition::Error(test, name, message)));
            continue;
        }
        let mut plan_hash = blake3::Hasher::new();
        plan_hash.update(&bincode::serialize(&plan).expect("plan serializes"));
        if let Some(spans) = &spans {
            // Editing an expectation re-runs the test: "the test changed".
            plan_hash.update(&spans.hash);
        }
        plan_hash.update(&meta_hash);
        if !checks.assertions.is_empty() || checks.own_spans {
            // So does editing an assertion, or what clnrm's own spans carry.
            plan_hash.update(&bincode::serialize(&checks).expect("checks serialize"));
        }
        let inputs = ResultInputs {
            plan: *plan_hash.finalize().as_bytes(),
            images: images
                .iter()
                .map(|(service, image)| (service.clone(), image.id.clone()))
                .collect(),
            volumes,
            project: project.file_hash,
        };
        // The index is this machine's own (what a test's inputs were last time, to
        // say why it runs); it lives in a stage of its own so it is never shared.
        let index_key = Key::new(RESULT_INDEX, 1, test.key().as_bytes());
        let previous: Option<ResultInputs> = memo.get_value(RESULT_INDEX, &index_key);
        memo.put_value(RESULT_INDEX, &index_key, &inputs);
        let runnable = Box::new(Runnable {
            test,
            name,
            plan,
            images,
            inputs,
            stage_ms,
            spans,
            retries,
            checks,
        });
        undecided.push((out.len(), runnable, previous));
        out.push(None);
    }
    if !force {
        // One batch of concurrent remote lookups rather than one round trip per test.
        let keys: Vec<Key> = undecided.iter().map(|(_, r, _)| r.inputs.key()).collect();
        off_the_runtime(|| memo.prefetch(ResultStage::NAME, &keys));
    }
    for (slot, runnable, previous) in undecided {
        let cached = if force {
            None
        } else {
            memo.get_value::<PassRecord>(ResultStage::NAME, &runnable.inputs.key())
        };
        out[slot] = Some(match cached {
            Some(record) => {
                memo.record_hit(ResultStage::NAME);
                Disposition::Cached(runnable, record.duration_ms)
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
                Disposition::Run(runnable, why)
            }
        });
    }
    out.into_iter().flatten().collect()
}

/// Plans one checked test and hashes its volumes; an invalid test, one with
/// expectations this version cannot evaluate, a planning error or an unreadable
/// volume file stops it here.
fn plan_one(memo: &Memo, project: &Project, item: Checked) -> Result<Planned, Unplannable> {
    let valid = match item.outcome {
        Ok(valid) => valid,
        Err(problem) => {
            let name = display_name(&item.test);
            return Err(Unplannable::Error(
                Box::new(item.test),
                name,
                problem.to_string(),
            ));
        }
    };
    let name = valid.config.name.clone();
    if let Some(skip) = &valid.config.skip_if {
        // The engine's one look at the environment for this test (docs/reference.md §4).
        if std::env::var_os(&skip.env).is_some_and(|value| !value.is_empty()) {
            let reason = skip
                .reason
                .clone()
                .unwrap_or_else(|| crate::report::default_skip_reason(&skip.env));
            return Err(Unplannable::Skip(Box::new(item.test), name, reason));
        }
    }
    // Retries and the skip condition change what a run means, so they key its result.
    let meta_hash = *blake3::hash(
        &bincode::serialize(&(valid.config.retries, &valid.config.skip_if))
            .expect("meta serializes"),
    )
    .as_bytes();
    let spans = match SpanPlan::of(
        &valid.config,
        crate::otel::spans_file(&project.root, &item.test.key()),
    ) {
        Ok(spans) => spans,
        Err(message) => return Err(Unplannable::Error(Box::new(item.test), name, message)),
    };
    if !valid.config.unevaluated_expectations.is_empty() {
        // Only an unknown `[expect.*]` kind gets here (a typo, validated with a warning):
        // it must not pass unjudged.
        let message = format!(
            "{}: unknown expectation kind, so it cannot be judged (the kinds: {})",
            valid.config.unevaluated_expectations.join(", "),
            clnrm_expect::KINDS.join(", ")
        );
        return Err(Unplannable::Error(Box::new(item.test), name, message));
    }
    let plan_started = std::time::Instant::now();
    let mut plan = match plan_test(memo, project, &item.test, &valid) {
        Ok(plan) => plan,
        Err(message) => return Err(Unplannable::Error(Box::new(item.test), name, message)),
    };
    let checks = TestChecks::of(&valid.config);
    plan_should_fail(&mut plan, &checks);
    let stage_ms = StageTimes {
        render_ms: valid.render_ms,
        parse_ms: valid.parse_ms,
        plan_ms: crate::report::ms(plan_started.elapsed()),
    };
    match volumes_hash(memo, &project.root, &plan) {
        Ok(volumes) => Ok(Planned {
            test: item.test,
            name,
            plan,
            volumes,
            stage_ms,
            spans,
            retries: valid.config.retries,
            meta_hash,
            checks,
        }),
        Err(err) => Err(Unplannable::Error(
            Box::new(item.test),
            name,
            err.to_string(),
        )),
    }
}

/// Runs blocking file work without stalling the runtime's other tasks: on a
/// multi-threaded runtime this worker hands its tasks to the others meanwhile
/// (`block_in_place`, which unlike `spawn_blocking` may borrow the memo). A
/// current-thread runtime has no other worker to hand them to, so there the work
/// runs inline.
pub(super) fn off_the_runtime<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

fn display_name(test: &TestFile) -> String {
    let file = test.identity.rsplit('/').next().unwrap_or(&test.identity);
    match &test.instance {
        Some(instance) => format!("{file}{}", instance.label()),
        None => file.to_string(),
    }
}
