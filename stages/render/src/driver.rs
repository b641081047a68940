//! The driver: finds every file a template reaches (imports, includes, extends, the
//! built-in library), preprocesses each, refuses cycles and recursive macros, and
//! records every file it read or looked for. Not the Tera render itself nor the
//! context (see `render.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::OnceLock;

use tera::Tera;

use crate::error::RenderError;
use crate::fns;
use crate::pre::{self, Lib, MacroSig, Prepared, Ref, RefKind, Resolved};
use crate::tera_errors::{tera_error, UnitTexts};
use crate::{FileDep, World};

/// Name under which the built-in library is found, and its canonical id.
pub(crate) const BUILTIN_NAME: &str = "_macros.toml.tera";
pub(crate) const BUILTIN_ID: &str = "builtin:_macros.toml.tera";
pub(crate) const BUILTIN_SRC: &str = include_str!("builtin/_macros.toml.tera");

/// Imports nested deeper than this are refused (each level is a recursion).
const MAX_IMPORT_DEPTH: usize = 64;

/// A preprocessed file.
pub(crate) struct Unit {
    /// The user's text.
    pub(crate) src: String,
    sigs: Vec<MacroSig>,
    pub(crate) prepared: Prepared,
}

impl Unit {
    /// What Tera's errors are mapped back to the user's text with.
    pub(crate) fn texts(&self) -> UnitTexts<'_> {
        UnitTexts {
            src: &self.src,
            prepared: &self.prepared,
        }
    }
}

/// The built-in library, preprocessed once, and a Tera instance holding it with all
/// functions registered; each render clones it (cheaper than parsing the library).
pub(crate) struct Base {
    pub(crate) builtin: Unit,
    /// Functions registered, no templates.
    pub(crate) plain: Tera,
    /// Also holding the built-in library (cloning its AST costs ~40 µs: only when used).
    pub(crate) with_builtin: Tera,
}

/// The [`Base`], built on first use.
pub(crate) fn base() -> Result<&'static Base, RenderError> {
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
                tera_error(&e, BUILTIN_ID, &|id| {
                    (id == BUILTIN_ID).then(|| builtin.texts())
                })
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

/// Loads the files one render reaches.
pub(crate) struct Driver<'a> {
    world: &'a dyn World,
    /// Project root: record paths are relative to it.
    root: PathBuf,
    /// Canonical id of the template being rendered.
    top_id: String,
    /// Every file loaded, by canonical id.
    pub(crate) units: BTreeMap<String, Unit>,
    /// Files being loaded, outermost first (for cycle detection).
    stack: Vec<String>,
    files: BTreeSet<FileDep>,
    /// Contents of probed paths (a path may be probed from several files).
    probed: HashMap<String, Option<Vec<u8>>>,
    /// The built-in library was imported.
    pub(crate) uses_builtin: bool,
    base: &'static Base,
}

impl<'a> Driver<'a> {
    pub(crate) fn new(
        world: &'a dyn World,
        root: PathBuf,
        top_id: String,
        base: &'static Base,
    ) -> Self {
        Driver {
            world,
            root,
            top_id,
            units: BTreeMap::new(),
            stack: Vec::new(),
            files: BTreeSet::new(),
            probed: HashMap::new(),
            uses_builtin: false,
            base,
        }
    }

    /// Every file the render read or looked for, the built-in library included
    /// when it was used.
    pub(crate) fn file_deps(&self) -> Vec<FileDep> {
        let mut files = self.files.clone();
        if self.uses_builtin {
            files.insert(FileDep {
                path: BUILTIN_ID.to_string(),
                hash: Some(fns::hash(BUILTIN_SRC.as_bytes())),
            });
        }
        files.into_iter().collect()
    }

    /// A loaded file, or the built-in library, by canonical id.
    pub(crate) fn unit(&self, id: &str) -> Option<&Unit> {
        if id == BUILTIN_ID {
            Some(&self.base.builtin)
        } else {
            self.units.get(id)
        }
    }

    fn sigs(&self, id: &str) -> &[MacroSig] {
        self.unit(id).map_or(&[], |unit| unit.sigs.as_slice())
    }

    /// Loads file `id` with text `src` and, first, every file it refers to.
    pub(crate) fn load(&mut self, id: String, src: String) -> Result<(), RenderError> {
        let scanned = pre::scan_file(&src).map_err(|e| RenderError::from_pre(&id, &src, e))?;
        self.stack.push(id.clone());
        let mut resolved = Resolved::new();
        let mut aliases: Vec<(String, String)> = Vec::new();
        for reference in &scanned.refs {
            let ids = self.follow_ref(&id, &src, reference)?;
            if let (RefKind::Import { alias }, Some(target)) =
                (&reference.kind, ids.iter().flatten().next())
            {
                aliases.push((alias.clone(), target.clone()));
            }
            resolved.insert(scanned.items[reference.item].item_key(), ids);
        }
        let libs: HashMap<String, Lib<'_>> = aliases
            .iter()
            .map(|(alias, target)| {
                let lib = Lib {
                    id: target.as_str(),
                    sigs: self.sigs(target),
                };
                (alias.clone(), lib)
            })
            .collect();
        let prepared = pre::rewrite(&src, &id, &scanned, &resolved, &libs)
            .map_err(|e| RenderError::from_pre(&id, &src, e))?;
        self.stack.pop();
        let unit = Unit {
            src,
            sigs: scanned.sigs,
            prepared,
        };
        self.units.insert(id, unit);
        Ok(())
    }

