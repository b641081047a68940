//! The layout types of a test file, one per table, each key with its description and an
//! example: what `schemars` turns into the schema. Described, never built or read.

#![allow(dead_code)]

use super::*;

/// A clnrm test: `[meta]` (or the legacy `[test.metadata]`), services, then `[[steps]]`
/// and/or `[[scenario]]`.
#[derive(JsonSchema)]
#[schemars(
    title = "clnrm test",
    deny_unknown_fields,
    extend("allOf" = [
        {"anyOf": [{"required": ["meta"]}, {"required": ["test"]}]},
        {"not": {"required": ["meta", "test"]}},
        {"anyOf": [{"required": ["steps"]}, {"required": ["scenario"]}]}
    ])
)]
pub(super) struct TestFile {
    /// The test's name and format version (v1.0 format).
    #[schemars(example = example_meta())]
    meta: Option<Meta>,
    /// The legacy (clnrm 0.4) header: `[test.metadata]`.
    #[schemars(example = serde_json::json!({"metadata": {"name": "api_smoke"}}))]
    test: Option<LegacyTest>,
    /// Template variables, for authoring; only their shape is checked.
    #[schemars(example = serde_json::json!({"image": "alpine:3.20"}))]
    vars: Option<Map<String, Value>>,
    /// Values a test is repeated with, by variable: each an array of strings, integers or
    /// booleans; `exclude` lists combinations left out. One test per combination, named
    /// `name[k=v,...]`; plain TOML even in a template (it is read before rendering).
    #[schemars(example = serde_json::json!({"image": ["alpine:3.19", "alpine:3.20"], "exclude": [{"image": "alpine:3.19"}]}))]
    matrix: Option<BTreeMap<String, Vec<Value>>>,
    /// Containers the steps run in, by name (v1.0 spelling; a name is a container host name).
    #[schemars(extend("propertyNames" = {"pattern": SERVICE_NAME_PATTERN}), example = example_services())]
    service: Option<BTreeMap<String, Service>>,
    /// Containers the steps run in, by name (legacy spelling of `service`).
    #[schemars(extend("propertyNames" = {"pattern": SERVICE_NAME_PATTERN}), example = example_services())]
    services: Option<BTreeMap<String, Service>>,
    /// Commands run in order, each in a container, with the exit code and output they must
    /// give. `[[steps]]` run before every `[[scenario]]`.
    #[schemars(length(min = 1), example = serde_json::json!([example_step()]))]
    steps: Option<Vec<Step>>,
    /// Steps run before `[[steps]]`; a failure ends the test as an error.
    #[schemars(example = serde_json::json!([{"name": "migrate", "run": "sh /schema.sh"}]))]
    setup: Option<Vec<Step>>,
    /// Steps run last, whatever happened (a pass, a failure, a timeout, Ctrl-C); each one
    /// is attempted, and a failure makes a passing test an error.
    #[schemars(example = serde_json::json!([{"name": "dump_logs", "run": "cat /var/log/app.log"}]))]
    teardown: Option<Vec<Step>>,
    /// v1.0 scenarios, run in order: a `run` shell line, explicit `steps`, or both.
    #[schemars(example = serde_json::json!([{"name": "check", "service": "web", "run": "echo ok"}]))]
    scenario: Option<Vec<Scenario>>,
    /// OpenTelemetry export settings; type-checked only.
    #[schemars(example = serde_json::json!({"exporter": "otlp", "endpoint": "http://localhost:4318"}))]
    otel: Option<Otel>,
    /// Span checks of clnrm's OTEL validation. Not evaluated by this version: a test that
    /// has them is an error when run, never a pass.
    #[schemars(example = serde_json::json!({"enabled": true}))]
    otel_validation: Option<Map<String, Value>>,
    /// Span expectations by kind. Not evaluated by this version: a test that has them is an
    /// error when run, never a pass.
    #[schemars(example = serde_json::json!({"span": [{"name": "clnrm.run"}]}))]
    expect: Option<Expect>,
    /// Report file names (clnrm's own keys); type-checked only.
    #[schemars(example = serde_json::json!({"junit": "report.xml"}))]
    report: Option<Report>,
    /// Makes templates' clocks and random functions reproducible.
    #[schemars(example = serde_json::json!({"seed": 42, "freeze_clock": "2025-01-01T00:00:00Z"}))]
    determinism: Option<Determinism>,
    /// Resource limits applied to every service container.
    #[schemars(example = serde_json::json!({"cpu_millicores": 500, "memory_mb": 256}))]
    limits: Option<Limits>,
    /// clnrm 0.4's assertions, judged on what the run observed (docs/reference.md §14).
    #[schemars(example = serde_json::json!({"all_steps_should_succeed": true}))]
    assertions: Option<Value>,
    /// A legacy key; ignored with a warning (template variables come from cleanroom.toml
    /// `[vars]` or `--var`).
    #[deprecated]
    #[schemars(example = serde_json::json!({}))]
    template: Option<Value>,
}

