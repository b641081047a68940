//! The driver: resolve and preprocess every file a template reaches, render with
//! Tera 1, and record what was read.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use tera::Tera;

use crate::fns::{self, SessionGuard};
use crate::pre::{self, Lib, MacroSig, PreError, Prepared, RefKind, Resolved};
use crate::scan::{self, ItemKind, TokKind};
use crate::{EnvDep, FileDep, RenderRecord, RenderRequest, Rendered, World};

/// Name under which the built-in library is found, and its canonical id.
const BUILTIN_NAME: &str = "_macros.toml.tera";
const BUILTIN_ID: &str = "builtin:_macros.toml.tera";
const BUILTIN_SRC: &str = include_str!("builtin/_macros.toml.tera");

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

/// Imports nested deeper than this are refused (each level is a recursion).
const MAX_IMPORT_DEPTH: usize = 64;

/// Why a render failed, and where: a [`RenderErrorDetail`] behind a box (so that
/// `Result<_, RenderError>` stays small); its fields read through `Deref`
/// (`err.file`, `err.line_col`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", self.0.user_message())]
pub struct RenderError(Box<RenderErrorDetail>);

impl std::ops::Deref for RenderError {
    type Target = RenderErrorDetail;
    fn deref(&self) -> &RenderErrorDetail {
        &self.0
    }
}

impl From<RenderErrorDetail> for RenderError {
    fn from(d: RenderErrorDetail) -> Self {
        RenderError(Box::new(d))
    }
}

impl RenderError {
    pub fn into_detail(self) -> RenderErrorDetail {
        *self.0
    }
}

/// The parts of a [`RenderError`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderErrorDetail {
    /// Root-relative path (`/` separators) of the template or library where the
    /// problem is, or `builtin:_macros.toml.tera`.
    pub file: String,
    /// 1-based line and column (in characters) in that file's original text.
    pub line_col: Option<(usize, usize)>,
    /// The text of that line.
    pub line_text: Option<String>,
    /// What kind of construct is at fault: `undefined variable`, `missing import`,
    /// `positional macro argument`, `map literal`, `template syntax`, ...
    pub construct: String,
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl RenderErrorDetail {
    /// `file:line:col: message`, the line with a caret under the column, and the hint.
    pub fn user_message(&self) -> String {
        let mut out = self.file.clone();
        if let Some((l, c)) = self.line_col {
            out.push_str(&format!(":{l}:{c}"));
        }
        out.push_str(": ");
        out.push_str(&self.message);
        if let (Some((l, c)), Some(text)) = (self.line_col, &self.line_text) {
            let num = l.to_string();
            let pad = " ".repeat(num.len());
            let caret: String = text
                .chars()
                .take(c.saturating_sub(1))
                .map(|ch| if ch == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!("\n{pad} |\n{num} | {text}\n{pad} | {caret}^"));
        }
        if let Some(h) = &self.hint {
            out.push_str(&format!("\n  help: {h}"));
        }
        out
    }
}

impl RenderError {
    fn at(
        file: &str,
        src: &str,
        offset: Option<usize>,
        construct: &str,
        message: String,
        hint: Option<String>,
    ) -> Self {
        let line_col = offset.map(|o| scan::line_col(src, o));
        RenderErrorDetail {
            file: file.to_string(),
            line_col,
            line_text: line_col.and_then(|(l, _)| scan::line_text(src, l)),
            construct: construct.to_string(),
            message,
            hint,
        }
        .into()
    }

    fn from_pre(file: &str, src: &str, e: PreError) -> Self {
        Self::at(
            file,
            src,
            Some(e.offset),
            e.construct,
            format!("{}: {}", e.construct, e.message),
            e.hint,
        )
    }
}

/// A preprocessed file.
struct Unit {
    /// The user's text.
    src: String,
    sigs: Vec<MacroSig>,
    prepared: Prepared,
}

