//! The test's `[expect]` table as typed data, deserialised with serde in the shapes clnrm's
//! test files use, with the bounds each shape must respect. Not the check for unknown keys:
//! serde ignores them, and the config stage reports them using [`known_keys`] (in `keys`).

mod keys;
mod legacy;

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::fixed_names::fixed_names;
use crate::pattern::SpanPattern;
use crate::span::{SpanKind, StatusCode};
pub use keys::{known_keys, KnownKeys, KINDS};
use keys::{KIND_NAMES, WINDOW_KEYS};
pub use legacy::{
    ExpectedSpan, ExpectedTrace, GraphEdge, OtelValidation, ResourceExpectation, ResourceType,
    TemporalConstraint, TemporalExpectation,
};

/// Everything a test's `[expect]` table asks of the spans it receives.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Expectations {
    /// `[[expect.span]]`
    pub span: Vec<SpanExpectation>,
    /// `[expect.order]`
    pub order: Option<OrderExpectation>,
    /// `[expect.status]`
    pub status: Option<StatusExpectation>,
    /// `[expect.counts]` (or the macros' `[expect.count]`)
    #[serde(alias = "count")]
    pub counts: Option<CountsExpectation>,
    /// `[[expect.window]]`, or `[expect.window]` keyed by outer span name
    #[serde(deserialize_with = "windows")]
    pub window: Vec<WindowExpectation>,
    /// `[expect.graph]`, or the original macros' `[[expect.graph]]` edges
    #[serde(deserialize_with = "legacy::graph")]
    pub graph: Option<GraphExpectation>,
    /// `[expect.hermeticity]`
    pub hermeticity: Option<HermeticityExpectation>,
    /// `[[expect.temporal]]`
    pub temporal: Vec<TemporalExpectation>,
    /// `[[expect.resource]]`
    pub resource: Vec<ResourceExpectation>,
    /// The test's `[otel_validation]` table (not a kind under `[expect]`: the config stage
    /// puts it here).
    pub otel_validation: Option<OtelValidation>,
}

/// `[[expect.span]]`: holds when at least one received span meets every constraint (or, with
/// `exists = false`, when none does).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SpanExpectation {
    pub name: SpanPattern,
    /// The parent span's name.
    #[serde(default)]
    pub parent: Option<SpanPattern>,
    #[serde(default, deserialize_with = "optional_kind")]
    pub kind: Option<SpanKind>,
    #[serde(default)]
    pub attrs: AttrsExpectation,
    #[serde(default)]
    pub events: EventsExpectation,
    #[serde(default)]
    pub duration_ms: Option<DurationBounds>,
    #[serde(default)]
    pub status: Option<ExpectedStatus>,
    /// `exists = true` (the default) is the plain expectation; `false` asks that no span
    /// meets the constraints.
    #[serde(default = "yes")]
    pub exists: bool,
}

pub(crate) fn yes() -> bool {
    true
}

/// `attrs.all = { key = value }`, `attrs.any = ["key=value", ...]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AttrsExpectation {
    pub all: BTreeMap<String, ExpectedValue>,
    #[serde(deserialize_with = "attr_pairs")]
    pub any: Vec<AttrPair>,
}

/// An expected attribute value, as text: TOML numbers and booleans read as their text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedValue(pub String);

