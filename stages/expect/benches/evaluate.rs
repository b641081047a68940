//! The expect stage's budget (issue 11): 10,000 spans judged against 50 expectations of
//! every kind in under 20 ms.

use clnrm_expect::{evaluate, AttrValue, Context, Expectations, Span, SpanId, SpanKind, TraceId};
use criterion::{criterion_group, criterion_main, Criterion};

const TRACES: u64 = 100;
const SPANS_PER_TRACE: u64 = 100;

/// 100 traces of 100 spans: a server root, 9 handlers under it, 90 leaves (db/cache/http
/// clients) under the handlers; 40 distinct names.
fn spans() -> Vec<Span> {
    let mut out = Vec::with_capacity((TRACES * SPANS_PER_TRACE) as usize);
    for t in 0..TRACES {
        let trace = TraceId::from_u128(u128::from(t) + 1);
        let base = t * 1_000_000_000;
        for i in 0..SPANS_PER_TRACE {
            let (name, kind, parent) = match i {
                0 => ("http.server".to_string(), SpanKind::Server, None),
                1..=9 => (format!("handler.{i}"), SpanKind::Internal, Some(0)),
                _ => {
                    let leaf = i % 30;
                    (format!("leaf.{leaf}"), SpanKind::Client, Some(1 + i % 9))
                }
            };
            let mut s = Span::new(trace, SpanId::from_u64(i + 1), name);
            s.kind = kind;
            s.parent_span_id = parent.map(|p| SpanId::from_u64(p + 1));
            s.start_unix_nanos = base + i * 1_000;
            s.end_unix_nanos = if i == 0 {
                base + 900_000_000
            } else {
                base + i * 1_000 + 500
            };
            s.attributes.insert("http.method".into(), "GET".into());
            s.attributes.insert("server.address".into(), "db".into());
            s.attributes
                .insert("leaf.index".into(), AttrValue::Int(i as i64));
            s.resource.insert("service.name".into(), "api".into());
            out.push(s);
        }
    }
    out
}

/// 50 expectations: 30 `[[expect.span]]` (glob parent, kind, attrs, duration, status), 4 windows,
/// and order/status/counts/graph/hermeticity entries for the rest.
fn expectations() -> Expectations {
    let mut text = String::new();
    for i in 0..30 {
        text.push_str(&format!(
            "[[expect.span]]\nname = \"leaf.{i}\"\nparent = \"handler.*\"\nkind = \"client\"\n\
             attrs.all = {{ \"http.method\" = \"GET\" }}\nattrs.any = [\"server.address=db\"]\n\
             duration_ms = {{ max = 1 }}\nstatus = \"OK\"\n\n"
        ));
    }
    for i in 1..=4 {
        text.push_str(&format!(
            "[[expect.window]]\nouter = \"http.server\"\ncontains = [\"handler.{i}\"]\n\n"
        ));
    }
    text.push_str(
        r#"
[expect.order]
must_precede = [["handler.1", "handler.2"], ["handler.2", "handler.3"]]
must_follow = [["handler.9", "handler.1"]]

[expect.status]
all = "OK"
by_name = { "leaf.*" = "OK", "http.server" = "UNSET" }

[expect.counts]
spans_total = { eq = 10000 }
errors_total = { eq = 0 }
by_name = { "http.server" = { eq = 100 } }

[expect.graph]
must_include = [["http.server", "handler.1"], ["handler.*", "leaf.1"]]
must_not_cross = [["http.server", "leaf.*"]]
acyclic = true

[expect.hermeticity]
no_external_services = true
resource_attrs.must_match = { "service.name" = "api" }
span_attrs.forbid_keys = ["db.connection_string"]
"#,
    );
    #[derive(serde::Deserialize)]
    struct File {
        expect: Expectations,
    }
    let file: File = toml::from_str(&text).expect("bench expectations parse");
    file.expect
}

fn bench(c: &mut Criterion) {
    let spans = spans();
    let expectations = expectations();
    let context = Context::new(["api", "db"]);
    let verdicts = evaluate(&spans, &expectations, &context);
    assert_eq!(verdicts.len(), 50, "the bench judges 50 expectations");
    let failed: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v| v.message())
        .collect();
    assert!(
        failed.is_empty(),
        "every bench expectation holds: {failed:#?}"
    );
    c.bench_function("evaluate 10k spans x 50 expectations", |b| {
        b.iter(|| evaluate(&spans, &expectations, &context))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
