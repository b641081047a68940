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

/// A valid test with its plan and the hash of its volumes: everything of its
/// result inputs that comes from files.
struct Planned {
    test: TestFile,
    name: String,
    plan: TestPlan,
    volumes: [u8; 32],
    stage_ms: StageTimes,
    spans: Option<SpanPlan>,
}

/// Why a test stops before its images are resolved: (test, name, message).
struct Unplannable(TestFile, String, String);

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
        } = match item {
            Ok(planned) => planned,
            Err(Unplannable(test, name, message)) => {
                out.push(Some(Disposition::Error(test, name, message)));
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
        let index_key = Key::new(RESULT_INDEX, 1, test.identity.as_bytes());
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
            return Err(Unplannable(item.test, name, problem.to_string()));
        }
    };
    let name = valid.config.name.clone();
    let spans = match SpanPlan::of(
        &valid.config,
        crate::otel::spans_file(memo.dir(), &item.test.identity),
    ) {
        Ok(spans) => spans,
        Err(message) => return Err(Unplannable(item.test, name, message)),
    };
    if !valid.config.unevaluated_expectations.is_empty() {
        let message = format!(
            "{} not evaluated by this version",
            valid.config.unevaluated_expectations.join(", ")
        );
        return Err(Unplannable(item.test, name, message));
    }
    let plan_started = std::time::Instant::now();
    let plan = match plan_test(memo, project, &item.test, &valid) {
        Ok(plan) => plan,
        Err(message) => return Err(Unplannable(item.test, name, message)),
    };
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
        }),
        Err(err) => Err(Unplannable(item.test, name, err.to_string())),
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
    test.identity
        .rsplit('/')
        .next()
        .unwrap_or(&test.identity)
        .to_string()
}
