//! Span expectations end to end (docs/reference.md §9): a service in a real container posts OTLP/JSON
//! with busybox `wget` to `otel-collector:4318`, clnrm receives it on the test network's
//! gateway, judges the expectations and reports them.

mod common;

use common::{docker_ready, json_events, TestProject, IMAGE};

/// A step that posts one OTLP/JSON export with spans `(name, kind, status code)` of one trace:
/// the first is the root, the others its children.
fn emit(spans: &[(&str, u8, u8)]) -> String {
    format!(
        "[[steps]]\nname = \"emit\"\ncommand = [\"sh\", \"-c\", \"{}\"]\n",
        post_script(spans)
    )
}

/// The shell command that posts those spans (TOML-escaped, for inside a basic string).
fn post_script(spans: &[(&str, u8, u8)]) -> String {
    let spans: Vec<PostedSpan> = spans
        .iter()
        .enumerate()
        .map(|(i, &(name, kind, code))| PostedSpan {
            name,
            parent: (i > 0).then_some(0),
            kind,
            code,
            nanos: (
                1_000_000_000 + i as u64 * 1000,
                2_000_000_000 - i as u64 * 1000,
            ),
            attrs: &[],
        })
        .collect();
    post_spans(&spans)
}

/// One span of a posted trace.
struct PostedSpan<'a> {
    name: &'a str,
    /// The index of its parent in the posted list; `None`: a root.
    parent: Option<usize>,
    kind: u8,
    code: u8,
    /// Start and end, Unix nanoseconds.
    nanos: (u64, u64),
    attrs: &'a [(&'a str, &'a str)],
}

/// The shell command that posts `spans` as one trace of service `app`.
fn post_spans(spans: &[PostedSpan]) -> String {
    let body: Vec<String> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let parent = s.parent.map_or(String::new(), |p| format!("00000000000000a{p}"));
            let attrs: Vec<String> = s
                .attrs
                .iter()
                .map(|(k, v)| format!(r#"{{\"key\":\"{k}\",\"value\":{{\"stringValue\":\"{v}\"}}}}"#))
                .collect();
            format!(
                r#"{{\"traceId\":\"5b8efff798038103d269b633813fc60c\",\"spanId\":\"00000000000000a{i}\",\"parentSpanId\":\"{parent}\",\"name\":\"{}\",\"kind\":{},\"startTimeUnixNano\":\"{}\",\"endTimeUnixNano\":\"{}\",\"attributes\":[{}],\"status\":{{\"code\":{}}}}}"#,
                s.name,
                s.kind,
                s.nanos.0,
                s.nanos.1,
                attrs.join(","),
                s.code,
            )
        })
        .collect();
    let export = format!(
        r#"{{\"resourceSpans\":[{{\"resource\":{{\"attributes\":[{{\"key\":\"service.name\",\"value\":{{\"stringValue\":\"app\"}}}}]}},\"scopeSpans\":[{{\"spans\":[{}]}}]}}]}}"#,
        body.join(",")
    );
    format!(
        "wget -q -O - --header 'Content-Type: application/json' --post-data '{export}' $OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces"
    )
}

fn test_file(name: &str, body: &str) -> String {
    format!("[meta]\nname = \"{name}\"\nversion = \"1\"\n\n[service.app]\nimage = \"{IMAGE}\"\n\n{body}")
}

/// The test_finished event of the run.
fn finished(stdout: &str) -> serde_json::Value {
    json_events(stdout)
        .into_iter()
        .find(|e| e["event"] == "test_finished")
        .expect("a test_finished event")
}

