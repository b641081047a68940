//! Arbitrary input never panics the render stage: it renders or returns an error.

mod common;

use common::Project;
use proptest::prelude::*;

/// Fragments that hit the tokenizer, the preprocessor and Tera's parser.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{{".to_string()),
        Just("}}".to_string()),
        Just("{%".to_string()),
        Just("%}".to_string()),
        Just("{#".to_string()),
        Just("#}".to_string()),
        Just("{%-".to_string()),
        Just("-%}".to_string()),
        Just("{% import \"_m.tera\" as m %}".to_string()),
        Just("{% import \"_macros.toml.tera\" as b %}".to_string()),
        Just("{% include \"_m.tera\" %}".to_string()),
        Just("{% include \"a.tera\" %}".to_string()),
        Just("{% macro f(a, b={}, c=none) %}".to_string()),
        Just("{% endmacro %}".to_string()),
        Just("{% if x %}".to_string()),
        Just("{% endif %}".to_string()),
        Just("{% for i in [1, [2]] %}".to_string()),
        Just("{% endfor %}".to_string()),
        Just("{% raw %}".to_string()),
        Just("{% endraw %}".to_string()),
        Just("m::f(".to_string()),
        Just("self::f(".to_string()),
        Just("b::span(\"x\", attrs={\"k\": svc})".to_string()),
        Just("{\"k\": ".to_string()),
        Just("(svc | default(value=\"y\")) | upper".to_string()),
        Just("\"{{ svc }}\"".to_string()),
        Just("fake_name(seed=1)".to_string()),
        Just("env(name=\"HOME\")".to_string()),
        Just("now_ms()".to_string()),
        Just("range(end=3)".to_string()),
        Just("vars.svc".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just(",".to_string()),
        Just("=".to_string()),
        Just("|".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("\n".to_string()),
        "[a-z_]{1,6}",
        "[0-9]{1,4}",
        " {1,3}",
        any::<char>().prop_map(|c| c.to_string()),
    ]
}

fn template() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn render_never_panics(tpl in template(), lib in template(), seed in any::<Option<u64>>()) {
        let mut p = Project::new("/p");
        p.file("tests/a.tera", &tpl).file("tests/_m.tera", &lib).env("HOME", "/h");
        let mut req = p.request("tests/a.tera");
        req.seed = seed;
        match clnrm_render::render(&req, &p.world) {
            Ok(r) => {
                // a valid render's record never holds an absolute path
                for f in &r.record.files {
                    prop_assert!(!f.path.starts_with('/'));
                }
            }
            Err(e) => {
                // errors always name a file and render a message
                prop_assert!(!e.file.is_empty());
                prop_assert!(!e.to_string().is_empty());
                if let Some((l, c)) = e.line_col {
                    prop_assert!(l >= 1 && c >= 1);
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(src in "\\PC{0,300}") {
        let mut p = Project::new("/p");
        p.file("a.tera", &src);
        let _ = p.render("a.tera");
    }
}