fn example_meta() -> Value {
    serde_json::json!({"name": "api_smoke", "version": "1.0", "description": "the API answers"})
}

fn example_services() -> Value {
    serde_json::json!({"web": {"image": "alpine:3.20"}})
}

fn example_step() -> Value {
    serde_json::json!({"name": "hello", "service": "web", "command": ["echo", "hello"], "expected_output_regex": "hello"})
}

/// `[meta]`: name and version are required.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Meta {
    /// The test's name, shown in reports.
    #[schemars(regex(pattern = NON_BLANK_PATTERN), example = &"api_smoke")]
    name: String,
    /// The format version, a string.
    #[schemars(example = &"1.0")]
    version: String,
    /// What the test checks.
    #[schemars(example = &"the API answers on port 8080")]
    description: Option<String>,
    /// The whole test's time limit: the running step is ended, teardown runs, and the test
    /// fails naming that step.
    #[schemars(regex(pattern = DURATION_PATTERN), example = &"2m")]
    timeout: Option<String>,
    /// Whole-test retries, each on fresh containers; a pass after a failed attempt is flaky.
    #[schemars(range(max = 10), example = &1)]
    retries: Option<u32>,
    /// Skips the test when the environment variable is set and non-empty.
    #[schemars(example = serde_json::json!({"env": "NO_DOCKER_BUILDS"}))]
    skip_if: Option<SkipIf>,
    /// Why the test is skipped, shown with the `skip` outcome (needs `skip_if`).
    #[schemars(regex(pattern = NON_BLANK_PATTERN), example = &"needs local builds")]
    skip_reason: Option<String>,
    /// Whether `clnrm dev` and `run --reuse` give this test fresh containers every run
    /// (`fresh`) or keep them between its runs (`reuse`, results labelled `reused`);
    /// overrides `[dev] isolation` of `cleanroom.toml`.
    #[schemars(example = &"reuse")]
    isolation: Option<IsolationName>,
}

/// `fresh` or `reuse`.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum IsolationName {
    Fresh,
    Reuse,
}

/// `skip_if`: the condition under which a test is skipped.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct SkipIf {
    /// An environment variable of clnrm's: skipped when it is set and non-empty.
    #[schemars(regex(pattern = NON_BLANK_PATTERN), example = &"NO_DOCKER_BUILDS")]
    env: String,
}

/// `[test]`, the legacy header's parent table.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct LegacyTest {
    /// The legacy header: `name` is required.
    #[schemars(example = serde_json::json!({"name": "api_smoke"}))]
    metadata: LegacyMeta,
}

/// `[test.metadata]`: clnrm 0.4's header.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct LegacyMeta {
    /// The test's name, shown in reports.
    #[schemars(regex(pattern = NON_BLANK_PATTERN), example = &"api_smoke")]
    name: String,
    /// The format version; optional here.
    #[schemars(example = &"0.4")]
    version: Option<String>,
    /// What the test checks.
    #[schemars(example = &"the API answers on port 8080")]
    description: Option<String>,
    /// The whole test's time limit (as `[meta] timeout`); a bare number is seconds.
    #[schemars(example = &"60s")]
    timeout: Option<LegacyTimeout>,
    /// The whole test's time limit in seconds.
    #[schemars(example = &60)]
    timeout_seconds: Option<u64>,
}

