//! Literals in value positions: arrays (nested ones become `__clnrm_list(...)`,
//! which Tera 1 cannot parse otherwise) and map literals (`__clnrm_map(...)`). Not
//! the functions that build the values at render time (see `fns`).

use super::rewriter::Rewriter;
use super::{PreError, EXT_MAP, EXT_NESTED_ARRAY};
use crate::scan::{matching, split_commas, TokKind};

impl Rewriter<'_, '_> {
    /// A value position (macro argument, map value, array element).
    pub(super) fn value(&mut self, lo: usize, hi: usize, in_array: bool) -> Result<(), PreError> {
        if lo >= hi {
            return Ok(());
        }
        if self.tok_is(lo, "[") && matching(self.src, self.toks, lo) == Some(hi - 1) {
            return self.array(lo, hi - 1, in_array);
        }
        self.rewrite_tokens(lo, hi)
    }

    /// An array literal; `nested` (an element of another array, which Tera 1 does not
    /// parse) becomes `__clnrm_list(i0=..., ...)`.
    pub(super) fn array(
        &mut self,
        open: usize,
        close: usize,
        nested: bool,
    ) -> Result<(), PreError> {
        let elements = split_commas(self.src, self.toks, open + 1, close);
        if !nested {
            self.copy_to(self.tok(open).end);
            for (lo, hi) in elements {
                self.check_element(lo, hi)?;
                self.copy_to(self.tok(lo).start);
                self.value(lo, hi, true)?;
            }
            self.copy_to(self.tok(close).end);
            return Ok(());
        }
        self.out.extensions.insert(EXT_NESTED_ARRAY);
        let at = self.tok(open).start;
        self.copy_to(at);
        self.synth("__clnrm_list(", at);
        for (position, (lo, hi)) in elements.into_iter().enumerate() {
            self.check_element(lo, hi)?;
            let separator = if position > 0 { ", " } else { "" };
            self.synth(&format!("{separator}i{position}="), self.tok(lo).start);
            self.cursor = self.tok(lo).start;
            self.value(lo, hi, true)?;
        }
        self.synth(")", self.tok(close).start);
        self.cursor = self.tok(close).end;
        Ok(())
    }

    /// `[1, , 2]` is an error at the empty element.
    fn check_element(&self, lo: usize, hi: usize) -> Result<(), PreError> {
        if lo == hi {
            return Err(PreError::new(
                self.tok(lo).start,
                "array literal",
                "empty array element",
            ));
        }
        Ok(())
    }

    /// `{"k": v, ...}` becomes `__clnrm_map(k0="k", v0=v, ...)`.
    pub(super) fn map_literal(&mut self, open: usize, close: usize) -> Result<(), PreError> {
        self.out.extensions.insert(EXT_MAP);
        let at = self.tok(open).start;
        self.copy_to(at);
        self.synth("__clnrm_map(", at);
        for (position, (lo, hi)) in split_commas(self.src, self.toks, open + 1, close)
            .into_iter()
            .enumerate()
        {
            let key = self.tok(lo);
            if lo == hi || key.kind != TokKind::Str || !self.tok_is(lo + 1, ":") || hi == lo + 2 {
                return Err(PreError::new(
                    self.tok(lo.min(close)).start,
                    "map literal",
                    "a map literal entry must be a quoted key, `:` and a value",
                )
                .with_hint("write entries as \"key\": value"));
            }
            let separator = if position > 0 { ", " } else { "" };
            self.synth(&format!("{separator}k{position}="), key.start);
            self.cursor = key.start;
            self.copy_to(key.end);
            self.synth(&format!(", v{position}="), self.tok(lo + 2).start);
            self.cursor = self.tok(lo + 2).start;
            self.value(lo + 2, hi, false)?;
        }
        self.synth(")", self.tok(close).start);
        self.cursor = self.tok(close).end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::preprocess;

    #[test]
    fn map_literals_and_nested_arrays() {
        assert_eq!(
            preprocess(r#"{% set x = {"a": 1, "b": [[1, 2], {"c": d}]} %}"#).unwrap(),
            r#"{% set x = __clnrm_map(k0="a", v0=1, k1="b", v1=[__clnrm_list(i0=1, i1=2), __clnrm_map(k0="c", v0=d)]) %}"#
        );
        assert_eq!(
            preprocess("{{ f(x={}) }}").unwrap(),
            "{{ f(x=__clnrm_map()) }}"
        );
    }
}
