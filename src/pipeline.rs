//! The pipeline from a test file on disk to a validated test: read → render → parse →
//! check what needs the file system. Each stage is a pure function from the stage
//! crates; this module feeds them and (through [`crate::cache`]) memoizes them.

use std::path::Path;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use clnrm_config::{Diagnostic, ParseInput, ParsedTest, Severity, TestConfig};
use clnrm_render::{FileDep, RenderError, RenderRecord, RenderRequest, Rendered, World};
use rayon::prelude::*;

use crate::cache::{Key, Lookup, Memo, Stage};

use crate::discover::TestFile;
use crate::project::Project;

/// The real world: files from disk, variables from the process environment.
pub struct FsWorld;

impl World for FsWorld {
    fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        std::fs::read(path).ok()
    }
    fn env_var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// A test that rendered, parsed and validated.
#[derive(Debug, Clone)]
pub struct ValidTest {
    pub config: TestConfig,
    pub warnings: Vec<Diagnostic>,
    /// The TOML the config came from (the file itself for plain tests).
    pub toml: String,
    /// What the render read; for a plain test, the test file alone.
    pub record: RenderRecord,
    /// Time this test spent in render and parse (a memo hit's lookup time on a hit).
    pub render_ms: f64,
    pub parse_ms: f64,
}

/// Why a test is not valid.
#[derive(Debug, Clone)]
pub enum TestProblem {
    /// The file could not be read or is not UTF-8.
    Unreadable(String),
    Render(Box<RenderError>),
    Invalid(Vec<Diagnostic>),
}

impl std::fmt::Display for TestProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TestProblem::Unreadable(message) => write!(f, "error: {message}"),
            TestProblem::Render(err) => write!(f, "error: {err}"),
            TestProblem::Invalid(diagnostics) => {
                let text: Vec<String> = diagnostics.iter().map(|d| d.to_string()).collect();
                write!(f, "{}", text.join("\n"))
            }
        }
    }
}

/// One test after validation.
#[derive(Debug, Clone)]
pub struct Checked {
    pub test: TestFile,
    pub outcome: Result<ValidTest, TestProblem>,
}

/// Per-run hit and miss counts of one stage (the memo keeps the persistent ones).
#[derive(Debug, Default)]
pub struct StageCount {
    pub hits: AtomicUsize,
    pub misses: AtomicUsize,
    /// Time spent in the stage (summed over threads), in nanoseconds.
    pub nanos: AtomicU64,
}