/// A duration, or a number of seconds.
#[derive(JsonSchema)]
#[serde(untagged)]
enum LegacyTimeout {
    Duration(#[schemars(regex(pattern = DURATION_PATTERN))] String),
    Seconds(u64),
}

/// A container: from an `image`, or built from a `build` context (at most one of the two;
/// one of them unless the plugin, `alpine` or `surrealdb`, brings its own image).
#[derive(JsonSchema)]
#[schemars(
    deny_unknown_fields,
    extend(
        "not" = {"required": ["image", "build"]},
        "anyOf" = [
            {"required": ["image"]},
            {"required": ["build"]},
            {"required": ["plugin"], "properties": {"plugin": {"enum": ["alpine", "surrealdb"]}}},
            {
                "required": ["type"],
                "not": {"required": ["plugin"]},
                "properties": {"type": {"enum": ["alpine", "surrealdb"]}}
            }
        ],
        "if" = {"not": {"required": ["plugin"]}},
        "then" = {"properties": {"type": {"enum": ["generic_container", "testcontainers", "alpine", "surrealdb"]}}}
    )
)]
struct Service {
    /// The service kind: a container from an image (`testcontainers` is a synonym), or the
    /// original clnrm's `alpine` (alpine:latest, idle) and `surrealdb` plugins.
    #[schemars(extend("enum" = ["generic_container", "testcontainers", "alpine", "surrealdb"]), example = &"generic_container")]
    plugin: Option<String>,
    /// clnrm 0.4's spelling of `plugin`; it decides only when `plugin` is absent.
    #[schemars(example = &"generic_container")]
    r#type: Option<String>,
    /// The image to run.
    #[schemars(regex(pattern = NON_BLANK_PATTERN), example = &"alpine:3.20")]
    image: Option<String>,
    /// An image built locally (and cached by content): a context folder relative to the test
    /// file, or a table with `context` and `dockerfile`.
    #[schemars(example = serde_json::json!({"context": "images/web", "dockerfile": "Dockerfile"}))]
    build: Option<Build>,
    /// The container's command; absent, the container is kept idle so steps can exec in it.
    #[schemars(example = serde_json::json!(["httpd", "-f", "-p", "8080"]))]
    args: Option<Vec<String>>,
    /// Environment variables of the container.
    #[schemars(example = serde_json::json!({"APP_ENV": "test"}))]
    env: Option<EnvMap>,
    /// Container ports to publish.
    #[schemars(inner(range(min = 1, max = 65535)), example = serde_json::json!([8080]))]
    ports: Option<Vec<u16>>,
    /// Host folders mounted in the container; host paths are relative to the test file.
    #[schemars(example = serde_json::json!([{"host_path": "data", "container_path": "/data", "read_only": true}]))]
    volumes: Option<Vec<Volume>>,
    /// A readiness probe run in the container before any step.
    #[schemars(example = serde_json::json!({"cmd": ["wget", "-q", "-O-", "http://localhost:8080/"], "interval": "200ms", "timeout": "10s", "retries": 50}))]
    health_check: Option<HealthCheck>,
    /// The surrealdb plugin's username (default "root").
    #[schemars(example = &"root")]
    username: Option<Value>,
    /// The surrealdb plugin's password (default "root").
    #[schemars(example = &"root")]
    password: Option<Value>,
    /// The surrealdb plugin's strict mode (default false).
    #[schemars(example = &true)]
    strict: Option<Value>,
    /// The span whose arrival makes the service ready: its first step waits for it.
    #[schemars(example = &"server.ready")]
    wait_for_span: Option<String>,
    /// How long `wait_for_span` waits, in seconds.
    #[schemars(range(min = 0), example = &30)]
    wait_for_span_timeout_secs: Option<u64>,
}

