//! Bad input gives a RenderError naming the file, line:col and construct; never a panic.

mod common;

use clnrm_render::RenderError;
use common::Project;

fn err(files: &[(&str, &[u8])], top: &str) -> RenderError {
    let mut p = Project::new("/proj");
    for (rel, text) in files {
        p.bytes(rel, text);
    }
    match p.render(top) {
        Ok(r) => panic!("expected an error, got:\n{}", r.toml),
        Err(e) => e,
    }
}

fn err1(src: &str) -> RenderError {
    err(
        &[("tests/a.clnrm.toml.tera", src.as_bytes())],
        "tests/a.clnrm.toml.tera",
    )
}

#[test]
fn undefined_variable_names_it_with_position_and_line() {
    let e = err1("[meta]\nname = \"x\"\n\nvalue = \"{{ foo }}\"\n");
    assert_eq!(e.construct, "undefined variable");
    assert_eq!(e.file, "tests/a.clnrm.toml.tera");
    assert_eq!(e.line_col, Some((4, 13)));
    assert_eq!(e.line_text.as_deref(), Some("value = \"{{ foo }}\""));
    assert_eq!(
        e.to_string().lines().next().unwrap(),
        "tests/a.clnrm.toml.tera:4:13: undefined variable `foo`"
    );
    assert!(
        e.to_string()
            .contains("4 | value = \"{{ foo }}\"\n  |             ^"),
        "{e}"
    );
}

#[test]
fn syntax_error_position_is_in_the_original_file_after_rewrites() {
    // the import is hoisted and a map literal rewritten before the error: the
    // position must still be the user's
    let src = "# c\n{% import \"_macros.toml.tera\" as m %}\n{{ m::span(\"a\", attrs={\"k\": \"v\"}) }}\nx = {{ 1 + }}\n";
    let e = err1(src);
    assert_eq!(e.construct, "template syntax", "{e}");
    assert_eq!(e.line_col.map(|l| l.0), Some(4), "{e}");
    assert_eq!(e.line_text.as_deref(), Some("x = {{ 1 + }}"));
}

#[test]
fn unclosed_tag_and_string() {
    let e = err1("a = 1\nb = {{ x\n");
    assert_eq!(
        (e.construct.as_str(), e.line_col),
        ("unclosed tag", Some((2, 5)))
    );
    let e = err1("a = {{ \"abc }}");
    assert_eq!(
        (e.construct.as_str(), e.line_col),
        ("unterminated string", Some((1, 8)))
    );
    let e = err1("{# never closed");
    assert_eq!(e.construct, "unclosed comment");
}

#[test]
fn missing_import_says_what_where_and_where_it_looked() {
    let e = err1("\n  {% import \"_lib.tera\" as l %}\n");
    assert_eq!(e.construct, "missing import");
    assert_eq!(e.line_col, Some((2, 13)));
    assert!(
        e.message.contains("`_lib.tera`") && e.message.contains("tests/a.clnrm.toml.tera"),
        "{e}"
    );
    let hint = e.hint.clone().unwrap();
    assert!(
        hint.contains("tests/_lib.tera, _lib.tera, templates/_lib.tera"),
        "{hint}"
    );
    let e = err1("{% include \"nope.tera\" %}");
    assert_eq!(e.construct, "missing include");
    // ignore missing: fine
    let mut p = Project::new("/proj");
    p.file("a.tera", "x{% include \"nope.tera\" ignore missing %}y");
    assert_eq!(p.render("a.tera").unwrap().toml, "xy");
}

#[test]
fn import_cycle_is_named() {
    let e = err(
        &[
            ("a.clnrm.toml.tera", b"{% import \"_x.tera\" as x %}"),
            ("_x.tera", b"{% import \"_y.tera\" as y %}"),
            ("_y.tera", b"{% import \"_x.tera\" as x %}"),
        ],
        "a.clnrm.toml.tera",
    );
    assert_eq!(e.construct, "import cycle");
    assert_eq!(e.file, "_y.tera");
    assert!(e.message.contains("_x.tera -> _y.tera -> _x.tera"), "{e}");

    let e = err(&[("a.tera", b"x {% include \"a.tera\" %}")], "a.tera");
    assert_eq!(e.construct, "include cycle");
    assert!(e.message.contains("a.tera -> a.tera"), "{e}");
}

#[test]
fn non_utf8_library() {
    let e = err(
        &[
            ("a.tera", b"{% import \"_m.tera\" as m %}"),
            ("_m.tera", b"{% macro f() %}\xff\xfe{% endmacro %}"),
        ],
        "a.tera",
    );
    assert_eq!(e.construct, "not UTF-8");
    assert_eq!(e.file, "_m.tera");
}

