//! The rewriter: walks the tags of one file and writes Tera 1 text, copying what
//! Tera 1 accepts and replacing what it does not (references by canonical ids, empty
//! `{{ }}`, non-literal macro defaults, filters on parenthesised chains). Literals
//! and macro calls are its other rooms (`literals.rs`, `macro_call.rs`); the order
//! of tags is decided in `mod.rs`.

use std::collections::HashMap;

use super::outline::{is_keyword, parse_macro_def, MacroSig, Ref, RefKind};
use super::{Lib, PreError, Prepared, Resolved, EXT_DEFAULT, EXT_EMPTY_TAG, EXT_PAREN_FILTER};
use crate::fns::UNSET;
use crate::scan::{matching, Item, ItemKind, Tok, TokKind};

/// Rewrites one file's tags into `out`, tracking the position in the original text
/// and the macro being defined.
pub(super) struct Rewriter<'s, 'p> {
    pub(super) src: &'s str,
    pub(super) self_id: &'s str,
    pub(super) libs: &'s HashMap<String, Lib<'s>>,
    /// Macros this file defines (for `self::name(...)` calls).
    pub(super) sigs: &'s [MacroSig],
    pub(super) out: &'p mut Prepared,
    /// Original text before this offset has been written.
    pub(super) cursor: usize,
    /// Tokens of the tag being rewritten.
    pub(super) toks: &'s [Tok],
    pub(super) current_macro: Option<String>,
    /// Parameters of the macro being defined: inside its body these names are the
    /// arguments, not context variables.
    current_params: Vec<String>,
}

/// `id` as a Tera string literal (Tera 1 strings have no escapes: pick a free quote).
fn quote(id: &str) -> String {
    for quote_char in ['"', '\'', '`'] {
        if !id.contains(quote_char) {
            return format!("{quote_char}{id}{quote_char}");
        }
    }
    format!("\"{}\"", id.replace('"', ""))
}

impl<'s, 'p> Rewriter<'s, 'p> {
    pub(super) fn new(
        src: &'s str,
        self_id: &'s str,
        libs: &'s HashMap<String, Lib<'s>>,
        sigs: &'s [MacroSig],
        out: &'p mut Prepared,
    ) -> Self {
        Rewriter {
            src,
            self_id,
            libs,
            sigs,
            out,
            cursor: 0,
            toks: &[],
            current_macro: None,
            current_params: Vec::new(),
        }
    }

    /// Copies the original text from the cursor up to `to`.
    pub(super) fn copy_to(&mut self, to: usize) {
        if to > self.cursor {
            self.out.mapped.copy(self.src, self.cursor, to);
            self.cursor = to;
        }
    }

    /// Writes text that replaces the construct at original offset `at`.
    pub(super) fn synth(&mut self, text: &str, at: usize) {
        self.out.mapped.synth(text, at);
    }