/// A build context folder, or a table with `context` and `dockerfile`.
#[derive(JsonSchema)]
#[serde(untagged)]
enum Build {
    /// The context folder, relative to the test file.
    Context(String),
    Table(BuildTable),
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct BuildTable {
    /// The context folder, relative to the test file.
    #[schemars(example = &"images/web")]
    context: String,
    /// The Dockerfile, relative to the context (default `Dockerfile`).
    #[schemars(example = &"Dockerfile")]
    dockerfile: Option<String>,
}

/// A mount: a table, or docker's short form `"HOST:CONTAINER[:ro|rw]"`.
#[derive(JsonSchema)]
#[serde(untagged)]
enum Volume {
    Short(#[schemars(regex(pattern = SHORT_VOLUME_PATTERN))] String),
    Table(VolumeTable),
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct VolumeTable {
    /// The host folder or file, relative to the test file (or absolute); it must exist.
    #[schemars(example = &"data")]
    host_path: String,
    /// Where it appears in the container: an absolute path.
    #[schemars(regex(pattern = r"^/"), example = &"/data")]
    container_path: String,
    /// Mount read-only (default false).
    #[schemars(example = &true)]
    read_only: Option<bool>,
}

/// A readiness probe: `cmd` until it exits 0, every `interval`, at most `retries` times.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct HealthCheck {
    /// The probe: an argv array, or a shell line run through `sh -c`.
    #[schemars(example = serde_json::json!(["wget", "-q", "-O-", "http://localhost:8080/"]))]
    cmd: ProbeCommand,
    /// Time between probes (default 500ms).
    #[schemars(regex(pattern = DURATION_PATTERN), example = &"200ms")]
    interval: Option<String>,
    /// Time one probe may take (default 10s).
    #[schemars(regex(pattern = DURATION_PATTERN), example = &"10s")]
    timeout: Option<String>,
    /// Probes before the service counts as failed (default 60).
    #[schemars(range(min = 0, max = u32::MAX), example = &50)]
    retries: Option<u32>,
}

#[derive(JsonSchema)]
#[serde(untagged)]
enum ProbeCommand {
    Shell(String),
    Argv(Argv),
}

/// An argv: executed as is, no shell, no re-quoting.
#[derive(JsonSchema)]
struct Argv(#[schemars(length(min = 1))] Vec<String>);

/// Environment variables: strings, numbers and booleans (taken as their text).
#[derive(JsonSchema)]
struct EnvMap(BTreeMap<String, Scalar>);

#[derive(JsonSchema)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Number(f64),
    Boolean(bool),
}

/// A step: `command` (argv) or `run` (a shell line), in a service, with what it must give.
#[derive(JsonSchema)]
#[schemars(
    deny_unknown_fields,
    extend("oneOf" = [{"required": ["command"]}, {"required": ["run"]}])
)]
struct Step {
    /// Unique within the test; shown in reports.
    #[schemars(regex(pattern = NON_BLANK_PATTERN), example = &"hello")]
    name: String,
    /// What the step checks.
    #[schemars(example = &"the server greets")]
    description: Option<String>,
    /// The service it runs in; may be left out when the test has exactly one service.
    #[schemars(example = &"web")]
    service: Option<String>,
    /// The argv to execute as is (no shell).
    #[schemars(example = serde_json::json!(["echo", "hello"]))]
    command: Option<Argv>,
    /// A shell line, run as `sh -c RUN`.
    #[schemars(example = &"echo ok && test -d /data")]
    run: Option<String>,
    /// The exit code the command must return (default 0).
    #[schemars(range(min = i32::MIN, max = i32::MAX), example = &0)]
    expected_exit_code: Option<i32>,
    /// A regex stdout must match.
    #[schemars(example = &"hello")]
    expected_output_regex: Option<String>,
    /// A regex stderr must match.
    #[schemars(example = &"warning: .*")]
    expected_stderr_regex: Option<String>,
    /// The working directory in the container.
    #[schemars(example = &"/tmp")]
    workdir: Option<String>,
    /// Environment variables of the command.
    #[schemars(example = serde_json::json!({"A": "1"}))]
    env: Option<EnvMap>,
    /// How long the command may take (default `[defaults] step_timeout` of cleanroom.toml).
    #[schemars(regex(pattern = DURATION_PATTERN), example = &"10s")]
    timeout: Option<String>,
    /// `timeout` in milliseconds.
    #[schemars(example = &10000)]
    timeout_ms: Option<u64>,
    /// Go on with the next steps when this one fails (the test still fails).
    #[schemars(example = &false)]
    continue_on_failure: Option<bool>,
    /// A regex stdout must not match.
    #[schemars(example = &"ERROR|panic")]
    expected_output_regex_not: Option<String>,
    /// A regex stderr must not match.
    #[schemars(example = &"warning: .*")]
    expected_stderr_regex_not: Option<String>,
    /// Checks of stdout parsed as JSON: each an RFC 9535 JSONPath and one of `exists`,
    /// `equals` (exactly one node), `matches` (a regex over string nodes), `count`.
    #[schemars(example = serde_json::json!([{"path": "$.id", "exists": true}, {"path": "$.tags[*]", "count": 0}]))]
    expected_json: Option<Vec<JsonExpectation>>,
    /// Values taken from this step's output, by name, for later steps' `${captures.NAME}`
    /// (and `CLNRM_CAPTURE_NAME` in `run` steps).
    #[schemars(
        extend("propertyNames" = {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}),
        example = serde_json::json!({"item": {"json": "$.id"}})
    )]
    capture: Option<BTreeMap<String, CaptureTable>>,
    /// Poll: run the step again every `interval` until it passes or `timeout` ends (a
    /// plain pass; the report shows the attempts).
    #[schemars(example = serde_json::json!({"timeout": "30s", "interval": "200ms"}))]
    wait_until: Option<WaitUntil>,
    /// Run the step again after a failure, up to `count` more times: a pass after a failure
    /// is flaky.
    #[schemars(example = serde_json::json!({"count": 2, "delay": "500ms"}))]
    retries: Option<Retries>,
    /// clnrm 0.4: any non-zero exit passes, exit 0 fails.
    #[schemars(example = &true)]
    should_fail: Option<bool>,
}

