//! `[expect]` tables deserialised from TOML text in the shapes clnrm's test files and macro
//! libraries write, the errors bad values give, and the key lists the config stage checks
//! unknown keys against.

use std::path::Path;

use clnrm_expect::{
    known_keys, Expectations, ExpectedStatus, KnownKeys, SpanKind, SpanPattern, KINDS,
};

#[derive(Debug, serde::Deserialize)]
struct TestFile {
    #[serde(default)]
    expect: Expectations,
}

fn parse(text: &str) -> Result<Expectations, String> {
    toml::from_str::<TestFile>(text)
        .map(|f| f.expect)
        .map_err(|e| e.to_string())
}

fn pattern_names(patterns: &[SpanPattern]) -> Vec<&str> {
    patterns.iter().map(SpanPattern::as_str).collect()
}

/// Every kind, written the way the full-surface corpus files write them (dotted keys,
/// inline tables, arrays of pairs).
const FULL_SURFACE: &str = r#"
[[expect.span]]
name="app.run"
kind="internal"
attrs.all={ "result"="pass" }
duration_ms={ min=10, max=600000 }

[[expect.span]]
name="app.step:build"
parent="app.run"
kind="internal"
attrs.any=["step.name=build","status=ok"]
events.any=["container.start","container.exec"]
duration_ms={ min=1, max=120000 }

[expect.graph]
must_include=[["app.run","app.step:build"]]
must_not_cross=[["app.step:build","app.registry"]]
acyclic=true

[expect.counts]
spans_total={ gte=2, lte=200 }
events_total={ gte=2 }
errors_total={ eq=0 }
by_name={ "app.run"={ eq=1 } }

[[expect.window]]
outer="app.run"
contains=["app.step:build","app.registry"]

[expect.order]
must_precede=[["app.registry","app.step:build"]]
must_follow=[["app.step:build","app.run"]]

[expect.status]
all="OK"
by_name={ "app.*"="OK" }

[expect.hermeticity]
no_external_services=true
resource_attrs.must_match={ "service.name"="app", "env"="ci" }
span_attrs.forbid_keys=["net.peer.name","db.connection_string"]
"#;

#[test]
fn the_full_surface_shape_deserialises_every_kind() {
    let e = parse(FULL_SURFACE).unwrap();
    assert_eq!(e.span.len(), 2);
    let run = &e.span[0];
    assert_eq!(run.name.as_str(), "app.run");
    assert_eq!(run.kind, Some(SpanKind::Internal));
    assert_eq!(run.attrs.all["result"].0, "pass");
    assert_eq!(run.duration_ms.unwrap().min, Some(10.0));
    assert!(run.exists);
    let step = &e.span[1];
    assert_eq!(step.parent.as_ref().unwrap().as_str(), "app.run");
    assert_eq!(step.attrs.any[0].key, "step.name");
    assert_eq!(step.attrs.any[0].value, "build");
    assert_eq!(step.events.any, ["container.start", "container.exec"]);

    let graph = e.graph.as_ref().unwrap();
    assert_eq!(
        pattern_names(&graph.must_include[0]),
        ["app.run", "app.step:build"]
    );
    assert!(graph.acyclic);
    let counts = e.counts.as_ref().unwrap();
    assert_eq!(counts.spans_total.unwrap().gte, Some(2));
    assert_eq!(counts.spans_total.unwrap().lte, Some(200));
    assert_eq!(counts.errors_total.unwrap().eq, Some(0));
    assert_eq!(counts.by_name[&SpanPattern::new("app.run")].eq, Some(1));
    assert_eq!(e.window[0].outer.as_str(), "app.run");
    assert_eq!(
        pattern_names(&e.window[0].contains),
        ["app.step:build", "app.registry"]
    );
    let order = e.order.as_ref().unwrap();
    assert_eq!(
        pattern_names(&order.must_follow[0]),
        ["app.step:build", "app.run"]
    );
    let status = e.status.as_ref().unwrap();
    assert_eq!(status.all, Some(ExpectedStatus::Ok));
    assert_eq!(
        status.by_name[&SpanPattern::new("app.*")],
        ExpectedStatus::Ok
    );
    let h = e.hermeticity.as_ref().unwrap();
    assert!(h.no_external_services);
    assert_eq!(h.resource_attrs["env"].0, "ci");
    assert_eq!(h.span_attrs.forbid_keys.len(), 2);
}

#[test]
fn resource_attrs_may_be_written_as_their_own_table() {
    let e = parse(
        r#"
        [expect.hermeticity]
        no_external_services = true

        [expect.hermeticity.resource_attrs]
        "service.name" = "app"
        "env" = "integration_test"
        "#,
    )
    .unwrap();
    let attrs = &e.hermeticity.unwrap().resource_attrs;
    assert_eq!(attrs["service.name"].0, "app");
    assert_eq!(attrs["env"].0, "integration_test");
}

#[test]
fn the_macro_libraries_shapes_deserialise() {
    // What `span`, `lifecycle`, `window` and `count` in the corpus's _macros.toml.tera emit.
    let e = parse(
        r#"
        [[expect.span]]
        name = "http.request"
        kind = "server"
        attrs.all = { "http.method" = "GET", "http.status_code" = "200" }

        [[expect.span]]
        name = "db.query"
        parent = "http.request"

        [[expect.span]]
        name = "cache.check"
        exists = true

        [expect.order]
        must_precede = [
          ["pg.start", "pg.exec"],
          ["pg.exec", "pg.stop"]
        ]

        [expect.window]
        "transaction" = { contains = ["db.query"] }

        [expect.count]
        by_kind.server = { min = 1, max = 5 }
        "#,
    )
    .unwrap();
    assert_eq!(e.span.len(), 3);
    assert_eq!(e.span[0].attrs.all.len(), 2);
    assert_eq!(e.order.unwrap().must_precede.len(), 2);
    assert_eq!(e.window[0].outer.as_str(), "transaction");
    assert_eq!(pattern_names(&e.window[0].contains), ["db.query"]);
    let server = e.counts.unwrap().by_kind.into_values().next().unwrap();
    assert_eq!((server.gte, server.lte), (Some(1), Some(5)));
}

