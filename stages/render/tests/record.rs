//! The record lists exactly what a render read: change a dependency and it changes;
//! change something unrelated and it does not.

mod common;

use clnrm_render::{render, FileDep, Rendered};
use common::Project;

const LIB: &str = r#"{% import "_inner.tera" as inner %}
{% macro greet(who) -%}hello = {{ inner::quote(s=who) }}{%- endmacro %}"#;
const INNER: &str = r#"{% macro quote(s) -%}"{{ s }}"{%- endmacro %}"#;
const TPL: &str = r#"# test
{% import "_lib.tera" as lib %}
[meta]
name = "t"
version = "1.0"
{{ lib::greet("world") }}
{% include "_part.tera" %}
home = "{{ env(name="HOME_DIR", default="none") }}"
image = "{{ image }}"
"#;

fn project(root: &str) -> Project {
    let mut p = Project::new(root);
    p.file("tests/sub/a.clnrm.toml.tera", TPL)
        .file("tests/_lib.tera", LIB)
        .file("_inner.tera", INNER)
        .file("tests/sub/_part.tera", "part = true\n")
        .file("tests/unrelated.txt", "x")
        .env("HOME_DIR", "/h")
        .env("UNRELATED", "1");
    p
}

fn run(p: &Project) -> Rendered {
    p.render("tests/sub/a.clnrm.toml.tera").unwrap()
}

#[test]
fn renders_and_records_every_file_and_probe() {
    let p = project("/work/proj");
    let r = run(&p);
    assert_eq!(
        r.toml,
        "# test\n\n[meta]\nname = \"t\"\nversion = \"1.0\"\nhello = \"world\"\npart = true\n\nhome = \"/h\"\nimage = \"alpine:3.20\"\n"
    );
    let paths: Vec<(&str, bool)> = r
        .record
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.hash.is_some()))
        .collect();
    assert_eq!(
        paths,
        vec![
            ("_inner.tera", true),
            // probed and absent: creating them later must re-render
            ("tests/_inner.tera", false),
            ("tests/_lib.tera", true),
            ("tests/sub/_lib.tera", false),
            ("tests/sub/_part.tera", true),
        ]
    );
    let env: Vec<(&str, bool)> = r
        .record
        .env
        .iter()
        .map(|e| (e.name.as_str(), e.hash.is_some()))
        .collect();
    assert_eq!(env, vec![("CLNRM_IMAGE", false), ("HOME_DIR", true)]);
    assert!(!r.record.volatile);
}

#[test]
fn changing_a_dependency_changes_the_record() {
    let base = run(&project("/p")).record;
    type Change = Box<dyn Fn(&mut Project)>;
    let changes: Vec<(&str, Change)> = vec![
        (
            "imported macro file",
            Box::new(|p| {
                p.file("tests/_lib.tera", &LIB.replace("hello", "hi"));
            }),
        ),
        (
            "transitively imported file",
            Box::new(|p| {
                p.file("_inner.tera", &INNER.replace("\"{{ s }}\"", "'{{ s }}'"));
            }),
        ),
        (
            "included file",
            Box::new(|p| {
                p.file("tests/sub/_part.tera", "part = false\n");
            }),
        ),
        (
            "env var read by env()",
            Box::new(|p| {
                p.env("HOME_DIR", "/other");
            }),
        ),
        (
            "env var of a default var",
            Box::new(|p| {
                p.env("CLNRM_IMAGE", "busybox");
            }),
        ),
        (
            "a probed path now exists",
            Box::new(|p| {
                p.file("tests/sub/_lib.tera", LIB);
            }),
        ),
    ];
    for (what, change) in changes {
        let mut p = project("/p");
        change(&mut p);
        let r = run(&p);
        assert_ne!(r.record, base, "{what}: record must change");
    }
}

#[test]
fn unrelated_changes_leave_the_record_identical() {
    let base = run(&project("/p"));
    let mut p = project("/p");
    p.file("tests/unrelated.txt", "changed")
        .file("tests/other.clnrm.toml", "[meta]")
        .env("UNRELATED", "2")
        .env("SERVICE_NAME", "not read: `svc` is not used");
    let r = run(&p);
    assert_eq!(r, base);
}

#[test]
fn same_project_under_two_roots_gives_identical_output() {
    let a = run(&project("/home/alice/proj"));
    let b = run(&project("/tmp/ci/checkout/x"));
    assert_eq!(a, b);
    for f in &a.record.files {
        assert!(!f.path.starts_with('/') && !f.path.contains('\\'), "{f:?}");
    }
}

