//! The original clnrm's other expectation tables, typed: `[[expect.temporal]]`,
//! `[[expect.resource]]`, the edge form of `[[expect.graph]]` (its macros write one table per
//! edge) and `[otel_validation]` (its v0.4 format). Their meaning is in `evaluate`; the
//! shapes follow the original's macro library and its `OtelValidationSection`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{
    CountsExpectation, ExpectedValue, GraphExpectation, HermeticityExpectation, OrderExpectation,
    StatusExpectation, WindowExpectation,
};
use crate::pattern::SpanPattern;

/// `[[expect.temporal]] before = "A", after = "B"`: some A ends before some B starts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TemporalExpectation {
    pub before: SpanPattern,
    pub after: SpanPattern,
}

/// What `[[expect.resource]]` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    /// A service's container (named by the service).
    Container,
    /// The network the test's containers share.
    Network,
    /// A volume mounted into a service (named by its host or container path).
    Volume,
}

crate::fixed_names::fixed_names!(
    /// The name test files use (`type = "container"`).
    ResourceType {
        Container => "container",
        Network => "network",
        Volume => "volume",
    }
);

impl<'de> Deserialize<'de> for ResourceType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_str() {
            "container" => Ok(ResourceType::Container),
            "network" => Ok(ResourceType::Network),
            "volume" => Ok(ResourceType::Volume),
            _ => Err(de::Error::custom(format!(
                "unknown resource type {text:?}: expected \"container\", \"network\" or \"volume\""
            ))),
        }
    }
}

/// `[[expect.resource]] type = "container", name = "api", exists = true`: the run had such a
/// resource (or, with `exists = false`, did not).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ResourceExpectation {
    #[serde(rename = "type")]
    pub kind: ResourceType,
    pub name: String,
    #[serde(default = "super::yes")]
    pub exists: bool,
}

/// One `[[expect.graph]]` entry of the original's macros: `parent` → `child` is an edge, and
/// with `attrs.all` the child carries those attributes. `relationship` ("calls",
/// "depends_on") names the edge for the reader; every relationship is a parent → child edge.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphEdge {
    pub parent: SpanPattern,
    pub child: SpanPattern,
    pub relationship: Option<String>,
    pub attrs: BTreeMap<String, ExpectedValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawGraph {
    must_include: Vec<[SpanPattern; 2]>,
    must_not_cross: Vec<[SpanPattern; 2]>,
    acyclic: bool,
    parent: Option<SpanPattern>,
    child: Option<SpanPattern>,
    relationship: Option<String>,
    attrs: RawEdgeAttrs,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawEdgeAttrs {
    all: BTreeMap<String, ExpectedValue>,
}

impl RawGraph {
    fn merge_into(self, graph: &mut GraphExpectation) -> Result<(), String> {
        graph.must_include.extend(self.must_include);
        graph.must_not_cross.extend(self.must_not_cross);
        graph.acyclic |= self.acyclic;
        match (self.parent, self.child) {
            (Some(parent), Some(child)) => graph.edges.push(GraphEdge {
                parent,
                child,
                relationship: self.relationship,
                attrs: self.attrs.all,
            }),
            (None, None) if self.relationship.is_none() && self.attrs.all.is_empty() => {}
            _ => return Err("a graph edge needs both `parent` and `child`".to_string()),
        }
        Ok(())
    }
}

/// `[expect.graph]` as a table, or as `[[expect.graph]]` entries (one edge each).
pub(super) fn graph<'de, D: Deserializer<'de>>(d: D) -> Result<Option<GraphExpectation>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<GraphExpectation>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("[expect.graph] or [[expect.graph]] entries with `parent` and `child`")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            let raw = RawGraph::deserialize(de::value::MapAccessDeserializer::new(map))?;
            let mut graph = GraphExpectation::default();
            raw.merge_into(&mut graph).map_err(de::Error::custom)?;
            Ok(Some(graph))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            let entries = Vec::<RawGraph>::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
            let mut graph = GraphExpectation::default();
            for raw in entries {
                raw.merge_into(&mut graph).map_err(de::Error::custom)?;
            }
            Ok(Some(graph))
        }
    }
    d.deserialize_any(V)
}

/// `[otel_validation]`, the original's v0.4 table. `enabled = false` judges nothing; each
/// `validate_*` flag left out counts as on.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct OtelValidation {
    pub enabled: bool,
    pub validate_spans: bool,
    pub validate_traces: bool,
    pub validate_temporal_ordering: bool,
    pub expected_spans: Vec<ExpectedSpan>,
    pub expected_traces: Vec<ExpectedTrace>,
    pub temporal_constraints: Vec<TemporalConstraint>,
    /// The original's `expect_*` keys: the same tables as `[expect.*]`.
    #[serde(deserialize_with = "graph")]
    pub expect_graph: Option<GraphExpectation>,
    pub expect_counts: Option<CountsExpectation>,
    pub expect_windows: Vec<WindowExpectation>,
    pub expect_hermeticity: Option<HermeticityExpectation>,
    pub expect_order: Option<OrderExpectation>,
    pub expect_status: Option<StatusExpectation>,
}

