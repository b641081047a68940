//! The parse + validate stage: rendered TOML text becomes a typed, validated [`TestConfig`]
//! (both clnrm formats: `[meta]` + `[[scenario]]`, and `[test.metadata]` + `[[steps]]`),
//! and `cleanroom.toml` becomes a [`ProjectConfig`]. Pure: text in, value or diagnostics out.
//! The same crate tells editors what the format is ([`test_file_schema`], a JSON Schema, with
//! [`keys`] the one list of keys per table) and lays test files out ([`format_test`]).
//!
//! What it is not: it reads no files and checks nothing on disk (volume host paths, build
//! contexts), and it evaluates no expectation; the engine does those.
//!
//! Decisions on clnrm's legacy keys (every one is a key of some clnrm version or corpus file):
//!
//! - `type` on a service is clnrm 0.4's spelling of `plugin`. It decides the plugin only when
//!   `plugin` is absent; when both are there, a `type` other than `generic_container` that
//!   disagrees with `plugin` is reported as ignored. `testcontainers` is a synonym of
//!   `generic_container`; `alpine` (image `alpine:latest`, idle) and `surrealdb` (the
//!   original's image and start command; `username`/`password`/`strict` mapped to it) are
//!   services with the original's defaults; every other plugin is an error. A generic
//!   service declared by `type` alone keeps the original's `args`, read and never run: it
//!   is kept idle, with a warning (`plugin` makes `args` its command).
//! - Known keys this version does not act on are *ignored with a warning* that `--strict` does
//!   not escalate (they are not unknown): `[template]`, scenario `artifacts`, service `username`/`password`/`strict`/`wait_for_span*`.
//! - Accepted silently: `description` on meta, steps and scenarios; `version` in
//!   `[test.metadata]`; `expect_success = true` on scenarios (`false` is an error).
//! - Any other key is unknown: a warning with "did you mean", an error under `--strict`.
//! - `[expect.*]` kinds the expect stage judges (span, order, status, counts, window, graph,
//!   hermeticity) are validated by deserialising them into `clnrm_expect`'s types and kept in
//!   [`TestConfig::otel`]; the others (`temporal`, `resource`, unknown kinds) and
//!   `[otel_validation]` are listed in [`TestConfig::unevaluated_expectations`]: validation
//!   passes, the runner errors naming them.
//! - A service env value or `[otel] endpoint` that points at `localhost:4318` (or 4317) is a
//!   warning: inside a container, localhost is the container itself.
//! - A scenario with both `run` and `steps` runs its `run` step first, then its steps.
//!   Scenario `service`, `env`, `workdir` and `timeout`/`timeout_ms` are defaults for all its
//!   steps; its `expected_*` and `continue_on_failure` describe its `run` step.
//! - A test without any step is an error (it would check nothing).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod determinism;
mod diag;
mod expect;
mod format;
pub mod keys;
mod language;
mod matrix;
mod pattern;
mod project;
mod schema;
mod service;
mod step;
mod test_file;
mod units;
mod walk;

pub use format::format_test;
pub use matrix::{read_matrix, MatrixInstance};
pub use schema::{test_file_schema, toml_as_json, DURATION_PATTERN};
pub use units::{parse_duration_ms, parse_size_bytes};

pub use clnrm_judge::{Capture, CaptureSource, JsonCheck, JsonCheckKind, Stream};

/// What the parse stage is given: one test's text. The memo keys on all of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct ParseInput {
    /// Test identity: the root-relative path with `/` separators.
    pub file: String,
    /// TOML text (the rendered output when the test is a template).
    pub text: String,
    /// Line numbers then refer to rendered text, and messages say so.
    pub rendered_from_template: bool,
    /// `--strict`: unknown keys are errors.
    pub strict: bool,
}

/// A valid test and the warnings found on the way.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ParsedTest {
    pub config: TestConfig,
    /// Only `Severity::Warning` diagnostics, in file order.
    pub warnings: Vec<Diagnostic>,
}

/// Parses and validates one test.
///
/// `Err` holds every diagnostic found (at least one error, plus any warnings), in file order:
/// all errors are collected, not just the first.
pub fn parse_test(input: &ParseInput) -> Result<ParsedTest, Vec<Diagnostic>> {
    test_file::parse_test(input)
}