    /// Resolves the names of `reference` in file `id` until one is found, and loads
    /// it: per name tried, the canonical id or `None`. Nothing found is an error
    /// unless the reference is an include with `ignore missing`.
    fn follow_ref(
        &mut self,
        id: &str,
        src: &str,
        reference: &Ref,
    ) -> Result<Vec<Option<String>>, RenderError> {
        let mut ids = Vec::new();
        let mut looked = Vec::new();
        for (name, offset) in &reference.names {
            match self.resolve(id, src, name, *offset, &mut looked)? {
                Some(target) => {
                    self.visit(id, src, *offset, &target, &reference.kind)?;
                    ids.push(Some(target));
                    return Ok(ids);
                }
                None => ids.push(None),
            }
        }
        match reference.kind {
            RefKind::Include {
                ignore_missing: true,
            } => Ok(ids),
            _ => Err(missing_ref_error(id, src, reference, &looked)),
        }
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
        if let Some(start) = self.stack.iter().position(|loading| loading == target) {
            let mut cycle: Vec<&str> = self.stack[start..].iter().map(String::as_str).collect();
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
        let text = String::from_utf8(bytes).map_err(|e| {
            RenderError::whole_file(
                target,
                "not UTF-8",
                format!(
                    "`{target}` is not UTF-8 text (invalid byte at offset {})",
                    e.utf8_error().valid_up_to()
                ),
                None,
            )
        })?;
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
        for depth in (0..=from_dir.len()).rev() {
            if let Some(candidate) = join_normalized(&from_dir[..depth], name) {
                candidates.push(candidate);
            }
        }
        if let Some(candidate) = join_normalized(&["templates"], name) {
            candidates.push(candidate);
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
    pub(crate) fn check_macro_recursion(&self) -> Result<(), RenderError> {
        /// A macro: (canonical id of its file, its name).
        type Node = (String, String);
        /// A call: the macro called, where (offset, file).
        type Edge = (Node, usize, String);
        let mut edges: BTreeMap<Node, Vec<Edge>> = BTreeMap::new();
        let mut all_units: Vec<(&str, &Unit)> = self
            .units
            .iter()
            .map(|(id, unit)| (id.as_str(), unit))
            .collect();
        if self.uses_builtin {
            all_units.push((BUILTIN_ID, &self.base.builtin));
        }
        for (id, unit) in &all_units {
            for call in &unit.prepared.calls {
                if let Some(caller) = &call.caller {
                    let callee = (call.library.clone(), call.name.clone());
                    edges
                        .entry((id.to_string(), caller.clone()))
                        .or_default()
                        .push((callee, call.offset, id.to_string()));
                }
            }
        }
        // Iterative depth-first search; a node on the stack is Visiting.
        #[derive(PartialEq)]
        enum Visit {
            Visiting,
            Done,
        }
        let mut state: HashMap<&Node, Visit> = HashMap::new();
        for start in edges.keys() {
            if state.contains_key(start) {
                continue;
            }
            let mut stack: Vec<(&Node, usize)> = vec![(start, 0)];
            state.insert(start, Visit::Visiting);
            while let Some((node, next_edge)) = stack.pop() {
                let edge = edges.get(node).and_then(|out| out.get(next_edge));
                let Some((target, at, in_file)) = edge else {
                    state.insert(node, Visit::Done);
                    continue;
                };
                stack.push((node, next_edge + 1));
                match state.get(target) {
                    Some(Visit::Visiting) => {
                        let cycle_start = stack
                            .iter()
                            .position(|(on_stack, _)| *on_stack == target)
                            .unwrap_or(0);
                        let mut names: Vec<String> = stack[cycle_start..]
                            .iter()
                            .map(|(on_stack, _)| on_stack.1.clone())
                            .collect();
                        names.push(target.1.clone());
                        let src = self.unit(in_file).map_or("", |unit| unit.src.as_str());
                        return Err(RenderError::at(
                            in_file,
                            src,
                            Some(*at),
                            "recursive macro",
                            format!("recursive macro call: {}", names.join(" -> ")),
                            Some("Tera 1 cannot bound recursion; unroll it or use a loop".into()),
                        ));
                    }
                    Some(Visit::Done) => {}
                    None => {
                        if let Some((key, _)) = edges.get_key_value(target) {
                            state.insert(key, Visit::Visiting);
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
    for segment in name.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            segment => parts.push(segment),
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(parts.join("/"))
}

/// `reference` in file `id` names nothing that exists: say what, and where it looked.
fn missing_ref_error(id: &str, src: &str, reference: &Ref, looked: &[String]) -> RenderError {
    let (what, construct) = match reference.kind {
        RefKind::Import { .. } => ("imported", "missing import"),
        RefKind::Include { .. } => ("included", "missing include"),
        RefKind::Extends => ("extended", "missing extends"),
    };
    let names: Vec<String> = reference
        .names
        .iter()
        .map(|(name, _)| format!("`{name}`"))
        .collect();
    let mut hint = format!("looked for {}", looked.join(", "));
    if !reference.names.iter().any(|(name, _)| name == BUILTIN_NAME) {
        hint.push_str(&format!(
            " (the built-in library provides only `{BUILTIN_NAME}`)"
        ));
    }
    RenderError::at(
        id,
        src,
        Some(reference.names[0].1),
        construct,
        format!("cannot find {} {what} by `{id}`", names.join(" or ")),
        Some(hint),
    )
}