impl Default for OtelValidation {
    fn default() -> Self {
        OtelValidation {
            enabled: true,
            validate_spans: true,
            validate_traces: true,
            validate_temporal_ordering: true,
            expected_spans: Vec::new(),
            expected_traces: Vec::new(),
            temporal_constraints: Vec::new(),
            expect_graph: None,
            expect_counts: None,
            expect_windows: Vec::new(),
            expect_hermeticity: None,
            expect_order: None,
            expect_status: None,
        }
    }
}

impl OtelValidation {
    /// Its `expect_*` keys: `[expect.*]` tables under another name.
    pub fn nested_expectations(&self) -> super::Expectations {
        super::Expectations {
            order: self.expect_order.clone(),
            status: self.expect_status.clone(),
            counts: self.expect_counts.clone(),
            window: self.expect_windows.clone(),
            graph: self.expect_graph.clone(),
            hermeticity: self.expect_hermeticity.clone(),
            ..super::Expectations::default()
        }
    }

    /// The span names that must arrive before this table can hold (see
    /// `Expectations::awaited_span_names`).
    pub(super) fn awaited(&self, add: &mut impl FnMut(&SpanPattern)) {
        if self.validate_spans {
            for s in self.expected_spans.iter().filter(|s| s.required) {
                add(&s.name);
            }
        }
        if self.validate_traces {
            for t in &self.expected_traces {
                t.span_names.iter().for_each(&mut *add);
            }
        }
        if self.validate_temporal_ordering {
            for c in &self.temporal_constraints {
                add(&c.span_name);
                c.must_precede.iter().for_each(&mut *add);
                if let Some(b) = c.complete_before() {
                    add(&b);
                }
            }
        }
    }
}

/// `[[otel_validation.expected_spans]]`: spans with this name arrived, and every one has
/// these `attributes` and lasted `min_duration_ms..=max_duration_ms`; `min_count` of them at
/// least. `required = false` lets it be absent (when present it must still meet the rest).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExpectedSpan {
    pub name: SpanPattern,
    #[serde(default)]
    pub attributes: BTreeMap<String, ExpectedValue>,
    #[serde(default = "super::yes")]
    pub required: bool,
    #[serde(default)]
    pub min_duration_ms: Option<f64>,
    #[serde(default)]
    pub max_duration_ms: Option<f64>,
    #[serde(default)]
    pub min_count: Option<u64>,
}

/// `[[otel_validation.expected_traces]]`: the named spans all arrived (`complete`: within
/// one trace), `ordered`: their first spans start in the listed order, and every span named
/// by a `parent_child` pair's child has a parent of the pair's parent name. With `trace_id`
/// only that trace's spans count.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExpectedTrace {
    #[serde(default)]
    pub trace_id: Option<String>,
    pub span_names: Vec<SpanPattern>,
    #[serde(default)]
    pub complete: bool,
    #[serde(default)]
    pub ordered: bool,
    #[serde(default)]
    pub parent_child: Vec<[SpanPattern; 2]>,
}

/// `[[otel_validation.temporal_constraints]]`: `span_name` ends before each of `must_precede`
/// starts; `must_complete_before = "B"` (or `"B.begins"`, the start of B): some A ends before
/// some B starts, at most `max_gap_ms` earlier. `reason` is shown when it fails.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TemporalConstraint {
    pub span_name: SpanPattern,
    #[serde(default)]
    pub must_precede: Vec<SpanPattern>,
    #[serde(default)]
    pub must_complete_before: Option<String>,
    #[serde(default)]
    pub max_gap_ms: Option<f64>,
    #[serde(default)]
    pub reason: Option<String>,
}

impl TemporalConstraint {
    /// `must_complete_before` as a span name: `"server.start.begins"` is `server.start`.
    pub fn complete_before(&self) -> Option<SpanPattern> {
        self.must_complete_before
            .as_deref()
            .map(|target| SpanPattern::new(target.strip_suffix(".begins").unwrap_or(target)))
    }
}

/// The keys of `[otel_validation]` and of its entries, for the config stage's check.
pub(super) const OTEL_VALIDATION_KEYS: &[&str] = &[
    "enabled",
    "validate_spans",
    "validate_traces",
    "validate_temporal_ordering",
    "expected_spans",
    "expected_traces",
    "temporal_constraints",
    "expect_graph",
    "expect_counts",
    "expect_windows",
    "expect_hermeticity",
    "expect_order",
    "expect_status",
];
pub(super) const EXPECTED_SPAN_KEYS: &[&str] = &[
    "name",
    "attributes",
    "required",
    "min_duration_ms",
    "max_duration_ms",
    "min_count",
];
pub(super) const EXPECTED_TRACE_KEYS: &[&str] = &[
    "trace_id",
    "span_names",
    "complete",
    "ordered",
    "parent_child",
];
pub(super) const TEMPORAL_CONSTRAINT_KEYS: &[&str] = &[
    "span_name",
    "must_precede",
    "must_complete_before",
    "max_gap_ms",
    "reason",
];