/// An `expected_json` entry: a `path` and exactly one check.
#[derive(JsonSchema)]
#[schemars(
    deny_unknown_fields,
    extend("oneOf" = [
        {"required": ["path", "exists"]},
        {"required": ["path", "equals"]},
        {"required": ["path", "matches"]},
        {"required": ["path", "count"]}
    ])
)]
struct JsonExpectation {
    /// An RFC 9535 JSONPath over stdout parsed as JSON.
    #[schemars(example = &"$.items[?@.price < 10].name")]
    path: String,
    /// Whether the path selects at least one node (true) or none (false).
    #[schemars(example = &true)]
    exists: Option<bool>,
    /// The value of the one node the path must select (any TOML value).
    #[schemars(example = &"a")]
    equals: Option<Value>,
    /// A regex every selected node (a string) must match.
    #[schemars(example = &"^[0-9a-f]{32}$")]
    matches: Option<String>,
    /// How many nodes the path must select.
    #[schemars(example = &0)]
    count: Option<u64>,
}

/// Where a capture takes its value: `json` or `regex` (exactly one).
#[derive(JsonSchema)]
#[schemars(
    deny_unknown_fields,
    extend("oneOf" = [{"required": ["json"]}, {"required": ["regex"]}])
)]
struct CaptureTable {
    /// An RFC 9535 JSONPath over stdout parsed as JSON; it must select exactly one node.
    #[schemars(example = &"$.id")]
    json: Option<String>,
    /// A regex; its first group (or the whole match) is the value.
    #[schemars(example = &"id=(\\d+)")]
    regex: Option<String>,
    /// Which output `regex` reads (default stdout).
    #[schemars(example = &"stdout")]
    from: Option<CaptureFrom>,
    /// Keep the value out of reports.
    #[schemars(example = &true)]
    redact: Option<bool>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum CaptureFrom {
    Stdout,
    Stderr,
}

/// `wait_until`: how long to poll, and how often.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct WaitUntil {
    /// How long to keep polling.
    #[schemars(regex(pattern = DURATION_PATTERN), example = &"30s")]
    timeout: String,
    /// The pause between attempts (default 500ms).
    #[schemars(regex(pattern = DURATION_PATTERN), example = &"200ms")]
    interval: Option<String>,
}

