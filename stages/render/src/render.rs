//! The render: a template's identity and frozen clock, the context (variables and
//! the defaults a template can see), the Tera 1 render of the preprocessed files,
//! and the record of what was read. Not the loading of files (see `driver.rs`) nor
//! the mapping of Tera's errors (see `tera_errors.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Component, Path, PathBuf};

use crate::driver::{base, Base, Driver};
use crate::error::RenderError;
use crate::fns::{self, SessionGuard};
use crate::tera_errors::tera_error;
use crate::{EnvDep, RenderRecord, RenderRequest, Rendered, World};

/// Built-in variables: (name, environment variable read first, fallback).
pub const DEFAULT_VARS: [(&str, &str, &str); 7] = [
    ("svc", "SERVICE_NAME", "clnrm"),
    ("env", "ENV", "ci"),
    ("endpoint", "OTEL_ENDPOINT", "http://otel-collector:4318"),
    ("exporter", "OTEL_TRACES_EXPORTER", "otlp"),
    ("image", "CLNRM_IMAGE", "alpine:3.20"),
    ("freeze_clock", "FREEZE_CLOCK", "2025-01-01T00:00:00Z"),
    ("token", "OTEL_TOKEN", ""),
];

/// Environment variables read, by name: blake3 of the value, `None` = unset.
type EnvReads = BTreeMap<String, Option<[u8; 32]>>;

/// Renders one template. See the crate docs for resolution, the dialect, the context
/// and the functions.
pub fn render(req: &RenderRequest, world: &dyn World) -> Result<Rendered, RenderError> {
    let base = base()?;
    let (root, top_id) = template_identity(req);
    let clock_ms = frozen_clock_ms(req, &top_id)?;

    let mut driver = Driver::new(world, root, top_id.clone(), base);
    driver.load(top_id.clone(), req.source.clone())?;
    driver.check_macro_recursion()?;

    let (ctx, mut env_reads) = context(req, world, &driver, base);
    let mut tera = if driver.uses_builtin {
        base.with_builtin.clone()
    } else {
        base.plain.clone()
    };
    let templates: Vec<(&str, &str)> = driver
        .units
        .iter()
        .map(|(id, unit)| (id.as_str(), unit.prepared.mapped.text.as_str()))
        .collect();
    let lookup = |id: &str| driver.unit(id).map(|unit| unit.texts());
    match catch_unwind(AssertUnwindSafe(|| tera.add_raw_templates(templates))) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(tera_error(&e, &top_id, &lookup)),
        Err(_) => return Err(RenderError::internal(&top_id)),
    }

    let guard = SessionGuard::install(world, req.seed, clock_ms);
    let result = catch_unwind(AssertUnwindSafe(|| tera.render(&top_id, &ctx)));
    let (function_env_reads, volatile) = guard.finish();
    let toml = match result {
        Ok(Ok(toml)) => toml,
        Ok(Err(e)) => return Err(tera_error(&e, &top_id, &lookup)),
        Err(_) => return Err(RenderError::internal(&top_id)),
    };

    env_reads.extend(function_env_reads);
    let mut extensions: BTreeSet<&str> = BTreeSet::new();
    for unit in driver.units.values() {
        extensions.extend(unit.prepared.extensions.iter().copied());
    }
    Ok(Rendered {
        toml,
        record: RenderRecord {
            files: driver.file_deps(),
            env: env_reads
                .into_iter()
                .map(|(name, hash)| EnvDep { name, hash })
                .collect(),
            volatile,
        },
        extensions: extensions.into_iter().map(str::to_string).collect(),
    })
}

/// The root resolution stops at and the template's canonical id: relative to the
/// project root, or to its own folder when it is outside the root.
fn template_identity(req: &RenderRequest) -> (PathBuf, String) {
    let (root, top_id) = match req.template_path.strip_prefix(&req.root) {
        Ok(rel) if rel.components().all(|c| matches!(c, Component::Normal(_))) => {
            (req.root.clone(), rel_string(rel))
        }
        _ => {
            let parent = req.template_path.parent().unwrap_or(Path::new("/"));
            let name = req.template_path.file_name().map_or_else(
                || "template".to_string(),
                |name| name.to_string_lossy().into_owned(),
            );
            (parent.to_path_buf(), name)
        }
    };
    if top_id.is_empty() {
        (root, "template".to_string())
    } else {
        (root, top_id)
    }
}

/// `freeze_clock` in milliseconds since the epoch; an error naming the template
/// when it is not an RFC 3339 time.
fn frozen_clock_ms(req: &RenderRequest, top_id: &str) -> Result<Option<i64>, RenderError> {
    let Some(text) = &req.freeze_clock else {
        return Ok(None);
    };
    match fns::parse_rfc3339(text) {
        Some(ms) => Ok(Some(ms)),
        None => Err(RenderError::whole_file(
            top_id,
            "freeze clock",
            format!("freeze clock `{text}` is not an RFC 3339 time"),
            Some("write it like 2025-01-01T00:00:00Z".into()),
        )),
    }
}

/// The context: the request's variables, then each default variable a loaded file
/// mentions (read from its environment variable, which is recorded); all visible
/// at top level and as `vars.NAME`.
fn context(
    req: &RenderRequest,
    world: &dyn World,
    driver: &Driver<'_>,
    base: &Base,
) -> (tera::Context, EnvReads) {
    let mut idents: BTreeSet<&str> = BTreeSet::new();
    for unit in driver.units.values() {
        idents.extend(unit.prepared.idents.iter().map(String::as_str));
    }
    if driver.uses_builtin {
        idents.extend(base.builtin.prepared.idents.iter().map(String::as_str));
    }
    let sees_all = idents.contains("vars") || idents.contains("__tera_context");
    let mut env_reads = EnvReads::new();
    let mut vars: BTreeMap<String, String> = req.vars.clone();
    for (name, env_name, fallback) in DEFAULT_VARS {
        if vars.contains_key(name) || !(sees_all || idents.contains(name)) {
            continue;
        }
        let value = world.env_var(env_name);
        env_reads.insert(
            env_name.to_string(),
            value.as_ref().map(|value| fns::hash(value.as_bytes())),
        );
        vars.insert(
            name.to_string(),
            value.unwrap_or_else(|| fallback.to_string()),
        );
    }
    let mut ctx = tera::Context::new();
    for (name, value) in &vars {
        ctx.insert(name.as_str(), value);
    }
    ctx.insert("vars", &vars);
    (ctx, env_reads)
}

/// `a/b/c` from a relative path's normal components.
fn rel_string(path: &Path) -> String {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}
