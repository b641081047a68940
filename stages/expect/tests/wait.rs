//! Which expectations let the wait for spans end as soon as the named spans arrived, and
//! which need every span (docs/reference.md §9, "When"); and that ending early never
//! changes a verdict: what holds on the first spans still holds on all of them.

use clnrm_expect::{
    evaluate, hold_already, span_wait, Assertions, Context, Expectations, Span, SpanId,
    SpanPattern, SpanWait, TraceId,
};

#[derive(Debug, serde::Deserialize)]
struct TestFile {
    #[serde(default)]
    expect: Expectations,
    #[serde(default)]
    otel_validation: Option<clnrm_expect::OtelValidation>,
}

fn parse(text: &str) -> Expectations {
    let file: TestFile = toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    Expectations {
        otel_validation: file.otel_validation,
        ..file.expect
    }
}

fn wait(text: &str) -> SpanWait {
    span_wait(&parse(text), &Assertions::default())
}

fn names(patterns: &[SpanPattern]) -> Vec<&str> {
    patterns.iter().map(SpanPattern::as_str).collect()
}

#[test]
fn expectations_that_ask_for_some_span_wait_only_for_the_names() {
    let text =
        "[[expect.span]]\nname = \"checkout\"\nkind = \"server\"\nattrs.all = { a = \"1\" }\n\
                [[expect.span]]\nname = \"db.*\"\nparent = \"checkout\"\n\
                [expect.order]\nmust_precede = [[\"db.query\", \"pay\"]]\n\
                [expect.graph]\nmust_include = [[\"checkout\", \"pay\"]]\n\
                [[expect.temporal]]\nbefore = \"db.query\"\nafter = \"pay\"\n\
                [[expect.resource]]\ntype = \"network\"\nname = \"n\"\n";
    match wait(text) {
        SpanWait::Named(awaited) => assert_eq!(
            names(&awaited),
            ["checkout", "db.*", "db.query", "pay"],
            "each name once, in the order written"
        ),
        other => panic!("expected the named spans to suffice, got {other:?}"),
    }
}

#[test]
fn expectations_that_judge_every_span_wait_for_quiet_and_say_which() {
    let cases = [
        ("[expect.counts]\nspans_total = { gte = 1 }\n", "expect.counts"),
        (
            "[[expect.span]]\nname = \"a\"\n[[expect.span]]\nname = \"leak\"\nexists = false\n",
            "expect.span[1] (exists = false)",
        ),
        ("[expect.status]\nall = \"OK\"\n", "expect.status"),
        (
            "[expect.status]\nby_name = { \"db.*\" = \"OK\" }\n",
            "expect.status",
        ),
        (
            "[[expect.window]]\nouter = \"a\"\ncontains = [\"b\"]\n",
            "expect.window",
        ),
        (
            "[expect.graph]\nmust_not_cross = [[\"a\", \"b\"]]\n",
            "expect.graph.must_not_cross",
        ),
        ("[expect.graph]\nacyclic = true\n", "expect.graph.acyclic"),
        (
            "[expect.hermeticity]\nno_external_services = true\n",
            "expect.hermeticity",
        ),
        (
            "[otel_validation]\n[[otel_validation.expected_spans]]\nname = \"a\"\n",
            "otel_validation.expected_spans",
        ),
        (
            "[otel_validation]\n[[otel_validation.expected_traces]]\nspan_names = [\"a\", \"b\"]\nordered = true\n",
            "otel_validation.expected_traces",
        ),
        (
            "[otel_validation]\n[[otel_validation.temporal_constraints]]\nspan_name = \"a\"\nmust_complete_before = \"b\"\nmax_gap_ms = 5\n",
            "otel_validation.temporal_constraints (max_gap_ms)",
        ),
        (
            "[otel_validation]\nexpect_counts = { spans_total = { eq = 2 } }\n",
            "otel_validation.expect_counts",
        ),
        ("", "no expectation names a span"),
    ];
    for (text, because) in cases {
        match wait(text) {
            SpanWait::AllSpans(reasons) => {
                assert!(
                    reasons.iter().any(|r| r == because),
                    "{text}: {reasons:?} lacks {because:?}"
                )
            }
            other => panic!("{text}: expected the quiet period, got {other:?}"),
        }
    }
    // An assertion over every span's times needs them all too.
    let assertions = Assertions {
        temporal_ordering_should_be_valid: Some(true),
        ..Assertions::default()
    };
    let e = parse("[[expect.span]]\nname = \"a\"\n");
    assert_eq!(
        span_wait(&e, &assertions),
        SpanWait::AllSpans(vec![
            "assertions.temporal_ordering_should_be_valid".to_string()
        ])
    );
    // Disabled, `[otel_validation]` judges nothing, so it does not hold the wait.
    assert!(matches!(
        wait("[[expect.span]]\nname = \"a\"\n[otel_validation]\nenabled = false\nexpect_counts = { spans_total = { eq = 2 } }\n"),
        SpanWait::Named(_)
    ));
    // Without a gap, `must_complete_before` asks only that some A end before some B.
    assert!(matches!(
        wait("[otel_validation]\n[[otel_validation.temporal_constraints]]\nspan_name = \"a\"\nmust_complete_before = \"b\"\n"),
        SpanWait::Named(_)
    ));
}

