//! Pure-stage benchmarks: render simple and complex templates, parse + validate
//! small and large tests. Targets (issue 2): render complex < 2 ms, parse large < 5 ms.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use clnrm_config::ParseInput;
use clnrm_render::{RenderRequest, World};
use criterion::{criterion_group, criterion_main, Criterion};

struct MapWorld(BTreeMap<PathBuf, Vec<u8>>);

impl World for MapWorld {
    fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        self.0.get(path).cloned()
    }
    fn env_var(&self, _: &str) -> Option<String> {
        None
    }
}

const MACROS: &str = r#"{% macro step(name, service, text) -%}
[[steps]]
name = "{{ name }}"
service = "{{ service }}"
command = ["echo", "{{ text }}"]
expected_output_regex = "{{ text }}"
{%- endmacro step %}
"#;

fn request(source: String, vars: BTreeMap<String, String>) -> RenderRequest {
    RenderRequest {
        root: PathBuf::from("/p"),
        template_path: PathBuf::from("/p/tests/t.clnrm.toml.tera"),
        source,
        vars,
        seed: Some(1),
        freeze_clock: Some("2025-01-01T00:00:00Z".into()),
    }
}

fn simple() -> RenderRequest {
    let mut source = String::from("[meta]\nname = \"simple\"\nversion = \"1\"\n[vars]\n");
    let mut vars = BTreeMap::new();
    for i in 0..10 {
        vars.insert(format!("v{i}"), format!("value{i}"));
        writeln!(source, "k{i} = \"{{{{ v{i} }}}}\"").unwrap();
    }
    request(source, vars)
}

fn complex() -> RenderRequest {
    let source = r#"{% import "_m.tera" as m %}
[meta]
name = "complex"
version = "1"
[service.app]
image = "{{ image }}"
{% for outer in range(end=10) %}{% for inner in range(end=10) %}
{{ m::step(name="s_" ~ outer ~ "_" ~ inner, service="app", text="v" ~ outer ~ inner) }}
{% endfor %}{% endfor %}
"#;
    request(source.to_string(), BTreeMap::new())
}

fn test_toml(steps: usize) -> String {
    let mut text = String::from(
        "[meta]\nname = \"t\"\nversion = \"1\"\n\n[service.app]\nimage = \"busybox\"\nenv = { A = \"1\" }\n\n",
    );
    for i in 0..steps {
        write!(
            text,
            "[[steps]]\nname = \"s{i}\"\nservice = \"app\"\ncommand = [\"echo\", \"{i}\"]\nexpected_output_regex = \"^{i}$\"\ntimeout = \"5s\"\n\n"
        )
        .unwrap();
    }
    text
}

fn bench_render(c: &mut Criterion) {
    let world = MapWorld(BTreeMap::from([(
        PathBuf::from("/p/tests/_m.tera"),
        MACROS.as_bytes().to_vec(),
    )]));
    let simple = simple();
    let complex = complex();
    clnrm_render::render(&complex, &world).expect("complex template renders");
    c.bench_function("render simple (10 variables)", |b| {
        b.iter(|| clnrm_render::render(&simple, &world).unwrap())
    });
    c.bench_function("render complex (10x10 loops, macro calls)", |b| {
        b.iter(|| clnrm_render::render(&complex, &world).unwrap())
    });
}

fn bench_parse(c: &mut Criterion) {
    for (label, steps) in [("small (100 lines)", 14), ("large (2,000 lines)", 285)] {
        let input = ParseInput {
            file: "tests/t.clnrm.toml".into(),
            text: test_toml(steps),
            rendered_from_template: false,
            strict: false,
        };
        let lines = input.text.lines().count();
        assert!(clnrm_config::parse_test(&input).is_ok(), "{label} is valid");
        c.bench_function(&format!("parse+validate {label}, {lines} lines"), |b| {
            b.iter(|| clnrm_config::parse_test(&input).unwrap())
        });
    }
}

criterion_group!(benches, bench_render, bench_parse);
criterion_main!(benches);