#[test]
fn macro_call_problems() {
    let lib: &[u8] = b"{% macro f(a, b=1) %}{{ a }}{{ b }}{% endmacro %}";
    let cases: &[(&str, &str, (usize, usize))] = &[
        (
            "{{ m::f(b=2, \"x\") }}",
            "positional macro argument",
            (1, 14),
        ),
        (
            "{{ m::f(\"x\", 2, 3) }}",
            "positional macro argument",
            (1, 17),
        ),
        ("{{ m::f(c=1) }}", "unknown macro argument", (1, 9)),
        ("{{ m::f(b=1) }}", "missing macro argument", (1, 4)),
        ("{{ m::g(a=1) }}", "unknown macro", (1, 4)),
        ("{{ n::f(a=1) }}", "unknown macro namespace", (1, 4)),
        ("{{ m::f(a={1: 2}) }}", "map literal", (1, 12)),
        ("{{ m::f(a=\"x\", a=\"y\") }}", "macro argument", (1, 16)),
    ];
    for (call, construct, pos) in cases {
        let src = format!("{{% import \"_m.tera\" as m %}}{call}");
        let e = err(&[("a.tera", src.as_bytes()), ("_m.tera", lib)], "a.tera");
        assert_eq!(e.construct, *construct, "{call}: {e}");
        let col = pos.1 + "{% import \"_m.tera\" as m %}".len();
        assert_eq!(e.line_col, Some((pos.0, col)), "{call}: {e}");
    }
}

#[test]
fn dialect_limits_are_named() {
    let e = err1("{{ (a | default(value=1) + 2) | round }}");
    assert_eq!(e.construct, "filter on parenthesised expression");
    assert_eq!(e.line_col, Some((1, 4)));
    let e = err1("{% if x %}{% import \"_macros.toml.tera\" as m %}{% endif %}");
    assert_eq!(e.construct, "import inside a block");
    let e = err1(
        "{% macro f() %}{{ self::g() }}{% endmacro %}{% macro g() %}{{ self::f() }}{% endmacro %}",
    );
    assert_eq!(e.construct, "recursive macro", "{e}");
    assert!(
        e.message.contains("f -> g -> f") || e.message.contains("g -> f -> g"),
        "{e}"
    );
    let deep = format!("{{{{ {}1{} }}}}", "(".repeat(200), ")".repeat(200));
    assert_eq!(err1(&deep).construct, "nesting too deep");
    let deep = "{% if a %}".repeat(500);
    assert_eq!(err1(&deep).construct, "nesting too deep");
}

#[test]
fn function_errors_point_at_the_call() {
    let e = err1("a = 1\nb = \"{{ env(name=\"NOT_SET_ANYWHERE\") }}\"");
    assert_eq!(e.construct, "function call");
    assert_eq!(e.line_col, Some((2, 9)));
    assert!(e.message.contains("NOT_SET_ANYWHERE"), "{e}");
    let e = err1("{% for i in range(end=5, step_by=0) %}{% endfor %}");
    assert_eq!(e.construct, "function call");
}

#[test]
fn bad_freeze_clock() {
    let mut p = Project::new("/p");
    p.file("a.tera", "x");
    let e = p.render_frozen("a.tera", "yesterday").unwrap_err();
    assert_eq!(e.construct, "freeze clock");
}

#[test]
fn empty_and_huge_templates() {
    let mut p = Project::new("/p");
    p.file("empty.tera", "");
    assert_eq!(p.render("empty.tera").unwrap().toml, "");

    // 10 MB: TOML text with a tag at each end (Tera parses text slowly in debug
    // builds; a tag on every line is exercised at 1 MB)
    let filler = "key = \"a value that is long enough to fill the line up\"\n";
    let big = format!(
        "a = \"{{{{ svc }}}}\"\n{}z = \"{{{{ env }}}}\"\n",
        filler.repeat(10 * 1024 * 1024 / filler.len())
    );
    p.file("big.tera", &big);
    let r = p.render("big.tera").unwrap();
    assert!(r.toml.starts_with("a = \"clnrm\"\n") && r.toml.ends_with("z = \"ci\"\n"));
    let line = "key_{{ svc }} = \"value\"\n";
    p.file("tags.tera", &line.repeat(1024 * 1024 / line.len()));
    assert!(p
        .render("tags.tera")
        .unwrap()
        .toml
        .starts_with("key_clnrm = "));

    // 10 MB of garbage: an error, not a panic or a hang
    p.file(
        "junk.tera",
        &"{{ ((( }} {% %} {# ".repeat(10 * 1024 * 1024 / 19),
    );
    assert!(p.render("junk.tera").is_err());
}
