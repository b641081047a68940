//! clnrm's own spans for one test (docs/reference.md §14), as one OTLP export request: the
//! root `clnrm.run`, `clnrm.plugin.registry` with a `container.start` per service, a
//! `clnrm.scenario.<name>` per scenario, a `clnrm.step:<name>` per step with its
//! `container.exec`, and a `container.stop` per service. Built after the test ran from what
//! its step events are made of (the exec report) and the wall-clock time it started: steps
//! are laid end to end from the end of the containers phase, each as long as it took.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use clnrm_exec::{StepStatus, TestReport};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as otlp;

/// The name clnrm's spans carry as their resource's `service.name` (unless the test's
/// `[otel.resources]` says otherwise) and as their instrumentation scope.
pub const SERVICE_NAME: &str = "clnrm";

/// The ids of one test's trace, chosen before it runs so its services can join it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceIds {
    pub trace: [u8; 16],
    /// `clnrm.run`'s span id: the parent the services' spans get through `TRACEPARENT`.
    pub run_span: [u8; 8],
}

impl TraceIds {
    /// Fresh ids for a run of `identity`: unique per process, call and moment.
    pub fn new(identity: &str) -> TraceIds {
        static CALLS: AtomicU64 = AtomicU64::new(0);
        let mut h = blake3::Hasher::new();
        h.update(identity.as_bytes());
        h.update(&unix_nanos(SystemTime::now()).to_le_bytes());
        h.update(&std::process::id().to_le_bytes());
        h.update(&CALLS.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        let bytes = h.finalize();
        let bytes = bytes.as_bytes();
        TraceIds {
            trace: bytes[..16].try_into().expect("16 bytes"),
            run_span: bytes[16..24].try_into().expect("8 bytes"),
        }
    }

    /// The W3C `traceparent` header naming `clnrm.run` as the parent, sampled.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", hex(&self.trace), hex(&self.run_span))
    }
}

/// One test's run, as clnrm's spans describe it.
pub struct SelfRun<'a> {
    /// The test's name (`test.case.name`).
    pub name: &'a str,
    /// Its file, root-relative (`test.suite.name`).
    pub suite: &'a str,
    pub ids: TraceIds,
    pub started: SystemTime,
    pub report: &'a TestReport,
    /// Step name → the scenario it belongs to.
    pub scenarios: &'a BTreeMap<String, String>,
    /// Service → the image reference its container was created from.
    pub images: &'a BTreeMap<String, String>,
    /// The test's `[otel.resources]`.
    pub resources: &'a BTreeMap<String, String>,
    pub passed: bool,
}

/// The spans, as one export request.
pub fn export_request(run: &SelfRun) -> ExportTraceServiceRequest {
    let mut b = Builder {
        run,
        next_id: 1,
        spans: Vec::new(),
    };
    b.build();
    let mut resource = vec![kv("service.name", SERVICE_NAME)];
    for (k, v) in run.resources {
        resource.retain(|existing| &existing.key != k);
        resource.push(kv(k, v));
    }
    clnrm_request(resource, b.spans)
}

