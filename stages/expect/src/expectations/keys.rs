//! The keys valid at each place of the `[expect]` table ([`known_keys`]), which the config
//! stage uses to report unknown keys. Not deserialisation: serde ignores unknown keys, and
//! the typed shapes live in the parent module.

/// Every `[expect.*]` kind this stage evaluates (`count` is the corpus macros' spelling of
/// `counts`).
pub const KINDS: &[&str] = &[
    "span",
    "order",
    "status",
    "counts",
    "count",
    "window",
    "graph",
    "hermeticity",
    "temporal",
    "resource",
];

const SPAN_KEYS: &[&str] = &[
    "name",
    "parent",
    "kind",
    "attrs",
    "events",
    "duration_ms",
    "status",
    "exists",
];
const ALL_ANY: &[&str] = &["all", "any"];
const MIN_MAX: &[&str] = &["min", "max"];
const ORDER_KEYS: &[&str] = &["must_precede", "must_follow"];
const STATUS_KEYS: &[&str] = &["all", "by_name"];
const COUNTS_KEYS: &[&str] = &[
    "spans_total",
    "events_total",
    "errors_total",
    "by_name",
    "by_kind",
];
const BOUND_KEYS: &[&str] = &["eq", "gte", "lte", "min", "max"];
pub(super) const KIND_NAMES: &[&str] = &["internal", "server", "client", "producer", "consumer"];
pub(super) const WINDOW_KEYS: &[&str] = &["outer", "contains"];
const WINDOW_KEYED_KEYS: &[&str] = &["contains"];
const GRAPH_KEYS: &[&str] = &[
    "must_include",
    "must_not_cross",
    "acyclic",
    "parent",
    "child",
    "relationship",
    "attrs",
];
const GRAPH_ATTRS_KEYS: &[&str] = &["all"];
const TEMPORAL_KEYS: &[&str] = &["before", "after"];
const RESOURCE_KEYS: &[&str] = &["type", "name", "exists"];
const HERMETICITY_KEYS: &[&str] = &["no_external_services", "resource_attrs", "span_attrs"];
const SPAN_ATTRS_KEYS: &[&str] = &["forbid_keys"];

use super::legacy::{
    EXPECTED_SPAN_KEYS, EXPECTED_TRACE_KEYS, OTEL_VALIDATION_KEYS, TEMPORAL_CONSTRAINT_KEYS,
};

/// The keys valid in one table under `[expect]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownKeys {
    /// Only these keys.
    Listed(&'static [&'static str]),
    /// The keys are the user's data (attribute names, span name patterns): any is valid.
    Free,
}

/// The keys valid in the table at `path` below `[expect]`, array indices left out:
/// `[]` → the kinds, `["span"]` → a `[[expect.span]]` entry's keys, `["span", "attrs"]` →
/// `all`, `any`. `None` when no table belongs at `path`.
///
/// `[expect.window]` has two forms: an array of tables (`outer`, `contains`: path
/// `["window"]`) and, as the corpus's `window` macro writes it, one table keyed by outer span
/// name (`"tx" = { contains = [...] }`): its keys are free, and each value's keys are those
/// of path `["window", "<outer span>"]`. Likewise `resource_attrs` holds either
/// `must_match = { .. }` or the attributes themselves. Paths starting `"otel_validation"`
/// are the test's `[otel_validation]` table (its `expect_*` keys hold `[expect.*]` shapes).
pub fn known_keys(path: &[&str]) -> Option<KnownKeys> {
    use KnownKeys::{Free, Listed};
    Some(match path {
        [] => Listed(KINDS),
        ["span"] => Listed(SPAN_KEYS),
        ["span", "attrs" | "events"] => Listed(ALL_ANY),
        ["span", "attrs", "all" | "any"] => Free,
        ["span", "duration_ms"] => Listed(MIN_MAX),
        ["order"] => Listed(ORDER_KEYS),
        ["status"] => Listed(STATUS_KEYS),
        ["status", "by_name"] => Free,
        ["counts" | "count"] => Listed(COUNTS_KEYS),
        ["counts" | "count", "spans_total" | "events_total" | "errors_total"] => Listed(BOUND_KEYS),
        ["counts" | "count", "by_name"] => Free,
        ["counts" | "count", "by_kind"] => Listed(KIND_NAMES),
        ["counts" | "count", "by_name" | "by_kind", _] => Listed(BOUND_KEYS),
        ["window"] => Listed(WINDOW_KEYS),
        ["window", _] => Listed(WINDOW_KEYED_KEYS),
        ["graph"] | ["otel_validation", "expect_graph"] => Listed(GRAPH_KEYS),
        ["graph", "attrs"] | ["otel_validation", "expect_graph", "attrs"] => {
            Listed(GRAPH_ATTRS_KEYS)
        }
        ["graph", "attrs", "all"] | ["otel_validation", "expect_graph", "attrs", "all"] => Free,
        ["temporal"] => Listed(TEMPORAL_KEYS),
        ["resource"] => Listed(RESOURCE_KEYS),
        ["otel_validation"] => Listed(OTEL_VALIDATION_KEYS),
        ["otel_validation", "expected_spans"] => Listed(EXPECTED_SPAN_KEYS),
        ["otel_validation", "expected_spans", "attributes"] => Free,
        ["otel_validation", "expected_traces"] => Listed(EXPECTED_TRACE_KEYS),
        ["otel_validation", "temporal_constraints"] => Listed(TEMPORAL_CONSTRAINT_KEYS),
        ["otel_validation", "expect_counts"] => Listed(COUNTS_KEYS),
        ["otel_validation", "expect_counts", "spans_total" | "events_total" | "errors_total"] => {
            Listed(BOUND_KEYS)
        }
        ["otel_validation", "expect_counts", "by_name"] => Free,
        ["otel_validation", "expect_counts", "by_kind"] => Listed(KIND_NAMES),
        ["otel_validation", "expect_counts", "by_name" | "by_kind", _] => Listed(BOUND_KEYS),
        ["otel_validation", "expect_windows"] => Listed(WINDOW_KEYS),
        ["otel_validation", "expect_hermeticity"] => Listed(HERMETICITY_KEYS),
        ["otel_validation", "expect_hermeticity", "resource_attrs"] => Free,
        ["otel_validation", "expect_hermeticity", "resource_attrs", "must_match"] => Free,
        ["otel_validation", "expect_hermeticity", "span_attrs"] => Listed(SPAN_ATTRS_KEYS),
        ["otel_validation", "expect_order"] => Listed(ORDER_KEYS),
        ["otel_validation", "expect_status"] => Listed(STATUS_KEYS),
        ["otel_validation", "expect_status", "by_name"] => Free,
        ["hermeticity"] => Listed(HERMETICITY_KEYS),
        ["hermeticity", "resource_attrs"] => Free,
        ["hermeticity", "resource_attrs", "must_match"] => Free,
        ["hermeticity", "span_attrs"] => Listed(SPAN_ATTRS_KEYS),
        _ => return None,
    })
}