impl<'de> Deserialize<'de> for ExpectedValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ExpectedValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ExpectedValue, E> {
                Ok(ExpectedValue(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ExpectedValue, E> {
                Ok(ExpectedValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ExpectedValue, E> {
                Ok(ExpectedValue(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ExpectedValue, E> {
                Ok(ExpectedValue(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ExpectedValue, E> {
                Ok(ExpectedValue(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// One `key=value` alternative of `attrs.any`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPair {
    pub key: String,
    pub value: String,
}

impl AttrPair {
    fn parse(text: &str) -> Option<AttrPair> {
        let (key, value) = text.split_once('=')?;
        let key = key.trim();
        (!key.is_empty()).then(|| AttrPair {
            key: key.to_string(),
            value: value.trim().to_string(),
        })
    }
}

impl fmt::Display for AttrPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// `attrs.any` as the spec writes it (`["k=v", ...]`) or as a table (`{ k = "v" }`).
fn attr_pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<AttrPair>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<AttrPair>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of \"key=value\" strings")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(text) = seq.next_element::<String>()? {
                let pair = AttrPair::parse(&text).ok_or_else(|| {
                    de::Error::custom(format!("expected \"key=value\", found {text:?}"))
                })?;
                out.push(pair);
            }
            Ok(out)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((key, value)) = map.next_entry::<String, ExpectedValue>()? {
                out.push(AttrPair {
                    key,
                    value: value.0,
                });
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// `events.all` / `events.any`: event names.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct EventsExpectation {
    pub all: Vec<String>,
    pub any: Vec<String>,
}

/// `duration_ms = { min, max }`, both inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "RawDurationBounds")]
pub struct DurationBounds {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Deserialize)]
struct RawDurationBounds {
    min: Option<f64>,
    max: Option<f64>,
}

impl TryFrom<RawDurationBounds> for DurationBounds {
    type Error = String;
    fn try_from(raw: RawDurationBounds) -> Result<Self, String> {
        match (raw.min, raw.max) {
            (None, None) => Err("duration_ms needs `min`, `max` or both".into()),
            (Some(min), Some(max)) if min > max => {
                Err(format!("duration_ms min {min} is above max {max}"))
            }
            (Some(v), _) | (_, Some(v)) if v < 0.0 => {
                Err(format!("duration_ms bound {v} is negative"))
            }
            (min, max) => Ok(DurationBounds { min, max }),
        }
    }
}

/// A status an expectation asks for. `Ok` accepts a span left `UNSET`: SDKs leave successful
/// spans unset unless the code sets OK explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedStatus {
    Ok,
    Error,
    Unset,
}

impl ExpectedStatus {
    pub fn accepts(self, code: StatusCode) -> bool {
        match self {
            ExpectedStatus::Ok => matches!(code, StatusCode::Ok | StatusCode::Unset),
            ExpectedStatus::Error => code == StatusCode::Error,
            ExpectedStatus::Unset => code == StatusCode::Unset,
        }
    }
}

fixed_names!(
    /// The upper-case name test files use (`status = "OK"`).
    ExpectedStatus {
        Ok => "OK",
        Error => "ERROR",
        Unset => "UNSET",
    }
);

impl<'de> Deserialize<'de> for ExpectedStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.to_ascii_uppercase().as_str() {
            "OK" => Ok(ExpectedStatus::Ok),
            "ERROR" => Ok(ExpectedStatus::Error),
            "UNSET" => Ok(ExpectedStatus::Unset),
            _ => Err(de::Error::custom(format!(
                "unknown status {text:?}: expected \"OK\", \"ERROR\" or \"UNSET\""
            ))),
        }
    }
}

fn parse_kind(text: &str) -> Option<SpanKind> {
    Some(match text.to_ascii_lowercase().as_str() {
        "internal" => SpanKind::Internal,
        "server" => SpanKind::Server,
        "client" => SpanKind::Client,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        _ => return None,
    })
}

fn unknown_kind<E: de::Error>(text: &str) -> E {
    E::custom(format!(
        "unknown span kind {text:?}: expected one of {}",
        KIND_NAMES.join(", ")
    ))
}

fn optional_kind<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SpanKind>, D::Error> {
    let text = String::deserialize(d)?;
    parse_kind(&text)
        .map(Some)
        .ok_or_else(|| unknown_kind(&text))
}

/// A span kind as a map key (`by_kind.server = { .. }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KindKey(pub SpanKind);

impl<'de> Deserialize<'de> for KindKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_kind(&text)
            .map(KindKey)
            .ok_or_else(|| unknown_kind(&text))
    }
}

/// `[expect.order]`: pairs of span names.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct OrderExpectation {
    /// `[A, B]`: some span A ends before some span B starts.
    pub must_precede: Vec<[SpanPattern; 2]>,
    /// `[A, B]`: some span A starts after some span B ends.
    pub must_follow: Vec<[SpanPattern; 2]>,
}

/// `[expect.status]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct StatusExpectation {
    /// The status of every span.
    pub all: Option<ExpectedStatus>,
    /// The status of every span a pattern matches.
    pub by_name: BTreeMap<SpanPattern, ExpectedStatus>,
}

/// `[expect.counts]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct CountsExpectation {
    pub spans_total: Option<CountBound>,
    pub events_total: Option<CountBound>,
    /// Spans with status ERROR.
    pub errors_total: Option<CountBound>,
    pub by_name: BTreeMap<SpanPattern, CountBound>,
    /// Spans of a kind (the corpus `count` macro's `by_kind.server = { min, max }`).
    pub by_kind: BTreeMap<KindKey, CountBound>,
}

/// `{ eq, gte, lte }` (`min`/`max` are accepted for `gte`/`lte`); every bound given holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawCountBound")]
pub struct CountBound {
    pub eq: Option<u64>,
    pub gte: Option<u64>,
    pub lte: Option<u64>,
}

#[derive(Deserialize)]
struct RawCountBound {
    eq: Option<u64>,
    #[serde(alias = "min")]
    gte: Option<u64>,
    #[serde(alias = "max")]
    lte: Option<u64>,
}

impl TryFrom<RawCountBound> for CountBound {
    type Error = String;
    fn try_from(raw: RawCountBound) -> Result<Self, String> {
        match (raw.eq, raw.gte, raw.lte) {
            (None, None, None) => Err("a count bound needs `eq`, `gte` or `lte`".into()),
            (_, Some(gte), Some(lte)) if gte > lte => {
                Err(format!("count bound gte {gte} is above lte {lte}"))
            }
            (eq, gte, lte) => Ok(CountBound { eq, gte, lte }),
        }
    }
}

impl CountBound {
    pub fn holds(&self, n: u64) -> bool {
        self.eq.is_none_or(|eq| n == eq)
            && self.gte.is_none_or(|gte| n >= gte)
            && self.lte.is_none_or(|lte| n <= lte)
    }

    /// Whether the bound can only hold when something matched (so clnrm waits for it).
    pub fn requires_one(&self) -> bool {
        self.eq.is_some_and(|eq| eq > 0) || self.gte.is_some_and(|gte| gte > 0)
    }
}

impl fmt::Display for CountBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [("=", self.eq), (">=", self.gte), ("<=", self.lte)]
            .into_iter()
            .filter_map(|(op, v)| v.map(|v| format!("{op} {v}")))
            .collect();
        f.write_str(&parts.join(" and "))
    }
}

/// `[[expect.window]]`: every span named in `contains` lies within some `outer` span of the
/// same trace.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WindowExpectation {
    pub outer: SpanPattern,
    pub contains: Vec<SpanPattern>,
}