/// Parses `cleanroom.toml` (docs/reference.md §2). `Ok` carries the warnings (unknown keys); under
/// `strict` those are errors.
pub fn parse_project(
    file: &str,
    text: &str,
    strict: bool,
) -> Result<(ProjectConfig, Vec<Diagnostic>), Vec<Diagnostic>> {
    project::parse_project(file, text, strict)
}

/// A problem found in a file, with where it is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Test identity (root-relative path) or project file path.
    pub file: String,
    /// Key path such as `steps[2].expected_output_regex`, when known.
    pub key_path: Option<String>,
    /// 1-based line and column, when known.
    pub line_col: Option<(usize, usize)>,
    /// The offending line's text, when known.
    pub line_text: Option<String>,
    pub message: String,
    /// What to do about it (`did you mean ...`, `name it .clnrm.toml.tera`).
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Severity {
    Warning,
    Error,
}

/// How a step's command is given.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum Command {
    /// argv, executed as is.
    Argv(Vec<String>),
    /// A `run` string, executed through `sh -c`.
    Shell(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BuildSpec {
    /// Relative to the test file's folder.
    pub context: String,
    pub dockerfile: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VolumeConfig {
    /// As written: relative to the test file's folder (or absolute).
    pub host_path: String,
    pub container_path: String,
    pub read_only: bool,
}

/// A readiness probe. Defaults when a key is left out: `interval` 500ms, `timeout` 10s (per
/// probe), `retries` 60. `cmd` may be an argv array or a shell string (`sh -c`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HealthCheck {
    pub cmd: Command,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServiceConfig {
    pub name: String,
    pub image: Option<String>,
    pub build: Option<BuildSpec>,
    /// Container command; `None` = kept idle so steps can exec.
    pub args: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub ports: Vec<u16>,
    pub volumes: Vec<VolumeConfig>,
    pub health_check: Option<HealthCheck>,
    /// What the service's plugin tells about it (the original's service metadata: the
    /// surrealdb plugin's `host`, `port`, `username`, ...); empty for a generic container.
    pub metadata: BTreeMap<String, String>,
}

/// What a test asks of the spans its services emit (docs/reference.md §9). `Default` = nothing: no
/// receiver, no OTEL environment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OtelConfig {
    /// `[otel]` is present: services get the OTEL environment and spans are received even
    /// without expectations.
    pub declared: bool,
    /// The judged `[expect.*]` kinds, validated; `None` without any.
    pub expect: Option<ExpectTable>,
    /// `[otel] flush_timeout`: how long to wait for spans after the last step.
    pub flush_timeout_ms: Option<u64>,
    /// Service name → the span its first step waits for (`wait_for_span`).
    pub wait_for_span: BTreeMap<String, SpanWait>,
    /// `[otel.resources]`: the resource attributes of clnrm's own spans for this test.
    pub resources: BTreeMap<String, String>,
}

impl OtelConfig {
    /// Whether spans are received for this test (and its services get the OTEL environment).
    pub fn collects(&self) -> bool {
        self.declared || self.expect.is_some() || !self.wait_for_span.is_empty()
    }
}

/// The judged kinds of a test's `[expect]` table, kept as TOML text (`[[span]] ...`): the
/// config is stored and hashed with bincode, which cannot hold the expect stage's
/// self-describing shapes, so the runner deserialises this again (it validated here).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct ExpectTable {
    pub toml: String,
}

impl ExpectTable {
    /// The expectations, typed. Cannot fail for a table this stage produced.
    pub fn expectations(&self) -> Result<clnrm_expect::Expectations, String> {
        toml_edit::de::from_str(&self.toml).map_err(|e| e.message().to_string())
    }
}

/// `wait_for_span = "name"` on a service (readiness by span).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SpanWait {
    /// A span name or glob.
    pub span: String,
    /// `wait_for_span_timeout_secs`; the flush timeout when unset.
    pub timeout_ms: Option<u64>,
}