    /// Token `index` of the current tag.
    pub(super) fn tok(&self, index: usize) -> &'s Tok {
        &self.toks[index]
    }

    /// Whether token `index` of the current tag exists and is the non-string `text`.
    pub(super) fn tok_is(&self, index: usize, text: &str) -> bool {
        self.toks
            .get(index)
            .is_some_and(|tok| tok.is(self.src, text))
    }

    /// One `{{ }}` or `{% %}` tag.
    pub(super) fn tag(
        &mut self,
        item: &'s Item,
        reference: Option<&Ref>,
        resolved: &Resolved,
    ) -> Result<(), PreError> {
        self.toks = &item.toks;
        if item.kind == ItemKind::Stmt && item.keyword(self.src) == Some("macro") {
            if let Ok(Some((sig, _))) = parse_macro_def(self.src, &item.toks) {
                self.current_params = sig.params.into_iter().map(|(name, _)| name).collect();
            }
        }
        self.collect_idents(&item.toks);
        if item.kind == ItemKind::Expr && item.toks.is_empty() {
            // `{{ }}` means nothing in Tera 1 (a parse error); in clnrm's templates it
            // is prose (a TOML comment about templates): keep it as text.
            self.out.extensions.insert(EXT_EMPTY_TAG);
            self.synth(
                &format!("{{{{ {} }}}}", quote(&self.src[item.start..item.end])),
                item.start,
            );
            self.cursor = item.end;
            return Ok(());
        }
        if let Some(reference) = reference {
            let ids = resolved.get(&item.item_key()).map(Vec::as_slice);
            return self.ref_tag(item, reference, ids);
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
            self.rewrite_tokens(0, item.toks.len())?;
        }
        self.copy_to(item.end);
        Ok(())
    }

    /// Notes the identifiers that may name a context variable: not a function,
    /// filter or macro name, not a keyword argument name, not an attribute, not a
    /// parameter of the macro being defined.
    fn collect_idents(&mut self, toks: &[Tok]) {
        let src = self.src;
        for (index, tok) in toks.iter().enumerate() {
            let text = tok.text(src);
            let prev_is = |s: &str| index > 0 && toks[index - 1].is(src, s);
            let next_is = |s: &str| toks.get(index + 1).is_some_and(|next| next.is(src, s));
            let names_something_else = next_is("(")
                || next_is("::")
                || next_is("=")
                || prev_is("|")
                || prev_is("::")
                || prev_is(".");
            if tok.kind == TokKind::Ident
                && !names_something_else
                && !self.current_params.iter().any(|param| param == text)
            {
                self.out.idents.insert(text.to_string());
            }
        }
    }

    /// An `import` / `include` / `extends` tag: its names become the canonical id
    /// they resolved to.
    fn ref_tag(
        &mut self,
        item: &'s Item,
        reference: &Ref,
        resolved: Option<&[Option<String>]>,
    ) -> Result<(), PreError> {
        let ids: Vec<&String> = resolved.unwrap_or(&[]).iter().flatten().collect();
        let Some(first_id) = ids.first() else {
            // an include of nothing that exists, with `ignore missing`: drop the tag
            self.cursor = item.end;
            return Ok(());
        };
        let toks = &item.toks;
        match &reference.kind {
            RefKind::Import { .. } | RefKind::Extends => {
                self.copy_to(toks[1].start);
                self.synth(&quote(first_id), toks[1].start);
                self.cursor = toks[1].end;
            }
            RefKind::Include { .. } => {
                // Resolution stopped at the first name found, so one id: name it alone
                // (Tera renders the first existing name of a list; this is it).
                let last_name = if toks[1].is(self.src, "[") {
                    matching(self.src, toks, 1).unwrap_or(1)
                } else {
                    1
                };
                self.copy_to(toks[1].start);
                self.synth(&quote(first_id), toks[1].start);
                self.cursor = toks[last_name].end;
                if toks.len() > last_name + 1 {
                    // `ignore missing`: it was resolved, no longer needed
                    self.cursor = toks[toks.len() - 1].end;
                }
            }
        }
        self.copy_to(item.end);
        Ok(())
    }

    /// `{% macro name(params) %}`: defaults Tera 1 cannot express get a sentinel, and
    /// a prologue after the tag sets the real default.
    fn macro_def(&mut self, item: &'s Item) -> Result<(), PreError> {
        let toks = &item.toks;
        let Some((sig, deferred)) = parse_macro_def(self.src, toks)? else {
            self.copy_to(item.end);
            return Ok(());
        };
        self.current_macro = Some(sig.name.clone());
        self.current_params = sig.params.iter().map(|(name, _)| name.clone()).collect();
        for default in &deferred {
            self.out.extensions.insert(EXT_DEFAULT);
            // `name=<expr>` becomes `name="__clnrm_unset__"`
            self.copy_to(toks[default.lo].start);
            self.synth(&quote(UNSET), toks[default.lo].start);
            self.cursor = toks[default.hi - 1].end;
        }
        self.copy_to(item.end);
        // The prologue sets the real default when the caller gave none.
        let trim = self.src[item.inner_end..item.end].starts_with('-');
        let count = deferred.len();
        for (index, default) in deferred.into_iter().enumerate() {
            let (param, lo, hi) = (default.param, default.lo, default.hi);
            let at = toks[lo].start;
            self.synth(
                &format!("{{% if {param} == {} %}}{{% set {param} = ", quote(UNSET)),
                at,
            );
            if hi == lo + 1 && toks[lo].is(self.src, "none") {
                self.synth("__clnrm_none()", at);
            } else {
                let saved = self.cursor;
                self.cursor = at;
                self.value(lo, hi, false)?;
                self.cursor = saved;
            }
            let end = if trim && index + 1 == count {
                "-%}"
            } else {
                "%}"
            };
            self.synth(&format!(" %}}{{% endif {end}"), at);
        }
        Ok(())
    }

    /// Rewrites tokens `lo..hi` of the current tag, copying the text between them.
    pub(super) fn rewrite_tokens(&mut self, lo: usize, hi: usize) -> Result<(), PreError> {
        let mut index = lo;
        while index < hi {
            index = match self.rewrite_construct_at(index, hi)? {
                Some(close) => close + 1,
                None => index + 1,
            };
        }
        if hi > lo {
            self.copy_to(self.tok(hi - 1).end);
        }
        Ok(())
    }

    /// Rewrites the construct starting at token `index` when it is one the dialect
    /// knows (macro call, map or array literal, parenthesised filter chain): the
    /// index of its last token. `None` when there is nothing to rewrite there.
    fn rewrite_construct_at(&mut self, index: usize, hi: usize) -> Result<Option<usize>, PreError> {
        let tok = *self.tok(index);
        if self.is_macro_call(index) {
            if let Some(close) = matching(self.src, self.toks, index + 3).filter(|&c| c < hi) {
                self.macro_call(index, close)?;
                return Ok(Some(close));
            }
        }
        if tok.kind != TokKind::Punct {
            return Ok(None);
        }
        match tok.text(self.src) {
            "{" => {
                let close = self.close_of(index, hi, "map literal")?;
                self.map_literal(index, close)?;
                Ok(Some(close))
            }
            "[" if !self.is_subscript(index) => {
                let close = self.close_of(index, hi, "array literal")?;
                self.array(index, close, false)?;
                Ok(Some(close))
            }
            "(" if !self.is_call_paren(index) => {
                let close = self.close_of(index, hi, "parenthesis")?;
                if self.tok_is(close + 1, "|") && self.has_top_pipe(index + 1, close) {
                    self.paren_filter_chain(index, close)?;
                    return Ok(Some(close));
                }
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// `ns::name(`
    fn is_macro_call(&self, index: usize) -> bool {
        self.tok(index).kind == TokKind::Ident
            && self.tok_is(index + 1, "::")
            && self
                .toks
                .get(index + 2)
                .is_some_and(|tok| tok.kind == TokKind::Ident)
            && self.tok_is(index + 3, "(")
    }

    /// `(x | f) | g` is `x | f | g`; operators inside the parentheses are an error.
    fn paren_filter_chain(&mut self, open: usize, close: usize) -> Result<(), PreError> {
        let at = self.tok(open).start;
        if !self.is_filter_chain(open + 1, close) {
            return Err(PreError::new(
                at,
                "filter on parenthesised expression",
                "a filter applied to a parenthesised expression that holds operators",
            )
            .with_hint("Tera 1 applies a filter to one value: use {% set v = ... %} first"));
        }
        self.out.extensions.insert(EXT_PAREN_FILTER);
        self.copy_to(at);
        self.cursor = self.tok(open + 1).start;
        self.rewrite_tokens(open + 1, close)?;
        self.cursor = self.tok(close).end;
        Ok(())
    }

    /// The bracket matching `open`, before `hi`; an error naming `what` otherwise.
    fn close_of(&self, open: usize, hi: usize, what: &'static str) -> Result<usize, PreError> {
        matching(self.src, self.toks, open)
            .filter(|&close| close < hi)
            .ok_or_else(|| {
                PreError::new(
                    self.tok(open).start,
                    "unbalanced brackets",
                    format!("this {what} is never closed"),
                )
            })
    }

    /// `x[0]`: a `[` glued to an identifier or another subscript.
    fn is_subscript(&self, index: usize) -> bool {
        index > 0 && {
            let prev = self.tok(index - 1);
            prev.end == self.tok(index).start
                && (prev.kind == TokKind::Ident && !is_keyword(prev.text(self.src))
                    || prev.is(self.src, "]"))
        }
    }

    /// `f(...)`: a `(` after a function, filter, test or macro name.
    fn is_call_paren(&self, index: usize) -> bool {
        index > 0 && {
            let prev = self.tok(index - 1);
            prev.kind == TokKind::Ident && !is_keyword(prev.text(self.src))
        }
    }

    /// A `|` outside any brackets among tokens `lo..hi`.
    fn has_top_pipe(&self, lo: usize, hi: usize) -> bool {
        let mut depth = 0usize;
        for index in lo..hi {
            let tok = self.tok(index);
            if tok.kind != TokKind::Punct {
                continue;
            }
            match tok.text(self.src) {
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
        for index in lo..hi {
            let tok = self.tok(index);
            let text = tok.text(self.src);
            if depth > 0 {
                match text {
                    "(" | "[" | "{" if tok.kind == TokKind::Punct => depth += 1,
                    ")" | "]" | "}" if tok.kind == TokKind::Punct => depth -= 1,
                    _ => {}
                }
                continue;
            }
            match tok.kind {
                TokKind::Ident if is_keyword(text) => return false,
                TokKind::Ident => {}
                TokKind::Str | TokKind::Num if !after_pipe => {}
                TokKind::Str | TokKind::Num => return false,
                TokKind::Punct => match text {
                    "(" | "[" => depth += 1,
                    "|" => after_pipe = true,
                    "." if !after_pipe => {}
                    "-" if index == lo => {}
                    _ => return false,
                },
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::preprocess;

    #[test]
    fn paren_filter() {
        assert_eq!(
            preprocess(r#"{{ (a | default(value="b")) | slugify }}"#).unwrap(),
            r#"{{ a | default(value="b") | slugify }}"#
        );
        assert_eq!(
            preprocess("{{ (a + b) | round }}").unwrap(),
            "{{ (a + b) | round }}"
        );
        let e = preprocess("{{ (a | f + b) | g }}").unwrap_err();
        assert_eq!(e.construct, "filter on parenthesised expression");
    }

    #[test]
    fn macro_defaults_get_a_prologue() {
        let out = preprocess("{% macro f(a, b={}, c=none) -%}x{% endmacro %}").unwrap();
        assert_eq!(
            out,
            "{% macro f(a, b=\"__clnrm_unset__\", c=\"__clnrm_unset__\") -%}\
             {% if b == \"__clnrm_unset__\" %}{% set b = __clnrm_map() %}{% endif %}\
             {% if c == \"__clnrm_unset__\" %}{% set c = __clnrm_none() %}{% endif -%}\
             x{% endmacro %}"
        );
    }
}