#[test]
fn a_test_without_expect_has_no_expectations() {
    assert!(parse("[meta]\nname = \"x\"\n").unwrap().is_empty());
}

#[test]
fn bad_values_are_errors_that_say_what_was_expected() {
    let cases = [
        (
            "[[expect.span]]\nname = \"a\"\nkind = \"serverside\"",
            "unknown span kind \"serverside\"",
        ),
        (
            "[[expect.span]]\nname = \"a\"\nstatus = \"FINE\"",
            "unknown status \"FINE\"",
        ),
        (
            "[[expect.span]]\nname = \"a\"\nattrs.any = [\"no-equals\"]",
            "expected \"key=value\"",
        ),
        (
            "[[expect.span]]\nname = \"a\"\nduration_ms = { min = 5, max = 1 }",
            "min 5 is above max 1",
        ),
        (
            "[[expect.span]]\nname = \"a\"\nduration_ms = {}",
            "needs `min`, `max` or both",
        ),
        (
            "[[expect.span]]\nname = \"\"",
            "a span name may not be empty",
        ),
        ("[[expect.span]]\nkind = \"client\"", "missing field `name`"),
        (
            "[expect.counts]\nspans_total = {}",
            "needs `eq`, `gte` or `lte`",
        ),
        (
            "[expect.counts]\nspans_total = { gte = 3, lte = 2 }",
            "gte 3 is above lte 2",
        ),
        (
            "[expect.order]\nmust_precede = [[\"a\"]]",
            "invalid length 1",
        ),
        (
            "[expect.window]\nouter = \"a\"\ncontains = [\"b\"]",
            "[[expect.window]]",
        ),
    ];
    for (text, needle) in cases {
        let err = parse(text).expect_err(text);
        assert!(
            err.contains(needle),
            "error for {text:?} lacks {needle:?}:\n{err}"
        );
    }
}

#[test]
fn known_keys_list_what_each_table_accepts() {
    assert_eq!(known_keys(&[]), Some(KnownKeys::Listed(KINDS)));
    let Some(KnownKeys::Listed(span)) = known_keys(&["span"]) else {
        panic!("span entries have listed keys")
    };
    for key in "name parent kind attrs events duration_ms status".split(' ') {
        assert!(span.contains(&key), "{key}");
    }
    assert_eq!(known_keys(&["span", "attrs", "all"]), Some(KnownKeys::Free));
    assert_eq!(known_keys(&["counts", "by_name"]), Some(KnownKeys::Free));
    assert!(matches!(
        known_keys(&["counts", "by_name", "db.*"]),
        Some(KnownKeys::Listed(k)) if k.contains(&"gte")
    ));
    assert!(matches!(
        known_keys(&["hermeticity", "span_attrs"]),
        Some(KnownKeys::Listed(["forbid_keys"]))
    ));
    assert_eq!(known_keys(&["span", "name"]), None);
}

#[test]
fn awaited_span_names_leave_out_spans_that_must_not_arrive() {
    let e = parse(FULL_SURFACE).unwrap();
    let awaited: Vec<String> = e
        .awaited_span_names()
        .iter()
        .map(|p| p.as_str().to_string())
        .collect();
    assert_eq!(
        awaited,
        ["app.run", "app.step:build", "app.registry", "app.*"],
        "span, parent, order, status, counts, window and graph names, each once"
    );
    let e = parse(
        "[[expect.span]]\nname = \"leak\"\nexists = false\n\
         [expect.counts]\nby_name = { \"retry\" = { eq = 0 }, \"boot\" = { gte = 1 } }\n\
         [expect.graph]\nmust_not_cross = [[\"a\", \"b\"]]",
    )
    .unwrap();
    let awaited = e.awaited_span_names();
    assert_eq!(pattern_names(&awaited), ["boot"]);
}

/// Every plain-TOML corpus file with an `[expect]` table deserialises (templates need
/// rendering first, which is the render stage's business).
#[test]
fn corpus_test_files_expect_tables_deserialise() {
    let Some(corpus) =
        clnrm_test_support::corpus_dir("corpus_test_files_expect_tables_deserialise")
    else {
        return;
    };
    let mut files = Vec::new();
    collect_toml(&corpus, &mut files);
    let mut checked = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.contains("[expect.") && !text.contains("[[expect.") {
            continue;
        }
        let Ok(table) = text.parse::<toml::Table>() else {
            continue; // not valid TOML at all: the config stage reports that
        };
        let Some(expect) = table.get("expect").cloned() else {
            continue;
        };
        if let Err(e) = expect.try_into::<Expectations>() {
            panic!("{}: {e}", path.display());
        }
        checked += 1;
    }
    assert!(
        checked >= 3,
        "the corpus has 3 valid plain TOML test files with [expect]: {checked}"
    );
}

fn collect_toml(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_toml(&path, out);
        } else if path.to_string_lossy().ends_with(".clnrm.toml") {
            out.push(path);
        }
    }
}