/// One export request of clnrm's spans: `resource`, the scope `clnrm` at this version.
pub(crate) fn clnrm_request(
    resource: Vec<KeyValue>,
    spans: Vec<otlp::Span>,
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![otlp::ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![otlp::ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: SERVICE_NAME.to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

struct Builder<'r, 'a> {
    run: &'r SelfRun<'a>,
    next_id: u64,
    spans: Vec<otlp::Span>,
}

/// A span's place in time, in unix nanoseconds.
#[derive(Clone, Copy)]
struct Window {
    start: u64,
    end: u64,
}

impl Builder<'_, '_> {
    fn build(&mut self) {
        let run = self.run;
        let report = run.report;
        let t0 = unix_nanos(run.started);
        let at = |ms: f64| t0 + (ms.max(0.0) * 1e6) as u64;
        let containers_end = at(report.timings.containers_ms);
        let steps_total: f64 = report.steps.iter().map(|s| s.duration_ms).sum();
        let execute_end =
            at(report.timings.containers_ms + report.timings.execute_ms.max(steps_total));
        let total_end = at(report.timings.total_ms).max(execute_end);
        let teardown = Window {
            start: execute_end,
            end: (execute_end + (report.timings.teardown_ms.max(0.0) * 1e6) as u64).min(total_end),
        };
        let root = run.ids.run_span;
        let result = if run.passed { "pass" } else { "fail" };
        self.push_with_id(
            root,
            None,
            "clnrm.run",
            Window {
                start: t0,
                end: total_end,
            },
            vec![
                kv("result", result),
                kv("test.case.name", run.name),
                kv("test.suite.name", run.suite),
                kv("test.case.result.status", result),
                kv("clnrm.version", env!("CARGO_PKG_VERSION")),
            ],
            run.passed,
        );
        let registry = self.push(
            root,
            "clnrm.plugin.registry",
            Window {
                start: t0,
                end: containers_end,
            },
            vec![int("plugin.count", report.services.len() as i64)],
            true,
        );
        for service in &report.services {
            let start = at(service.image_ms).min(containers_end);
            let end = at(service.image_ms + service.start_ms + service.ready_ms)
                .clamp(start, containers_end);
            let attrs = self.container_attrs(&service.service, &service.container_id);
            self.push(
                registry,
                "container.start",
                Window { start, end },
                attrs,
                true,
            );
        }
        let container_of: BTreeMap<&str, &str> = report
            .services
            .iter()
            .map(|s| (s.service.as_str(), s.container_id.as_str()))
            .collect();
        // Steps end to end; a scenario spans its steps.
        let mut cursor = containers_end;
        let mut scenario_spans: BTreeMap<&str, ([u8; 8], usize)> = BTreeMap::new();
        for step in &report.steps {
            let window = Window {
                start: cursor,
                end: cursor + (step.duration_ms.max(0.0) * 1e6) as u64,
            };
            cursor = window.end;
            let passed = step.status == StepStatus::Pass;
            let parent = match run.scenarios.get(&step.name) {
                Some(scenario) => {
                    let (id, index) = match scenario_spans.get(scenario.as_str()) {
                        Some(&(id, index)) => {
                            self.spans[index].end_time_unix_nano = window.end;
                            (id, index)
                        }
                        None => {
                            let id = self.push(
                                root,
                                &format!("clnrm.scenario.{scenario}"),
                                window,
                                vec![kv("scenario.name", scenario)],
                                true,
                            );
                            let index = self.spans.len() - 1;
                            scenario_spans.insert(scenario.as_str(), (id, index));
                            (id, index)
                        }
                    };
                    // A failed scenario step makes its scenario an error too.
                    if !passed {
                        self.spans[index].status = Some(status(false));
                    }
                    id
                }
                None => root,
            };
            let base = step.name.rsplit('/').next().unwrap_or(&step.name);
            let mut attrs = vec![
                kv("step.name", &step.name),
                kv("step.status", if passed { "pass" } else { "fail" }),
                kv("service.name", &step.service),
            ];
            if let Some(code) = step.exit_code {
                attrs.push(int("step.exit_code", code));
                attrs.push(int("process.exit.code", code));
            }
            let step_id = self.push(parent, &format!("clnrm.step:{base}"), window, attrs, passed);
            let container = container_of
                .get(step.service.as_str())
                .copied()
                .unwrap_or("");
            let mut exec_attrs = self.container_attrs(&step.service, container);
            if let Some(code) = step.exit_code {
                exec_attrs.push(int("process.exit.code", code));
            }
            self.push(step_id, "container.exec", window, exec_attrs, passed);
        }
        for service in &report.services {
            let attrs = self.container_attrs(&service.service, &service.container_id);
            self.push(root, "container.stop", teardown, attrs, true);
        }
    }

    fn container_attrs(&self, service: &str, container_id: &str) -> Vec<KeyValue> {
        let mut attrs = vec![
            kv("container.id", container_id),
            kv("service.name", service),
        ];
        if let Some(image) = self.run.images.get(service) {
            attrs.push(kv("container.image.name", image));
        }
        attrs
    }

    /// Adds a span under `parent`; returns its id.
    fn push(
        &mut self,
        parent: [u8; 8],
        name: &str,
        window: Window,
        attributes: Vec<KeyValue>,
        ok: bool,
    ) -> [u8; 8] {
        let id = self.child_id();
        self.push_with_id(id, Some(parent), name, window, attributes, ok);
        id
    }

    fn push_with_id(
        &mut self,
        id: [u8; 8],
        parent: Option<[u8; 8]>,
        name: &str,
        window: Window,
        attributes: Vec<KeyValue>,
        ok: bool,
    ) {
        let span = internal_span(
            self.run.ids.trace,
            (id, parent),
            name,
            (window.start, window.end),
            attributes,
            ok,
        );
        self.spans.push(span);
    }

    /// Span ids within the trace: the run's id mixed with a counter, never the run's own.
    fn child_id(&mut self) -> [u8; 8] {
        self.next_id += 1;
        numbered_id(&self.run.ids.run_span, self.next_id - 1)
    }
}

/// The `n`th span id derived from `seed` (a parent's span id).
pub(crate) fn numbered_id(seed: &[u8; 8], n: u64) -> [u8; 8] {
    let mut h = blake3::Hasher::new();
    h.update(seed);
    h.update(&n.to_le_bytes());
    h.finalize().as_bytes()[..8].try_into().expect("8 bytes")
}

/// An `internal` span of `trace`, `OK` or `ERROR`.
pub(crate) fn internal_span(
    trace: [u8; 16],
    (id, parent): ([u8; 8], Option<[u8; 8]>),
    name: &str,
    (start, end): (u64, u64),
    attributes: Vec<KeyValue>,
    ok: bool,
) -> otlp::Span {
    otlp::Span {
        trace_id: trace.to_vec(),
        span_id: id.to_vec(),
        parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
        name: name.to_string(),
        kind: otlp::span::SpanKind::Internal as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end.max(start),
        attributes,
        status: Some(status(ok)),
        ..Default::default()
    }
}

pub(crate) fn status(ok: bool) -> otlp::Status {
    otlp::Status {
        code: if ok {
            otlp::status::StatusCode::Ok
        } else {
            otlp::status::StatusCode::Error
        } as i32,
        ..Default::default()
    }
}

pub(crate) fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

pub(crate) fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    attribute(key, any_value::Value::StringValue(value.into()))
}

pub(crate) fn int(key: &str, value: i64) -> KeyValue {
    attribute(key, any_value::Value::IntValue(value))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The span names a test's own spans will have: what a receiver need not wait for.
pub fn names<'s>(
    scenarios: impl Iterator<Item = &'s str>,
    steps: impl Iterator<Item = &'s str>,
) -> Vec<String> {
    let mut out: Vec<String> = [
        "clnrm.run",
        "clnrm.plugin.registry",
        "container.start",
        "container.exec",
        "container.stop",
    ]
    .iter()
    .map(|n| n.to_string())
    .collect();
    out.extend(scenarios.map(|s| format!("clnrm.scenario.{s}")));
    out.extend(steps.map(|s| format!("clnrm.step:{}", s.rsplit('/').next().unwrap_or(s))));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clnrm_exec::{PhaseTimings, ServiceStart, StepResult, TestOutcome};

    fn step(name: &str, service: &str, code: i64, ms: f64, pass: bool) -> StepResult {
        StepResult {
            name: name.to_string(),
            service: service.to_string(),
            status: if pass {
                StepStatus::Pass
            } else {
                StepStatus::Fail
            },
            exit_code: Some(code),
            timed_out: false,
            duration_ms: ms,
            failure: None,
            stdout: String::new(),
            stderr: String::new(),
            continued: false,
            attempts_allowed: None,
            attempts: Vec::new(),
            flaky: false,
            captured: Vec::new(),
        }
    }

    fn report() -> TestReport {
        TestReport {
            name: "t".into(),
            outcome: TestOutcome::Pass,
            steps: vec![
                step("first", "app", 0, 5.0, true),
                step("first/check", "app", 0, 3.0, true),
                step("plain", "app", 1, 2.0, false),
            ],
            services: vec![ServiceStart {
                service: "app".into(),
                container_id: "c0ffee".into(),
                image_id: "sha256:1".into(),
                spec_hash: "h".into(),
                ports: BTreeMap::new(),
                image_ms: 1.0,
                start_ms: 10.0,
                ready_ms: 0.0,
            }],
            timings: PhaseTimings {
                containers_ms: 20.0,
                execute_ms: 12.0,
                teardown_ms: 4.0,
                total_ms: 40.0,
            },
            teardown_errors: Vec::new(),
        }
    }

    #[test]
    fn the_spans_form_one_trace_under_clnrm_run() {
        let report = report();
        let scenarios = BTreeMap::from([
            ("first".to_string(), "first".to_string()),
            ("first/check".to_string(), "first".to_string()),
        ]);
        let images = BTreeMap::from([("app".to_string(), "alpine:latest".to_string())]);
        let resources = BTreeMap::from([("env".to_string(), "ci".to_string())]);
        let ids = TraceIds::new("tests/t.clnrm.toml");
        let request = export_request(&SelfRun {
            name: "t",
            suite: "tests/t.clnrm.toml",
            ids,
            started: UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
            report: &report,
            scenarios: &scenarios,
            images: &images,
            resources: &resources,
            passed: false,
        });
        let spans = crate::otel::spans_of(&request);
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "clnrm.run",
                "clnrm.plugin.registry",
                "container.start",
                "clnrm.scenario.first",
                "clnrm.step:first",
                "container.exec",
                "clnrm.step:check",
                "container.exec",
                "clnrm.step:plain",
                "container.exec",
                "container.stop",
            ]
        );
        let by_name = |n: &str| spans.iter().find(|s| s.name == n).unwrap();
        let run = by_name("clnrm.run");
        assert!(spans.iter().all(|s| s.trace_id.0 == ids.trace));
        assert_eq!(run.span_id.0, ids.run_span);
        assert_eq!(run.parent_span_id, None);
        assert_eq!(run.attributes["result"].to_string(), "fail");
        assert_eq!(
            run.attributes["test.suite.name"].to_string(),
            "tests/t.clnrm.toml"
        );
        assert_eq!(run.resource["service.name"].to_string(), "clnrm");
        assert_eq!(run.resource["env"].to_string(), "ci");
        assert_eq!(run.duration_ms(), 40.0);
        let scenario = by_name("clnrm.scenario.first");
        let check = by_name("clnrm.step:check");
        assert_eq!(check.parent_span_id, Some(scenario.span_id));
        assert_eq!(scenario.parent_span_id, Some(run.span_id));
        // The scenario spans its two steps: 5 ms + 3 ms after the 20 ms containers phase.
        assert_eq!(scenario.duration_ms(), 8.0);
        assert_eq!(scenario.start_unix_nanos - run.start_unix_nanos, 20_000_000);
        let plain = by_name("clnrm.step:plain");
        assert_eq!(plain.parent_span_id, Some(run.span_id));
        assert_eq!(plain.attributes["process.exit.code"].to_string(), "1");
        assert_eq!(plain.status.code, clnrm_expect::StatusCode::Error);
        let start = by_name("container.start");
        assert_eq!(start.attributes["container.id"].to_string(), "c0ffee");
        assert_eq!(
            start.attributes["container.image.name"].to_string(),
            "alpine:latest"
        );
        // Every child lies within its parent.
        for s in &spans {
            if let Some(p) = s.parent_span_id {
                let parent = spans.iter().find(|x| x.span_id == p).unwrap();
                assert!(s.start_unix_nanos >= parent.start_unix_nanos, "{}", s.name);
                assert!(s.end_unix_nanos <= parent.end_unix_nanos, "{}", s.name);
            }
        }
        assert_eq!(
            ids.traceparent(),
            format!("00-{}-{}-01", hex(&ids.trace), hex(&ids.run_span))
        );
    }

    #[test]
    fn a_failed_step_makes_its_scenario_an_error() {
        let mut report = report();
        report.steps[1].status = StepStatus::Fail;
        let scenarios = BTreeMap::from([
            ("first".to_string(), "first".to_string()),
            ("first/check".to_string(), "first".to_string()),
        ]);
        let request = export_request(&SelfRun {
            name: "t",
            suite: "tests/t.clnrm.toml",
            ids: TraceIds::new("tests/t.clnrm.toml"),
            started: UNIX_EPOCH,
            report: &report,
            scenarios: &scenarios,
            images: &BTreeMap::new(),
            resources: &BTreeMap::new(),
            passed: false,
        });
        let spans = crate::otel::spans_of(&request);
        let status = |n: &str| spans.iter().find(|s| s.name == n).unwrap().status.code;
        assert_eq!(
            status("clnrm.scenario.first"),
            clnrm_expect::StatusCode::Error
        );
        assert_eq!(status("clnrm.step:first"), clnrm_expect::StatusCode::Ok);
        assert_eq!(status("clnrm.step:check"), clnrm_expect::StatusCode::Error);
    }
}
