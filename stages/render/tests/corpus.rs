//! Every template of the clnrm corpus renders, or fails naming the construct and its
//! line:col. The corpus is not in the repository: the tests read it from
//! `$CLNRM_CORPUS` and are skipped, with a notice, when it is unset.

mod common;

use std::path::{Path, PathBuf};

use clnrm_render::{render, RenderRequest};
use clnrm_test_support::corpus_dir;
use common::MemWorld;

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Expected outcome of each corpus template: `Ok(extensions needed)` or
/// `Err((construct, line, col))`.
type Outcome = Result<&'static [&'static str], (&'static str, usize, usize)>;

const TABLE: &[(&str, Outcome)] = &[
    (
        "examples/templates/generators_full_surface.clnrm.toml.tera",
        Ok(&["filter on parenthesised expression"]),
    ),
    (
        // imports templates/_macros.toml.tera, beside it (not the built-in library)
        "templates/example_usage.clnrm.toml.tera",
        Ok(&[
            "map literals",
            "nested array literals",
            "non-literal macro defaults",
            "positional macro arguments",
        ]),
    ),
    (
        "tests/examples/advanced_macros_demo.clnrm.toml.tera",
        Ok(&["map literals", "positional macro arguments"]),
    ),
    (
        "tests/integration/prd_template_rendering.clnrm.toml.tera",
        Ok(&[
            "hoisted import",
            "map literals",
            "positional macro arguments",
        ]),
    ),
    (
        // `ports = [{{ port }}]`: `port` is defined nowhere (see also the test below)
        "tests/mdbook-examples/template-mastery/template-example.clnrm.toml.tera",
        Err(("undefined variable", 17, 13)),
    ),
    (
        // `{{ vars.custom_var }}`: defined only in the test's own [vars] table, which is
        // output, not context (docs/reference.md §3: --var, cleanroom.toml [vars], defaults)
        "tests/template/vars_rendering.clnrm.toml.tera",
        Err(("undefined variable", 36, 20)),
    ),
    ("validation_tests/test_no_prefix.toml.tera", Ok(&[])),
];

#[test]
fn corpus_table() {
    let Some(dir) = corpus_dir("render corpus") else {
        return;
    };
    let mut all = Vec::new();
    walk(&dir, &mut all);
    let mut world = MemWorld::default();
    for p in &all {
        world.files.insert(p.clone(), std::fs::read(p).unwrap());
    }
    world.env.insert("HOME".into(), "/home/ci".into());
    let mut seen = Vec::new();
    for p in &all {
        let name = p.file_name().unwrap().to_string_lossy();
        if !name.ends_with(".tera") || name.starts_with('_') {
            continue;
        }
        let rel = p
            .strip_prefix(&dir)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        // Each template is its own project: its folder is the root.
        let req = RenderRequest {
            root: p.parent().unwrap().to_path_buf(),
            template_path: p.clone(),
            source: String::from_utf8(std::fs::read(p).unwrap()).unwrap(),
            vars: Default::default(),
            seed: Some(42),
            freeze_clock: Some("2025-01-01T00:00:00Z".into()),
        };
        let Some((_, expected)) = TABLE.iter().find(|(f, _)| *f == rel) else {
            panic!("corpus template {rel} is not in the table");
        };
        seen.push(rel.clone());
        match (render(&req, &world), expected) {
            (Ok(r), Ok(ext)) => {
                assert_eq!(r.extensions, ext.to_vec(), "{rel}: extensions");
                assert!(
                    !r.toml.contains("{{"),
                    "{rel}: unrendered tag left:\n{}",
                    r.toml
                );
                assert!(!r.toml.contains("__clnrm"), "{rel}: internal name leaked");
                assert!(!r.record.volatile, "{rel}: seeded render is volatile");
            }
            (Err(e), Err((construct, line, col))) => {
                assert_eq!(e.construct, *construct, "{rel}: {e}");
                assert_eq!(e.line_col, Some((*line, *col)), "{rel}: {e}");
                assert!(e.file.ends_with(".tera"), "{rel}: {e}");
                assert!(e.line_text.is_some(), "{rel}: {e}");
            }
            (got, want) => panic!("{rel}: expected {want:?}, got {got:?}"),
        }
    }
    let mut listed: Vec<&str> = TABLE.iter().map(|(f, _)| *f).collect();
    listed.sort_unstable();
    seen.sort();
    assert_eq!(seen, listed, "the table lists exactly the corpus templates");
}

/// template-example.clnrm.toml.tera renders once given its variables; it passes
/// `"{{ svc }}.start"` to macros, which the dialect interpolates.
#[test]
fn corpus_template_example_with_vars() {
    let Some(dir) = corpus_dir("render corpus") else {
        return;
    };
    let p = dir.join("tests/mdbook-examples/template-mastery/template-example.clnrm.toml.tera");
    let mut world = MemWorld::default();
    world.files.insert(p.clone(), std::fs::read(&p).unwrap());
    let mut vars = std::collections::BTreeMap::new();
    vars.insert("port".to_string(), "8080".to_string());
    vars.insert("version".to_string(), "1.2.3".to_string());
    vars.insert("svc".to_string(), "web".to_string());
    let req = RenderRequest {
        root: p.parent().unwrap().to_path_buf(),
        template_path: p.clone(),
        source: String::from_utf8(std::fs::read(&p).unwrap()).unwrap(),
        vars,
        seed: None,
        freeze_clock: None,
    };
    let r = render(&req, &world).unwrap();
    assert!(r.toml.contains("name = \"web.start\""), "{}", r.toml);
    assert!(r.toml.contains("before = \"web.exec\""), "{}", r.toml);
    assert!(r.toml.contains("ports = [8080]"), "{}", r.toml);
    assert!(r
        .extensions
        .contains(&"{{ }} inside a macro argument string".to_string()));
    assert!(r
        .record
        .files
        .iter()
        .any(|f| f.path == "builtin:_macros.toml.tera"));
}