/// `retries`: a count, or a table with the count and the delay between attempts.
#[derive(JsonSchema)]
#[serde(untagged)]
enum Retries {
    Count(#[schemars(range(max = 100))] u32),
    Table(RetriesTable),
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct RetriesTable {
    /// More attempts after a failure (at most 100).
    #[schemars(range(max = 100), example = &2)]
    count: u32,
    /// The pause before each retry (default none).
    #[schemars(regex(pattern = DURATION_PATTERN), example = &"500ms")]
    delay: Option<String>,
}

/// A v1.0 scenario: its `run` step, then its `steps`. `service`, `env`, `workdir` and the
/// timeout are defaults for all its steps; `expected_*` and `continue_on_failure` describe
/// its `run` step.
#[derive(JsonSchema)]
#[schemars(
    deny_unknown_fields,
    extend(
        "anyOf" = [{"required": ["run"]}, {"required": ["steps"]}],
        "dependentRequired" = {
            "expected_exit_code": ["run"],
            "expected_output_regex": ["run"],
            "expected_stderr_regex": ["run"],
            "continue_on_failure": ["run"]
        }
    )
)]
struct Scenario {
    /// The scenario's name; its steps are reported as `SCENARIO/STEP`.
    #[schemars(regex(pattern = NON_BLANK_PATTERN), example = &"check")]
    name: String,
    /// What the scenario checks.
    #[schemars(example = &"the data volume is mounted")]
    description: Option<String>,
    /// The service its steps run in, unless a step names another.
    #[schemars(example = &"web")]
    service: Option<String>,
    /// One shell step, `sh -c RUN`, named after the scenario.
    #[schemars(example = &"echo ok && test -d /data")]
    run: Option<String>,
    /// Explicit steps, after the `run` step.
    #[schemars(example = serde_json::json!([{"name": "s1", "command": ["true"]}]))]
    steps: Option<Vec<Step>>,
    /// How long each step may take.
    #[schemars(regex(pattern = DURATION_PATTERN), example = &"30s")]
    timeout: Option<String>,
    /// `timeout` in milliseconds.
    #[schemars(example = &30000)]
    timeout_ms: Option<u64>,
    /// The working directory of its steps.
    #[schemars(example = &"/tmp")]
    workdir: Option<String>,
    /// Environment variables of its steps.
    #[schemars(example = serde_json::json!({"A": "1"}))]
    env: Option<EnvMap>,
    /// The exit code the `run` step must return (default 0).
    #[schemars(range(min = i32::MIN, max = i32::MAX), example = &0)]
    expected_exit_code: Option<i32>,
    /// A regex the `run` step's stdout must match.
    #[schemars(example = &"ok")]
    expected_output_regex: Option<String>,
    /// A regex the `run` step's stderr must match.
    #[schemars(example = &"warning: .*")]
    expected_stderr_regex: Option<String>,
    /// Go on after the `run` step fails (the test still fails).
    #[schemars(example = &false)]
    continue_on_failure: Option<bool>,
    /// clnrm's way to say the scenario must pass; only `true` is supported.
    #[schemars(extend("const" = true), example = &true)]
    expect_success: Option<bool>,
    /// Collected OTEL spans in clnrm; ignored with a warning.
    #[deprecated]
    #[schemars(example = serde_json::json!({"collect": ["spans:default"]}))]
    artifacts: Option<Value>,
}

