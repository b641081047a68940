//! Calls of macros, `ns::name(args)`: the namespace and macro must exist (checked
//! here, with a position, where Tera 1 would fail only when the call runs),
//! positional arguments get their parameter names, and `"{{ path }}"` inside an
//! argument string becomes an expression. Not macro definitions (see `rewriter.rs`).

use super::outline::MacroSig;
use super::rewriter::Rewriter;
use super::{MacroCall, PreError, EXT_INTERP, EXT_POSITIONAL};
use crate::scan::{split_commas, TokKind};

/// A call whose macro was found: what error messages need to name it.
struct CallSite<'s> {
    namespace: &'s str,
    name: &'s str,
    /// Offset of the call in the file.
    at: usize,
    sig: &'s MacroSig,
}

impl CallSite<'_> {
    fn error(&self, at: usize, construct: &'static str, message: String) -> PreError {
        PreError::new(at, construct, message)
            .with_hint(format!("its parameters: {}", param_list(self.sig)))
    }
}

impl<'s> Rewriter<'s, '_> {
    /// The call whose namespace is token `ns_index` and whose `)` is token `close`.
    pub(super) fn macro_call(&mut self, ns_index: usize, close: usize) -> Result<(), PreError> {
        let (call, library) = self.resolve_call(ns_index)?;
        self.out.calls.push(MacroCall {
            caller: self.current_macro.clone(),
            library: library.to_string(),
            name: call.name.to_string(),
            offset: call.at,
        });
        self.copy_to(self.tok(ns_index + 3).end);
        let mut given: Vec<&str> = Vec::new();
        let mut seen_keyword = false;
        let arguments = split_commas(self.src, self.toks, ns_index + 4, close);
        for (position, (lo, hi)) in arguments.into_iter().enumerate() {
            self.argument(&call, position, (lo, hi), &mut given, &mut seen_keyword)?;
        }
        check_required_arguments(&call, &given)?;
        self.copy_to(self.tok(close).end);
        Ok(())
    }

    /// The macro that `ns::name` names, and the id of the library defining it.
    fn resolve_call(&self, ns_index: usize) -> Result<(CallSite<'s>, &'s str), PreError> {
        let namespace = self.tok(ns_index).text(self.src);
        let name = self.tok(ns_index + 2).text(self.src);
        let at = self.tok(ns_index).start;
        let (library, sigs): (&'s str, &'s [MacroSig]) = if namespace == "self" {
            (self.self_id, self.sigs)
        } else {
            let Some(lib) = self.libs.get(namespace) else {
                return Err(PreError::new(
                    at,
                    "unknown macro namespace",
                    format!("macro namespace `{namespace}` is not imported in this file"),
                )
                .with_hint(format!(
                    "import a library first: {{% import \"_macros.toml.tera\" as {namespace} %}}"
                )));
            };
            (lib.id, lib.sigs)
        };
        let Some(sig) = sigs.iter().find(|sig| sig.name == name) else {
            let known: Vec<&str> = sigs.iter().map(|sig| sig.name.as_str()).collect();
            let hint = if known.is_empty() {
                format!("`{library}` defines no macros")
            } else {
                format!("`{library}` defines: {}", known.join(", "))
            };
            return Err(PreError::new(
                at,
                "unknown macro",
                format!("macro `{name}` is not defined in `{library}` (imported as `{namespace}`)"),
            )
            .with_hint(hint));
        };
        let call = CallSite {
            namespace,
            name,
            at,
            sig,
        };
        Ok((call, library))
    }

    /// Argument number `position` (tokens `lo..hi`): writes it with its parameter
    /// name, which it adds to `given`.
    fn argument(
        &mut self,
        call: &CallSite<'s>,
        position: usize,
        (lo, hi): (usize, usize),
        given: &mut Vec<&'s str>,
        seen_keyword: &mut bool,
    ) -> Result<(), PreError> {
        if lo == hi {
            return Err(PreError::new(
                self.tok(lo).start,
                "macro argument",
                "empty macro argument",
            ));
        }
        let arg_at = self.tok(lo).start;
        let is_keyword = self.tok(lo).kind == TokKind::Ident && self.tok_is(lo + 1, "=");
        let (param, value_lo) = if is_keyword {
            *seen_keyword = true;
            (self.keyword_param(call, lo)?, lo + 2)
        } else {
            let param = positional_param(call, position, arg_at, *seen_keyword)?;
            self.out.extensions.insert(EXT_POSITIONAL);
            self.copy_to(arg_at);
            self.synth(&format!("{param}="), arg_at);
            (param, lo)
        };
        if given.contains(&param) {
            return Err(PreError::new(
                arg_at,
                "macro argument",
                format!("argument `{param}` is given twice"),
            ));
        }
        given.push(param);
        if value_lo >= hi {
            return Err(PreError::new(
                arg_at,
                "macro argument",
                "argument without a value",
            ));
        }
        self.copy_to(self.tok(value_lo).start);
        self.arg_value(value_lo, hi)
    }

    /// `name=...`: `name` must be a parameter of the macro.
    fn keyword_param(&self, call: &CallSite<'s>, lo: usize) -> Result<&'s str, PreError> {
        let param = self.tok(lo).text(self.src);
        if !call.sig.params.iter().any(|(name, _)| name == param) {
            return Err(call.error(
                self.tok(lo).start,
                "unknown macro argument",
                format!(
                    "macro `{}::{}` has no parameter `{param}`",
                    call.namespace, call.name
                ),
            ));
        }
        Ok(param)
    }

    /// A macro argument's value: a string holding `{{ path }}` is interpolated.
    fn arg_value(&mut self, lo: usize, hi: usize) -> Result<(), PreError> {
        let tok = *self.tok(lo);
        if hi == lo + 1 && tok.kind == TokKind::Str {
            if let Some(expr) = interpolate(tok.text(self.src)) {
                self.out.extensions.insert(EXT_INTERP);
                for part in expr.split(" ~ ") {
                    if !part.starts_with(['"', '\'', '`']) {
                        let root = part.split('.').next().unwrap_or(part);
                        self.out.idents.insert(root.to_string());
                    }
                }
                self.synth(&expr, tok.start);
                self.cursor = tok.end;
                return Ok(());
            }
        }
        self.value(lo, hi, false)
    }
}

