//! The step judge (issue 19's cost target): 1,000 steps with 5 RFC 9535 JSON paths each,
//! over outputs of about 10 KB, judged in < 50 ms. Prints the output size it judged.

use criterion::{criterion_group, criterion_main, Criterion};

// The allocator the `clnrm` binary judges with (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;
use common::{judge_all, judge_workload};

fn bench_judge(c: &mut Criterion) {
    let (compiled, outputs) = judge_workload(1000);
    let bytes: usize = outputs.iter().map(String::len).sum();
    println!(
        "judge workload: {} steps x 5 JSON paths, {:.1} KB of stdout per step",
        compiled.len(),
        bytes as f64 / compiled.len() as f64 / 1000.0
    );
    assert_eq!(judge_all(&compiled, &outputs), 1000, "every step passes");
    c.bench_function("judge_1000_steps_5_json_paths_10kb", |b| {
        b.iter(|| judge_all(&compiled, &outputs))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench_judge
}
criterion_main!(benches);