#[test]
fn spans_posted_as_json_are_judged_and_a_passing_test_is_then_cached() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    project.write(
        "tests/shop.clnrm.toml",
        &test_file(
            "shop",
            &format!(
                "{}\n[[expect.span]]\nname = \"checkout\"\nkind = \"server\"\n\n[[expect.span]]\nname = \"db.*\"\nparent = \"checkout\"\n\n[expect.graph]\nmust_include = [[\"checkout\", \"db.query\"]]\n\n[expect.counts]\nspans_total = {{ eq = 2 }}\n",
                emit(&[("checkout", 2, 1), ("db.query", 3, 0)])
            ),
        ),
    );
    let run = project.clnrm(&["run", "--format", "json"]);
    run.expect_code(0);
    let event = finished(&run.stdout());
    assert_eq!(event["status"], "pass", "{}", run.all());
    let verdicts = event["expectations"].as_array().unwrap();
    assert_eq!(verdicts.len(), 4);
    assert!(verdicts.iter().all(|v| v["status"] == "pass"));
    assert_eq!(verdicts[1]["kind"], "span");
    assert_eq!(verdicts[1]["index"], 1);
    // The flush rule: the spans came during the step, so the wait is the quiet period.
    let wait = event["timings"]["spans_ms"].as_f64().unwrap();
    assert!((150.0..1500.0).contains(&wait), "waited {wait} ms");
    assert!(project
        .path(".clnrm/spans/tests__shop.clnrm.toml.jsonl")
        .exists());

    // A passing test with expectations is cached like any other...
    let again = project.clnrm(&["run", "--format", "json"]);
    assert_eq!(finished(&again.stdout())["cached"], true);
    // ...and editing an expectation runs it again.
    let text = std::fs::read_to_string(project.path("tests/shop.clnrm.toml")).unwrap();
    project.write(
        "tests/shop.clnrm.toml",
        &text.replace("spans_total = { eq = 2 }", "spans_total = { gte = 1 }"),
    );
    let edited = project.clnrm(&["run", "--format", "json"]);
    let event = finished(&edited.stdout());
    assert_eq!(
        (event["cached"].clone(), event["status"].clone()),
        (false.into(), "pass".into())
    );
}

#[test]
fn a_failing_expectation_names_itself_and_shows_what_arrived() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    project.write(
        "tests/status.clnrm.toml",
        &test_file(
            "status",
            &format!(
                "{}\n[expect.status]\nall = \"OK\"\n\n[[expect.span]]\nname = \"checkout\"\nkind = \"client\"\n",
                emit(&[("checkout", 2, 2)])
            ),
        ),
    );
    let run = project.clnrm(&["run"]);
    run.expect_code(1);
    let out = run.all();
    assert!(
        out.contains("`expect.span[0] \"checkout\"` failed"),
        "{out}"
    );
    assert!(out.contains("kind is server, expected client"), "{out}");
    assert!(out.contains("\"checkout\" (server, root"), "{out}");
    assert!(out.contains("expect.status.all failed"), "{out}");
    assert!(
        out.contains(".clnrm/spans/tests__status.clnrm.toml.jsonl"),
        "{out}"
    );
    // JUnit carries the same text.
    let junit = project.path("junit.xml");
    project
        .clnrm(&["run", "--force", "--junit", junit.to_str().unwrap()])
        .expect_code(1);
    let xml = std::fs::read_to_string(junit).unwrap();
    assert!(
        xml.contains("expect.span[0] &quot;checkout&quot; failed")
            || xml.contains("expect.span[0] \"checkout\" failed"),
        "{xml}"
    );
}

#[test]
fn a_span_that_never_arrives_fails_after_the_flush_timeout_naming_it() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    project.write(
        "tests/late.clnrm.toml",
        &test_file(
            "late",
            &format!(
                "{}\n[otel]\nflush_timeout = \"1s\"\n\n[[expect.span]]\nname = \"payment\"\n",
                emit(&[("checkout", 2, 1)])
            ),
        ),
    );
    let started = std::time::Instant::now();
    let run = project.clnrm(&["run"]);
    run.expect_code(1);
    assert!(started.elapsed().as_secs() < 20, "no hang");
    let out = run.all();
    assert!(
        out.contains("waited 1.0 s (the flush timeout) for `payment` that never arrived"),
        "{out}"
    );
    assert!(
        out.contains("\"checkout\""),
        "the closest span received is shown: {out}"
    );
}

#[test]
fn two_tests_at_once_with_the_same_span_names_do_not_see_each_others_spans() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    // Each test posts one "work" span and expects exactly one: a mix would make it two.
    for name in ["left", "right"] {
        project.write(
            &format!("tests/{name}.clnrm.toml"),
            &test_file(
                name,
                &format!(
                    "{}\n[expect.counts]\nby_name = {{ work = {{ eq = 1 }} }}\nspans_total = {{ eq = 1 }}\n",
                    emit(&[("work", 1, 1)])
                ),
            ),
        );
    }
    let run = project.clnrm(&["run", "--jobs", "2", "--format", "json"]);
    run.expect_code(0);
}

