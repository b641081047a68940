//! Pure-stage benchmarks: render simple and complex templates, parse + validate
//! small and large tests. Targets (issue 2): render complex < 2 ms, parse large < 5 ms.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clnrm_config::ParseInput;
use criterion::{criterion_group, criterion_main, Criterion};

mod common;
use common::{complex_template, simple_template, test_toml, MapWorld, MACROS};

fn bench_render(c: &mut Criterion) {
    let world = MapWorld(BTreeMap::from([(
        PathBuf::from("/p/tests/_m.tera"),
        MACROS.as_bytes().to_vec(),
    )]));
    let simple = simple_template();
    let complex = complex_template();
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