#[derive(Deserialize)]
struct KeyedWindow {
    contains: Vec<SpanPattern>,
}

/// `[[expect.window]]` entries, or `[expect.window]` keyed by outer span name.
fn windows<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<WindowExpectation>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<WindowExpectation>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("[[expect.window]] tables with `outer` and `contains`")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Vec::deserialize(de::value::SeqAccessDeserializer::new(seq))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(outer) = map.next_key::<String>()? {
                if WINDOW_KEYS.contains(&outer.as_str()) {
                    return Err(de::Error::custom(
                        "write `outer`/`contains` windows as [[expect.window]] (an array of \
                         tables), or key [expect.window] by the outer span's name",
                    ));
                }
                let body: KeyedWindow = map.next_value()?;
                out.push(WindowExpectation {
                    outer: SpanPattern::new(outer),
                    contains: body.contains,
                });
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// `[expect.graph]`: parent → child edges between span names.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct GraphExpectation {
    /// `[parent, child]`: such an edge exists.
    pub must_include: Vec<[SpanPattern; 2]>,
    /// `[A, B]`: no edge between them, either way.
    pub must_not_cross: Vec<[SpanPattern; 2]>,
    /// No span is its own ancestor.
    pub acyclic: bool,
    /// `[[expect.graph]]` entries: `parent` → `child` edges, the child with `attrs.all`.
    #[serde(skip)]
    pub edges: Vec<GraphEdge>,
}

