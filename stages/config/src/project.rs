//! `cleanroom.toml` (docs/reference.md §2) to a [`ProjectConfig`]; every section optional. It reads no
//! file and applies nothing: the engine merges the result with flags and test files.

use toml_edit::ImDocument;

use crate::determinism::parse_determinism;
use crate::walk::{fields, scalar_text, Ctx, Field};
use crate::{Diagnostic, ProjectConfig};

const SECTIONS: &[&str] = &["vars", "defaults", "cache", "run", "dev", "determinism"];
const DEFAULTS_KEYS: &[&str] = &["image", "step_timeout"];
const CACHE_KEYS: &[&str] = &["dir", "max_size", "max_age", "remote", "remote_mode"];
const RUN_KEYS: &[&str] = &["jobs", "reuse"];
const DEV_KEYS: &[&str] = &[
    "debounce_ms",
    "isolation",
    "max_spare_sets",
    "max_spare_memory_mb",
];

pub(crate) fn parse_project(
    file: &str,
    text: &str,
    strict: bool,
) -> Result<(ProjectConfig, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut ctx = Ctx::new(file, text, false, strict);
    let doc = match ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            ctx.syntax_error(&e, true);
            return Err(ctx.into_sorted());
        }
    };
    let mut p = ProjectConfig::default();
    for f in fields(doc.as_table(), "") {
        let Some(t) = (if SECTIONS.contains(&f.key) {
            ctx.table(&f)
        } else {
            ctx.unknown_key(&f.path, f.key, &f.span, SECTIONS);
            None
        }) else {
            continue;
        };
        if f.key == "determinism" {
            let (seed, clock) = parse_determinism(&mut ctx, t, &f.path);
            p.seed = seed;
            p.freeze_clock = clock;
            continue;
        }
        for g in fields(t, &f.path) {
            section_key(&mut ctx, &mut p, f.key, &g);
        }
    }
    if ctx.has_errors() {
        Err(ctx.into_sorted())
    } else {
        Ok((p, ctx.into_sorted()))
    }
}

fn section_key(ctx: &mut Ctx, p: &mut ProjectConfig, section: &str, g: &Field) {
    match (section, g.key) {
        ("vars", _) => match scalar_text(g.item) {
            Some(v) => {
                p.vars.insert(g.key.to_string(), v);
            }
            None => {
                ctx.value_error(
                    g,
                    format!(
                        "expected a string, number or boolean, found {}",
                        crate::walk::kind(g.item)
                    ),
                );
            }
        },
        ("defaults", "image") => p.default_image = ctx.string(g),
        ("defaults", "step_timeout") => p.default_step_timeout_ms = ctx.duration(g),
        ("cache", "dir") => p.cache_dir = ctx.string(g),
        ("cache", "max_size") => {
            p.cache_max_size = match g.item.as_integer() {
                Some(_) => ctx.unsigned(g),
                None => {
                    let text = ctx.string(g);
                    text.and_then(|text| ctx.checked(g, crate::parse_size_bytes(&text)))
                }
            }
        }
        ("cache", "max_age") => p.cache_max_age_ms = ctx.duration(g),
        ("cache", "remote") => p.cache_remote = ctx.string(g),
        ("cache", "remote_mode") => {
            let text = ctx.string(g);
            p.cache_remote_mode = text.and_then(|text| {
                let known = ["read", "write", "readwrite"].contains(&text.as_str());
                ctx.checked(
                    g,
                    if known {
                        Ok(text)
                    } else {
                        Err("expected \"read\", \"write\" or \"readwrite\"".to_string())
                    },
                )
            })
        }
        ("run", "jobs") => {
            let jobs = ctx.unsigned(g);
            p.run_jobs = jobs.and_then(|n| {
                ctx.checked(
                    g,
                    usize::try_from(n).map_err(|_| "too many jobs".to_string()),
                )
            })
        }
        ("run", "reuse") => p.run_reuse = ctx.boolean(g).unwrap_or(false),
        ("dev", "debounce_ms") => p.dev_debounce_ms = ctx.unsigned(g),
        ("dev", "isolation") => {
            let text = ctx.string(g);
            p.dev_isolation = text.and_then(|text| {
                let known = ["fresh", "reuse"].contains(&text.as_str());
                ctx.checked(
                    g,
                    if known {
                        Ok(text)
                    } else {
                        Err("expected \"fresh\" or \"reuse\"".to_string())
                    },
                )
            })
        }
        ("dev", "max_spare_sets") => p.dev_max_spare_sets = ctx.unsigned(g),
        ("dev", "max_spare_memory_mb") => p.dev_max_spare_memory_mb = ctx.unsigned(g),
        (section, key) => {
            let known = match section {
                "defaults" => DEFAULTS_KEYS,
                "cache" => CACHE_KEYS,
                "run" => RUN_KEYS,
                _ => DEV_KEYS,
            };
            ctx.unknown_key(&g.path, key, &g.span, known);
        }
    }
}