fn span(id: u64, name: &str, parent: Option<u64>, start_ms: u64, end_ms: u64) -> Span {
    let mut s = Span::new(TraceId::from_u128(7), SpanId::from_u64(id), name);
    s.parent_span_id = parent.map(SpanId::from_u64);
    s.start_unix_nanos = 1_700_000_000_000_000_000 + start_ms * 1_000_000;
    s.end_unix_nanos = 1_700_000_000_000_000_000 + end_ms * 1_000_000;
    s
}

/// Ending early is safe only if a verdict that holds on some of the spans holds on all of
/// them: checked for every expectation the rule lets end early, on every prefix of every
/// arrival order of a small trace.
#[test]
fn what_holds_on_the_first_spans_holds_on_all_of_them() {
    let mut ok = span(3, "http.request", Some(1), 5, 8);
    ok.attributes.insert("route".into(), "/a".into());
    let mut b = span(4, "http.request", Some(1), 10, 30);
    b.attributes.insert("route".into(), "/b".into());
    let trace = vec![
        span(1, "checkout", None, 0, 100),
        span(2, "db.query", Some(1), 10, 20),
        ok,
        b,
        span(5, "pay", Some(1), 40, 60),
    ];
    let named = [
        "[[expect.span]]\nname = \"http.request\"\nattrs.all = { route = \"/b\" }\nparent = \"checkout\"\n",
        "[expect.order]\nmust_precede = [[\"db.query\", \"pay\"]]\nmust_follow = [[\"pay\", \"http.*\"]]\n",
        "[expect.graph]\nmust_include = [[\"checkout\", \"pay\"]]\n",
        "[[expect.temporal]]\nbefore = \"http.request\"\nafter = \"pay\"\n",
        "[otel_validation]\n[[otel_validation.expected_traces]]\nspan_names = [\"checkout\", \"pay\"]\ncomplete = true\n",
    ];
    let orders: [[usize; 5]; 4] = [
        [0, 1, 2, 3, 4],
        [4, 3, 2, 1, 0],
        [2, 0, 4, 1, 3],
        [3, 1, 4, 0, 2],
    ];
    for text in named {
        let e = parse(text);
        assert!(
            matches!(span_wait(&e, &Assertions::default()), SpanWait::Named(_)),
            "{text}"
        );
        let all_pass = evaluate(&trace, &e, &Context::default())
            .iter()
            .all(|v| v.passed);
        assert!(all_pass, "the whole trace holds {text}");
        for order in orders {
            for n in 0..=trace.len() {
                let first: Vec<Span> = order[..n].iter().map(|&i| trace[i].clone()).collect();
                if hold_already(&first, &e) {
                    let more: Vec<Span> = order.iter().map(|&i| trace[i].clone()).collect();
                    assert!(hold_already(&more, &e), "{text}: {order:?} after {n}");
                }
            }
        }
    }
    // Not yet held: the first http.request is /a, so the wait goes on for /b.
    let e = parse(named[0]);
    assert!(!hold_already(&trace[..3], &e));
    assert!(hold_already(&trace[..4], &e));
}