#[test]
fn a_service_pointed_at_its_own_localhost_gets_a_warning() {
    let project = TestProject::new();
    project.write(
        "tests/local.clnrm.toml",
        &format!(
            "[meta]\nname = \"local\"\nversion = \"1\"\n\n[service.app]\nimage = \"{IMAGE}\"\nenv = {{ OTEL_EXPORTER_OTLP_ENDPOINT = \"http://localhost:4318\" }}\n\n[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n"
        ),
    );
    let run = project.clnrm(&["validate"]);
    run.expect_code(0);
    let out = run.all();
    assert!(out.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{out}");
    assert!(out.contains("localhost is the container itself"), "{out}");
}

#[test]
fn wait_for_span_holds_a_services_first_step_until_the_span_arrives() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    // `server` announces itself with a span half a second after it starts; the step in
    // `client` may only run once it did, and says so by finding the span already received.
    let test = |name: &str, wait: &str| {
        format!(
            "[meta]\nname = \"{name}\"\nversion = \"1\"\n\n\
             [service.server]\nimage = \"{IMAGE}\"\nargs = [\"sh\", \"-c\", \"sleep 0.5; {}; sleep 60\"]\n\n\
             [service.client]\nimage = \"{IMAGE}\"\nwait_for_span = \"{wait}\"\nwait_for_span_timeout_secs = 3\n\n\
             [[steps]]\nname = \"use\"\nservice = \"client\"\ncommand = [\"true\"]\n\n\
             [[expect.span]]\nname = \"server.ready\"\n",
            post_script(&[("server.ready", 1, 0)])
        )
    };
    project.write("tests/ready.clnrm.toml", &test("ready", "server.ready"));
    let run = project.clnrm(&["run", "--format", "json"]);
    assert_eq!(finished(&run.stdout())["status"], "pass", "{}", run.all());

    project.write("tests/ready.clnrm.toml", &test("ready", "never.sent"));
    let run = project.clnrm(&["run", "--format", "json"]);
    let event = finished(&run.stdout());
    assert_eq!(event["status"], "error", "{}", run.all());
    assert_eq!(
        event["message"],
        "service `client`: span `never.sent` did not arrive within 3.0 s (wait_for_span)"
    );
}

/// One trace for the kinds below: `checkout` (0..1000 ms) with children `db.query`
/// (100..300, calls `app`), `payment.charge` (400..800, calls api.stripe.com) and
/// `cache.fill` (900..1200: it outlives its parent).
fn checkout_trace() -> String {
    let ms = |from: u64, to: u64| {
        (
            1_000_000_000 + from * 1_000_000,
            1_000_000_000 + to * 1_000_000,
        )
    };
    let span = |name, parent, kind, nanos, attrs| PostedSpan {
        name,
        parent,
        kind,
        code: 1,
        nanos,
        attrs,
    };
    let script = post_spans(&[
        span("checkout", None, 2, ms(0, 1000), &[]),
        span(
            "db.query",
            Some(0),
            3,
            ms(100, 300),
            &[("server.address", "app")],
        ),
        span(
            "payment.charge",
            Some(0),
            3,
            ms(400, 800),
            &[("server.address", "api.stripe.com")],
        ),
        span("cache.fill", Some(0), 1, ms(900, 1200), &[]),
    ]);
    format!("[[steps]]\nname = \"emit\"\ncommand = [\"sh\", \"-c\", \"{script}\"]\n")
}

