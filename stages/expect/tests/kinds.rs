//! Each expectation kind of docs/reference.md §9 judged against plain spans: a passing case and every way
//! it can fail, with the failure message checked for what a user needs to see.

use clnrm_expect::{
    evaluate, verdicts_json, AttrValue, Context, ExpectationKind, Expectations, Span, SpanEvent,
    SpanId, SpanKind, StatusCode, TraceId, Verdict,
};

/// A span in trace `trace` with id `id`, running `start_ms..end_ms`.
fn span(trace: u128, id: u64, name: &str, start_ms: u64, end_ms: u64) -> Span {
    let mut s = Span::new(TraceId::from_u128(trace), SpanId::from_u64(id), name);
    s.start_unix_nanos = 1_700_000_000_000_000_000 + start_ms * 1_000_000;
    s.end_unix_nanos = 1_700_000_000_000_000_000 + end_ms * 1_000_000;
    s
}

fn child_of(mut s: Span, parent: &Span) -> Span {
    s.parent_span_id = Some(parent.span_id);
    s
}

fn with_attr(mut s: Span, key: &str, value: impl Into<AttrValue>) -> Span {
    s.attributes.insert(key.to_string(), value.into());
    s
}

fn with_kind(mut s: Span, kind: SpanKind) -> Span {
    s.kind = kind;
    s
}

fn with_status(mut s: Span, code: StatusCode, message: &str) -> Span {
    s.status.code = code;
    s.status.message = message.to_string();
    s
}

fn with_event(mut s: Span, name: &str) -> Span {
    s.events.push(SpanEvent {
        name: name.to_string(),
        time_unix_nanos: s.start_unix_nanos,
        attributes: Default::default(),
    });
    s
}

fn with_resource(mut s: Span, key: &str, value: &str) -> Span {
    s.resource.insert(key.to_string(), value.into());
    s
}

fn expect(toml_text: &str) -> Expectations {
    #[derive(serde::Deserialize)]
    struct File {
        expect: Expectations,
    }
    toml::from_str::<File>(toml_text)
        .unwrap_or_else(|e| panic!("test expectations parse: {e}"))
        .expect
}

fn judge(spans: &[Span], toml_text: &str) -> Vec<Verdict> {
    evaluate(spans, &expect(toml_text), &Context::new(["api", "db"]))
}

/// The single verdict a one-expectation table produces.
fn only(verdicts: Vec<Verdict>) -> Verdict {
    assert_eq!(verdicts.len(), 1, "one verdict expected: {verdicts:#?}");
    verdicts.into_iter().next().unwrap()
}

fn assert_fails_saying(v: &Verdict, needles: &[&str]) {
    assert!(!v.passed, "expected a failure, got: {}", v.message());
    let message = v.message();
    for needle in needles {
        assert!(
            message.contains(needle),
            "failure message lacks {needle:?}:\n{message}"
        );
    }
}

fn assert_holds(v: &Verdict) {
    assert!(v.passed, "expected to hold:\n{}", v.message());
}

/// A small web request: server root → handler → db query (client), in trace 1.
fn request() -> Vec<Span> {
    let root = with_kind(span(1, 1, "http.request", 0, 100), SpanKind::Server);
    let handler = child_of(span(1, 2, "api.handler", 10, 90), &root);
    let query = with_attr(
        with_attr(
            with_kind(
                child_of(span(1, 3, "db.query", 20, 50), &handler),
                SpanKind::Client,
            ),
            "db.system",
            "postgresql",
        ),
        "server.address",
        "db",
    );
    let query = with_event(with_event(query, "db.connect"), "db.rows");
    vec![root, handler, query]
}

// ---- [[expect.span]] ----

