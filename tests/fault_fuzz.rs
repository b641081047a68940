//! Fault: broken files. 10,000 test files, templates and macro libraries made by
//! mutating the repository's fixtures byte-wise and token-wise, and by stringing random
//! tokens together, go through the render and parse stages (the library crates, called
//! as the engine calls them). The user's story: whatever a half-saved or mangled file
//! holds, clnrm answers with an error (or a result), never a panic. Not a check of what
//! the errors say: the other tests of each stage do that.

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clnrm_config::{parse_project, parse_test, ParseInput};
use clnrm_render::{render, RenderRequest, World};
use common::{figures, repo, Rng};

const CASES: usize = 10_000;

/// Where the fuzzed project pretends to live; nothing is read from the disk there.
const ROOT: &str = "/fuzz";

/// Files of a project in memory: the render stage's only view of the outside.
struct Files(BTreeMap<PathBuf, Vec<u8>>);

impl World for Files {
    fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        self.0.get(path).cloned()
    }
    fn env_var(&self, _name: &str) -> Option<String> {
        None
    }
}

/// The fixtures (tests, templates, libraries, project files) and the built-in macro
/// library, by path relative to the project root they are placed under.
fn seeds() -> Vec<(String, String)> {
    let mut seeds = Vec::new();
    for (base, dir) in [
        ("", repo().join("fixtures/example")),
        ("failing/", repo().join("fixtures/failing")),
    ] {
        let mut stack = vec![dir.clone()];
        while let Some(next) = stack.pop() {
            for entry in std::fs::read_dir(&next)
                .expect("fixtures are readable")
                .flatten()
            {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Some(name) = path
                    .to_str()
                    .filter(|p| p.ends_with(".toml") || p.ends_with(".tera"))
                {
                    let rel = Path::new(name).strip_prefix(&dir).unwrap();
                    seeds.push((
                        format!("{base}{}", rel.display()),
                        std::fs::read_to_string(&path).expect("fixture is text"),
                    ));
                }
            }
        }
    }
    let builtin = repo().join("stages/render/src/builtin/_macros.toml.tera");
    seeds.push((
        "templates/_macros.toml.tera".into(),
        std::fs::read_to_string(builtin).expect("the built-in macro library"),
    ));
    seeds.sort();
    seeds
}

/// Pieces that make the grammars of TOML and Tera go wrong in interesting ways.
const TOKENS: &[&str] = &[
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    "{%-",
    "-%}",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    "\"",
    "'",
    "\"\"\"",
    "'''",
    ",",
    ".",
    "::",
    "|",
    "(",
    ")",
    "\n",
    " ",
    "#",
    "\\",
    "\\u{0}",
    "\u{0}",
    "é",
    "\u{feff}",
    "endfor",
    "endif",
    "endmacro",
    "for x in",
    "if",
    "else",
    "macro m()",
    "import \"_macros.toml.tera\" as m",
    "include \"x\"",
    "extends \"x\"",
    "m::service(",
    "range(end=100000000)",
    "-1",
    "0",
    "18446744073709551616",
    "1e309",
    "nan",
    "true",
    "[meta]",
    "[service.a]",
    "[[steps]]",
    "[limits]",
    "memory_mb",
    "timeout",
    "\"10x\"",
    "command",
    "run",
    "service",
    "image",
    "expected_exit_code",
    "expected_output_regex",
    "\"(\"",
    "\"[\"",
    "vars.",
    "env(",
    "name=",
    "fake_name()",
    "now_rfc3339()",
    "toml_encode(value=",
    "| upper",
];

/// One mutation of `text`, chosen by `rng`: bytes flipped, inserted, deleted,
/// duplicated or cut off, or tokens swapped, dropped, repeated or spliced in.
fn mutate(text: &str, rng: &mut Rng) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let len = bytes.len().max(1) as u64;
    let at = rng.below(len) as usize;
    match rng.below(9) {
        0 => {
            if let Some(b) = bytes.get_mut(at) {
                *b ^= 1 << rng.below(8);
            }
        }
        1 => bytes.insert(at.min(bytes.len()), rng.below(256) as u8),
        2 => {
            let end = (at + rng.below(64) as usize + 1).min(bytes.len());
            bytes.drain(at.min(end)..end);
        }
        3 => {
            let end = (at + rng.below(256) as usize + 1).min(bytes.len());
            let piece = bytes[at.min(end)..end].to_vec();
            let to = rng.below(len) as usize;
            bytes.splice(to.min(bytes.len())..to.min(bytes.len()), piece);
        }
        4 => bytes.truncate(at),
        _ => {
            let mut tokens = tokenize(text);
            if tokens.is_empty() {
                tokens.push(String::new());
            }
            let i = rng.below(tokens.len() as u64) as usize;
            let j = rng.below(tokens.len() as u64) as usize;
            match rng.below(4) {
                0 => tokens.swap(i, j),
                1 => {
                    tokens.remove(i);
                }
                2 => {
                    let t = tokens[i].clone();
                    tokens.insert(j, t);
                }
                _ => tokens.insert(i, TOKENS[rng.below(TOKENS.len() as u64) as usize].into()),
            }
            return tokens.concat();
        }
    }
    // Files are read as UTF-8 (an invalid file is refused before the stages): keep what decodes.
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Words, runs of spaces and single punctuation characters, so that concatenating the
/// tokens gives the text back.
fn tokenize(text: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    let mut last_class = 3_u8;
    for c in text.chars() {
        let class = if c.is_alphanumeric() || c == '_' {
            0
        } else if c.is_whitespace() {
            1
        } else {
            2
        };
        match tokens.last_mut() {
            Some(t) if class == last_class && class != 2 => t.push(c),
            _ => tokens.push(c.to_string()),
        }
        last_class = class;
    }
    tokens
}