/// The parameter a positional argument binds: refused after a keyword argument
/// and beyond the last parameter.
fn positional_param<'s>(
    call: &CallSite<'s>,
    position: usize,
    arg_at: usize,
    seen_keyword: bool,
) -> Result<&'s str, PreError> {
    if seen_keyword {
        return Err(PreError::new(
            arg_at,
            "positional macro argument",
            "a positional argument after a keyword argument",
        ));
    }
    let Some((param, _)) = call.sig.params.get(position) else {
        return Err(call.error(
            arg_at,
            "positional macro argument",
            format!(
                "macro `{}::{}` takes {} argument(s), this is argument {}",
                call.namespace,
                call.name,
                call.sig.params.len(),
                position + 1
            ),
        ));
    };
    Ok(param)
}

/// Every parameter without a default must have been given.
fn check_required_arguments(call: &CallSite<'_>, given: &[&str]) -> Result<(), PreError> {
    let missing = call
        .sig
        .params
        .iter()
        .find(|(name, has_default)| !has_default && !given.contains(&name.as_str()));
    match missing {
        Some((missing, _)) => Err(call.error(
            call.at,
            "missing macro argument",
            format!(
                "macro `{}::{}` needs argument `{missing}`",
                call.namespace, call.name
            ),
        )),
        None => Ok(()),
    }
}

/// `a, b=...`: the parameters as a hint shows them.
fn param_list(sig: &MacroSig) -> String {
    sig.params
        .iter()
        .map(|(name, has_default)| {
            if *has_default {
                format!("{name}=...")
            } else {
                name.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `"{{ svc }}.start"` becomes `svc ~ ".start"`; `None` when the string holds no
/// `{{ path }}` (a dotted identifier path) or holds anything else between `{{ }}`.
fn interpolate(literal: &str) -> Option<String> {
    let quote = &literal[..1];
    let body = &literal[1..literal.len() - 1];
    if !body.contains("{{") {
        return None;
    }
    let mut parts: Vec<String> = Vec::new();
    let mut rest = body;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            parts.push(format!("{quote}{}{quote}", &rest[..open]));
        }
        let after = &rest[open + 2..];
        let close = after.find("}}")?;
        let path = after[..close].trim();
        if !is_dotted_path(path) {
            return None;
        }
        parts.push(path.to_string());
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        parts.push(format!("{quote}{rest}{quote}"));
    }
    if parts.len() == 1 {
        // keep it a string
        parts.push(format!("{quote}{quote}"));
    }
    Some(parts.join(" ~ "))
}

/// `a.b.c`: identifiers (later segments may be numbers) joined by dots.
fn is_dotted_path(path: &str) -> bool {
    !path.is_empty()
        && path.split('.').enumerate().all(|(index, segment)| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && (index > 0 || !segment.as_bytes()[0].is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::interpolate;

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
}