/// The built-in library, preprocessed once, and a Tera instance holding it with all
/// functions registered; each render clones it (cheaper than parsing the library).
struct Base {
    builtin: Unit,
    /// Functions registered, no templates.
    plain: Tera,
    /// Also holding the built-in library (cloning its AST costs ~40 µs: only when used).
    with_builtin: Tera,
}

fn base() -> Result<&'static Base, RenderError> {
    static BASE: OnceLock<Result<Base, RenderError>> = OnceLock::new();
    BASE.get_or_init(|| {
        let scanned = pre::scan_file(BUILTIN_SRC)
            .map_err(|e| RenderError::from_pre(BUILTIN_ID, BUILTIN_SRC, e))?;
        let prepared = pre::rewrite(
            BUILTIN_SRC,
            BUILTIN_ID,
            &scanned,
            &Resolved::new(),
            &HashMap::new(),
        )
        .map_err(|e| RenderError::from_pre(BUILTIN_ID, BUILTIN_SRC, e))?;
        let mut tera = Tera::default();
        tera.autoescape_on(vec![]);
        fns::register(&mut tera);
        let builtin = Unit {
            src: BUILTIN_SRC.to_string(),
            sigs: scanned.sigs,
            prepared,
        };
        let plain = tera.clone();
        tera.add_raw_template(BUILTIN_ID, &builtin.prepared.mapped.text)
            .map_err(|e| {
                tera_error(&e, BUILTIN_ID, &|id| (id == BUILTIN_ID).then_some(&builtin))
            })?;
        Ok(Base {
            builtin,
            plain,
            with_builtin: tera,
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Renders one template. See the crate docs for resolution, the dialect, the context
/// and the functions.
pub fn render(req: &RenderRequest, world: &dyn World) -> Result<Rendered, RenderError> {
    let base = base()?;
    // The template's identity, relative to the root (or to its own folder when it
    // is outside the root).
    let (root, top_id) = match req.template_path.strip_prefix(&req.root) {
        Ok(rel) if rel.components().all(|c| matches!(c, Component::Normal(_))) => {
            (req.root.clone(), rel_string(rel))
        }
        _ => {
            let parent = req.template_path.parent().unwrap_or(Path::new("/"));
            let name = req.template_path.file_name().map_or_else(
                || "template".to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            (parent.to_path_buf(), name)
        }
    };
    let top_id = if top_id.is_empty() {
        "template".to_string()
    } else {
        top_id
    };

    let clock_ms = match &req.freeze_clock {
        Some(s) => Some(
            fns::parse_rfc3339(s)
                .ok_or_else(|| RenderErrorDetail {
                    file: top_id.clone(),
                    line_col: None,
                    line_text: None,
                    construct: "freeze clock".into(),
                    message: format!("freeze clock `{s}` is not an RFC 3339 time"),
                    hint: Some("write it like 2025-01-01T00:00:00Z".into()),
                })
                .map_err(RenderError::from)?,
        ),
        None => None,
    };

    let mut d = Driver {
        world,
        root,
        top_id: top_id.clone(),
        units: BTreeMap::new(),
        stack: Vec::new(),
        files: BTreeSet::new(),
        probed: HashMap::new(),
        uses_builtin: false,
        base,
    };
    d.load(top_id.clone(), req.source.clone())?;
    d.check_macro_recursion()?;

    // Context: vars, then defaults read from the environment when mentioned.
    let mut idents: BTreeSet<&str> = BTreeSet::new();
    for u in d.units.values() {
        idents.extend(u.prepared.idents.iter().map(String::as_str));
    }
    if d.uses_builtin {
        idents.extend(base.builtin.prepared.idents.iter().map(String::as_str));
    }
    let all = idents.contains("vars") || idents.contains("__tera_context");
    let mut env_reads: BTreeMap<String, Option<[u8; 32]>> = BTreeMap::new();
    let mut vars: BTreeMap<String, String> = req.vars.clone();
    for (name, env_name, fallback) in DEFAULT_VARS {
        if vars.contains_key(name) || !(all || idents.contains(name)) {
            continue;
        }
        let value = world.env_var(env_name);
        env_reads.insert(
            env_name.to_string(),
            value.as_ref().map(|v| fns::hash(v.as_bytes())),
        );
        vars.insert(
            name.to_string(),
            value.unwrap_or_else(|| fallback.to_string()),
        );
    }
    let mut ctx = tera::Context::new();
    for (k, v) in &vars {
        ctx.insert(k.as_str(), v);
    }
    ctx.insert("vars", &vars);

    let mut tera = if d.uses_builtin {
        base.with_builtin.clone()
    } else {
        base.plain.clone()
    };
    let templates: Vec<(&str, &str)> = d
        .units
        .iter()
        .map(|(id, u)| (id.as_str(), u.prepared.mapped.text.as_str()))
        .collect();
    let lookup = |id: &str| d.unit(id);
    match catch_unwind(AssertUnwindSafe(|| tera.add_raw_templates(templates))) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(tera_error(&e, &top_id, &lookup)),
        Err(_) => return Err(internal(&top_id)),
    }

    let guard = SessionGuard::install(world, req.seed, clock_ms);
    let result = catch_unwind(AssertUnwindSafe(|| tera.render(&top_id, &ctx)));
    let (fn_env, volatile) = guard.finish();
    let toml = match result {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(tera_error(&e, &top_id, &lookup)),
        Err(_) => return Err(internal(&top_id)),
    };

    env_reads.extend(fn_env);
    let mut files = std::mem::take(&mut d.files);
    if d.uses_builtin {
        files.insert(FileDep {
            path: BUILTIN_ID.to_string(),
            hash: Some(fns::hash(BUILTIN_SRC.as_bytes())),
        });
    }
    let mut extensions: BTreeSet<&str> = BTreeSet::new();
    for u in d.units.values() {
        extensions.extend(u.prepared.extensions.iter().copied());
    }
    Ok(Rendered {
        toml,
        record: RenderRecord {
            files: files.into_iter().collect(),
            env: env_reads
                .into_iter()
                .map(|(name, hash)| EnvDep { name, hash })
                .collect(),
            volatile,
        },
        extensions: extensions.into_iter().map(str::to_string).collect(),
    })
}

fn internal(top_id: &str) -> RenderError {
    RenderErrorDetail {
        file: top_id.to_string(),
        line_col: None,
        line_text: None,
        construct: "internal error".into(),
        message: "the template engine failed on this template (a bug in Tera or clnrm)".into(),
        hint: Some("please report it with the template attached".into()),
    }
    .into()
}

fn rel_string(p: &Path) -> String {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

struct Driver<'a> {
    world: &'a dyn World,
    root: PathBuf,
    top_id: String,
    units: BTreeMap<String, Unit>,
    /// Files being loaded, outermost first (for cycle detection).
    stack: Vec<String>,
    files: BTreeSet<FileDep>,
    /// Contents of probed paths (a path may be probed from several files).
    probed: HashMap<String, Option<Vec<u8>>>,
    uses_builtin: bool,
    base: &'static Base,
}

impl Driver<'_> {
    fn unit(&self, id: &str) -> Option<&Unit> {
        if id == BUILTIN_ID {
            Some(&self.base.builtin)
        } else {
            self.units.get(id)
        }
    }

    fn sigs(&self, id: &str) -> &[MacroSig] {
        self.unit(id).map_or(&[], |u| u.sigs.as_slice())
    }

    fn load(&mut self, id: String, src: String) -> Result<(), RenderError> {
        let scanned = pre::scan_file(&src).map_err(|e| RenderError::from_pre(&id, &src, e))?;
        self.stack.push(id.clone());
        let mut resolved = Resolved::new();
        let mut aliases: Vec<(String, String)> = Vec::new();
        for r in &scanned.refs {
            let item = &scanned.items[r.item];
            let mut ids = Vec::new();
            let mut looked = Vec::new();
            for (name, off) in &r.names {
                match self.resolve(&id, &src, name, *off, &mut looked)? {
                    Some(target) => {
                        self.visit(&id, &src, *off, &target, &r.kind)?;
                        ids.push(Some(target));
                        break;
                    }
                    None => ids.push(None),
                }
            }
            let found = ids.iter().flatten().next().cloned();
            match (&r.kind, found) {
                (
                    RefKind::Include {
                        ignore_missing: true,
                    },
                    None,
                ) => {}
                (kind, None) => {
                    let (what, construct) = match kind {
                        RefKind::Import { .. } => ("imported", "missing import"),
                        RefKind::Include { .. } => ("included", "missing include"),
                        RefKind::Extends => ("extended", "missing extends"),
                    };
                    let names: Vec<String> =
                        r.names.iter().map(|(n, _)| format!("`{n}`")).collect();
                    let mut hint = format!("looked for {}", looked.join(", "));
                    if !r.names.iter().any(|(n, _)| n == BUILTIN_NAME) {
                        hint.push_str(&format!(
                            " (the built-in library provides only `{BUILTIN_NAME}`)"
                        ));
                    }
                    return Err(RenderError::at(
                        &id,
                        &src,
                        Some(r.names[0].1),
                        construct,
                        format!("cannot find {} {what} by `{id}`", names.join(" or ")),
                        Some(hint),
                    ));
                }
                (RefKind::Import { alias }, Some(target)) => {
                    aliases.push((alias.clone(), target));
                }
                _ => {}
            }
            resolved.insert(item.item_key(), ids);
        }
        let prepared = {
            let libs: HashMap<String, Lib<'_>> = aliases
                .iter()
                .map(|(alias, target)| {
                    (
                        alias.clone(),
                        Lib {
                            id: target.as_str(),
                            sigs: self.sigs(target),
                        },
                    )
                })
                .collect();
            pre::rewrite(&src, &id, &scanned, &resolved, &libs)
                .map_err(|e| RenderError::from_pre(&id, &src, e))?
        };
        self.stack.pop();
        self.units.insert(
            id,
            Unit {
                src,
                sigs: scanned.sigs,
                prepared,
            },
        );
        Ok(())
    }

    /// Follows a resolved reference from `from` to `target`.
    fn visit(
        &mut self,
        from: &str,
        from_src: &str,
        offset: usize,
        target: &str,
        kind: &RefKind,
    ) -> Result<(), RenderError> {
        if target == BUILTIN_ID {
            self.uses_builtin = true;
            return Ok(());
        }
        if let Some(pos) = self.stack.iter().position(|s| s == target) {
            let mut cycle: Vec<&str> = self.stack[pos..].iter().map(String::as_str).collect();
            cycle.push(target);
            let word = match kind {
                RefKind::Import { .. } => "import",
                RefKind::Include { .. } => "include",
                RefKind::Extends => "extends",
            };
            return Err(RenderError::at(
                from,
                from_src,
                Some(offset),
                &format!("{word} cycle"),
                format!("{word} cycle: {}", cycle.join(" -> ")),
                Some("break the cycle: a file cannot (indirectly) import or include itself".into()),
            ));
        }
        if self.units.contains_key(target) {
            return Ok(());
        }
        if self.stack.len() >= MAX_IMPORT_DEPTH {
            return Err(RenderError::at(
                from,
                from_src,
                Some(offset),
                "import depth",
                format!("imports nested more than {MAX_IMPORT_DEPTH} files deep"),
                None,
            ));
        }
        let bytes = self
            .probed
            .get(target)
            .and_then(Clone::clone)
            .unwrap_or_default();
        let text = String::from_utf8(bytes)
            .map_err(|e| RenderErrorDetail {
                file: target.to_string(),
                line_col: None,
                line_text: None,
                construct: "not UTF-8".into(),
                message: format!(
                    "`{target}` is not UTF-8 text (invalid byte at offset {})",
                    e.utf8_error().valid_up_to()
                ),
                hint: None,
            })
            .map_err(RenderError::from)?;
        self.load(target.to_string(), text)
    }

    /// Where NAME, named in file `from`, is: a canonical id, or `None`. Appends the
    /// places looked at to `looked`.
    fn resolve(
        &mut self,
        from: &str,
        from_src: &str,
        name: &str,
        offset: usize,
        looked: &mut Vec<String>,
    ) -> Result<Option<String>, RenderError> {
        let bad = |why: &str| {
            RenderError::at(
                from,
                from_src,
                Some(offset),
                "template name",
                format!("`{name}` {why}"),
                Some(
                    "name a file relative to this file's folder, e.g. \"_macros.toml.tera\"".into(),
                ),
            )
        };
        if name.is_empty() {
            return Err(bad("is empty"));
        }
        if name.starts_with('/') || name.contains('\\') || name.contains('\0') || name.contains(':')
        {
            return Err(bad("must be a relative path with `/` separators"));
        }
        let from_dir: Vec<&str> = if from == BUILTIN_ID {
            Vec::new()
        } else {
            let mut parts: Vec<&str> = from.split('/').collect();
            parts.pop();
            parts
        };
        let mut candidates: Vec<String> = Vec::new();
        for k in (0..=from_dir.len()).rev() {
            if let Some(c) = join_normalized(&from_dir[..k], name) {
                candidates.push(c);
            }
        }
        if let Some(c) = join_normalized(&["templates"], name) {
            candidates.push(c);
        }
        let mut seen = BTreeSet::new();
        for rel in candidates {
            if !seen.insert(rel.clone()) {
                continue;
            }
            looked.push(rel.clone());
            if rel == self.top_id || self.units.contains_key(&rel) || self.stack.contains(&rel) {
                return Ok(Some(rel));
            }
            if self.probe(&rel) {
                return Ok(Some(rel));
            }
        }
        if name == BUILTIN_NAME {
            return Ok(Some(BUILTIN_ID.to_string()));
        }
        Ok(None)
    }

    /// Reads root-relative `rel` through the world, recording it. True if it exists.
    fn probe(&mut self, rel: &str) -> bool {
        if let Some(c) = self.probed.get(rel) {
            return c.is_some();
        }
        let mut path = self.root.clone();
        for part in rel.split('/') {
            path.push(part);
        }
        let content = self.world.read_file(&path);
        self.files.insert(FileDep {
            path: rel.to_string(),
            hash: content.as_deref().map(fns::hash),
        });
        let exists = content.is_some();
        self.probed.insert(rel.to_string(), content);
        exists
    }

    /// Refuses macros that call themselves, directly or through others: Tera 1 would
    /// recurse until the stack overflows.
    fn check_macro_recursion(&self) -> Result<(), RenderError> {
        type Node = (String, String);
        let mut edges: BTreeMap<Node, Vec<(Node, usize, String)>> = BTreeMap::new();
        let mut all_units: Vec<(&str, &Unit)> =
            self.units.iter().map(|(k, u)| (k.as_str(), u)).collect();
        if self.uses_builtin {
            all_units.push((BUILTIN_ID, &self.base.builtin));
        }
        for (id, u) in &all_units {
            for (caller, lib, name, at) in &u.prepared.calls {
                if let Some(caller) = caller {
                    edges
                        .entry((id.to_string(), caller.clone()))
                        .or_default()
                        .push(((lib.clone(), name.clone()), *at, id.to_string()));
                }
            }
        }
        // iterative DFS with colours
        let mut state: HashMap<&Node, u8> = HashMap::new();
        for start in edges.keys() {
            if state.contains_key(start) {
                continue;
            }
            let mut stack: Vec<(&Node, usize)> = vec![(start, 0)];
            state.insert(start, 1);
            while let Some((node, i)) = stack.pop() {
                let next = edges.get(node).and_then(|v| v.get(i));
                let Some((target, at, in_file)) = next else {
                    state.insert(node, 2);
                    continue;
                };
                stack.push((node, i + 1));
                match state.get(target) {
                    Some(1) => {
                        let pos = stack.iter().position(|(n, _)| *n == target).unwrap_or(0);
                        let mut names: Vec<String> =
                            stack[pos..].iter().map(|(n, _)| n.1.clone()).collect();
                        names.push(target.1.clone());
                        let src = self.unit(in_file).map_or("", |u| u.src.as_str());
                        return Err(RenderError::at(
                            in_file,
                            src,
                            Some(*at),
                            "recursive macro",
                            format!("recursive macro call: {}", names.join(" -> ")),
                            Some("Tera 1 cannot bound recursion; unroll it or use a loop".into()),
                        ));
                    }
                    Some(_) => {}
                    None => {
                        if let Some((key, _)) = edges.get_key_value(target) {
                            state.insert(key, 1);
                            stack.push((key, 0));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// `dir/name`, with `.` and `..` resolved; `None` when it leaves the root.
fn join_normalized(dir: &[&str], name: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.to_vec();
    for seg in name.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(parts.join("/"))
}

// ---------------------------------------------------------------------------
// Tera errors, mapped back to the user's files

fn tera_error<'u>(
    e: &tera::Error,
    top_id: &str,
    lookup: &dyn Fn(&str) -> Option<&'u Unit>,
) -> RenderError {
    let mut chain = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push(s.to_string());
        source = s.source();
    }
    let quoted = |s: &str, prefix: &str| -> Option<String> {
        let start = s.find(prefix)? + prefix.len();
        let end = s[start..].find('\'')? + start;
        Some(s[start..end].to_string())
    };

    // A parse error: pest's ` --> line:col` in the processed text.
    if let Some(id) = quoted(&chain[0], "Failed to parse '") {
        let pest = chain.get(1).cloned().unwrap_or_default();
        let expected = pest
            .lines()
            .map(str::trim_start)
            .find_map(|l| l.strip_prefix("= "))
            .unwrap_or("invalid syntax")
            .trim()
            .to_string();
        let pos = pest.lines().find_map(|l| {
            let rest = l.trim_start().strip_prefix("--> ")?;
            let (a, b) = rest.split_once(':')?;
            Some((
                a.trim().parse::<usize>().ok()?,
                b.trim().parse::<usize>().ok()?,
            ))
        });
        let unit = lookup(&id);
        let offset = match (unit, pos) {
            (Some(u), Some((l, c))) => {
                let out = scan::offset_of(&u.prepared.mapped.text, l, c);
                Some(u.prepared.mapped.to_orig(out))
            }
            _ => None,
        };
        let src = unit.map_or("", |u| u.src.as_str());
        return RenderError::at(
            &id,
            src,
            offset,
            "template syntax",
            format!("template syntax error: {expected}"),
            None,
        );
    }

    let rendering = chain
        .iter()
        .find_map(|m| quoted(m, "Failed to render '"))
        .unwrap_or_else(|| top_id.to_string());
    let deepest = chain.last().cloned().unwrap_or_default();

    // Search the file named first, then every other loaded file.
    let search = |first: &str, find: &dyn Fn(&str) -> Option<usize>| -> (String, Option<usize>) {
        if let Some(u) = lookup(first) {
            if let Some(o) = find(&u.src) {
                return (first.to_string(), Some(o));
            }
        }
        (first.to_string(), None)
    };

    for (i, m) in chain.iter().enumerate() {
        if let Some(rest) = m.strip_prefix("Variable `") {
            let Some(end) = rest.find('`') else { continue };
            let var = &rest[..end];
            let in_tpl = quoted(m, "while rendering '").unwrap_or_else(|| rendering.clone());
            let (file, off) = search(&in_tpl, &|src| find_path(src, var));
            let (file, off) = if off.is_none() && file != top_id {
                search(top_id, &|src| find_path(src, var))
            } else {
                (file, off)
            };
            let src = lookup(&file).map_or("", |u| u.src.as_str());
            let root = var.split(['.', '[']).next().unwrap_or(var);
            return RenderError::at(
                &file,
                src,
                off,
                "undefined variable",
                format!("undefined variable `{var}`"),
                Some(format!(
                    "define it (--var {root}=..., or [vars] in cleanroom.toml), or write `{var} | default(value=\"...\")`"
                )),
            );
        }
        for (prefix, construct, is_filter) in [
            ("Function call '", "function call", false),
            ("Filter call '", "filter call", true),
        ] {
            if let Some(name) = quoted(m, prefix) {
                let cause = chain.get(i + 1).cloned().unwrap_or_default();
                let (file, off) = search(&rendering, &|src| find_call(src, &name, is_filter));
                let src = lookup(&file).map_or("", |u| u.src.as_str());
                let what = if is_filter {
                    format!("filter `{name}` failed")
                } else {
                    format!("`{name}()` failed")
                };
                return RenderError::at(
                    &file,
                    src,
                    off,
                    construct,
                    format!("{what}: {cause}"),
                    None,
                );
            }
        }
    }
    let src = lookup(&rendering).map_or("", |u| u.src.as_str());
    let detail = if chain.len() > 1 {
        format!("{}: {deepest}", chain[0])
    } else {
        deepest
    };
    RenderError::at(&rendering, src, None, "render", detail, None)
}

/// Offset of the first use of variable path `path` (`a.b.c`) in a tag of `src`.
fn find_path(src: &str, path: &str) -> Option<usize> {
    let items = scan::scan(src).ok()?;
    for item in items
        .iter()
        .filter(|i| matches!(i.kind, ItemKind::Expr | ItemKind::Stmt))
    {
        let t = &item.toks;
        for (k, tok) in t.iter().enumerate() {
            if tok.kind != TokKind::Ident || (k > 0 && t[k - 1].is(src, ".")) {
                continue;
            }
            // the longest dotted run from here
            let mut end = tok.end;
            let mut j = k + 1;
            while j + 1 < t.len()
                && t[j].is(src, ".")
                && t[j].start == end
                && t[j + 1].start == t[j].end
                && matches!(t[j + 1].kind, TokKind::Ident | TokKind::Num)
            {
                end = t[j + 1].end;
                j += 2;
            }
            let run = &src[tok.start..end];
            if run == path || run.starts_with(&format!("{path}.")) {
                return Some(tok.start);
            }
        }
        // inside a string interpolated by the dialect: "{{ path }}"
        for tok in t.iter().filter(|t| t.kind == TokKind::Str) {
            let body = tok.text(src);
            if let Some(i) = body.find("{{") {
                let after = &body[i + 2..];
                if after.trim_start().starts_with(path) {
                    return Some(tok.start + i);
                }
            }
        }
    }
    None
}

/// Offset of the first call of function `name(` (or use of filter `| name`).
fn find_call(src: &str, name: &str, filter: bool) -> Option<usize> {
    let items = scan::scan(src).ok()?;
    for item in items
        .iter()
        .filter(|i| matches!(i.kind, ItemKind::Expr | ItemKind::Stmt))
    {
        let t = &item.toks;
        for (k, tok) in t.iter().enumerate() {
            if tok.kind != TokKind::Ident || tok.text(src) != name {
                continue;
            }
            let after_pipe = k > 0 && t[k - 1].is(src, "|");
            let after_ns = k > 0 && t[k - 1].is(src, "::");
            let called = t.get(k + 1).is_some_and(|n| n.is(src, "("));
            if (filter && after_pipe) || (!filter && called && !after_pipe && !after_ns) {
                return Some(tok.start);
            }
        }
    }
    None
}