impl ServiceConfig {
    /// A service with only its name: no image or build yet, kept idle, nothing mapped.
    pub fn new(name: impl Into<String>) -> Self {
        ServiceConfig {
            name: name.into(),
            image: None,
            build: None,
            args: None,
            env: BTreeMap::new(),
            ports: Vec::new(),
            volumes: Vec::new(),
            health_check: None,
            metadata: BTreeMap::new(),
        }
    }

    /// An idle container of `image` that steps exec in: the common service.
    pub fn from_image(name: impl Into<String>, image: impl Into<String>) -> Self {
        ServiceConfig {
            image: Some(image.into()),
            ..ServiceConfig::new(name)
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StepConfig {
    /// Unique within the test; scenario steps are named `scenario/step`.
    pub name: String,
    /// `None` only when the test has at most one service.
    pub service: Option<String>,
    pub command: Command,
    pub expected_exit_code: i32,
    pub expected_output_regex: Option<String>,
    pub expected_stderr_regex: Option<String>,
    pub workdir: Option<String>,
    pub env: BTreeMap<String, String>,
    pub timeout_ms: Option<u64>,
    pub continue_on_failure: bool,
    /// `should_fail = true`: any non-zero exit passes, exit 0 fails.
    pub should_fail: bool,
    /// Key path of this step in the file (`steps[2]`, `scenario[0].steps[1]`), for messages.
    pub key_path: String,
    /// Regexes stdout / stderr must not match.
    pub expected_output_regex_not: Option<String>,
    pub expected_stderr_regex_not: Option<String>,
    /// `expected_json`: JSONPath checks of stdout parsed as JSON (paths checked to compile).
    pub expected_json: Vec<JsonCheck>,
    /// `capture.NAME`: values later steps use as `${captures.NAME}`.
    pub captures: Vec<Capture>,
    /// Run once, polled (`wait_until`) or retried (`retries`).
    pub attempts: Attempts,
}

/// How often a step is run (docs/reference.md §13).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum Attempts {
    #[default]
    Once,
    /// `wait_until`: run again every `interval_ms` until it passes or `timeout_ms` ends; a
    /// pass after failed polls is a plain pass.
    WaitUntil { timeout_ms: u64, interval_ms: u64 },
    /// `retries`: up to `count` more runs after a failure, `delay_ms` apart; a pass after a
    /// failure is flaky.
    Retries { count: u32, delay_ms: u64 },
}

impl StepConfig {
    /// A step at key path `key_path` that runs `command` in the test's only service, expects
    /// exit code 0 and checks no output. Parsed steps start from this; so do built ones.
    pub fn at(key_path: impl Into<String>, name: impl Into<String>, command: Command) -> Self {
        StepConfig {
            name: name.into(),
            service: None,
            command,
            expected_exit_code: 0,
            expected_output_regex: None,
            expected_stderr_regex: None,
            workdir: None,
            env: BTreeMap::new(),
            timeout_ms: None,
            continue_on_failure: false,
            should_fail: false,
            key_path: key_path.into(),
            expected_output_regex_not: None,
            expected_stderr_regex_not: None,
            expected_json: Vec::new(),
            captures: Vec::new(),
            attempts: Attempts::Once,
        }
    }

    /// A step built in code (no file): its key path is `steps[NAME]`.
    pub fn new(name: impl Into<String>, command: Command) -> Self {
        let name = name.into();
        StepConfig::at(format!("steps[{name}]"), name, command)
    }

    /// A step that runs `script` through `sh -c`.
    pub fn shell(name: impl Into<String>, script: impl Into<String>) -> Self {
        StepConfig::new(name, Command::Shell(script.into()))
    }

    /// A step that runs `argv` as is.
    pub fn argv(name: impl Into<String>, argv: &[&str]) -> Self {
        let argv = argv.iter().map(|arg| arg.to_string()).collect();
        StepConfig::new(name, Command::Argv(argv))
    }

    /// The same step, run in `service`.
    pub fn in_service(self, service: impl Into<String>) -> Self {
        StepConfig {
            service: Some(service.into()),
            ..self
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Limits {
    pub cpu_millicores: Option<u64>,
    pub memory_mb: Option<u64>,
}

/// A parsed, validated test.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TestConfig {
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    /// Sorted by name.
    pub services: BTreeMap<String, ServiceConfig>,
    /// In run order: `[[steps]]` first, then each `[[scenario]]`'s steps.
    pub steps: Vec<StepConfig>,
    /// `[[setup]]`: run before the steps; a failure makes the test an `error`.
    pub setup: Vec<StepConfig>,
    /// `[[teardown]]`: run after everything, whatever happened; each one is attempted.
    pub teardown: Vec<StepConfig>,
    /// The whole-test `timeout` (`[meta] timeout`, or the legacy `[test.metadata] timeout` /
    /// `timeout_seconds`).
    pub timeout_ms: Option<u64>,
    pub limits: Limits,
    pub seed: Option<u64>,
    pub freeze_clock: Option<String>,
    /// Span expectations present that the runner cannot evaluate (`expect.temporal`,
    /// `otel_validation`, ...): running the test is an `error` naming them.
    pub unevaluated_expectations: Vec<String>,
    /// Spans: `[otel]`, the judged `[expect.*]` kinds, `wait_for_span`.
    pub otel: OtelConfig,
    /// `[meta] retries`: whole-test attempts after a failed one, each on fresh containers.
    pub retries: u32,
    /// `[meta] skip_if` / `skip_reason`: when the engine skips the test.
    pub skip_if: Option<SkipIf>,
    /// `[assertions]`, judged on what the run observed.
    pub assertions: clnrm_expect::Assertions,
    /// `[meta] isolation`: this test's choice over `[dev] isolation` of `cleanroom.toml`.
    pub isolation: Option<Isolation>,
}

/// Whether `clnrm dev` and `run --reuse` give a test containers no run used before
/// (`fresh`, the default) or keep them between its runs (`reuse`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    Fresh,
    Reuse,
}

/// `skip_if = { env = "VAR" }`: the test is skipped when `VAR` is set and non-empty in
/// clnrm's environment (the engine looks; this stage only reads the key).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SkipIf {
    pub env: String,
    /// `skip_reason`, shown with the `skip` outcome.
    pub reason: Option<String>,
}

impl TestConfig {
    /// A test named `name` (version "1.0") with these services and steps and nothing else:
    /// no limits, no determinism settings, no span expectations.
    pub fn new(
        name: impl Into<String>,
        services: Vec<ServiceConfig>,
        steps: Vec<StepConfig>,
    ) -> Self {
        TestConfig {
            name: name.into(),
            version: Some("1.0".to_string()),
            description: None,
            services: services
                .into_iter()
                .map(|service| (service.name.clone(), service))
                .collect(),
            steps,
            setup: Vec::new(),
            teardown: Vec::new(),
            timeout_ms: None,
            limits: Limits::default(),
            seed: None,
            freeze_clock: None,
            unevaluated_expectations: Vec::new(),
            otel: OtelConfig::default(),
            retries: 0,
            skip_if: None,
            assertions: clnrm_expect::Assertions::default(),
            isolation: None,
        }
    }
}

/// `cleanroom.toml`; every section optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProjectConfig {
    pub vars: BTreeMap<String, String>,
    pub default_image: Option<String>,
    pub default_step_timeout_ms: Option<u64>,
    pub cache_dir: Option<String>,
    pub cache_max_size: Option<u64>,
    pub cache_max_age_ms: Option<u64>,
    /// `[cache] remote`: the remote cache URL (docs/reference.md §10), as written.
    pub cache_remote: Option<String>,
    /// `[cache] remote_mode`: `read`, `write` or `readwrite` (checked when parsed).
    pub cache_remote_mode: Option<String>,
    /// 0 = number of CPUs.
    pub run_jobs: Option<usize>,
    pub run_reuse: bool,
    pub dev_debounce_ms: Option<u64>,
    /// `[dev] isolation`: `fresh` (the default) or `reuse` (checked when parsed).
    pub dev_isolation: Option<String>,
    /// `[dev] max_spare_sets`: how many tests keep a spare set of containers.
    pub dev_max_spare_sets: Option<u64>,
    /// `[dev] max_spare_memory_mb`: the memory the spare sets may use together.
    pub dev_max_spare_memory_mb: Option<u64>,
    pub seed: Option<u64>,
    pub freeze_clock: Option<String>,
}