#[test]
fn a_span_meeting_every_constraint_passes() {
    let v = only(judge(
        &request(),
        r#"
        [[expect.span]]
        name = "db.query"
        parent = "api.handler"
        kind = "client"
        attrs.all = { "db.system" = "postgresql" }
        attrs.any = ["db.system=mysql", "server.address=db"]
        events.all = ["db.connect"]
        events.any = ["db.rows", "db.retry"]
        duration_ms = { min = 10, max = 60 }
        status = "OK"
        "#,
    ));
    assert_holds(&v);
    assert_eq!(v.kind, ExpectationKind::Span);
    assert_eq!(v.expectation, r#"expect.span[0] "db.query""#);
}

#[test]
fn span_names_may_be_globs() {
    assert_holds(&only(judge(&request(), "[[expect.span]]\nname = \"db.*\"")));
    assert_holds(&only(judge(
        &request(),
        "[[expect.span]]\nname = \"api.handle?\"",
    )));
    assert_holds(&only(judge(
        &request(),
        "[[expect.span]]\nname = \"db.query\"\nparent = \"api.*\"",
    )));
    assert!(!only(judge(&request(), "[[expect.span]]\nname = \"db.?\"")).passed);
}

#[test]
fn a_span_that_never_arrived_fails_showing_the_names_closest_to_it() {
    let v = only(judge(&request(), "[[expect.span]]\nname = \"db.querry\""));
    assert_fails_saying(
        &v,
        &[
            r#"expect.span[0] "db.querry""#,
            "no span named \"db.querry\" among the 3 received",
        ],
    );
    assert_eq!(v.closest[0].name, "db.query", "nearest name ranks first");
}

#[test]
fn a_wrong_parent_fails_naming_the_parent_received() {
    let v = only(judge(
        &request(),
        "[[expect.span]]\nname = \"db.query\"\nparent = \"http.request\"",
    ));
    assert_fails_saying(&v, &[r#"parent is "api.handler", expected "http.request""#]);
    assert_eq!(v.closest[0].parent.as_deref(), Some("api.handler"));
}

#[test]
fn a_root_span_fails_a_parent_constraint() {
    let v = only(judge(
        &request(),
        "[[expect.span]]\nname = \"http.request\"\nparent = \"x\"",
    ));
    assert_fails_saying(&v, &["is a root span, expected parent \"x\""]);
}

#[test]
fn a_wrong_kind_fails() {
    let v = only(judge(
        &request(),
        "[[expect.span]]\nname = \"db.query\"\nkind = \"server\"",
    ));
    assert_fails_saying(&v, &["kind is client, expected server"]);
}

#[test]
fn attrs_all_fails_on_a_missing_or_different_attribute() {
    let missing = only(judge(
        &request(),
        "[[expect.span]]\nname = \"db.query\"\nattrs.all = { \"db.name\" = \"shop\" }",
    ));
    assert_fails_saying(&missing, &["attribute db.name missing, expected \"shop\""]);
    let different = only(judge(
        &request(),
        "[[expect.span]]\nname = \"db.query\"\nattrs.all = { \"db.system\" = \"mysql\" }",
    ));
    assert_fails_saying(
        &different,
        &["attribute db.system is \"postgresql\", expected \"mysql\""],
    );
}

#[test]
fn attrs_are_compared_as_text_so_numbers_match_their_strings() {
    let spans = vec![with_attr(
        span(1, 1, "http.get", 0, 1),
        "http.status_code",
        200i64,
    )];
    assert_holds(&only(judge(
        &spans,
        "[[expect.span]]\nname = \"http.get\"\nattrs.all = { \"http.status_code\" = \"200\" }",
    )));
    assert_holds(&only(judge(
        &spans,
        "[[expect.span]]\nname = \"http.get\"\nattrs.all = { \"http.status_code\" = 200 }",
    )));
}

#[test]
fn attrs_any_fails_when_none_is_present() {
    let v = only(judge(
        &request(),
        "[[expect.span]]\nname = \"db.query\"\nattrs.any = [\"db.system=mysql\", \"peer=x\"]",
    ));
    assert_fails_saying(&v, &["has none of attrs.any [db.system=mysql, peer=x]"]);
}

#[test]
fn events_all_and_any_fail_listing_the_events_received() {
    let all = only(judge(
        &request(),
        "[[expect.span]]\nname = \"db.query\"\nevents.all = [\"db.connect\", \"db.close\"]",
    ));
    assert_fails_saying(
        &all,
        &[r#"event "db.close" missing (events: ["db.connect", "db.rows"])"#],
    );
    let any = only(judge(
        &request(),
        "[[expect.span]]\nname = \"db.query\"\nevents.any = [\"db.retry\"]",
    ));
    assert_fails_saying(&any, &["has none of events.any [\"db.retry\"]"]);
}

#[test]
fn duration_outside_min_or_max_fails() {
    let too_short = only(judge(
        &request(),
        "[[expect.span]]\nname = \"db.query\"\nduration_ms = { min = 31 }",
    ));
    assert_fails_saying(&too_short, &["lasted 30.000 ms, expected at least 31 ms"]);
    let too_long = only(judge(
        &request(),
        "[[expect.span]]\nname = \"db.query\"\nduration_ms = { max = 29.5 }",
    ));
    assert_fails_saying(&too_long, &["lasted 30.000 ms, expected at most 29.5 ms"]);
}

#[test]
fn span_status_fails_on_error_and_ok_accepts_unset() {
    let mut spans = request();
    assert_holds(&only(judge(
        &spans,
        "[[expect.span]]\nname = \"db.query\"\nstatus = \"OK\"",
    )));
    spans[2] = with_status(spans[2].clone(), StatusCode::Error, "connection refused");
    let v = only(judge(
        &spans,
        "[[expect.span]]\nname = \"db.query\"\nstatus = \"OK\"",
    ));
    assert_fails_saying(
        &v,
        &[r#"status is ERROR ("connection refused"), expected OK"#],
    );
}

#[test]
fn among_several_same_named_spans_the_one_missing_least_ranks_first() {
    let root = span(1, 1, "root", 0, 100);
    let far = with_kind(span(1, 2, "db.query", 0, 1), SpanKind::Server);
    let near = with_kind(
        child_of(span(1, 3, "db.query", 0, 1), &root),
        SpanKind::Server,
    );
    let v = only(judge(
        &[root.clone(), far, near],
        "[[expect.span]]\nname = \"db.query\"\nparent = \"root\"\nkind = \"client\"",
    ));
    assert_fails_saying(
        &v,
        &["2 span(s) named \"db.query\", none meets every constraint"],
    );
    assert_eq!(
        v.closest[0].mismatch,
        vec!["kind is server, expected client"]
    );
    assert_eq!(v.closest[1].mismatch.len(), 2);
}

#[test]
fn exists_false_passes_only_when_no_span_meets_it() {
    assert_holds(&only(judge(
        &request(),
        "[[expect.span]]\nname = \"cache.*\"\nexists = false",
    )));
    let v = only(judge(
        &request(),
        "[[expect.span]]\nname = \"db.query\"\nexists = false",
    ));
    assert_fails_saying(&v, &["1 span(s) meet it"]);
}

// ---- [expect.order] ----

#[test]
fn must_precede_holds_when_some_a_ends_before_some_b_starts() {
    let spans = vec![span(1, 1, "login", 0, 10), span(1, 2, "fetch", 20, 30)];
    assert_holds(&only(judge(
        &spans,
        "[expect.order]\nmust_precede = [[\"login\", \"fetch\"]]",
    )));
    let v = only(judge(
        &spans,
        "[expect.order]\nmust_precede = [[\"fetch\", \"login\"]]",
    ));
    assert_fails_saying(
        &v,
        &[
            r#"expect.order.must_precede[0] ["fetch", "login"]"#,
            r#"the earliest "fetch" ends at +30.000 ms, the latest "login" starts at +0.000 ms"#,
        ],
    );
    assert_eq!(v.kind, ExpectationKind::Order);
}

#[test]
fn must_follow_holds_when_some_a_starts_after_some_b_ends() {
    let spans = vec![span(1, 1, "login", 0, 10), span(1, 2, "fetch", 20, 30)];
    assert_holds(&only(judge(
        &spans,
        "[expect.order]\nmust_follow = [[\"fetch\", \"login\"]]",
    )));
    let v = only(judge(
        &spans,
        "[expect.order]\nmust_follow = [[\"login\", \"fetch\"]]",
    ));
    assert_fails_saying(&v, &[r#"expect.order.must_follow[0] ["login", "fetch"]"#]);
}

#[test]
fn overlapping_spans_neither_precede_nor_follow() {
    let spans = vec![span(1, 1, "a", 0, 20), span(1, 2, "b", 10, 30)];
    let verdicts = judge(
        &spans,
        "[expect.order]\nmust_precede = [[\"a\", \"b\"]]\nmust_follow = [[\"b\", \"a\"]]",
    );
    assert!(verdicts.iter().all(|v| !v.passed), "{verdicts:#?}");
}

#[test]
fn order_with_a_missing_span_fails_naming_it() {
    let v = only(judge(
        &[span(1, 1, "login", 0, 10)],
        "[expect.order]\nmust_precede = [[\"login\", \"fetch\"]]",
    ));
    assert_fails_saying(&v, &["no span named \"fetch\""]);
}

// ---- [expect.status] ----

#[test]
fn status_all_ok_accepts_unset_and_fails_on_error() {
    let mut spans = request();
    spans[0] = with_status(spans[0].clone(), StatusCode::Ok, "");
    assert_holds(&only(judge(&spans, "[expect.status]\nall = \"OK\"")));
    spans[2] = with_status(spans[2].clone(), StatusCode::Error, "timeout");
    let v = only(judge(&spans, "[expect.status]\nall = \"OK\""));
    assert_fails_saying(
        &v,
        &[
            "expect.status.all",
            "1 of 3 span(s) do not: 1 ERROR",
            "db.query",
        ],
    );
}

#[test]
fn status_all_unset_and_error_are_exact() {
    let mut spans = request();
    spans[0] = with_status(spans[0].clone(), StatusCode::Ok, "");
    assert!(!only(judge(&spans, "[expect.status]\nall = \"UNSET\"")).passed);
    assert!(!only(judge(&spans, "[expect.status]\nall = \"ERROR\"")).passed);
}

#[test]
fn status_over_no_spans_fails_rather_than_passing_vacuously() {
    let v = only(judge(&[], "[expect.status]\nall = \"OK\""));
    assert_fails_saying(&v, &["no spans received"]);
}

#[test]
fn status_by_name_checks_every_matching_span() {
    let mut spans = request();
    spans[2] = with_status(spans[2].clone(), StatusCode::Error, "");
    let verdicts = judge(
        &spans,
        "[expect.status]\nby_name = { \"db.*\" = \"ERROR\", \"api.*\" = \"OK\", \"cache\" = \"OK\" }",
    );
    assert_eq!(verdicts.len(), 3);
    let by = |needle: &str| {
        verdicts
            .iter()
            .find(|v| v.expectation.contains(needle))
            .unwrap()
    };
    assert_holds(by("\"db.*\""));
    assert_holds(by("\"api.*\""));
    assert_fails_saying(by("\"cache\""), &["no span named \"cache\""]);
    let v = only(judge(
        &spans,
        "[expect.status]\nby_name = { \"db.query\" = \"OK\" }",
    ));
    assert_fails_saying(
        &v,
        &["expect.status.by_name \"db.query\"", "status is ERROR"],
    );
}

// ---- [expect.counts] ----

#[test]
fn counts_hold_per_field_and_fail_showing_the_count() {
    let mut spans = request();
    spans[1] = with_status(spans[1].clone(), StatusCode::Error, "");
    let holds = judge(
        &spans,
        r#"
        [expect.counts]
        spans_total = { eq = 3 }
        events_total = { gte = 2, lte = 2 }
        errors_total = { lte = 1 }
        by_name = { "db.*" = { eq = 1 }, "nothing" = { eq = 0 } }
        "#,
    );
    assert_eq!(holds.len(), 5);
    holds.iter().for_each(assert_holds);

    let fails = judge(
        &spans,
        r#"
        [expect.counts]
        spans_total = { gte = 4 }
        events_total = { lte = 1 }
        errors_total = { eq = 0 }
        by_name = { "db.quer" = { gte = 1 }, "db.*" = { eq = 2 } }
        "#,
    );
    assert_eq!(fails.len(), 5);
    assert_fails_saying(
        &fails[0],
        &["expect.counts.spans_total", "count >= 4", "actual:   3"],
    );
    assert_fails_saying(
        &fails[1],
        &["expect.counts.events_total", "count <= 1", "actual:   2"],
    );
    assert_fails_saying(
        &fails[2],
        &["expect.counts.errors_total", "count = 0", "actual:   1"],
    );
    // by_name in name order: `db.*` matched, but not as many as bound, so the spans counted
    // are shown; `db.quer` matched none, so the names the user may have meant are.
    assert_fails_saying(
        &fails[3],
        &["expect.counts.by_name \"db.*\"", "count = 2", "actual:   1"],
    );
    assert_fails_saying(
        &fails[4],
        &["expect.counts.by_name \"db.quer\"", "actual:   0"],
    );
    assert_eq!(fails[4].closest[0].name, "db.query");
    let shown: Vec<&str> = fails[3].closest.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(shown, ["db.query"]);
}

#[test]
fn counts_by_kind_from_the_count_macro() {
    let verdicts = judge(
        &request(),
        "[expect.count]\nby_kind.client = { min = 1, max = 1 }\nby_kind.server = { min = 2 }",
    );
    let by = |kind: &str| {
        let label = format!("expect.counts.by_kind {kind}");
        verdicts.iter().find(|v| v.expectation == label).unwrap()
    };
    assert_holds(by("client"));
    assert_fails_saying(by("server"), &["count >= 2", "actual:   1"]);
}

// ---- [[expect.window]] ----

#[test]
fn window_holds_when_each_named_span_lies_inside_an_outer_span_of_its_trace() {
    assert_holds(&only(judge(
        &request(),
        "[[expect.window]]\nouter = \"http.request\"\ncontains = [\"api.handler\", \"db.query\"]",
    )));
}

#[test]
fn window_fails_for_a_span_outside_its_outer_span() {
    let mut spans = request();
    spans.push(span(1, 4, "db.query", 95, 120));
    let v = only(judge(
        &spans,
        "[[expect.window]]\nouter = \"http.request\"\ncontains = [\"db.query\"]",
    ));
    assert_fails_saying(
        &v,
        &[
            r#"expect.window[0] "http.request""#,
            r#""db.query" runs +95.000..+120.000 ms, outside every "http.request" of its trace"#,
        ],
    );
}

#[test]
fn window_fails_for_a_span_in_another_trace() {
    let mut spans = request();
    spans.push(span(2, 1, "db.query", 20, 30));
    let v = only(judge(
        &spans,
        "[[expect.window]]\nouter = \"http.request\"\ncontains = [\"db.query\"]",
    ));
    assert_fails_saying(&v, &["no \"http.request\" span in its trace"]);
}

#[test]
fn window_fails_when_outer_or_inner_never_arrived() {
    let v = only(judge(
        &request(),
        "[[expect.window]]\nouter = \"txn\"\ncontains = [\"db.query\"]",
    ));
    assert_fails_saying(&v, &["no span named \"txn\""]);
    let v = only(judge(
        &request(),
        "[[expect.window]]\nouter = \"http.request\"\ncontains = [\"cache.get\"]",
    ));
    assert_fails_saying(&v, &["no span named \"cache.get\""]);
}

// ---- [expect.graph] ----

#[test]
fn graph_must_include_fails_when_the_edge_is_missing() {
    assert_holds(&only(judge(
        &request(),
        "[expect.graph]\nmust_include = [[\"api.handler\", \"db.query\"]]",
    )));
    let v = only(judge(
        &request(),
        "[expect.graph]\nmust_include = [[\"http.request\", \"db.query\"]]",
    ));
    assert_fails_saying(
        &v,
        &[
            r#"expect.graph.must_include[0] ["http.request", "db.query"]"#,
            r#"spans named "db.query" have parents: "api.handler""#,
        ],
    );
}

#[test]
fn graph_must_not_cross_fails_on_an_edge_either_way() {
    assert_holds(&only(judge(
        &request(),
        "[expect.graph]\nmust_not_cross = [[\"http.request\", \"db.query\"]]",
    )));
    for pair in [
        r#"["api.handler", "db.query"]"#,
        r#"["db.query", "api.handler"]"#,
    ] {
        let v = only(judge(
            &request(),
            &format!("[expect.graph]\nmust_not_cross = [{pair}]"),
        ));
        assert_fails_saying(&v, &[r#"1 edge(s), first "api.handler" → "db.query""#]);
    }
}

#[test]
fn graph_acyclic_fails_on_a_parent_cycle() {
    assert_holds(&only(judge(&request(), "[expect.graph]\nacyclic = true")));
    let a = span(1, 1, "a", 0, 1);
    let b = child_of(span(1, 2, "b", 0, 1), &a);
    let a = child_of(a, &b);
    let v = only(judge(&[a, b], "[expect.graph]\nacyclic = true"));
    assert_fails_saying(&v, &["expect.graph.acyclic", "parent cycle:"]);
    let own = span(1, 7, "self", 0, 1);
    let own = child_of(own.clone(), &own);
    assert!(!only(judge(&[own], "[expect.graph]\nacyclic = true")).passed);
}

// ---- [expect.hermeticity] ----

fn client_calling(key: &str, value: &str) -> Vec<Span> {
    vec![with_attr(
        with_kind(span(1, 1, "outbound", 0, 1), SpanKind::Client),
        key,
        value,
    )]
}

#[test]
fn calls_to_the_tests_services_the_collector_and_loopback_are_hermetic() {
    for (key, value) in [
        ("server.address", "db"),
        ("net.peer.name", "API"),
        ("http.url", "http://otel-collector:4318/v1/traces"),
        ("http.url", "http://localhost:8080/"),
    ] {
        assert_holds(&only(judge(
            &client_calling(key, value),
            "[expect.hermeticity]\nno_external_services = true",
        )));
    }
}

#[test]
fn a_client_span_naming_an_external_peer_fails() {
    for (key, value, host) in [
        ("server.address", "example.com", "example.com"),
        ("net.peer.name", "10.0.0.9", "10.0.0.9"),
        (
            "http.url",
            "https://api.stripe.com:443/v1/charges",
            "api.stripe.com",
        ),
    ] {
        let v = only(judge(
            &client_calling(key, value),
            "[expect.hermeticity]\nno_external_services = true",
        ));
        assert_fails_saying(
            &v,
            &[
                "expect.hermeticity.no_external_services",
                &format!("calls {host:?} ({key})"),
                "client spans call only api, db, otel-collector",
            ],
        );
    }
}

#[test]
fn server_spans_are_not_judged_as_callers() {
    let spans = vec![with_attr(
        with_kind(span(1, 1, "inbound", 0, 1), SpanKind::Server),
        "server.address",
        "example.com",
    )];
    assert_holds(&only(judge(
        &spans,
        "[expect.hermeticity]\nno_external_services = true",
    )));
}

#[test]
fn resource_attrs_must_match_on_every_span() {
    let spans: Vec<Span> = request()
        .into_iter()
        .map(|s| with_resource(with_resource(s, "service.name", "api"), "env", "ci"))
        .collect();
    let table = "[expect.hermeticity]\nresource_attrs.must_match = { \"service.name\" = \"api\", env = \"ci\" }";
    assert_holds(&only(judge(&spans, table)));

    let mut mismatched = spans.clone();
    mismatched[1] = with_resource(mismatched[1].clone(), "env", "prod");
    assert_fails_saying(
        &only(judge(&mismatched, table)),
        &[
            "1 of 3 span(s) do not",
            r#"resource env is "prod", expected "ci""#,
        ],
    );
    let mut missing = spans;
    missing[2].resource.remove("env");
    assert_fails_saying(&only(judge(&missing, table)), &["resource has no env"]);
    assert_fails_saying(&only(judge(&[], table)), &["no spans received"]);
}

#[test]
fn a_forbidden_attribute_key_fails() {
    let table = "[expect.hermeticity]\nspan_attrs.forbid_keys = [\"db.connection_string\"]";
    assert_holds(&only(judge(&request(), table)));
    let mut spans = request();
    spans[2] = with_attr(
        spans[2].clone(),
        "db.connection_string",
        "postgres://u:p@db",
    );
    assert_fails_saying(
        &only(judge(&spans, table)),
        &[
            "expect.hermeticity.span_attrs.forbid_keys",
            r#"first "db.query" has db.connection_string"#,
        ],
    );
}

// ---- output ----

#[test]
fn verdicts_serialise_as_the_json_events_expectations_array() {
    let verdicts = judge(
        &request(),
        "[[expect.span]]\nname = \"http.request\"\n[[expect.span]]\nname = \"db.query\"\nkind = \"server\"",
    );
    let json = verdicts_json(&verdicts);
    assert_eq!(json[0]["kind"], "span");
    assert_eq!(json[0]["index"], 0);
    assert_eq!(json[0]["status"], "pass");
    assert_eq!(json[1]["index"], 1);
    assert_eq!(json[1]["status"], "fail");
    let message = json[1]["message"].as_str().unwrap();
    assert!(
        message.starts_with(r#"expect.span[1] "db.query" failed"#),
        "{message}"
    );
    assert!(message.contains("closest spans received:"), "{message}");
    assert!(
        message.contains(r#""db.query" (client, parent "api.handler", 30.0 ms, UNSET)"#),
        "{message}"
    );
}

#[test]
fn verdicts_come_in_spec_order_numbered_within_their_kind() {
    let verdicts = judge(
        &request(),
        r#"
        [[expect.span]]
        name = "db.query"
        [expect.hermeticity]
        no_external_services = true
        [expect.graph]
        acyclic = true
        must_include = [["api.handler", "db.query"]]
        "#,
    );
    let kinds: Vec<(ExpectationKind, usize)> = verdicts.iter().map(|v| (v.kind, v.index)).collect();
    assert_eq!(
        kinds,
        vec![
            (ExpectationKind::Span, 0),
            (ExpectationKind::Graph, 0),
            (ExpectationKind::Graph, 1),
            (ExpectationKind::Hermeticity, 0),
        ]
    );
}
