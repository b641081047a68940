//! The preprocessing pass: clnrm's template dialect in, Tera 1 text out, with a map
//! from every output byte back to the user's original text.
//!
//! It also collects what the driver needs: the names a file imports, includes and
//! extends (to resolve them), the macros it defines (for positional arguments), the
//! macro calls it makes (to refuse recursion), and the identifiers it mentions (to
//! read only the default variables a template can see).

use std::collections::{BTreeSet, HashMap};

use crate::fns::UNSET;
use crate::scan::{self, matching, split_commas, Item, ItemKind, Tok, TokKind};

/// A problem at a byte offset of the file being preprocessed.
#[derive(Debug, Clone)]
pub struct PreError {
    pub offset: usize,
    pub construct: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

impl From<scan::ScanError> for PreError {
    fn from(e: scan::ScanError) -> Self {
        PreError {
            offset: e.offset,
            construct: e.construct,
            message: e.message,
            hint: None,
        }
    }
}

fn perr(offset: usize, construct: &'static str, message: impl Into<String>) -> PreError {
    PreError {
        offset,
        construct,
        message: message.into(),
        hint: None,
    }
}

// ---------------------------------------------------------------------------
// Output with a map back to the original text

#[derive(Debug, Clone, Copy)]
struct Seg {
    out: usize,
    orig: usize,
    copied: bool,
}

/// Preprocessed text and its map to original byte offsets.
#[derive(Debug, Clone, Default)]
pub struct Mapped {
    pub text: String,
    segs: Vec<Seg>,
}

impl Mapped {
    fn copy(&mut self, src: &str, from: usize, to: usize) {
        if to > from {
            self.segs.push(Seg {
                out: self.text.len(),
                orig: from,
                copied: true,
            });
            self.text.push_str(&src[from..to]);
        }
    }
    fn synth(&mut self, s: &str, at: usize) {
        if !s.is_empty() {
            self.segs.push(Seg {
                out: self.text.len(),
                orig: at,
                copied: false,
            });
            self.text.push_str(s);
        }
    }
    /// Original byte offset of output byte offset `out`.
    pub fn to_orig(&self, out: usize) -> usize {
        let i = self.segs.partition_point(|s| s.out <= out);
        if i == 0 {
            return 0;
        }
        let s = self.segs[i - 1];
        if s.copied {
            s.orig + (out - s.out)
        } else {
            s.orig
        }
    }
}

// ---------------------------------------------------------------------------
// What a file refers to

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefKind {
    Import { alias: String },
    Include { ignore_missing: bool },
    Extends,
}

/// One `import` / `include` / `extends` tag: the names it gives (several for an
/// include list), each with the offset of its string literal.
#[derive(Debug, Clone)]
pub struct Ref {
    pub item: usize,
    pub kind: RefKind,
    pub names: Vec<(String, usize)>,
}

/// A macro's signature: parameter names and whether each has a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroSig {
    pub name: String,
    pub params: Vec<(String, bool)>,
}

/// A scanned file, before its references are resolved.
pub struct Scanned {
    pub items: Vec<Item>,
    pub refs: Vec<Ref>,
    pub sigs: Vec<MacroSig>,
}

fn is_keyword(s: &str) -> bool {
    matches!(
        s,
        "and" | "or" | "not" | "in" | "is" | "if" | "elif" | "for" | "set" | "set_global"
    )
}