impl StageCount {
    fn count(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn spent(&self, since: Instant) {
        self.nanos
            .fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Time spent in the stage so far, in milliseconds.
    pub fn millis(&self) -> f64 {
        self.nanos.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// (hits, misses) so far.
    pub fn get(&self) -> (usize, usize) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

/// The validation half of the pipeline over one project: read → render → parse →
/// file-system checks, each pure stage memoized in `memo`.
pub struct Pipeline<'a> {
    pub project: &'a Project,
    pub world: &'a dyn World,
    pub memo: &'a Memo,
    pub render_count: StageCount,
    pub parse_count: StageCount,
    /// Dependency hashes already read in this run: a macro library imported by 500
    /// templates is hashed once.
    dep_hashes: Mutex<HashMap<String, Option<[u8; 32]>>>,
}

/// Render, memoized by the template and, through its manifest, by what it read.
struct RenderStage;

impl Stage for RenderStage {
    const NAME: &'static str = "render";
    const VERSION: u32 = 1;
    type Output = Rendered;
}

/// The first level of the render memo: what the last render of a template read.
const RENDER_MANIFEST: &str = "render-manifest";

struct ParseStage;

impl Stage for ParseStage {
    const NAME: &'static str = "parse";
    // 2: the test language's keys (setup, teardown, timeout, step attempts, captures).
    const VERSION: u32 = 2;
    type Output = ParsedTest;
}

impl<'a> Pipeline<'a> {
    pub fn new(project: &'a Project, world: &'a dyn World, memo: &'a Memo) -> Pipeline<'a> {
        Pipeline {
            project,
            world,
            memo,
            render_count: StageCount::default(),
            parse_count: StageCount::default(),
            dep_hashes: Mutex::new(HashMap::new()),
        }
    }

    /// Each file with a `[matrix]` becomes one test per combination, in the matrix's order
    /// (already expanded tests pass through). A file whose matrix is invalid stays one test,
    /// which [`Pipeline::check_one`] then reports invalid.
    pub fn expand(&self, tests: &[TestFile]) -> Vec<TestFile> {
        let expanded: Vec<Vec<TestFile>> = tests
            .par_iter()
            .map(|test| {
                if test.instance.is_some() || !test.is_template {
                    return vec![test.clone()];
                }
                let source = self
                    .world
                    .read_file(&test.path)
                    .and_then(|bytes| String::from_utf8(bytes).ok());
                match source.map(|text| clnrm_config::read_matrix(&test.identity, &text)) {
                    Some(Ok(Some(instances))) => instances
                        .into_iter()
                        .map(|instance| test.with_instance(instance))
                        .collect(),
                    _ => vec![test.clone()],
                }
            })
            .collect();
        expanded.into_iter().flatten().collect()
    }

    /// Validates every test in parallel (each `[matrix]` expanded), keeping their order.
    pub fn check_all(&self, tests: &[TestFile]) -> Vec<Checked> {
        self.expand(tests)
            .par_iter()
            .map(|test| Checked {
                test: test.clone(),
                outcome: self.check_one(test),
            })
            .collect()
    }

    /// Reads, renders (templates only), parses and validates one test.
    pub fn check_one(&self, test: &TestFile) -> Result<ValidTest, TestProblem> {
        let bytes = self.world.read_file(&test.path).ok_or_else(|| {
            TestProblem::Unreadable(format!("{}: cannot read file", test.identity))
        })?;
        let source = String::from_utf8(bytes).map_err(|err| {
            TestProblem::Unreadable(format!(
                "{}: not UTF-8 (invalid byte at offset {})",
                test.identity,
                err.utf8_error().valid_up_to()
            ))
        })?;
        if test.instance.is_none() {
            // A matrix that did not expand: invalid, or in a file that is never rendered.
            match clnrm_config::read_matrix(&test.identity, &source) {
                Err(diagnostics) => return Err(TestProblem::Invalid(diagnostics)),
                Ok(Some(_)) if !test.is_template => {
                    return Err(TestProblem::Invalid(vec![matrix_needs_a_template(
                        test, &source,
                    )]))
                }
                Ok(_) => {}
            }
        }
        let mut render_ms = 0.0;
        let (toml, record) = if test.is_template {
            let render_started = Instant::now();
            let rendered = self.render(test, source);
            self.render_count.spent(render_started);
            render_ms = crate::report::ms(render_started.elapsed());
            let rendered = rendered?;
            (rendered.toml, rendered.record)
        } else {
            let record = RenderRecord {
                files: vec![FileDep {
                    path: test.identity.clone(),
                    hash: Some(*blake3::hash(source.as_bytes()).as_bytes()),
                }],
                ..RenderRecord::default()
            };
            (source, record)
        };
        let input = ParseInput {
            file: test.identity.clone(),
            text: toml,
            rendered_from_template: test.is_template,
            strict: self.project.strict,
        };
        let parse_started = Instant::now();
        // The text by its hash: a hit then costs no copy of the whole TOML.
        let key_input = bincode::serialize(&(
            &input.file,
            blake3::hash(input.text.as_bytes()).as_bytes(),
            input.rendered_from_template,
            input.strict,
        ))
        .expect("parse key serializes");
        let parsed = self
            .memo
            .get_or_run::<ParseStage, _>(&key_input, || clnrm_config::parse_test(&input))
            .map_err(TestProblem::Invalid);
        self.parse_count.spent(parse_started);
        let parse_ms = crate::report::ms(parse_started.elapsed());
        let (parsed, lookup) = parsed?;
        self.parse_count.count(lookup.is_hit());
        tracing::info!(test = %test.identity, stage = "parse", "{lookup}");
        let missing = missing_volume_paths(&parsed.config, test);
        if !missing.is_empty() {
            return Err(TestProblem::Invalid(missing));
        }
        let mut config = parsed.config;
        if let Some(instance) = &test.instance {
            // The name enters the plan, so each combination has a result of its own even when
            // the template renders the same text for two of them.
            config.name.push_str(&instance.label());
        }
        Ok(ValidTest {
            config,
            warnings: parsed.warnings,
            toml: input.text,
            record,
            render_ms,
            parse_ms,
        })
    }

    /// The render stage behind ccache's direct mode: the template's own inputs find
    /// the manifest of what its last render read; if every one of those still hashes
    /// the same, the output stored under (inputs, manifest) is served.
    fn render(&self, test: &TestFile, source: String) -> Result<Rendered, TestProblem> {
        let mut vars = self.project.vars.clone();
        // A combination's values win over `--var` and `[vars]`: they are what its name says.
        if let Some(instance) = &test.instance {
            vars.extend(instance.values.iter().cloned());
        }
        let request = RenderRequest {
            root: self.project.root.clone(),
            template_path: test.path.clone(),
            source,
            vars,
            seed: self.project.seed,
            freeze_clock: self.project.freeze_clock.clone(),
        };
        // No absolute path in the key: the identity stands for the template's place.
        let own_inputs = bincode::serialize(&(
            &test.identity,
            blake3::hash(request.source.as_bytes()).as_bytes(),
            &request.vars,
            request.seed,
            &request.freeze_clock,
        ))
        .expect("render inputs serialize");
        let manifest_key = Key::new(RENDER_MANIFEST, RenderStage::VERSION, &own_inputs);
        let why = match self.memo.lookup_raw(RenderStage::NAME, &manifest_key) {
            Ok(bytes) => match bincode::deserialize::<RenderRecord>(&bytes) {
                Ok(manifest) => match self.changed_dependency(&manifest) {
                    None => {
                        let key = output_key(&own_inputs, &manifest);
                        match self.memo.get_value::<Rendered>(RenderStage::NAME, &key) {
                            Some(rendered) => {
                                self.memo.record_hit(RenderStage::NAME);
                                self.render_count.count(true);
                                tracing::info!(test = %test.identity, stage = "render", "hit");
                                return Ok(rendered);
                            }
                            None => "output not cached".to_string(),
                        }
                    }
                    Some(changed) => format!("{changed} changed"),
                },
                Err(_) => "manifest unreadable".to_string(),
            },
            Err(reason) => Lookup::Miss(reason).to_string(),
        };
        self.memo.record_miss(RenderStage::NAME);
        self.render_count.count(false);
        tracing::info!(test = %test.identity, stage = "render", "miss: {why}");
        let rendered = clnrm_render::render(&request, self.world)
            .map_err(|err| TestProblem::Render(Box::new(err)))?;
        // A volatile render (clock or randomness without a seed) is right for this run only.
        if !rendered.record.volatile {
            self.memo
                .put_value(RenderStage::NAME, &manifest_key, &rendered.record);
            let key = output_key(&own_inputs, &rendered.record);
            self.memo.put_value(RenderStage::NAME, &key, &rendered);
        }
        Ok(rendered)
    }

    /// The first dependency in `manifest` whose content is not what it was, if any.
    fn changed_dependency(&self, manifest: &RenderRecord) -> Option<String> {
        for dep in &manifest.files {
            // The built-in library changes only with clnrm's version, which is in every key.
            if dep.path.starts_with("builtin:") {
                continue;
            }
            if self.file_hash(&dep.path) != dep.hash {
                return Some(dep.path.clone());
            }
        }
        for dep in &manifest.env {
            let now = self
                .world
                .env_var(&dep.name)
                .map(|value| *blake3::hash(value.as_bytes()).as_bytes());
            if now != dep.hash {
                return Some(format!("${}", dep.name));
            }
        }
        None
    }

    fn file_hash(&self, rel: &str) -> Option<[u8; 32]> {
        let known = |map: &Mutex<HashMap<String, Option<[u8; 32]>>>| {
            map.lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(rel)
                .copied()
        };
        if let Some(hash) = known(&self.dep_hashes) {
            return hash;
        }
        // Read without the lock held: other threads hash other files meanwhile.
        let hash = self
            .world
            .read_file(&self.project.root.join(rel))
            .map(|bytes| *blake3::hash(&bytes).as_bytes());
        self.dep_hashes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(rel.to_string(), hash);
        hash
    }
}

fn output_key(own_inputs: &[u8], manifest: &RenderRecord) -> Key {
    let mut input = own_inputs.to_vec();
    input.extend(bincode::serialize(manifest).expect("manifest serializes"));
    Key::of::<RenderStage>(&input)
}

/// A `[matrix]` in a plain test file: its values would reach nothing, since the file is
/// never rendered, and its combinations would be the same test.
fn matrix_needs_a_template(test: &TestFile, source: &str) -> Diagnostic {
    let line = source
        .lines()
        .position(|line| line.trim_start().starts_with("[matrix"))
        .map(|index| index + 1);
    Diagnostic {
        severity: Severity::Error,
        file: test.identity.clone(),
        key_path: Some("matrix".to_string()),
        line_col: line.map(|line| (line, 1)),
        line_text: line
            .and_then(|line| source.lines().nth(line - 1))
            .map(str::to_string),
        message: "[matrix] values are template variables, but this file is not a template"
            .to_string(),
        hint: Some("name it `.clnrm.toml.tera` and use the values as `{{ name }}`".to_string()),
    }
}

/// docs/reference.md §4: volume host paths exist (relative to the test file's folder).
fn missing_volume_paths(config: &TestConfig, test: &TestFile) -> Vec<Diagnostic> {
    let folder = test.path.parent().unwrap_or(Path::new("."));
    let mut problems = Vec::new();
    for (name, service) in &config.services {
        for (index, volume) in service.volumes.iter().enumerate() {
            let host = folder.join(&volume.host_path);
            if !host.exists() {
                problems.push(Diagnostic {
                    severity: Severity::Error,
                    file: test.identity.clone(),
                    key_path: Some(format!("service.{name}.volumes[{index}].host_path")),
                    line_col: None,
                    line_text: None,
                    message: format!(
                        "volume host path `{}` does not exist (resolved against the test's folder)",
                        volume.host_path
                    ),
                    hint: None,
                });
            }
        }
    }
    problems
}