/// `[expect.hermeticity]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct HermeticityExpectation {
    /// No client or producer span names a peer other than the test's services and
    /// `otel-collector`.
    pub no_external_services: bool,
    /// Resource attributes every span must carry.
    #[serde(deserialize_with = "resource_attrs")]
    pub resource_attrs: BTreeMap<String, ExpectedValue>,
    pub span_attrs: SpanAttrsExpectation,
}

/// `span_attrs.forbid_keys`: attribute keys no span may carry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SpanAttrsExpectation {
    pub forbid_keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ResourceEntry {
    Value(ExpectedValue),
    MustMatch(BTreeMap<String, ExpectedValue>),
}

/// `resource_attrs.must_match = { k = v }`, or (as one corpus file writes it)
/// `[expect.hermeticity.resource_attrs]` holding the attributes themselves.
fn resource_attrs<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, ExpectedValue>, D::Error> {
    let entries = BTreeMap::<String, ResourceEntry>::deserialize(d)?;
    let mut out = BTreeMap::new();
    for (key, entry) in entries {
        match entry {
            ResourceEntry::Value(v) => {
                out.insert(key, v);
            }
            ResourceEntry::MustMatch(map) if key == "must_match" => out.extend(map),
            ResourceEntry::MustMatch(_) => {
                return Err(de::Error::custom(format!(
                    "resource_attrs.{key} is a table; expected `must_match = {{ .. }}` or \
                     attribute = value"
                )))
            }
        }
    }
    Ok(out)
}

impl Expectations {
    pub fn is_empty(&self) -> bool {
        self == &Expectations::default()
    }

    /// The span names that must arrive before the expectations can hold, in the order the
    /// expectations mention them, without repeats: clnrm waits for these after the last
    /// step. Names that must *not* appear (`exists = false`, `must_not_cross`, counts that
    /// allow zero) are left out, or the wait would always run to its timeout.
    pub fn awaited_span_names(&self) -> Vec<SpanPattern> {
        let mut out: Vec<SpanPattern> = Vec::new();
        let mut add = |p: &SpanPattern| {
            if !out.contains(p) {
                out.push(p.clone());
            }
        };
        for s in self.span.iter().filter(|s| s.exists) {
            add(&s.name);
            if let Some(parent) = &s.parent {
                add(parent);
            }
        }
        if let Some(order) = &self.order {
            for [a, b] in order.must_precede.iter().chain(&order.must_follow) {
                add(a);
                add(b);
            }
        }
        if let Some(status) = &self.status {
            status.by_name.keys().for_each(&mut add);
        }
        if let Some(counts) = &self.counts {
            for (p, bound) in &counts.by_name {
                if bound.requires_one() {
                    add(p);
                }
            }
        }
        for w in &self.window {
            add(&w.outer);
            w.contains.iter().for_each(&mut add);
        }
        if let Some(graph) = &self.graph {
            for [parent, child] in &graph.must_include {
                add(parent);
                add(child);
            }
            for edge in &graph.edges {
                add(&edge.parent);
                add(&edge.child);
            }
        }
        for t in &self.temporal {
            add(&t.before);
            add(&t.after);
        }
        if let Some(v) = self.otel_validation.as_ref().filter(|v| v.enabled) {
            v.awaited(&mut add);
        }
        out
    }
}

impl SpanExpectation {
    /// An expectation that a span with this name (or glob) arrives, nothing more.
    pub fn named(pattern: &str) -> Self {
        SpanExpectation {
            name: SpanPattern::new(pattern),
            parent: None,
            kind: None,
            attrs: AttrsExpectation::default(),
            events: EventsExpectation::default(),
            duration_ms: None,
            status: None,
            exists: true,
        }
    }
}
