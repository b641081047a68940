//! Inputs shared by the benchmarks (criterion's and the callgrind gate's): templates and
//! the world they render in, generated tests, and a memo stage with ~1 KiB outputs. Only
//! inputs: what is measured, and how, stays in each bench.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use clnrm::cache::{Memo, MemoOptions, Stage};
use clnrm_render::{RenderRequest, World};
use serde::{Deserialize, Serialize};

/// Files by absolute path; no environment, so built-in defaults are fixed.
pub struct MapWorld(pub BTreeMap<PathBuf, Vec<u8>>);

impl World for MapWorld {
    fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        self.0.get(path).cloned()
    }
    fn env_var(&self, _: &str) -> Option<String> {
        None
    }
}

/// The step macro the generated templates call (benches/data, shared with the Python
/// benchmark scripts).
pub const MACROS: &str = include_str!("../data/step_macro.tera");

pub fn render_request(source: String, vars: BTreeMap<String, String>) -> RenderRequest {
    RenderRequest {
        root: PathBuf::from("/p"),
        template_path: PathBuf::from("/p/tests/t.clnrm.toml.tera"),
        source,
        vars,
        seed: Some(1),
        freeze_clock: Some("2025-01-01T00:00:00Z".into()),
    }
}

pub fn simple_template() -> RenderRequest {
    let mut source = String::from("[meta]\nname = \"simple\"\nversion = \"1\"\n[vars]\n");
    let mut vars = BTreeMap::new();
    for i in 0..10 {
        vars.insert(format!("v{i}"), format!("value{i}"));
        writeln!(source, "k{i} = \"{{{{ v{i} }}}}\"").expect("writing to a String");
    }
    render_request(source, vars)
}

pub fn complex_template() -> RenderRequest {
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
    render_request(source.to_string(), BTreeMap::new())
}

/// A test of about `7 * steps + 8` lines: one service, `steps` argv steps.
pub fn test_toml(steps: usize) -> String {
    let mut text = String::from(
        "[meta]\nname = \"t\"\nversion = \"1\"\n\n[service.app]\nimage = \"busybox\"\nenv = { A = \"1\" }\n\n",
    );
    for i in 0..steps {
        write!(
            text,
            "[[steps]]\nname = \"s{i}\"\nservice = \"app\"\ncommand = [\"echo\", \"{i}\"]\nexpected_output_regex = \"^{i}$\"\ntimeout = \"5s\"\n\n"
        )
        .expect("writing to a String");
    }
    text
}

#[derive(Serialize, Deserialize)]
pub struct Rendered {
    pub toml: String,
    pub reads: Vec<(String, [u8; 32])>,
}

pub struct RenderStage;
impl Stage for RenderStage {
    const NAME: &'static str = "render";
    const VERSION: u32 = 1;
    type Output = Rendered;
}

/// About 1 KiB of rendered TOML, like a small test.
pub fn rendered(i: u64) -> Rendered {
    let mut toml = format!("[meta]\nname = \"test_{i}\"\nversion = \"1.0\"\n");
    while toml.len() < 1000 {
        toml.push_str("[[steps]]\nname = \"s\"\ncommand = [\"echo\", \"hello\"]\n");
    }
    Rendered {
        toml,
        reads: vec![(
            "_macros.toml.tera".into(),
            *blake3::hash(&i.to_le_bytes()).as_bytes(),
        )],
    }
}

pub fn open_memo(dir: &Path) -> Memo {
    let (memo, warnings) = Memo::open(dir, MemoOptions::default());
    assert!(
        warnings.is_empty(),
        "opening the cache warned: {warnings:?}"
    );
    memo
}

/// The judge's workload (issue 19): `steps` steps, each with 5 JSON paths, over outputs of
/// 10.6 KB of JSON (one per step, each a little different; 140 items of about 76 bytes).
pub fn judge_workload(steps: usize) -> (Vec<clnrm_judge::Compiled>, Vec<String>) {
    use clnrm_judge::{Compiled, Expectations, JsonCheck, JsonCheckKind};
    const ITEMS: usize = 140;
    let check = |path: &str, check: JsonCheckKind| JsonCheck {
        path: path.into(),
        check,
    };
    let mut compiled = Vec::with_capacity(steps);
    let mut outputs = Vec::with_capacity(steps);
    for step in 0..steps {
        let items: Vec<String> = (0..ITEMS)
            .map(|i| {
                format!(
                    r#"{{"id": {}, "name": "item-{step}-{i}", "tags": ["a", "b"], "price": {}.5}}"#,
                    step * 1000 + i,
                    i % 20
                )
            })
            .collect();
        outputs.push(format!(
            "{{\"items\": [{}], \"meta\": {{\"total\": {ITEMS}, \"trace\": \"{:032x}\"}}}}\n",
            items.join(",\n  "),
            step as u128 * 0x9e37_79b9_7f4a_7c15
        ));
        let expectations = Expectations {
            json: vec![
                check("$.meta.total", JsonCheckKind::Equals(ITEMS.to_string())),
                check("$.items[*].id", JsonCheckKind::Count(ITEMS as u64)),
                // Prices are 0.5 to 19.5 by item index modulo 20: half are below 10.
                check(
                    "$.items[?@.price < 10].name",
                    JsonCheckKind::Count(ITEMS as u64 / 2),
                ),
                check(
                    "$.meta.trace",
                    JsonCheckKind::Matches("^[0-9a-f]{32}$".into()),
                ),
                check("$..tags[0]", JsonCheckKind::Exists(true)),
            ],
            ..Expectations::default()
        };
        compiled.push(Compiled::new(&expectations).expect("the workload compiles"));
    }
    (compiled, outputs)
}

/// Judges every step of [`judge_workload`]; the number that passed.
pub fn judge_all(compiled: &[clnrm_judge::Compiled], outputs: &[String]) -> usize {
    compiled
        .iter()
        .zip(outputs)
        .filter(|(expect, stdout)| {
            let run = clnrm_judge::StepRun {
                exit_code: Some(0),
                timed_out: false,
                timeout_ms: 60_000,
                stdout,
                stderr: "",
            };
            clnrm_judge::judge(expect, &run).passed()
        })
        .count()
}
