//! The pipeline from a test file on disk to a validated test: read → render → parse →
//! check what needs the file system. Each stage is a pure function from the stage
//! crates; this module feeds them and (through [`crate::cache`]) memoizes them.

use std::path::Path;

use clnrm_config::{Diagnostic, ParseInput, Severity, TestConfig};
use clnrm_render::{RenderError, RenderRecord, RenderRequest, World};
use rayon::prelude::*;

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

/// Validates every test in parallel, keeping their order.
pub fn check_all(project: &Project, tests: &[TestFile], world: &dyn World) -> Vec<Checked> {
    tests
        .par_iter()
        .map(|test| Checked {
            test: test.clone(),
            outcome: check_one(project, test, world),
        })
        .collect()
}

/// Reads, renders (templates only), parses and validates one test.
pub fn check_one(
    project: &Project,
    test: &TestFile,
    world: &dyn World,
) -> Result<ValidTest, TestProblem> {
    let bytes = world
        .read_file(&test.path)
        .ok_or_else(|| TestProblem::Unreadable(format!("{}: cannot read file", test.identity)))?;
    let source = String::from_utf8(bytes).map_err(|err| {
        TestProblem::Unreadable(format!(
            "{}: not UTF-8 (invalid byte at offset {})",
            test.identity,
            err.utf8_error().valid_up_to()
        ))
    })?;
    let (toml, record) = if test.is_template {
        let request = RenderRequest {
            root: project.root.clone(),
            template_path: test.path.clone(),
            source,
            vars: project.vars.clone(),
            seed: project.seed,
            freeze_clock: project.freeze_clock.clone(),
        };
        let rendered = clnrm_render::render(&request, world)
            .map_err(|err| TestProblem::Render(Box::new(err)))?;
        (rendered.toml, rendered.record)
    } else {
        let record = RenderRecord {
            files: vec![clnrm_render::FileDep {
                path: test.identity.clone(),
                hash: Some(*blake3::hash(source.as_bytes()).as_bytes()),
            }],
            ..RenderRecord::default()
        };
        (source, record)
    };
    let input = ParseInput {
        file: test.identity.clone(),
        text: toml.clone(),
        rendered_from_template: test.is_template,
        strict: project.strict,
    };
    let parsed = clnrm_config::parse_test(&input).map_err(TestProblem::Invalid)?;
    let missing = missing_volume_paths(&parsed.config, test);
    if !missing.is_empty() {
        return Err(TestProblem::Invalid(missing));
    }
    Ok(ValidTest {
        config: parsed.config,
        warnings: parsed.warnings,
        toml,
        record,
    })
}

/// SPEC §4: volume host paths exist (relative to the test file's folder).
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