/// `[otel]`: type-checked only.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Otel {
    /// How long clnrm waits for the spans the expectations name after the last step.
    #[schemars(regex(pattern = DURATION_PATTERN), example = &"5s")]
    flush_timeout: Option<String>,
    /// The trace exporter.
    #[schemars(example = &"otlp")]
    exporter: Option<String>,
    /// The collector's address.
    #[schemars(example = &"http://localhost:4318")]
    endpoint: Option<String>,
    /// The OTLP protocol.
    #[schemars(example = &"http/protobuf")]
    protocol: Option<String>,
    /// The share of traces sampled, 0..1.
    #[schemars(range(min = 0.0, max = 1.0), example = &1.0)]
    sample_ratio: Option<f64>,
    /// Resource attributes.
    #[schemars(example = serde_json::json!({"service.name": "clnrm"}))]
    resources: Option<EnvMap>,
    /// Headers sent to the collector.
    #[schemars(example = serde_json::json!({"Authorization": "Bearer TOKEN"}))]
    headers: Option<EnvMap>,
    /// Context propagators.
    #[schemars(example = serde_json::json!({"use": ["tracecontext", "baggage"]}))]
    propagators: Option<Propagators>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Propagators {
    /// The propagators to use.
    #[schemars(example = serde_json::json!(["tracecontext", "baggage"]))]
    r#use: Option<Vec<String>>,
}

/// `[expect.*]`: span expectations by kind (docs/reference.md §9).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Expect {
    /// Spans that must exist, with their attributes.
    #[schemars(example = serde_json::json!([{"name": "clnrm.run", "kind": "internal"}]))]
    span: Option<Expectation>,
    /// Parent/child edges between spans.
    #[schemars(example = serde_json::json!({"must_include": [["clnrm.run", "clnrm.step"]]}))]
    graph: Option<Expectation>,
    /// Span counts.
    #[schemars(example = serde_json::json!({"spans_total": {"gte": 2}}))]
    counts: Option<Expectation>,
    /// Time windows spans must fall in.
    #[schemars(example = serde_json::json!([{"outer": "clnrm.run", "contains": ["clnrm.step"]}]))]
    window: Option<Expectation>,
    /// Span order.
    #[schemars(example = serde_json::json!({"must_precede": [["a", "b"]]}))]
    order: Option<Expectation>,
    /// Span statuses.
    #[schemars(example = serde_json::json!({"all": "OK"}))]
    status: Option<Expectation>,
    /// Hermeticity of the spans' resources.
    #[schemars(example = serde_json::json!({"no_external_services": true}))]
    hermeticity: Option<Expectation>,
    /// Temporal constraints.
    #[schemars(example = serde_json::json!({"max_duration_ms": 5000}))]
    temporal: Option<Expectation>,
    /// Resource attributes.
    #[schemars(example = serde_json::json!({"service.name": "clnrm"}))]
    resource: Option<Expectation>,
}

/// A table or an array of tables; its keys are clnrm's and are not checked.
#[derive(JsonSchema)]
struct Expectation(#[schemars(extend("type" = ["object", "array"]))] Value);

/// `[report]`: type-checked only.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Report {
    /// A JSON report file.
    #[schemars(example = &"report.json")]
    json: Option<String>,
    /// A JUnit XML report file.
    #[schemars(example = &"report.xml")]
    junit: Option<String>,
    /// A digest file.
    #[schemars(example = &"digest.txt")]
    digest: Option<String>,
}

/// `[determinism]`: a seed and a frozen clock for templates' functions.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Determinism {
    /// The seed of every random function.
    #[schemars(example = &42)]
    seed: Option<u64>,
    /// The value of every clock function: an RFC 3339 date-time (quoted or not).
    #[schemars(regex(pattern = DATE_TIME_PATTERN), example = &"2025-01-01T00:00:00Z")]
    freeze_clock: Option<String>,
}

/// `[limits]`: applied to every service container.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Limits {
    /// CPU share in thousandths of a core.
    #[schemars(range(min = 1), example = &500)]
    cpu_millicores: Option<u64>,
    /// Memory limit in MiB.
    #[schemars(range(min = 1), example = &256)]
    memory_mb: Option<u64>,
}
