//! What running a test produces: the outcome, each step's result, how the
//! services came up and where the time went. Plain data (serializable); the
//! code that produces it is in `test_run`, `steps` and `services`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The outcome of a test (docs/reference.md §5).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TestOutcome {
    Pass,
    /// An assertion did not hold: the first failing step.
    Fail(StepFailure),
    /// The test could not be run (image missing, engine error, service not ready, ...).
    Error {
        message: String,
    },
}

impl TestOutcome {
    pub fn is_pass(&self) -> bool {
        matches!(self, TestOutcome::Pass)
    }
}

/// Why a step failed, as shown to the user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StepFailure {
    pub step: String,
    pub service: String,
    pub expected: String,
    pub actual: String,
    /// The last lines of the step's output.
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pass,
    Fail,
}

/// Expected vs actual for one failed assertion.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Mismatch {
    pub expected: String,
    pub actual: String,
}

/// What one step did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepResult {
    pub name: String,
    pub service: String,
    pub status: StepStatus,
    pub exit_code: Option<i64>,
    pub timed_out: bool,
    pub duration_ms: f64,
    /// Set when the step failed.
    pub failure: Option<Mismatch>,
    /// The last lines of its output.
    pub stdout: String,
    pub stderr: String,
    /// It failed, and the test went on because of `continue_on_failure`.
    pub continued: bool,
    /// `retries.count + 1`; `None` when the step runs once or is polled (`wait_until`).
    pub attempts_allowed: Option<u32>,
    /// Every attempt of a step with `retries` or `wait_until` (empty for one that runs once).
    pub attempts: Vec<AttemptResult>,
    /// It passed with `retries` only after a failed attempt.
    pub flaky: bool,
    /// The values its captures took (`[redacted]` for `redact = true`).
    pub captured: Vec<CapturedValue>,
}

/// One attempt of a step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AttemptResult {
    /// 1-based.
    pub attempt: u32,
    pub status: StepStatus,
    pub exit_code: Option<i64>,
    pub timed_out: bool,
    pub duration_ms: f64,
    pub failure: Option<Mismatch>,
    /// The last lines of its output.
    pub stdout: String,
    pub stderr: String,
}

/// A value a step captured, as reports may show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CapturedValue {
    pub name: String,
    pub value: String,
}

/// How a service came up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceStart {
    pub service: String,
    pub container_id: String,
    pub image_id: String,
    pub spec_hash: String,
    /// Container port → host port.
    pub ports: BTreeMap<u16, u16>,
    pub image_ms: f64,
    pub start_ms: f64,
    /// Health check, 0 without one.
    pub ready_ms: f64,
}

/// Where a test's time went, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PhaseTimings {
    /// Network, images, containers started and ready.
    pub containers_ms: f64,
    /// All steps.
    pub execute_ms: f64,
    /// Removing containers and the network.
    pub teardown_ms: f64,
    pub total_ms: f64,
}

/// The result of running a test.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TestReport {
    pub name: String,
    pub outcome: TestOutcome,
    /// Steps that ran, in order.
    pub steps: Vec<StepResult>,
    pub services: Vec<ServiceStart>,
    pub timings: PhaseTimings,
    /// Cleanup problems (the outcome stands; leftovers are reaped later).
    pub teardown_errors: Vec<String>,
}