#[test]
fn seeded_renders_are_byte_identical_and_not_volatile() {
    let tpl = r#"a = "{{ uuid_v4() }}"
b = "{{ fake_name() }}"
c = {{ fake_int_range(min=1, max=1000000) }}
d = "{{ now_rfc3339() }}"
e = {{ now_unix() }}
f = {{ now_ms() }}
g = "{{ fake_email(seed=7) }}"
"#;
    let mut p = Project::new("/p");
    p.file("t.clnrm.toml.tera", tpl);
    let mut req = p.request("t.clnrm.toml.tera");
    req.seed = Some(42);
    req.freeze_clock = Some("2025-06-01T12:00:00Z".into());
    let one = render(&req, &p.world).unwrap();
    let two = render(&req, &p.world).unwrap();
    assert_eq!(one.toml.as_bytes(), two.toml.as_bytes());
    assert!(!one.record.volatile);
    assert!(
        one.toml.contains("d = \"2025-06-01T12:00:00Z\""),
        "{}",
        one.toml
    );
    assert!(one.toml.contains("e = 1748779200\n"), "{}", one.toml);
    assert!(one.toml.contains("f = 1748779200000\n"), "{}", one.toml);

    // another seed: other values
    req.seed = Some(43);
    let three = render(&req, &p.world).unwrap();
    assert_ne!(one.toml, three.toml);
    // but a function given its own seed= is the same under any render seed
    let line = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("g ="))
            .unwrap()
            .to_string()
    };
    assert_eq!(line(&one.toml), line(&three.toml));
}

#[test]
fn clock_or_randomness_without_determinism_is_volatile() {
    for (tpl, volatile) in [
        ("x = \"{{ uuid_v4() }}\"", true),
        ("x = \"{{ now_rfc3339() }}\"", true),
        ("x = {{ now_ms() }}", true),
        ("x = \"{{ fake_city() }}\"", true),
        ("x = \"{{ fake_city(seed=1) }}\"", false),
        ("x = \"{{ fake_uuid_seeded(seed=1) }}\"", false),
        ("x = \"{{ sha256(s=\"a\") }}\"", false),
        ("x = 1", false),
    ] {
        let mut p = Project::new("/p");
        p.file("t.clnrm.toml.tera", tpl);
        let r = p.render("t.clnrm.toml.tera").unwrap();
        assert_eq!(r.record.volatile, volatile, "{tpl}");
    }
    // only the clock frozen: randomness still volatile, and vice versa
    let mut p = Project::new("/p");
    p.file(
        "t.clnrm.toml.tera",
        "x = \"{{ now_rfc3339() }}{{ uuid_v4() }}\"",
    );
    let mut req = p.request("t.clnrm.toml.tera");
    req.freeze_clock = Some("2025-01-01T00:00:00Z".into());
    assert!(render(&req, &p.world).unwrap().record.volatile);
    req.seed = Some(1);
    assert!(!render(&req, &p.world).unwrap().record.volatile);
    req.freeze_clock = None;
    assert!(render(&req, &p.world).unwrap().record.volatile);
}

#[test]
fn context_precedence_and_vars_namespace() {
    let mut p = Project::new("/p");
    p.file(
        "t.clnrm.toml.tera",
        "a = \"{{ svc }}/{{ vars.svc }}\"\nb = \"{{ env }}/{{ vars.env }}\"\nc = \"{{ token }}\"\nd = \"{{ custom }}\"",
    )
    .env("SERVICE_NAME", "from-env")
    .env("ENV", "staging");
    let mut req = p.request("t.clnrm.toml.tera");
    req.vars.insert("svc".into(), "from-var".into());
    req.vars.insert("custom".into(), "c".into());
    let r = render(&req, &p.world).unwrap();
    assert_eq!(
        r.toml,
        "a = \"from-var/from-var\"\nb = \"staging/staging\"\nc = \"\"\nd = \"c\""
    );
    // svc came from vars: SERVICE_NAME was not read; `vars` is mentioned, so every
    // other default was read
    let names: Vec<&str> = r.record.env.iter().map(|e| e.name.as_str()).collect();
    assert!(!names.contains(&"SERVICE_NAME"), "{names:?}");
    assert!(
        names.contains(&"ENV") && names.contains(&"OTEL_TOKEN"),
        "{names:?}"
    );
}

#[test]
fn builtin_library_is_the_last_resort_and_recorded() {
    let mut p = Project::new("/p");
    p.file(
        "tests/t.clnrm.toml.tera",
        "{% import \"_macros.toml.tera\" as m %}{{ m::service(\"web\", \"alpine:3.20\", args=[\"sleep\", \"1\"], env={\"A\": \"1\"}) }}",
    );
    let r = p.render("tests/t.clnrm.toml.tera").unwrap();
    assert_eq!(
        r.toml,
        "[service.web]\nplugin = \"generic_container\"\nimage = \"alpine:3.20\"\nargs = [\"sleep\", \"1\"]\nenv = { A = \"1\" }"
    );
    let paths: Vec<&str> = r.record.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "_macros.toml.tera",
            "builtin:_macros.toml.tera",
            "templates/_macros.toml.tera",
            "tests/_macros.toml.tera",
        ]
    );
    // a file in <root>/templates/ wins over the built-in one
    p.file(
        "templates/_macros.toml.tera",
        "{% macro service(id, image) %}svc={{ id }}{% endmacro %}",
    );
    let r = p.render("tests/t.clnrm.toml.tera");
    let e = r.unwrap_err();
    assert_eq!(e.construct, "unknown macro argument", "{e}");
    assert!(e.message.contains("no parameter `args`"), "{e}");
    assert!(p
        .render("tests/t.clnrm.toml.tera")
        .is_err_and(|e| e.file == "tests/t.clnrm.toml.tera"));
    let _ = FileDep {
        path: String::new(),
        hash: None,
    };
}
