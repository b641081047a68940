//! The preprocessing pass: clnrm's template dialect in, Tera 1 text out, with a map
//! from every output byte back to the user's original text.
//!
//! It also collects what the driver needs: the names a file imports, includes and
//! extends (to resolve them), the macros it defines (for positional arguments), the
//! macro calls it makes (to refuse recursion), and the identifiers it mentions (to
//! read only the default variables a template can see). It resolves nothing itself:
//! the driver (`driver.rs`) finds the files and hands the result in.
//!
//! This file holds the entry point and the order of tags (hoisting); the rooms:
//! `outline` (what a file refers to and defines), `rewriter` (tags and
//! expressions), `literals` (map and array literals), `macro_call` (calls of
//! macros), `source_map` (output offsets back to the original).

mod literals;
mod macro_call;
mod outline;
mod rewriter;
mod source_map;

use std::collections::{BTreeSet, HashMap};

use crate::scan::{self, Item, ItemKind};
pub use outline::{scan_file, MacroSig, Ref, RefKind, Scanned};
use rewriter::Rewriter;
pub use source_map::MappedText;

/// A problem at a byte offset of the file being preprocessed.
#[derive(Debug, Clone)]
pub struct PreError {
    pub offset: usize,
    pub construct: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

impl PreError {
    pub(crate) fn new(offset: usize, construct: &'static str, message: impl Into<String>) -> Self {
        PreError {
            offset,
            construct,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn with_hint(self, hint: impl Into<String>) -> Self {
        PreError {
            hint: Some(hint.into()),
            ..self
        }
    }
}

impl From<scan::ScanError> for PreError {
    fn from(e: scan::ScanError) -> Self {
        PreError::new(e.offset, e.construct, e.message)
    }
}

/// A library visible under a namespace: its id and signatures.
pub struct Lib<'a> {
    pub id: &'a str,
    pub sigs: &'a [MacroSig],
}

/// A macro call found in a file.
#[derive(Debug, Clone)]
pub struct MacroCall {
    /// The macro of this file whose body makes the call (`None` at top level).
    pub caller: Option<String>,
    /// Canonical id of the library that defines the called macro.
    pub library: String,
    pub name: String,
    /// Byte offset of the call in this file.
    pub offset: usize,
}

/// One file, preprocessed.
pub struct Prepared {
    pub mapped: MappedText,
    /// Identifiers that may name a context variable.
    pub idents: BTreeSet<String>,
    pub calls: Vec<MacroCall>,
    /// Which dialect extensions this file needed.
    pub extensions: BTreeSet<&'static str>,
}

/// What the driver resolved for each reference, keyed by [`Item::item_key`]: per
/// name, the canonical id (or `None` when missing and `ignore missing` applies).
pub type Resolved = HashMap<usize, Vec<Option<String>>>;

pub const EXT_HOIST: &str = "hoisted import";
pub const EXT_POSITIONAL: &str = "positional macro arguments";
pub const EXT_MAP: &str = "map literals";
pub const EXT_NESTED_ARRAY: &str = "nested array literals";
pub const EXT_DEFAULT: &str = "non-literal macro defaults";
pub const EXT_PAREN_FILTER: &str = "filter on parenthesised expression";
pub const EXT_INTERP: &str = "{{ }} inside a macro argument string";
pub const EXT_EMPTY_TAG: &str = "empty {{ }} kept as text";

impl Item {
    /// Items are keyed by their start offset in [`Resolved`].
    pub fn item_key(&self) -> usize {
        self.start
    }
}

/// Rewrites scanned file `src` (canonical id `self_id`) into Tera 1 text, given
/// what its references resolved to and the libraries its namespaces name.
pub fn rewrite(
    src: &str,
    self_id: &str,
    scanned: &Scanned,
    resolved: &Resolved,
    libs: &HashMap<String, Lib<'_>>,
) -> Result<Prepared, PreError> {
    let items = &scanned.items;
    let mut prepared = Prepared {
        mapped: MappedText::with_capacity(src.len() + 64, items.len() * 2),
        idents: BTreeSet::new(),
        calls: Vec::new(),
        extensions: BTreeSet::new(),
    };
    let order = match hoisted_order(src, items)? {
        Some(order) => {
            prepared.extensions.insert(EXT_HOIST);
            order
        }
        None => (0..items.len()).collect(),
    };
    let ref_of: HashMap<usize, &Ref> = scanned.refs.iter().map(|r| (r.item, r)).collect();
    let mut rewriter = Rewriter::new(src, self_id, libs, &scanned.sigs, &mut prepared);
    for index in order {
        let item = &items[index];
        rewriter.cursor = item.start;
        match item.kind {
            ItemKind::Text | ItemKind::Comment | ItemKind::Raw => rewriter.copy_to(item.end),
            ItemKind::Expr | ItemKind::Stmt => {
                rewriter.tag(item, ref_of.get(&index).copied(), resolved)?
            }
        }
    }
    Ok(prepared)
}

/// The order to emit items in when an `import` / `extends` stands after content
/// (Tera 1 allows them only before any): extends first, then imports, in file
/// order, then everything else. `None` when Tera 1 accepts the file as it is.
fn hoisted_order(src: &str, items: &[Item]) -> Result<Option<Vec<usize>>, PreError> {
    let mut depth = 0usize;
    let mut seen_content = false; // content Tera 1 does not allow before imports
    let mut seen_import = false;
    let mut needs_hoist = false;
    let mut hoisted: Vec<usize> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let keyword = if item.kind == ItemKind::Stmt {
            item.keyword(src)
        } else {
            None
        };
        match keyword {
            Some(word @ ("import" | "extends")) => {
                if depth > 0 {
                    return Err(PreError::new(
                        item.start,
                        "import inside a block",
                        format!("`{word}` inside a {{% if/for/macro/block %}} is not allowed"),
                    )
                    .with_hint("move it to the top of the file"));
                }
                needs_hoist |= seen_content;
                seen_import = true;
                hoisted.push(index);
            }
            Some("if" | "for" | "block" | "macro" | "filter") => {
                depth += 1;
                seen_content = true;
            }
            Some("endif" | "endfor" | "endblock" | "endmacro" | "endfilter") => {
                depth = depth.saturating_sub(1);
                seen_content = true;
            }
            _ => match item.kind {
                ItemKind::Text if src[item.start..item.end].trim().is_empty() => {}
                ItemKind::Comment if !seen_import => {}
                _ => seen_content = true,
            },
        }
    }
    if !needs_hoist {
        return Ok(None);
    }
    hoisted.sort_by_key(|&index| (items[index].keyword(src) != Some("extends"), index));
    let rest = (0..items.len()).filter(|index| !hoisted.contains(index));
    Ok(Some(hoisted.iter().copied().chain(rest).collect()))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The Tera 1 text `src` becomes, with no references resolved.
    pub(crate) fn preprocess(src: &str) -> Result<String, PreError> {
        let scanned = scan_file(src)?;
        let libs = HashMap::new();
        Ok(rewrite(src, "t", &scanned, &Resolved::new(), &libs)?
            .mapped
            .text)
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
}
