//! The render stage: a Tera 1 template (a `*.clnrm.toml.tera` test) becomes TOML text,
//! together with the exact record of what the render read (files by content hash,
//! environment variables by value hash, whether it used the clock or randomness
//! without a seed). The record is what the memo in `src/cache` keys on.
//!
//! Pure: everything from the outside world comes through [`World`].
//!
//! # Resolution
//!
//! `{% import "NAME" as m %}`, `{% include "NAME" %}` and `{% extends "NAME" %}`
//! look for NAME in the folder of the file that names it, then in each ancestor
//! folder up to the project root, then in `<root>/templates/`, then (for
//! `_macros.toml.tera` only) in the library built into the binary. Every path probed
//! and not found is recorded too, so creating it later changes the record. Tera
//! needs one global name per template, so names are rewritten to canonical ids:
//! the root-relative path, or `builtin:_macros.toml.tera`. A template outside the
//! root is resolved as if its own folder were the root.
//!
//! # Dialect: what is accepted beyond Tera 1
//!
//! clnrm's templates were written for Tera 1 but use constructs it rejects. A
//! preprocessing pass rewrites these into Tera 1, keeping a map so that every
//! position in an error refers to the user's original file. Each rewrite applies
//! only where Tera 1 would have failed, so a valid Tera 1 template renders exactly as
//! Tera 1 renders it.
//!
//! - **Imports after text.** `{% import %}` / `{% extends %}` at top level (not
//!   inside a block) after TOML lines or comments are hoisted to the top. Tera 1
//!   only allows them before any content.
//! - **Positional macro arguments.** `m::service("api", "nginx:alpine")` becomes
//!   `m::service(id="api", image="nginx:alpine")`, using the parameter names of
//!   the macro in the library the namespace resolves to. A positional argument after
//!   a keyword one, too many arguments, an unknown keyword, an argument given
//!   twice or a missing required one are errors naming the call.
//! - **Map literals.** `{"k": v, ...}` (quoted keys, any expression as value)
//!   anywhere in a tag becomes a call of the internal function `__clnrm_map`, which
//!   builds the object (keys iterate in sorted order, as Tera 1's objects do).
//! - **Nested array literals.** `[["a", "b"], ["c", "d"]]`: Tera 1 parses only flat
//!   arrays; inner arrays become calls of the internal `__clnrm_list`.
//! - **Macro defaults that are not literals.** `attrs={}`, `pairs=[]`, `max=none`
//!   or any expression: the parameter gets a sentinel default and the macro body
//!   starts by setting the real default when the sentinel is seen.
//! - **A filter on a parenthesised filter chain.** `(x | default(value="y")) | slugify`
//!   is `x | default(value="y") | slugify` (filters are left-associative). When the
//!   parentheses hold operators as well, it is an error naming the construct.
//! - **`{{ path }}` inside a string passed to a macro.** `m::lifecycle("{{ svc }}")`
//!   is `m::lifecycle(service=svc ~ "")`: only in macro arguments and only for
//!   dotted variable paths. Elsewhere (`{{ "{{ x }}" }}`, Tera's way of writing
//!   braces) strings stay literal.
//!
//! - **Empty `{{ }}`.** Tera 1 rejects it; clnrm's templates have it in TOML
//!   comments about templates. It is kept as the literal text `{{ }}`.
//!
//! Static checks beyond Tera 1: a call of a macro that does not exist, or through a
//! namespace that was not imported, is an error at its call site (Tera 1 reports it
//! only when the call runs, and without a position); recursive macros, and
//! import/include cycles, are refused (Tera 1 would overflow the stack).
//!
//! # Context and functions
//!
//! Variables: `RenderRequest::vars`, then built-in defaults each read from an
//! environment variable first (see [`DEFAULT_VARS`]); each is visible at top level
//! and as `vars.NAME`. A default is read (and recorded) only when a file of the
//! render mentions its name (or `vars`), so an unrelated environment variable never
//! enters the record.
//!
//! Functions: `env(name=, default=)` (also Tera's `get_env`), `now_rfc3339()`,
//! `now_unix()`, `now_ms()` (and Tera's `now`), `sha256(s=)`, `toml_encode(value=)`
//! (also a filter, with `toml_key`), `uuid_v4()`, `get_random(start=, end=)`,
//! `range(...)` (bounded), and the `fake_*` generators (see [`generator_names`]).
//! Every random function takes an optional `seed=` and is then deterministic;
//! otherwise it draws from `RenderRequest::seed` (a fresh stream per call, in call
//! order) or, without one, from entropy and marks the render volatile. The clock
//! functions use `RenderRequest::freeze_clock`, or the real clock and mark the
//! render volatile.

mod driver;
mod error;
mod fns;
mod pre;
mod render;
mod scan;
mod tera_errors;

pub use fns::generator_names;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What the render stage may read from outside. The engine implements it over the
/// real file system and process environment; tests implement it over maps.
pub trait World: Sync {
    /// Bytes of the file at `path` (absolute), or `None` when it does not exist.
    fn read_file(&self, path: &Path) -> Option<Vec<u8>>;
    /// Value of an environment variable, or `None` when unset.
    fn env_var(&self, name: &str) -> Option<String>;
}

/// One render to do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RenderRequest {
    /// Absolute project root: import resolution stops here, record paths are relative to it.
    pub root: PathBuf,
    /// Absolute path of the template being rendered.
    pub template_path: PathBuf,
    /// The template's text.
    pub source: String,
    /// Template variables, already merged: `--var` over `[vars]` of `cleanroom.toml`.
    /// Built-in defaults (svc, env, endpoint, ...) are added by the stage from the World.
    pub vars: BTreeMap<String, String>,
    /// `--seed` / `[determinism] seed`.
    pub seed: Option<u64>,
    /// `--freeze-clock` / `[determinism] freeze_clock`, RFC 3339.
    pub freeze_clock: Option<String>,
}

/// Where a dependency came from, relative to the project root (`/` separators), or
/// `builtin:<name>` for the library embedded in the binary.
pub type DepPath = String;

/// A file the render read, or looked for and did not find (so creating it later invalidates).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileDep {
    pub path: DepPath,
    /// blake3 of the content; `None` = probed and absent.
    pub hash: Option<[u8; 32]>,
}

/// An environment variable the render read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvDep {
    pub name: String,
    /// blake3 of the value; `None` = unset.
    pub hash: Option<[u8; 32]>,
}

/// Everything a render read. Sorted and deduplicated, so equal reads give equal records.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RenderRecord {
    pub files: Vec<FileDep>,
    pub env: Vec<EnvDep>,
    /// Used the clock or randomness without `seed` / `freeze_clock`: never serve from cache.
    pub volatile: bool,
}

/// The output of the stage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rendered {
    pub toml: String,
    pub record: RenderRecord,
    /// Dialect extensions (beyond Tera 1) the render needed, sorted: see the crate docs.
    pub extensions: Vec<String>,
}

pub use error::{RenderError, RenderErrorDetail};
pub use render::{render, DEFAULT_VARS};