/// A file of 1 to 60 random tokens.
fn random_file(rng: &mut Rng) -> String {
    (0..=rng.below(60))
        .map(|_| TOKENS[rng.below(TOKENS.len() as u64) as usize])
        .collect()
}

/// Runs one file through the stages the engine would: a template is rendered (with the
/// other files of the project as its world) and its output parsed; a test is parsed;
/// `cleanroom.toml` is parsed as the project file. Returns whether it was accepted.
fn through_the_stages(rel: &str, text: &str, world: &Files) -> bool {
    if rel.ends_with("cleanroom.toml") {
        return parse_project(rel, text, false).is_ok();
    }
    let (toml, from_template) = if rel.ends_with(".tera") {
        let request = RenderRequest {
            root: PathBuf::from(ROOT),
            template_path: Path::new(ROOT).join(rel),
            source: text.to_string(),
            vars: BTreeMap::from([("svc".to_string(), "fuzz".to_string())]),
            seed: Some(7),
            freeze_clock: Some("2025-01-01T00:00:00Z".into()),
        };
        match render(&request, world) {
            Ok(rendered) => (rendered.toml, true),
            Err(_) => return false,
        }
    } else {
        (text.to_string(), false)
    };
    parse_test(&ParseInput {
        file: rel.to_string(),
        text: toml,
        rendered_from_template: from_template,
        strict: false,
    })
    .is_ok()
}

#[test]
fn ten_thousand_broken_files_never_panic_the_render_or_parse_stage() {
    let seeds = seeds();
    assert!(seeds.len() >= 10, "the fixtures are the seeds: {seeds:?}");
    let mut rng = Rng::from_env("mutated files through render and parse");
    let started = Instant::now();
    let mut panics = Vec::new();
    let mut accepted = 0;
    for case in 0..CASES {
        // The project as it is on disk, with one or two of its files mangled: a test, a
        // template, or a library a template imports.
        let mut files: BTreeMap<String, String> = seeds.iter().cloned().collect();
        let (rel, seed_text) = &seeds[rng.below(seeds.len() as u64) as usize];
        let text = if case % 10 == 9 {
            random_file(&mut rng)
        } else {
            let mut text = seed_text.clone();
            for _ in 0..=rng.below(4) {
                text = mutate(&text, &mut rng);
            }
            text
        };
        files.insert(rel.clone(), text.clone());
        // The file under test is a template that imports the mangled library, or the file itself.
        let (target, target_text) =
            if rel.ends_with("_checks.tera") || rel.starts_with("templates/") {
                let template = seeds
                    .iter()
                    .find(|(r, _)| r.ends_with("greet.clnrm.toml.tera"))
                    .expect("the example's greet template");
                template.clone()
            } else {
                (rel.clone(), text.clone())
            };
        let world = Files(
            files
                .iter()
                .map(|(r, t)| (Path::new(ROOT).join(r), t.as_bytes().to_vec()))
                .collect(),
        );
        match catch_unwind(AssertUnwindSafe(|| {
            through_the_stages(&target, &target_text, &world)
        })) {
            Ok(ok) => accepted += usize::from(ok),
            Err(_) => panics.push(format!(
                "case {case}: {target} (mangled {rel}):\n{}",
                files[rel]
            )),
        }
    }
    let elapsed = started.elapsed();
    figures(
        "mutated and random files through render and parse",
        CASES,
        CASES - panics.len(),
        &format!(
            "{accepted} accepted, {} refused with an error, {} panics, in {elapsed:.1?}",
            CASES - accepted - panics.len(),
            panics.len()
        ),
    );
    assert!(
        panics.is_empty(),
        "{} of {CASES} files panicked; first:\n{}",
        panics.len(),
        panics
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    // Some mutations leave a file valid: the fuzz reached past the first error.
    assert!(accepted > 0, "every mutated file was refused");
}