pub fn scan_file(src: &str) -> Result<Scanned, PreError> {
    let items = scan::scan(src)?;
    let mut refs = Vec::new();
    let mut sigs = Vec::new();
    for (idx, item) in items.iter().enumerate() {
        if item.kind != ItemKind::Stmt {
            continue;
        }
        let t = &item.toks;
        match item.keyword(src) {
            Some("import") => {
                let ok = t.len() == 4
                    && t[1].kind == TokKind::Str
                    && t[2].is(src, "as")
                    && t[3].kind == TokKind::Ident;
                if !ok {
                    return Err(PreError {
                        hint: Some("write it as {% import \"NAME\" as ns %}".into()),
                        ..perr(item.start, "malformed import", "malformed `import` tag")
                    });
                }
                refs.push(Ref {
                    item: idx,
                    kind: RefKind::Import {
                        alias: t[3].text(src).to_string(),
                    },
                    names: vec![(t[1].str_value(src).to_string(), t[1].start)],
                });
            }
            Some("extends") => {
                if t.len() != 2 || t[1].kind != TokKind::Str {
                    return Err(perr(
                        item.start,
                        "malformed extends",
                        "malformed `extends` tag: {% extends \"NAME\" %}",
                    ));
                }
                refs.push(Ref {
                    item: idx,
                    kind: RefKind::Extends,
                    names: vec![(t[1].str_value(src).to_string(), t[1].start)],
                });
            }
            Some("include") => {
                let mut names = Vec::new();
                let mut i = 1;
                if t.get(1).is_some_and(|x| x.kind == TokKind::Str) {
                    names.push((t[1].str_value(src).to_string(), t[1].start));
                    i = 2;
                } else if t.get(1).is_some_and(|x| x.is(src, "[")) {
                    let close = matching(src, t, 1).unwrap_or(t.len());
                    for (lo, hi) in split_commas(src, t, 2, close) {
                        if hi != lo + 1 || t[lo].kind != TokKind::Str {
                            return Err(perr(
                                t[lo].start,
                                "malformed include",
                                "an include list holds string literals only",
                            ));
                        }
                        names.push((t[lo].str_value(src).to_string(), t[lo].start));
                    }
                    i = close + 1;
                }
                let rest: Vec<&str> = t[i.min(t.len())..].iter().map(|x| x.text(src)).collect();
                let ignore_missing = match rest.as_slice() {
                    [] => false,
                    ["ignore", "missing"] => true,
                    _ => {
                        return Err(perr(
                            item.start,
                            "malformed include",
                            "malformed `include` tag: {% include \"NAME\" [ignore missing] %}",
                        ))
                    }
                };
                if names.is_empty() {
                    return Err(perr(
                        item.start,
                        "malformed include",
                        "`include` needs a file name as a string literal",
                    ));
                }
                refs.push(Ref {
                    item: idx,
                    kind: RefKind::Include { ignore_missing },
                    names,
                });
            }
            Some("macro") => {
                if let Some((sig, _)) = parse_macro_def(src, t)? {
                    if sigs.iter().any(|s: &MacroSig| s.name == sig.name) {
                        return Err(perr(
                            t[1].start,
                            "duplicate macro",
                            format!("macro `{}` is defined twice", sig.name),
                        ));
                    }
                    sigs.push(sig);
                }
            }
            _ => {}
        }
    }
    Ok(Scanned { items, refs, sigs })
}

/// A parameter default that Tera 1 cannot express: (param, token range of the default).
type DeferredDefault = (String, usize, usize);

/// `macro NAME ( params )`: the signature and the defaults that need a prologue.
/// `None` when the tag is too malformed to read (Tera will report it).
fn parse_macro_def(
    src: &str,
    t: &[Tok],
) -> Result<Option<(MacroSig, Vec<DeferredDefault>)>, PreError> {
    if t.len() < 4 || t[1].kind != TokKind::Ident || !t[2].is(src, "(") {
        return Ok(None);
    }
    let Some(close) = matching(src, t, 2) else {
        return Ok(None);
    };
    let mut params = Vec::new();
    let mut deferred = Vec::new();
    for (lo, hi) in split_commas(src, t, 3, close) {
        if t[lo].kind != TokKind::Ident {
            return Ok(None);
        }
        let name = t[lo].text(src).to_string();
        if params.iter().any(|(n, _): &(String, bool)| *n == name) {
            return Err(perr(
                t[lo].start,
                "duplicate macro parameter",
                format!("parameter `{name}` is declared twice"),
            ));
        }
        let has_default = hi > lo + 1;
        if has_default {
            if !t[lo + 1].is(src, "=") || hi == lo + 2 {
                return Ok(None);
            }
            if !is_literal(src, &t[lo + 2..hi]) {
                deferred.push((name.clone(), lo + 2, hi));
            }
        }
        params.push((name, has_default));
    }
    Ok(Some((
        MacroSig {
            name: t[1].text(src).to_string(),
            params,
        },
        deferred,
    )))
}

