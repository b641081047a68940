//! The pure hot paths the CI performance gate counts instructions of
//! (`benches/callgrind_gate.py`, README "Performance gate"). Not a wall-clock
//! bench: `cargo bench` runs it as a no-op; the criterion benches
//! (`stages.rs`, `memo.rs`) are the ones for people.
//!
//! `callgrind_hotpaths --list` prints each hot path's name and iteration
//! count; `callgrind_hotpaths NAME` sets that path up, runs it once to warm
//! lazy statics and caches, then runs it a fixed number of times inside
//! [`clnrm_gate_measured`]. The gate runs this under
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect=clnrm_gate_measured`,
//! so process start, setup and warm-up are not counted. Inputs are fixed, the
//! render has a seed and a frozen clock, and nothing measured spawns a thread.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;

use clnrm::cache::Memo;
use clnrm::watch::{affected_tests, DependencyIndex};
use clnrm_config::ParseInput;
use clnrm_plan::PlanInput;
use clnrm_render::RenderRequest;

/// One hot path: its name in the baseline, how many times one gate run
/// repeats it, and what it is.
mod common;
use common::{
    complex_template, judge_all, judge_workload, open_memo, rendered, simple_template, test_toml,
    MapWorld, RenderStage, Rendered, MACROS,
};

struct HotPath {
    name: &'static str,
    iterations: u32,
    what: &'static str,
}

const HOT_PATHS: &[HotPath] = &[
    HotPath {
        name: "render_simple",
        iterations: 20,
        what: "render a template with 10 variables",
    },
    HotPath {
        name: "render_complex",
        iterations: 5,
        what: "render a template with 10x10 loops calling an imported macro",
    },
    HotPath {
        name: "parse_100_lines",
        iterations: 20,
        what: "parse + validate a 100-line test",
    },
    HotPath {
        name: "parse_2000_lines",
        iterations: 3,
        what: "parse + validate a 2,000-line test",
    },
    HotPath {
        name: "plan",
        iterations: 20,
        what: "plan a test with 3 services and 30 steps",
    },
    HotPath {
        name: "memo_hit",
        iterations: 200,
        what: "Memo::get_or_run hit (1 KiB output) in a 2,000-entry on-disk store",
    },
    HotPath {
        name: "judge_1000_steps",
        iterations: 1,
        what: "judge 1,000 steps with 5 JSON paths each over 10 KB outputs",
    },
    HotPath {
        name: "affected_1000_tests",
        iterations: 50,
        what: "affected-test selection over 1,000 tests (a library and a test saved)",
    },
];

/// The only code callgrind counts. Unmangled so the gate can name it in
/// `--toggle-collect`; never inlined so the toggle has a call to trigger on.
#[no_mangle]
#[inline(never)]
pub fn clnrm_gate_measured(work: &mut dyn FnMut(), iterations: u32) {
    for _ in 0..iterations {
        work();
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--list") => {
            for path in HOT_PATHS {
                println!("{}\t{}\t{}", path.name, path.iterations, path.what);
            }
            ExitCode::SUCCESS
        }
        // `cargo bench` passes `--bench`; instruction counts only mean
        // something under callgrind, so there is nothing to time here.
        None | Some("--bench") => {
            println!(
                "callgrind_hotpaths: instruction counts for the CI gate; run `python3 benches/callgrind_gate.py`"
            );
            ExitCode::SUCCESS
        }
        Some(name) => match HOT_PATHS.iter().find(|p| p.name == name) {
            Some(path) => {
                run(path);
                ExitCode::SUCCESS
            }
            None => {
                let known: Vec<&str> = HOT_PATHS.iter().map(|p| p.name).collect();
                eprintln!(
                    "error: no hot path named `{name}` (known: {})",
                    known.join(", ")
                );
                ExitCode::from(2)
            }
        },
    }
}

/// Sets `path` up, warms it once, then runs it `path.iterations` times
/// inside [`clnrm_gate_measured`].
fn run(path: &HotPath) {
    let mut work: Box<dyn FnMut()> = match path.name {
        "render_simple" => render_work(simple_template()),
        "render_complex" => render_work(complex_template()),
        "parse_100_lines" => parse_work(test_toml(14)),
        "parse_2000_lines" => parse_work(test_toml(285)),
        "plan" => plan_work(),
        "memo_hit" => memo_hit_work(),
        "affected_1000_tests" => affected_work(),
        "judge_1000_steps" => judge_work(),
        other => unreachable!("HOT_PATHS names `{other}` but run() has no setup for it"),
    };
    work();
    clnrm_gate_measured(&mut work, path.iterations);
}

// ---- judge ----------------------------------------------------------------

fn judge_work() -> Box<dyn FnMut()> {
    let (compiled, outputs) = judge_workload(1000);
    assert_eq!(judge_all(&compiled, &outputs), 1000, "every step passes");
    Box::new(move || {
        black_box(judge_all(black_box(&compiled), black_box(&outputs)));
    })
}

// ---- render ---------------------------------------------------------------

fn render_work(request: RenderRequest) -> Box<dyn FnMut()> {
    let world = MapWorld(BTreeMap::from([(
        PathBuf::from("/p/tests/_m.tera"),
        MACROS.as_bytes().to_vec(),
    )]));
    if let Err(e) = clnrm_render::render(&request, &world) {
        panic!("the gate's template does not render: {e:?}");
    }
    Box::new(move || {
        black_box(clnrm_render::render(black_box(&request), &world).ok());
    })
}

// ---- parse ----------------------------------------------------------------

fn parse_input(file: &str, text: String) -> ParseInput {
    ParseInput {
        file: file.into(),
        text,
        rendered_from_template: false,
        strict: false,
    }
}

fn parse_work(text: String) -> Box<dyn FnMut()> {
    let input = parse_input("tests/t.clnrm.toml", text);
    if let Err(diagnostics) = clnrm_config::parse_test(&input) {
        panic!("the gate's test does not parse: {diagnostics:?}");
    }
    Box::new(move || {
        black_box(clnrm_config::parse_test(black_box(&input)).ok());
    })
}

// ---- plan -----------------------------------------------------------------

/// A server with a health check, a database with a volume, and a client;
/// 30 steps spread over them, some with their own env and workdir.
fn plan_test_toml() -> String {
    let mut text = String::from(
        r#"[meta]
name = "plan"
version = "1"

[service.web]
image = "busybox"
args = ["sh", "-c", "exec httpd -f -p 8080 -h /www"]
env = { BODY = "hello", MODE = "test" }
ports = [8080]
health_check = { cmd = ["wget", "-q", "-O-", "http://localhost:8080/"], interval = "100ms", timeout = "10s", retries = 50 }

[service.db]
image = "busybox"
volumes = [{ host_path = "data", container_path = "/data", read_only = true }]

[service.client]
image = "busybox"

[limits]
cpu_millicores = 500
memory_mb = 64

"#,
    );
    for i in 0..30 {
        let service = ["web", "db", "client"][i % 3];
        write!(
            text,
            "[[steps]]\nname = \"s{i}\"\nservice = \"{service}\"\ncommand = [\"sh\", \"-c\", \"echo {i}\"]\nexpected_output_regex = \"^{i}$\"\nworkdir = \"/tmp\"\nenv = {{ STEP = \"{i}\" }}\n\n"
        )
        .expect("writing to a String");
    }
    text
}

fn plan_work() -> Box<dyn FnMut()> {
    let parsed =
        match clnrm_config::parse_test(&parse_input("tests/plan.clnrm.toml", plan_test_toml())) {
            Ok(parsed) => parsed,
            Err(diagnostics) => panic!("the gate's plan test does not parse: {diagnostics:?}"),
        };
    let input = PlanInput {
        test: parsed.config,
        default_image: "busybox".into(),
        default_step_timeout_ms: 30_000,
        test_dir: "tests".into(),
    };
    if let Err(e) = clnrm_plan::plan(&input) {
        panic!("the gate's plan test does not plan: {e}");
    }
    Box::new(move || {
        black_box(clnrm_plan::plan(black_box(&input)).ok());
    })
}

// ---- memo hit -------------------------------------------------------------

const MEMO_ENTRIES: u64 = 2_000;

/// A memo and its temporary directory, closed in that order.
struct OpenCache {
    memo: Memo,
    _dir: tempfile::TempDir,
}

fn hit(memo: &Memo, i: u64) -> Rendered {
    let looked_up = memo.get_or_run::<RenderStage, ()>(&i.to_le_bytes(), || {
        unreachable!("entry {i} was stored during setup")
    });
    match looked_up {
        Ok((output, lookup)) => {
            assert!(lookup.is_hit(), "entry {i} missed");
            output
        }
        Err(()) => unreachable!("the closure never runs on a hit"),
    }
}

fn memo_hit_work() -> Box<dyn FnMut()> {
    let dir = tempfile::tempdir().expect("a temporary cache directory");
    {
        let memo = open_memo(dir.path());
        for i in 0..MEMO_ENTRIES {
            let stored = memo.get_or_run::<RenderStage, ()>(&i.to_le_bytes(), || Ok(rendered(i)));
            assert!(stored.is_ok(), "storing entry {i} failed");
        }
    }
    // A later run's view: the store closed and reopened. sled splits and
    // consolidates its nodes lazily, on the reads after a write, at moments its
    // background flusher influences; one read of every entry does all of that
    // now, so the counted hits only read. Entries were written within the
    // hour, so hits write no last-use stamps either.
    let memo = open_memo(dir.path());
    for i in 0..MEMO_ENTRIES {
        hit(&memo, i);
    }
    let cache = OpenCache { memo, _dir: dir };
    let mut i = 0u64;
    Box::new(move || {
        i = (i + 7919) % MEMO_ENTRIES;
        black_box(hit(&cache.memo, black_box(i)));
    })
}

// ---- affected-test selection ---------------------------------------------

const TESTS: usize = 1_000;
const LIBRARIES: usize = 20;

/// 1,000 tests: each reads itself; templates (even-numbered) read one of 20
/// macro libraries, which all read a common one; every tenth test builds a
/// service from its own context folder.
fn dependency_index() -> DependencyIndex {
    let mut index = DependencyIndex::new();
    for t in 0..TESTS {
        let mut deps = Vec::new();
        let test = if t % 2 == 0 {
            deps.push(format!("lib/_m{:02}.tera", t % LIBRARIES));
            deps.push("lib/_common.tera".to_string());
            format!("tests/t{t:04}.clnrm.toml.tera")
        } else {
            format!("tests/t{t:04}.clnrm.toml")
        };
        if t % 10 == 0 {
            deps.push(format!("images/ctx{t:04}/"));
        }
        index.update(&test, deps);
    }
    index
}

fn affected_work() -> Box<dyn FnMut()> {
    let index = dependency_index();
    // A save of one macro library, one test and one file in a build context.
    let changed: BTreeSet<String> = [
        "lib/_m08.tera",
        "tests/t0501.clnrm.toml",
        "images/ctx0300/Dockerfile",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let selected = affected_tests(&changed, &index);
    // lib/_m08.tera is read by tests 8, 28, ..., 988; plus t0501 and t0300.
    assert_eq!(
        selected.tests.len(),
        TESTS / LIBRARIES + 2,
        "the gate's batch selects an unexpected set"
    );
    Box::new(move || {
        black_box(affected_tests(black_box(&changed), &index));
    })
}
