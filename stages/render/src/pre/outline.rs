//! The outline of one file, read before anything is resolved: the names it imports,
//! includes and extends (so the driver can find them) and the macros it defines
//! with their parameters (so calls elsewhere can name positional arguments). Not the
//! rewriting, which needs the resolved names (see `rewriter.rs`).

use super::PreError;
use crate::scan::{self, matching, split_commas, Item, ItemKind, Tok, TokKind};

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
    /// Index of the tag in [`Scanned::items`].
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

/// Words of Tera's expression grammar that are not names of anything.
pub(super) fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "and" | "or" | "not" | "in" | "is" | "if" | "elif" | "for" | "set" | "set_global"
    )
}

/// Lexes `src` and outlines it: its references and its macro signatures.
pub fn scan_file(src: &str) -> Result<Scanned, PreError> {
    let items = scan::scan(src)?;
    let mut refs = Vec::new();
    let mut sigs: Vec<MacroSig> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        if item.kind != ItemKind::Stmt {
            continue;
        }
        let kind_and_names = match item.keyword(src) {
            Some("import") => Some(import_ref(src, item)?),
            Some("extends") => Some(extends_ref(src, item)?),
            Some("include") => Some(include_ref(src, item)?),
            Some("macro") => {
                if let Some((sig, _)) = parse_macro_def(src, &item.toks)? {
                    if sigs.iter().any(|known| known.name == sig.name) {
                        return Err(PreError::new(
                            item.toks[1].start,
                            "duplicate macro",
                            format!("macro `{}` is defined twice", sig.name),
                        ));
                    }
                    sigs.push(sig);
                }
                None
            }
            _ => None,
        };
        if let Some((kind, names)) = kind_and_names {
            refs.push(Ref {
                item: index,
                kind,
                names,
            });
        }
    }
    Ok(Scanned { items, refs, sigs })
}

type RefParts = (RefKind, Vec<(String, usize)>);

/// `{% import "NAME" as ns %}`
fn import_ref(src: &str, item: &Item) -> Result<RefParts, PreError> {
    let toks = &item.toks;
    let well_formed = toks.len() == 4
        && toks[1].kind == TokKind::Str
        && toks[2].is(src, "as")
        && toks[3].kind == TokKind::Ident;
    if !well_formed {
        return Err(
            PreError::new(item.start, "malformed import", "malformed `import` tag")
                .with_hint("write it as {% import \"NAME\" as ns %}"),
        );
    }
    let alias = toks[3].text(src).to_string();
    Ok((RefKind::Import { alias }, vec![string_arg(src, &toks[1])]))
}

/// `{% extends "NAME" %}`
fn extends_ref(src: &str, item: &Item) -> Result<RefParts, PreError> {
    let toks = &item.toks;
    if toks.len() != 2 || toks[1].kind != TokKind::Str {
        return Err(PreError::new(
            item.start,
            "malformed extends",
            "malformed `extends` tag: {% extends \"NAME\" %}",
        ));
    }
    Ok((RefKind::Extends, vec![string_arg(src, &toks[1])]))
}

/// `{% include "NAME" %}` or `{% include ["A", "B"] %}`, optionally `ignore missing`.
fn include_ref(src: &str, item: &Item) -> Result<RefParts, PreError> {
    let toks = &item.toks;
    let mut names = Vec::new();
    let mut after_names = 1;
    if toks.get(1).is_some_and(|tok| tok.kind == TokKind::Str) {
        names.push(string_arg(src, &toks[1]));
        after_names = 2;
    } else if toks.get(1).is_some_and(|tok| tok.is(src, "[")) {
        let close = matching(src, toks, 1).unwrap_or(toks.len());
        for (lo, hi) in split_commas(src, toks, 2, close) {
            if hi != lo + 1 || toks[lo].kind != TokKind::Str {
                return Err(PreError::new(
                    toks[lo].start,
                    "malformed include",
                    "an include list holds string literals only",
                ));
            }
            names.push(string_arg(src, &toks[lo]));
        }
        after_names = close + 1;
    }
    let rest: Vec<&str> = toks[after_names.min(toks.len())..]
        .iter()
        .map(|tok| tok.text(src))
        .collect();
    let ignore_missing = match rest.as_slice() {
        [] => false,
        ["ignore", "missing"] => true,
        _ => {
            return Err(PreError::new(
                item.start,
                "malformed include",
                "malformed `include` tag: {% include \"NAME\" [ignore missing] %}",
            ))
        }
    };
    if names.is_empty() {
        return Err(PreError::new(
            item.start,
            "malformed include",
            "`include` needs a file name as a string literal",
        ));
    }
    Ok((RefKind::Include { ignore_missing }, names))
}

/// A template name given as a string literal, with the literal's offset.
fn string_arg(src: &str, tok: &Tok) -> (String, usize) {
    (tok.str_value(src).to_string(), tok.start)
}

/// A parameter default that Tera 1 cannot express: the parameter and the token
/// range of its default.
pub(super) struct DeferredDefault {
    pub param: String,
    pub lo: usize,
    pub hi: usize,
}

/// `macro NAME ( params )`: the signature and the defaults that need a prologue.
/// `None` when the tag is too malformed to read (Tera will report it).
pub(super) fn parse_macro_def(
    src: &str,
    toks: &[Tok],
) -> Result<Option<(MacroSig, Vec<DeferredDefault>)>, PreError> {
    if toks.len() < 4 || toks[1].kind != TokKind::Ident || !toks[2].is(src, "(") {
        return Ok(None);
    }
    let Some(close) = matching(src, toks, 2) else {
        return Ok(None);
    };
    let mut params: Vec<(String, bool)> = Vec::new();
    let mut deferred = Vec::new();
    for (lo, hi) in split_commas(src, toks, 3, close) {
        if toks[lo].kind != TokKind::Ident {
            return Ok(None);
        }
        let name = toks[lo].text(src).to_string();
        if params.iter().any(|(known, _)| *known == name) {
            return Err(PreError::new(
                toks[lo].start,
                "duplicate macro parameter",
                format!("parameter `{name}` is declared twice"),
            ));
        }
        let has_default = hi > lo + 1;
        if has_default {
            if !toks[lo + 1].is(src, "=") || hi == lo + 2 {
                return Ok(None);
            }
            if !is_literal(src, &toks[lo + 2..hi]) {
                deferred.push(DeferredDefault {
                    param: name.clone(),
                    lo: lo + 2,
                    hi,
                });
            }
        }
        params.push((name, has_default));
    }
    Ok(Some((
        MacroSig {
            name: toks[1].text(src).to_string(),
            params,
        },
        deferred,
    )))
}

/// A default Tera 1 accepts: a string, number or boolean literal.
fn is_literal(src: &str, toks: &[Tok]) -> bool {
    match toks {
        [tok] => {
            matches!(tok.kind, TokKind::Str | TokKind::Num)
                || matches!(tok.text(src), "true" | "false" | "True" | "False")
        }
        [minus, number] => {
            minus.is(src, "-") && number.kind == TokKind::Num && minus.end == number.start
        }
        _ => false,
    }
}