/// A default Tera 1 accepts: a string, number or boolean literal.
fn is_literal(src: &str, t: &[Tok]) -> bool {
    match t {
        [x] => {
            matches!(x.kind, TokKind::Str | TokKind::Num)
                || matches!(x.text(src), "true" | "false" | "True" | "False")
        }
        [m, n] => m.is(src, "-") && n.kind == TokKind::Num && m.end == n.start,
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Rewriting

/// A library visible under a namespace: its id and signatures.
pub struct Lib<'a> {
    pub id: &'a str,
    pub sigs: &'a [MacroSig],
}

/// A macro call found in a file: (enclosing macro of this file, target library id, macro).
pub type Call = (Option<String>, String, String, usize);

pub struct Prepared {
    pub mapped: Mapped,
    pub idents: BTreeSet<String>,
    pub calls: Vec<Call>,
    /// Which dialect extensions this file needed.
    pub extensions: BTreeSet<&'static str>,
}

/// What the driver resolved for each reference: per name, the canonical id (or
/// `None` when missing and `ignore missing` applies).
pub type Resolved = HashMap<usize, Vec<Option<String>>>;

pub const EXT_HOIST: &str = "hoisted import";
pub const EXT_POSITIONAL: &str = "positional macro arguments";
pub const EXT_MAP: &str = "map literals";
pub const EXT_NESTED_ARRAY: &str = "nested array literals";
pub const EXT_DEFAULT: &str = "non-literal macro defaults";
pub const EXT_PAREN_FILTER: &str = "filter on parenthesised expression";
pub const EXT_INTERP: &str = "{{ }} inside a macro argument string";
pub const EXT_EMPTY_TAG: &str = "empty {{ }} kept as text";

pub fn rewrite(
    src: &str,
    self_id: &str,
    scanned: &Scanned,
    resolved: &Resolved,
    libs: &HashMap<String, Lib<'_>>,
) -> Result<Prepared, PreError> {
    let items = &scanned.items;
    let mut p = Prepared {
        mapped: Mapped {
            text: String::with_capacity(src.len() + 64),
            segs: Vec::with_capacity(items.len() * 2),
        },
        idents: BTreeSet::new(),
        calls: Vec::new(),
        extensions: BTreeSet::new(),
    };
    let ref_of: HashMap<usize, &Ref> = scanned.refs.iter().map(|r| (r.item, r)).collect();

    // Where imports and extends are, and whether Tera 1 accepts them there.
    let mut depth = 0usize;
    let mut seen_other = false; // content Tera 1 does not allow before imports
    let mut seen_top = false;
    let mut needs_hoist = false;
    let mut hoisted: Vec<usize> = Vec::new();
    for (idx, item) in items.iter().enumerate() {
        let kw = if item.kind == ItemKind::Stmt {
            item.keyword(src)
        } else {
            None
        };
        match kw {
            Some("import" | "extends") => {
                if depth > 0 {
                    return Err(PreError {
                        hint: Some("move it to the top of the file".into()),
                        ..perr(
                            item.start,
                            "import inside a block",
                            format!(
                                "`{}` inside a {{% if/for/macro/block %}} is not allowed",
                                kw.unwrap_or_default()
                            ),
                        )
                    });
                }
                if seen_other {
                    needs_hoist = true;
                }
                seen_top = true;
                hoisted.push(idx);
            }
            Some("if" | "for" | "block" | "macro" | "filter") => {
                depth += 1;
                seen_other = true;
            }
            Some("endif" | "endfor" | "endblock" | "endmacro" | "endfilter") => {
                depth = depth.saturating_sub(1);
                seen_other = true;
            }
            _ => match item.kind {
                ItemKind::Text if src[item.start..item.end].trim().is_empty() => {}
                ItemKind::Comment if !seen_top => {}
                _ => seen_other = true,
            },
        }
    }
    if needs_hoist {
        p.extensions.insert(EXT_HOIST);
        // extends first, then imports, in file order
        hoisted.sort_by_key(|&i| (items[i].keyword(src) != Some("extends"), i));
    }

    let mut rw = Rw {
        src,
        self_id,
        libs,
        sigs: &scanned.sigs,
        p: &mut p,
        cursor: 0,
        toks: &[],
        current_macro: None,
        current_params: Vec::new(),
    };

    let order: Vec<usize> = if needs_hoist {
        hoisted
            .iter()
            .copied()
            .chain((0..items.len()).filter(|i| !hoisted.contains(i)))
            .collect()
    } else {
        (0..items.len()).collect()
    };
    for idx in order {
        let item = &items[idx];
        rw.cursor = item.start;
        match item.kind {
            ItemKind::Text | ItemKind::Comment | ItemKind::Raw => rw.copy_to(item.end),
            ItemKind::Expr | ItemKind::Stmt => rw.tag(item, ref_of.get(&idx).copied(), resolved)?,
        }
    }
    Ok(p)
}

struct Rw<'s, 'p> {
    src: &'s str,
    self_id: &'s str,
    libs: &'s HashMap<String, Lib<'s>>,
    sigs: &'s [MacroSig],
    p: &'p mut Prepared,
    cursor: usize,
    toks: &'s [Tok],
    current_macro: Option<String>,
    /// Parameters of the macro being defined: inside its body these names are the
    /// arguments, not context variables.
    current_params: Vec<String>,
}

fn quote(id: &str) -> String {
    for q in ['"', '\'', '`'] {
        if !id.contains(q) {
            return format!("{q}{id}{q}");
        }
    }
    format!("\"{}\"", id.replace('"', ""))
}

impl<'s> Rw<'s, '_> {
    fn copy_to(&mut self, to: usize) {
        if to > self.cursor {
            self.p.mapped.copy(self.src, self.cursor, to);
            self.cursor = to;
        }
    }
    fn synth(&mut self, s: &str, at: usize) {
        self.p.mapped.synth(s, at);
    }
    fn t(&self, i: usize) -> &'s Tok {
        &self.toks[i]
    }
    fn is(&self, i: usize, s: &str) -> bool {
        self.toks.get(i).is_some_and(|t| t.is(self.src, s))
    }

    fn tag(
        &mut self,
        item: &'s Item,
        r: Option<&Ref>,
        resolved: &Resolved,
    ) -> Result<(), PreError> {
        self.toks = &item.toks;
        if item.kind == ItemKind::Stmt && item.keyword(self.src) == Some("macro") {
            if let Ok(Some((sig, _))) = parse_macro_def(self.src, &item.toks) {
                self.current_params = sig.params.into_iter().map(|(n, _)| n).collect();
            }
        }
        // Identifiers that may name a context variable: not a function, filter or
        // macro name, not a keyword argument name, not an attribute, not a parameter
        // of the macro being defined.
        let toks = &item.toks;
        for (k, t) in toks.iter().enumerate() {
            let text = t.text(self.src);
            let prev = |s: &str| k > 0 && toks[k - 1].is(self.src, s);
            let next = |s: &str| toks.get(k + 1).is_some_and(|n| n.is(self.src, s));
            if t.kind == TokKind::Ident
                && !(next("(") || next("::") || next("=") || prev("|") || prev("::") || prev("."))
                && !self.current_params.iter().any(|p| p == text)
            {
                self.p.idents.insert(text.to_string());
            }
        }
        if item.kind == ItemKind::Expr && item.toks.is_empty() {
            // `{{ }}` means nothing in Tera 1 (a parse error); in clnrm's templates it
            // is prose (a TOML comment about templates): keep it as text.
            self.p.extensions.insert(EXT_EMPTY_TAG);
            self.synth(
                &format!("{{{{ {} }}}}", quote(&self.src[item.start..item.end])),
                item.start,
            );
            self.cursor = item.end;
            return Ok(());
        }
        if let Some(r) = r {
            return self.ref_tag(item, r, resolved.get(&item.item_key()).map(Vec::as_slice));
        }
        match item.keyword(self.src) {
            Some("macro") if item.kind == ItemKind::Stmt => return self.macro_def(item),
            Some("endmacro") if item.kind == ItemKind::Stmt => {
                self.current_macro = None;
                self.current_params.clear();
            }
            _ => {}
        }
        if !item.toks.is_empty() {
            self.range(0, item.toks.len())?;
        }
        self.copy_to(item.end);
        Ok(())
    }

    fn ref_tag(
        &mut self,
        item: &'s Item,
        r: &Ref,
        resolved: Option<&[Option<String>]>,
    ) -> Result<(), PreError> {
        let ids: Vec<&String> = resolved.unwrap_or(&[]).iter().flatten().collect();
        if ids.is_empty() {
            // an include of nothing that exists, with `ignore missing`: drop the tag
            self.cursor = item.end;
            return Ok(());
        }
        let t = &item.toks;
        match &r.kind {
            RefKind::Import { .. } | RefKind::Extends => {
                self.copy_to(t[1].start);
                self.synth(&quote(ids[0]), t[1].start);
                self.cursor = t[1].end;
            }
            RefKind::Include { .. } => {
                // Resolution stopped at the first name found, so one id: name it alone
                // (Tera renders the first existing name of a list; this is it).
                let last_name = if t[1].is(self.src, "[") {
                    matching(self.src, t, 1).unwrap_or(1)
                } else {
                    1
                };
                self.copy_to(t[1].start);
                self.synth(&quote(ids[0]), t[1].start);
                self.cursor = t[last_name].end;
                if t.len() > last_name + 1 {
                    // `ignore missing`: it was resolved, no longer needed
                    self.cursor = t[t.len() - 1].end;
                }
            }
        }
        self.copy_to(item.end);
        Ok(())
    }

    fn macro_def(&mut self, item: &'s Item) -> Result<(), PreError> {
        let t = &item.toks;
        let Some((sig, deferred)) = parse_macro_def(self.src, t)? else {
            self.copy_to(item.end);
            return Ok(());
        };
        self.current_macro = Some(sig.name.clone());
        self.current_params = sig.params.iter().map(|(n, _)| n.clone()).collect();
        for (_, lo, hi) in &deferred {
            self.p.extensions.insert(EXT_DEFAULT);
            // `name=<expr>` becomes `name="__clnrm_unset__"`
            self.copy_to(t[*lo].start);
            self.synth(&quote(UNSET), t[*lo].start);
            self.cursor = t[hi - 1].end;
        }
        self.copy_to(item.end);
        // The prologue sets the real default when the caller gave none.
        let trim = self.src[item.inner_end..item.end].starts_with('-');
        let n = deferred.len();
        for (k, (name, lo, hi)) in deferred.into_iter().enumerate() {
            let at = t[lo].start;
            self.synth(
                &format!("{{% if {name} == {} %}}{{% set {name} = ", quote(UNSET)),
                at,
            );
            if hi == lo + 1 && t[lo].is(self.src, "none") {
                self.synth("__clnrm_none()", at);
            } else {
                let saved = self.cursor;
                self.cursor = at;
                self.value(lo, hi, false)?;
                self.cursor = saved;
            }
            let end = if trim && k + 1 == n { "-%}" } else { "%}" };
            self.synth(&format!(" %}}{{% endif {end}"), at);
        }
        Ok(())
    }

    /// Rewrites tokens `lo..hi`, copying the text between them.
    fn range(&mut self, lo: usize, hi: usize) -> Result<(), PreError> {
        let mut i = lo;
        while i < hi {
            let t = *self.t(i);
            if t.kind == TokKind::Ident
                && self.is(i + 1, "::")
                && self
                    .toks
                    .get(i + 2)
                    .is_some_and(|x| x.kind == TokKind::Ident)
                && self.is(i + 3, "(")
            {
                if let Some(close) = matching(self.src, self.toks, i + 3).filter(|&c| c < hi) {
                    self.macro_call(i, close)?;
                    i = close + 1;
                    continue;
                }
            }
            if t.kind == TokKind::Punct {
                match t.text(self.src) {
                    "{" => {
                        let close = self.close_of(i, hi, "map literal")?;
                        self.map_literal(i, close)?;
                        i = close + 1;
                        continue;
                    }
                    "[" if !self.is_subscript(i) => {
                        let close = self.close_of(i, hi, "array literal")?;
                        self.array(i, close, false)?;
                        i = close + 1;
                        continue;
                    }
                    "(" if !self.is_call_paren(i) => {
                        let close = self.close_of(i, hi, "parenthesis")?;
                        if self.is(close + 1, "|") && self.has_top_pipe(i + 1, close) {
                            if !self.is_filter_chain(i + 1, close) {
                                return Err(PreError {
                                    hint: Some(
                                        "Tera 1 applies a filter to one value: use {% set v = ... %} first"
                                            .into(),
                                    ),
                                    ..perr(
                                        t.start,
                                        "filter on parenthesised expression",
                                        "a filter applied to a parenthesised expression that holds operators",
                                    )
                                });
                            }
                            // `(x | f) | g` is `x | f | g`
                            self.p.extensions.insert(EXT_PAREN_FILTER);
                            self.copy_to(t.start);
                            self.cursor = self.t(i + 1).start;
                            self.range(i + 1, close)?;
                            self.cursor = self.t(close).end;
                            i = close + 1;
                            continue;
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        if hi > lo {
            self.copy_to(self.t(hi - 1).end);
        }
        Ok(())
    }

    fn close_of(&self, open: usize, hi: usize, what: &'static str) -> Result<usize, PreError> {
        matching(self.src, self.toks, open)
            .filter(|&c| c < hi)
            .ok_or_else(|| {
                perr(
                    self.t(open).start,
                    "unbalanced brackets",
                    format!("this {what} is never closed"),
                )
            })
    }

    /// `x[0]`: a `[` glued to an identifier or another subscript.
    fn is_subscript(&self, i: usize) -> bool {
        i > 0 && {
            let prev = self.t(i - 1);
            prev.end == self.t(i).start
                && (prev.kind == TokKind::Ident && !is_keyword(prev.text(self.src))
                    || prev.is(self.src, "]"))
        }
    }

    /// `f(...)`: a `(` after a function, filter, test or macro name.
    fn is_call_paren(&self, i: usize) -> bool {
        i > 0 && {
            let prev = self.t(i - 1);
            prev.kind == TokKind::Ident && !is_keyword(prev.text(self.src))
        }
    }

    fn has_top_pipe(&self, lo: usize, hi: usize) -> bool {
        let mut depth = 0usize;
        for i in lo..hi {
            let t = self.t(i);
            if t.kind != TokKind::Punct {
                continue;
            }
            match t.text(self.src) {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" | "}" => depth = depth.saturating_sub(1),
                "|" if depth == 0 => return true,
                _ => {}
            }
        }
        false
    }

    /// One operand followed by filters only: `a.b | f(x=1) | g`.
    fn is_filter_chain(&self, lo: usize, hi: usize) -> bool {
        let mut depth = 0usize;
        let mut after_pipe = false;
        for i in lo..hi {
            let t = self.t(i);
            let text = t.text(self.src);
            if depth > 0 {
                match text {
                    "(" | "[" | "{" if t.kind == TokKind::Punct => depth += 1,
                    ")" | "]" | "}" if t.kind == TokKind::Punct => depth -= 1,
                    _ => {}
                }
                continue;
            }
            match t.kind {
                TokKind::Ident if is_keyword(text) => return false,
                TokKind::Ident => {}
                TokKind::Str | TokKind::Num if !after_pipe => {}
                TokKind::Str | TokKind::Num => return false,
                TokKind::Punct => match text {
                    "(" | "[" => depth += 1,
                    "|" => after_pipe = true,
                    "." if !after_pipe => {}
                    "-" if i == lo => {}
                    _ => return false,
                },
            }
        }
        true
    }

    /// A value position (macro argument, map value, array element).
    fn value(&mut self, lo: usize, hi: usize, in_array: bool) -> Result<(), PreError> {
        if lo >= hi {
            return Ok(());
        }
        if self.is(lo, "[") && matching(self.src, self.toks, lo) == Some(hi - 1) {
            return self.array(lo, hi - 1, in_array);
        }
        self.range(lo, hi)
    }

    /// An array literal; `nested` (an element of another array, which Tera 1 does not
    /// parse) becomes `__clnrm_list(i0=..., ...)`.
    fn array(&mut self, open: usize, close: usize, nested: bool) -> Result<(), PreError> {
        let parts = split_commas(self.src, self.toks, open + 1, close);
        if !nested {
            self.copy_to(self.t(open).end);
            for (lo, hi) in parts {
                if lo == hi {
                    return Err(perr(
                        self.t(lo).start,
                        "array literal",
                        "empty array element",
                    ));
                }
                self.copy_to(self.t(lo).start);
                self.value(lo, hi, true)?;
            }
            self.copy_to(self.t(close).end);
            return Ok(());
        }
        self.p.extensions.insert(EXT_NESTED_ARRAY);
        let at = self.t(open).start;
        self.copy_to(at);
        self.synth("__clnrm_list(", at);
        for (n, (lo, hi)) in parts.into_iter().enumerate() {
            if lo == hi {
                return Err(perr(
                    self.t(lo).start,
                    "array literal",
                    "empty array element",
                ));
            }
            self.synth(
                &format!("{}i{n}=", if n > 0 { ", " } else { "" }),
                self.t(lo).start,
            );
            self.cursor = self.t(lo).start;
            self.value(lo, hi, true)?;
        }
        self.synth(")", self.t(close).start);
        self.cursor = self.t(close).end;
        Ok(())
    }

    /// `{"k": v, ...}` becomes `__clnrm_map(k0="k", v0=v, ...)`.
    fn map_literal(&mut self, open: usize, close: usize) -> Result<(), PreError> {
        self.p.extensions.insert(EXT_MAP);
        let at = self.t(open).start;
        self.copy_to(at);
        self.synth("__clnrm_map(", at);
        for (n, (lo, hi)) in split_commas(self.src, self.toks, open + 1, close)
            .into_iter()
            .enumerate()
        {
            let key = self.t(lo);
            if lo == hi || key.kind != TokKind::Str || !self.is(lo + 1, ":") || hi == lo + 2 {
                return Err(PreError {
                    hint: Some("write entries as \"key\": value".into()),
                    ..perr(
                        self.t(lo.min(close)).start,
                        "map literal",
                        "a map literal entry must be a quoted key, `:` and a value",
                    )
                });
            }
            let sep = if n > 0 { ", " } else { "" };
            self.synth(&format!("{sep}k{n}="), key.start);
            self.cursor = key.start;
            self.copy_to(key.end);
            self.synth(&format!(", v{n}="), self.t(lo + 2).start);
            self.cursor = self.t(lo + 2).start;
            self.value(lo + 2, hi, false)?;
        }
        self.synth(")", self.t(close).start);
        self.cursor = self.t(close).end;
        Ok(())
    }

    fn macro_call(&mut self, i: usize, close: usize) -> Result<(), PreError> {
        let src = self.src;
        let ns = self.t(i).text(src);
        let name = self.t(i + 2).text(src);
        let at = self.t(i).start;
        let (lib_id, sigs): (&str, &[MacroSig]) = if ns == "self" {
            (self.self_id, self.sigs)
        } else {
            match self.libs.get(ns) {
                Some(l) => (l.id, l.sigs),
                None => {
                    return Err(PreError {
                        hint: Some(format!(
                            "import a library first: {{% import \"_macros.toml.tera\" as {ns} %}}"
                        )),
                        ..perr(
                            at,
                            "unknown macro namespace",
                            format!("macro namespace `{ns}` is not imported in this file"),
                        )
                    })
                }
            }
        };
        let Some(sig) = sigs.iter().find(|s| s.name == name) else {
            let known: Vec<&str> = sigs.iter().map(|s| s.name.as_str()).collect();
            return Err(PreError {
                hint: Some(if known.is_empty() {
                    format!("`{lib_id}` defines no macros")
                } else {
                    format!("`{lib_id}` defines: {}", known.join(", "))
                }),
                ..perr(
                    at,
                    "unknown macro",
                    format!("macro `{name}` is not defined in `{lib_id}` (imported as `{ns}`)"),
                )
            });
        };
        self.p.calls.push((
            self.current_macro.clone(),
            lib_id.to_string(),
            name.to_string(),
            at,
        ));

        self.copy_to(self.t(i + 3).end);
        let mut given: Vec<&str> = Vec::new();
        let mut seen_keyword = false;
        for (k, (lo, hi)) in split_commas(src, self.toks, i + 4, close)
            .into_iter()
            .enumerate()
        {
            if lo == hi {
                return Err(perr(
                    self.t(lo).start,
                    "macro argument",
                    "empty macro argument",
                ));
            }
            let arg_at = self.t(lo).start;
            let keyword = self.t(lo).kind == TokKind::Ident && self.is(lo + 1, "=");
            let (param, vlo) = if keyword {
                seen_keyword = true;
                let p = self.t(lo).text(src);
                if !sig.params.iter().any(|(n, _)| n == p) {
                    return Err(PreError {
                        hint: Some(format!("its parameters: {}", param_list(sig))),
                        ..perr(
                            arg_at,
                            "unknown macro argument",
                            format!("macro `{ns}::{name}` has no parameter `{p}`"),
                        )
                    });
                }
                (p, lo + 2)
            } else {
                if seen_keyword {
                    return Err(perr(
                        arg_at,
                        "positional macro argument",
                        "a positional argument after a keyword argument",
                    ));
                }
                let Some((p, _)) = sig.params.get(k) else {
                    return Err(PreError {
                        hint: Some(format!("its parameters: {}", param_list(sig))),
                        ..perr(
                            arg_at,
                            "positional macro argument",
                            format!(
                                "macro `{ns}::{name}` takes {} argument(s), this is argument {}",
                                sig.params.len(),
                                k + 1
                            ),
                        )
                    });
                };
                self.p.extensions.insert(EXT_POSITIONAL);
                self.copy_to(arg_at);
                self.synth(&format!("{p}="), arg_at);
                (p.as_str(), lo)
            };
            if given.contains(&param) {
                return Err(perr(
                    arg_at,
                    "macro argument",
                    format!("argument `{param}` is given twice"),
                ));
            }
            given.push(param);
            if vlo >= hi {
                return Err(perr(arg_at, "macro argument", "argument without a value"));
            }
            self.copy_to(self.t(vlo).start);
            self.arg_value(vlo, hi)?;
        }
        if let Some((missing, _)) = sig
            .params
            .iter()
            .find(|(n, d)| !d && !given.contains(&n.as_str()))
        {
            return Err(PreError {
                hint: Some(format!("its parameters: {}", param_list(sig))),
                ..perr(
                    at,
                    "missing macro argument",
                    format!("macro `{ns}::{name}` needs argument `{missing}`"),
                )
            });
        }
        self.copy_to(self.t(close).end);
        Ok(())
    }

    /// A macro argument's value: a string holding `{{ path }}` is interpolated.
    fn arg_value(&mut self, lo: usize, hi: usize) -> Result<(), PreError> {
        let t = *self.t(lo);
        if hi == lo + 1 && t.kind == TokKind::Str {
            if let Some(expr) = interpolate(t.text(self.src)) {
                self.p.extensions.insert(EXT_INTERP);
                for tok in expr.split(" ~ ") {
                    if !tok.starts_with(['"', '\'', '`']) {
                        let root = tok.split('.').next().unwrap_or(tok);
                        self.p.idents.insert(root.to_string());
                    }
                }
                self.synth(&expr, t.start);
                self.cursor = t.end;
                return Ok(());
            }
        }
        self.value(lo, hi, false)
    }
}

impl Item {
    /// Items are keyed by their start offset in [`Resolved`].
    pub fn item_key(&self) -> usize {
        self.start
    }
}

fn param_list(sig: &MacroSig) -> String {
    sig.params
        .iter()
        .map(|(n, d)| if *d { format!("{n}=...") } else { n.clone() })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `"{{ svc }}.start"` becomes `svc ~ ".start"`; `None` when the string holds no
/// `{{ path }}` (a dotted identifier path) or holds anything else between `{{ }}`.
fn interpolate(lit: &str) -> Option<String> {
    let q = &lit[..1];
    let body = &lit[1..lit.len() - 1];
    if !body.contains("{{") {
        return None;
    }
    let mut parts: Vec<String> = Vec::new();
    let mut rest = body;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            parts.push(format!("{q}{}{q}", &rest[..open]));
        }
        let after = &rest[open + 2..];
        let close = after.find("}}")?;
        let path = after[..close].trim();
        let valid = !path.is_empty()
            && path.split('.').enumerate().all(|(i, seg)| {
                !seg.is_empty()
                    && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && (i > 0 || !seg.as_bytes()[0].is_ascii_digit())
            });
        if !valid {
            return None;
        }
        parts.push(path.to_string());
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        parts.push(format!("{q}{rest}{q}"));
    }
    if parts.len() == 1 {
        // keep it a string
        parts.push(format!("{q}{q}"));
    }
    Some(parts.join(" ~ "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pre(src: &str) -> Result<String, PreError> {
        let scanned = scan_file(src)?;
        let libs = HashMap::new();
        Ok(rewrite(src, "t", &scanned, &Resolved::new(), &libs)?
            .mapped
            .text)
    }

    #[test]
    fn interpolation() {
        assert_eq!(
            interpolate("\"{{ svc }}.start\"").unwrap(),
            "svc ~ \".start\""
        );
        assert_eq!(interpolate("'{{ a.b }}'").unwrap(), "a.b ~ ''");
        assert_eq!(
            interpolate("\"x{{a}}y{{ b }}\"").unwrap(),
            "\"x\" ~ a ~ \"y\" ~ b"
        );
        assert!(interpolate("\"{{ a + 1 }}\"").is_none());
        assert!(interpolate("\"plain\"").is_none());
        assert!(interpolate("\"{{ a \"").is_none());
    }

    #[test]
    fn map_literals_and_nested_arrays() {
        assert_eq!(
            pre(r#"{% set x = {"a": 1, "b": [[1, 2], {"c": d}]} %}"#).unwrap(),
            r#"{% set x = __clnrm_map(k0="a", v0=1, k1="b", v1=[__clnrm_list(i0=1, i1=2), __clnrm_map(k0="c", v0=d)]) %}"#
        );
        assert_eq!(pre("{{ f(x={}) }}").unwrap(), "{{ f(x=__clnrm_map()) }}");
    }

    #[test]
    fn paren_filter() {
        assert_eq!(
            pre(r#"{{ (a | default(value="b")) | slugify }}"#).unwrap(),
            r#"{{ a | default(value="b") | slugify }}"#
        );
        assert_eq!(
            pre("{{ (a + b) | round }}").unwrap(),
            "{{ (a + b) | round }}"
        );
        let e = pre("{{ (a | f + b) | g }}").unwrap_err();
        assert_eq!(e.construct, "filter on parenthesised expression");
    }

    #[test]
    fn hoists_imports_after_text_only() {
        let src = "# hi\n{% import \"x\" as m %}\nbody";
        let scanned = scan_file(src).unwrap();
        let mut resolved = Resolved::new();
        resolved.insert(scanned.items[1].start, vec![Some("lib/x".into())]);
        let out = rewrite(src, "t", &scanned, &resolved, &HashMap::new()).unwrap();
        assert_eq!(out.mapped.text, "{% import \"lib/x\" as m %}# hi\n\nbody");
        assert!(out.extensions.contains(EXT_HOIST));
        // `body` maps back to its original place
        let out_pos = out.mapped.text.find("body").unwrap();
        assert_eq!(out.mapped.to_orig(out_pos), src.find("body").unwrap());

        let src = "{# c #}\n{% import \"x\" as m %}\nbody";
        let scanned = scan_file(src).unwrap();
        let mut resolved = Resolved::new();
        resolved.insert(scanned.items[2].start, vec![Some("x".into())]);
        let out = rewrite(src, "t", &scanned, &resolved, &HashMap::new()).unwrap();
        assert_eq!(out.mapped.text, src);
        assert!(out.extensions.is_empty());
    }

    #[test]
    fn macro_defaults_get_a_prologue() {
        let out = pre("{% macro f(a, b={}, c=none) -%}x{% endmacro %}").unwrap();
        assert_eq!(
            out,
            "{% macro f(a, b=\"__clnrm_unset__\", c=\"__clnrm_unset__\") -%}\
             {% if b == \"__clnrm_unset__\" %}{% set b = __clnrm_map() %}{% endif %}\
             {% if c == \"__clnrm_unset__\" %}{% set c = __clnrm_none() %}{% endif -%}\
             x{% endmacro %}"
        );
    }
}