#[test]
fn order_window_graph_hermeticity_and_counts_hold_or_fail_showing_what_arrived() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    let cases = [
        (
            "holds",
            "[expect.order]\nmust_precede = [[\"db.query\", \"payment.charge\"]]\nmust_follow = [[\"payment.charge\", \"db.query\"]]\n\n\
             [[expect.window]]\nouter = \"checkout\"\ncontains = [\"db.query\", \"payment.charge\"]\n\n\
             [expect.graph]\nmust_include = [[\"checkout\", \"payment.*\"]]\nmust_not_cross = [[\"db.query\", \"payment.charge\"]]\nacyclic = true\n\n\
             [expect.hermeticity]\nresource_attrs.must_match = { \"service.name\" = \"app\" }\nspan_attrs.forbid_keys = [\"password\"]\n\n\
             [expect.counts]\nspans_total = { eq = 4 }\n",
        ),
        (
            "order",
            "[expect.order]\nmust_precede = [[\"payment.charge\", \"db.query\"]]\n",
        ),
        (
            "window",
            "[[expect.window]]\nouter = \"checkout\"\ncontains = [\"db.query\", \"cache.fill\"]\n",
        ),
        (
            "graph",
            "[expect.graph]\nmust_include = [[\"db.query\", \"payment.charge\"]]\nmust_not_cross = [[\"checkout\", \"db.*\"]]\n",
        ),
        (
            "hermeticity",
            "[expect.hermeticity]\nno_external_services = true\n",
        ),
        ("counts", "[expect.counts]\nby_name = { \"payment.*\" = { eq = 2 } }\n"),
    ];
    for (name, expectations) in cases {
        project.write(
            &format!("tests/{name}.clnrm.toml"),
            &test_file(name, &format!("{}\n{expectations}", checkout_trace())),
        );
    }
    let run = project.clnrm(&["run", "--jobs", "3", "--format", "json"]);
    run.expect_code(1);
    let events = json_events(&run.stdout());
    // The failed expectations' messages of one test, joined.
    let failed = |name: &str| -> String {
        let event = events
            .iter()
            .find(|e| e["event"] == "test_finished" && e["name"] == name)
            .unwrap_or_else(|| panic!("{name} finished: {}", run.all()));
        let verdicts = event["expectations"].as_array().unwrap();
        assert!(!verdicts.is_empty(), "{name}: {event}");
        verdicts
            .iter()
            .filter(|v| v["status"] == "fail")
            .map(|v| v["message"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(failed("holds"), "", "every kind holds on the same trace");

    // Each failure names its expectation and shows what arrived instead.
    let shows: [(&str, &[&str]); 5] = [
        (
            "order",
            &[
                "expect.order.must_precede[0] [\"payment.charge\", \"db.query\"] failed",
                "the earliest \"payment.charge\" ends at +800.000 ms, the latest \"db.query\" starts at +100.000 ms",
            ],
        ),
        (
            "window",
            &[
                "expect.window[0] \"checkout\" failed",
                "\"cache.fill\" (internal, parent \"checkout\", 300.0 ms",
            ],
        ),
        (
            "graph",
            &[
                "expect.graph.must_include[0] [\"db.query\", \"payment.charge\"] failed",
                "spans named \"payment.charge\" have parents: \"checkout\"",
                "expect.graph.must_not_cross[0] [\"checkout\", \"db.*\"] failed",
                "1 edge(s), first \"checkout\" → \"db.query\"",
            ],
        ),
        (
            "hermeticity",
            &[
                "expect.hermeticity.no_external_services failed",
                "first \"payment.charge\" calls \"api.stripe.com\" (server.address)",
            ],
        ),
        (
            "counts",
            &[
                "expect.counts.by_name \"payment.*\" failed",
                "expected: count = 2",
                "actual:   1",
            ],
        ),
    ];
    for (name, needles) in shows {
        let text = failed(name);
        for needle in needles {
            assert!(text.contains(needle), "{name}: no {needle:?} in\n{text}");
        }
    }
    let window = failed("window");
    assert!(
        !window.contains("\"db.query\" ("),
        "db.query lies within its window: {window}"
    );
}

#[test]
fn a_test_whose_expectations_only_name_spans_ends_its_wait_when_they_arrived() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    project.write(
        "tests/named.clnrm.toml",
        &test_file(
            "named",
            &format!(
                "{}\n[[expect.span]]\nname = \"checkout\"\nkind = \"server\"\n\n\
                 [expect.graph]\nmust_include = [[\"checkout\", \"db.query\"]]\n",
                emit(&[("checkout", 2, 1), ("db.query", 3, 0)])
            ),
        ),
    );
    let run = project.clnrm(&["run", "--format", "json"]);
    run.expect_code(0);
    let event = finished(&run.stdout());
    assert_eq!(event["status"], "pass", "{}", run.all());
    assert_eq!(
        event["spans_wait"],
        serde_json::json!({ "ended": "named_spans" }),
        "{event}"
    );
}

#[test]
fn a_count_expectation_still_waits_for_quiet_and_sees_a_span_that_came_after_the_last_step() {
    if !docker_ready() {
        return;
    }
    let project = TestProject::new();
    // The service posts `late` once the step has ended: the step's last act is to open the
    // service's FIFO, which the service reads before it posts.
    let late = post_script(&[("late", 1, 0)]);
    let work = post_script(&[("work", 1, 0)]);
    project.write(
        "tests/counted.clnrm.toml",
        &format!(
            "[meta]\nname = \"counted\"\nversion = \"1\"\n\n\
             [service.app]\nimage = \"{IMAGE}\"\n\
             args = [\"sh\", \"-c\", \"mkfifo /tmp/go; cat /tmp/go; {late}; sleep 60\"]\n\n\
             [[steps]]\nname = \"work\"\n\
             command = [\"sh\", \"-c\", \"{work} && until [ -p /tmp/go ]; do sleep 0.01; done; echo go > /tmp/go\"]\n\n\
             [[expect.span]]\nname = \"work\"\n\n\
             [expect.counts]\nspans_total = {{ eq = 2 }}\n"
        ),
    );
    let run = project.clnrm(&["run", "--format", "json"]);
    let event = finished(&run.stdout());
    assert_eq!(event["status"], "pass", "{}", run.all());
    assert_eq!(
        event["spans_wait"],
        serde_json::json!({ "ended": "quiet", "because": ["expect.counts"] }),
        "{event}"
    );
}
