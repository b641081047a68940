//! Judging received spans against expectations (SPEC §9): one index over the spans (by id,
//! by name), then one pass per expectation. Pure: spans and expectations in, verdicts out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use crate::expectations::{
    CountBound, Expectations, ExpectedStatus, GraphExpectation, HermeticityExpectation,
    OrderExpectation, SpanExpectation, StatusExpectation, WindowExpectation,
};
use crate::pattern::SpanPattern;
use crate::span::{AttrValue, Span, SpanId, SpanKind, StatusCode, TraceId};
use crate::verdict::{ExpectationKind, SpanSummary, Verdict};

/// What evaluation needs besides spans and expectations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// The test's service names: the peers `no_external_services` allows (besides
    /// `otel-collector`, always allowed, and loopback, which is the caller itself).
    pub service_names: BTreeSet<String>,
}

impl Context {
    pub fn new<S: Into<String>>(service_names: impl IntoIterator<Item = S>) -> Self {
        Context {
            service_names: service_names.into_iter().map(Into::into).collect(),
        }
    }
}

/// The collector's name on every test network: always a permitted peer.
pub const COLLECTOR_HOST: &str = "otel-collector";

/// How many spans a failure message shows.
const CLOSEST: usize = 3;

/// Judges `spans` against every expectation, in the order of SPEC §9's list: span, order,
/// status, counts, window, graph, hermeticity.
pub fn evaluate(spans: &[Span], expectations: &Expectations, context: &Context) -> Vec<Verdict> {
    let index = Index::new(spans);
    let mut out = Vec::new();
    for (i, e) in expectations.span.iter().enumerate() {
        out.push(index.span(i, e));
    }
    if let Some(order) = &expectations.order {
        index.order(order, &mut out);
    }
    if let Some(status) = &expectations.status {
        index.status(status, &mut out);
    }
    if let Some(counts) = &expectations.counts {
        let mut verdicts = Verdicts::new(ExpectationKind::Counts, &mut out);
        let totals = [
            ("spans_total", counts.spans_total, spans.len()),
            (
                "events_total",
                counts.events_total,
                spans.iter().map(|s| s.events.len()).sum(),
            ),
            (
                "errors_total",
                counts.errors_total,
                spans
                    .iter()
                    .filter(|s| s.status.code == StatusCode::Error)
                    .count(),
            ),
        ];
        for (field, bound, n) in totals {
            if let Some(bound) = bound {
                verdicts.push(count_verdict(
                    format!("expect.counts.{field}"),
                    &bound,
                    n,
                    Vec::new(),
                ));
            }
        }
        for (pattern, bound) in &counts.by_name {
            let n = index.matching(pattern).len();
            let closest = if bound.holds(n as u64) {
                Vec::new()
            } else {
                index.closest_names(pattern)
            };
            verdicts.push(count_verdict(
                format!("expect.counts.by_name {pattern}"),
                bound,
                n,
                closest,
            ));
        }
        for (kind, bound) in &counts.by_kind {
            let n = spans.iter().filter(|s| s.kind == kind.0).count();
            verdicts.push(count_verdict(
                format!("expect.counts.by_kind {}", kind.0),
                bound,
                n,
                Vec::new(),
            ));
        }
    }
    for (i, w) in expectations.window.iter().enumerate() {
        out.push(index.window(i, w));
    }
    if let Some(graph) = &expectations.graph {
        index.graph(graph, &mut out);
    }
    if let Some(h) = &expectations.hermeticity {
        index.hermeticity(h, context, &mut out);
    }
    out
}

/// Appends verdicts of one kind, numbering them.
struct Verdicts<'v> {
    kind: ExpectationKind,
    out: &'v mut Vec<Verdict>,
    next: usize,
}

/// A verdict before it is numbered.
struct Judgement {
    expectation: String,
    passed: bool,
    expected: String,
    actual: String,
    closest: Vec<SpanSummary>,
}

impl<'v> Verdicts<'v> {
    fn new(kind: ExpectationKind, out: &'v mut Vec<Verdict>) -> Self {
        Verdicts { kind, out, next: 0 }
    }

    fn push(&mut self, j: Judgement) {
        self.out.push(verdict(self.kind, self.next, j));
        self.next += 1;
    }
}

fn verdict(kind: ExpectationKind, index: usize, j: Judgement) -> Verdict {
    Verdict {
        kind,
        index,
        expectation: j.expectation,
        passed: j.passed,
        expected: j.expected,
        actual: j.actual,
        closest: j.closest,
    }
}

fn count_verdict(
    expectation: String,
    bound: &CountBound,
    n: usize,
    closest: Vec<SpanSummary>,
) -> Judgement {
    Judgement {
        expectation,
        passed: bound.holds(n as u64),
        expected: format!("count {bound}"),
        actual: format!("{n}"),
        closest,
    }
}

fn quoted_list(patterns: &[SpanPattern]) -> String {
    patterns
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The multiply-rotate hash rustc uses (FxHash): the index's keys are span ids and names
/// from the test's own services, not adversarial input, and SipHash's cost is most of the
/// index's build time at 10,000 spans.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.write_u64(u64::from(byte));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The spans, indexed for the lookups expectations make.
struct Index<'s> {
    spans: &'s [Span],
    by_id: FxMap<(TraceId, SpanId), usize>,
    by_name: FxMap<&'s str, Vec<usize>>,
    /// Distinct names in first-received order (globs are matched against these, not spans).
    names: Vec<&'s str>,
    /// The earliest start: times in messages are relative to it, in ms.
    origin: u64,
}

impl<'s> Index<'s> {
    fn new(spans: &'s [Span]) -> Self {
        let mut by_id = FxMap::with_capacity_and_hasher(spans.len(), Default::default());
        let mut by_name: FxMap<&str, Vec<usize>> = FxMap::default();
        let mut names = Vec::new();
        for (i, s) in spans.iter().enumerate() {
            by_id.insert((s.trace_id, s.span_id), i);
            by_name
                .entry(s.name.as_str())
                .or_insert_with(|| {
                    names.push(s.name.as_str());
                    Vec::new()
                })
                .push(i);
        }
        let origin = spans.iter().map(|s| s.start_unix_nanos).min().unwrap_or(0);
        Index {
            spans,
            by_id,
            by_name,
            names,
            origin,
        }
    }

    /// Indices of the spans a pattern matches, in received order.
    fn matching(&self, pattern: &SpanPattern) -> Vec<usize> {
        if !pattern.is_glob() {
            return self
                .by_name
                .get(pattern.as_str())
                .cloned()
                .unwrap_or_default();
        }
        let mut out: Vec<usize> = self
            .names
            .iter()
            .filter(|n| pattern.matches(n))
            .flat_map(|n| self.by_name[n].iter().copied())
            .collect();
        out.sort_unstable();
        out
    }

    fn parent(&self, i: usize) -> Option<usize> {
        let s = &self.spans[i];
        let parent = s.parent_span_id?;
        self.by_id.get(&(s.trace_id, parent)).copied()
    }

    /// The parent's name for messages: `None` for a root.
    fn parent_name(&self, i: usize) -> Option<String> {
        self.spans[i].parent_span_id?;
        Some(match self.parent(i) {
            Some(p) => self.spans[p].name.clone(),
            None => "<not received>".to_string(),
        })
    }

    fn rel_ms(&self, t: u64) -> f64 {
        t.saturating_sub(self.origin) as f64 / 1e6
    }

    fn summary(&self, i: usize, mismatch: Vec<String>) -> SpanSummary {
        let s = &self.spans[i];
        SpanSummary {
            name: s.name.clone(),
            parent: self.parent_name(i),
            kind: s.kind,
            duration_ms: s.duration_ms(),
            status: s.status.code,
            attributes: s
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            mismatch,
        }
    }

    /// One span of each other name, nearest `pattern` by edit distance first: what the user
    /// may have meant when no span has the name they wrote.
    fn closest_names(&self, pattern: &SpanPattern) -> Vec<SpanSummary> {
        let mut ranked: Vec<(usize, &str)> = self
            .names
            .iter()
            .filter(|n| !pattern.matches(n))
            .map(|n| (strsim::levenshtein(pattern.as_str(), n), *n))
            .collect();
        ranked.sort();
        ranked
            .into_iter()
            .take(CLOSEST)
            .map(|(_, n)| self.summary(self.by_name[n][0], Vec::new()))
            .collect()
    }

    fn missing(&self, pattern: &SpanPattern) -> String {
        format!(
            "no span named {pattern} among the {} received",
            self.spans.len()
        )
    }

    // ---- [[expect.span]] ----

    fn span(&self, index: usize, e: &SpanExpectation) -> Verdict {
        let candidates = self.matching(&e.name);
        let meeting: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| self.span_misses(e, i, false).is_empty())
            .collect();
        let expected = describe_span(e);
        let (passed, actual, closest) = match (e.exists, meeting.is_empty()) {
            (true, false) => (
                true,
                format!(
                    "{} of {} span(s) named {} meet it",
                    meeting.len(),
                    candidates.len(),
                    e.name
                ),
                Vec::new(),
            ),
            (true, true) if candidates.is_empty() => {
                (false, self.missing(&e.name), self.closest_names(&e.name))
            }
            (true, true) => {
                let mut ranked: Vec<(Vec<String>, usize)> = candidates
                    .iter()
                    .map(|&i| (self.span_misses(e, i, true), i))
                    .collect();
                ranked.sort_by_key(|(misses, _)| misses.len());
                let actual = format!(
                    "{} span(s) named {}, none meets every constraint; the closest: {}",
                    candidates.len(),
                    e.name,
                    ranked[0].0.join("; ")
                );
                let mut closest: Vec<SpanSummary> = ranked
                    .into_iter()
                    .take(CLOSEST)
                    .map(|(misses, i)| self.summary(i, misses))
                    .collect();
                // Same-named spans first; nearby names fill the rest.
                let room = CLOSEST - closest.len();
                closest.extend(self.closest_names(&e.name).into_iter().take(room));
                (false, actual, closest)
            }
            (false, true) => (
                true,
                format!(
                    "none of {} span(s) named {} meets it",
                    candidates.len(),
                    e.name
                ),
                Vec::new(),
            ),
            (false, false) => (
                false,
                format!("{} span(s) meet it", meeting.len()),
                meeting
                    .iter()
                    .take(CLOSEST)
                    .map(|&i| self.summary(i, Vec::new()))
                    .collect(),
            ),
        };
        verdict(
            ExpectationKind::Span,
            index,
            Judgement {
                expectation: format!("expect.span[{index}] {}", e.name),
                passed,
                expected,
                actual,
                closest,
            },
        )
    }

    /// The constraints span `i` misses (all of them, or just the first when `all` is false).
    fn span_misses(&self, e: &SpanExpectation, i: usize, all: bool) -> Vec<String> {
        let s = &self.spans[i];
        let mut misses = Vec::new();
        macro_rules! miss {
            ($($arg:tt)*) => {{
                misses.push(format!($($arg)*));
                if !all {
                    return misses;
                }
            }};
        }
        if let Some(want) = &e.parent {
            match self.parent(i) {
                Some(p) if want.matches(&self.spans[p].name) => {}
                Some(p) => miss!("parent is {:?}, expected {want}", self.spans[p].name),
                None if s.parent_span_id.is_some() => {
                    miss!("its parent span was not received, expected {want}")
                }
                None => miss!("is a root span, expected parent {want}"),
            }
        }
        if let Some(kind) = e.kind {
            if s.kind != kind {
                miss!("kind is {}, expected {kind}", s.kind);
            }
        }
        for (key, want) in &e.attrs.all {
            match s.attributes.get(key) {
                None => miss!("attribute {key} missing, expected {:?}", want.0),
                Some(v) if !v.is_text(&want.0) => {
                    miss!(
                        "attribute {key} is {:?}, expected {:?}",
                        v.to_string(),
                        want.0
                    )
                }
                Some(_) => {}
            }
        }
        if !e.attrs.any.is_empty()
            && !e.attrs.any.iter().any(|pair| {
                s.attributes
                    .get(&pair.key)
                    .is_some_and(|v| v.is_text(&pair.value))
            })
        {
            let wanted: Vec<String> = e.attrs.any.iter().map(|p| p.to_string()).collect();
            miss!("has none of attrs.any [{}]", wanted.join(", "));
        }
        let has_event = |name: &str| s.events.iter().any(|ev| ev.name == name);
        for name in &e.events.all {
            if !has_event(name) {
                miss!("event {name:?} missing (events: {})", event_names(s));
            }
        }
        if !e.events.any.is_empty() && !e.events.any.iter().any(|n| has_event(n)) {
            miss!(
                "has none of events.any {:?} (events: {})",
                e.events.any,
                event_names(s)
            );
        }
        if let Some(bounds) = e.duration_ms {
            let d = s.duration_ms();
            if let Some(min) = bounds.min.filter(|&min| d < min) {
                miss!("lasted {d:.3} ms, expected at least {min} ms");
            }
            if let Some(max) = bounds.max.filter(|&max| d > max) {
                miss!("lasted {d:.3} ms, expected at most {max} ms");
            }
        }
        if let Some(want) = e.status {
            if !want.accepts(s.status.code) {
                miss!("status is {}, expected {want}", status_text(s));
            }
        }
        misses
    }

    // ---- [expect.order] ----

    fn order(&self, order: &OrderExpectation, out: &mut Vec<Verdict>) {
        let mut verdicts = Verdicts::new(ExpectationKind::Order, out);
        for (j, [a, b]) in order.must_precede.iter().enumerate() {
            verdicts.push(self.order_pair(j, a, b, true));
        }
        for (j, [a, b]) in order.must_follow.iter().enumerate() {
            verdicts.push(self.order_pair(j, a, b, false));
        }
    }

    /// `precede`: some A ends no later than some B starts. Otherwise (`must_follow`): some A
    /// starts no earlier than some B ends. Comparing the extremes decides "some ... some".
    fn order_pair(&self, j: usize, a: &SpanPattern, b: &SpanPattern, precede: bool) -> Judgement {
        let (field, expected) = if precede {
            (
                "must_precede",
                format!("some {a} ends before some {b} starts"),
            )
        } else {
            (
                "must_follow",
                format!("some {a} starts after some {b} ends"),
            )
        };
        let expectation = format!("expect.order.{field}[{j}] [{a}, {b}]");
        let (sa, sb) = (self.matching(a), self.matching(b));
        let spans = self.spans;
        let earliest_end =
            |set: &[usize]| set.iter().copied().min_by_key(|&i| spans[i].end_unix_nanos);
        let latest_start = |set: &[usize]| {
            set.iter()
                .copied()
                .max_by_key(|&i| spans[i].start_unix_nanos)
        };
        let extremes = if precede {
            (earliest_end(&sa), latest_start(&sb))
        } else {
            (earliest_end(&sb), latest_start(&sa))
        };
        let (Some(ends), Some(starts)) = extremes else {
            let absent = if sa.is_empty() { a } else { b };
            return Judgement {
                expectation,
                passed: false,
                expected,
                actual: self.missing(absent),
                closest: self.closest_names(absent),
            };
        };
        let (end, start) = (spans[ends].end_unix_nanos, spans[starts].start_unix_nanos);
        let passed = end <= start;
        let actual = format!(
            "the earliest {:?} ends at +{:.3} ms, the latest {:?} starts at +{:.3} ms",
            spans[ends].name,
            self.rel_ms(end),
            spans[starts].name,
            self.rel_ms(start)
        );
        let closest = if passed {
            Vec::new()
        } else {
            vec![
                self.summary(ends, Vec::new()),
                self.summary(starts, Vec::new()),
            ]
        };
        Judgement {
            expectation,
            passed,
            expected,
            actual,
            closest,
        }
    }

    // ---- [expect.status] ----

    fn status(&self, status: &StatusExpectation, out: &mut Vec<Verdict>) {
        let mut verdicts = Verdicts::new(ExpectationKind::Status, out);
        if let Some(want) = status.all {
            let all: Vec<usize> = (0..self.spans.len()).collect();
            verdicts.push(self.status_of(
                "expect.status.all".to_string(),
                format!("every span {}", status_wanted(want)),
                &all,
                want,
                None,
            ));
        }
        for (pattern, &want) in &status.by_name {
            verdicts.push(self.status_of(
                format!("expect.status.by_name {pattern}"),
                format!("every span named {pattern} {}", status_wanted(want)),
                &self.matching(pattern),
                want,
                Some(pattern),
            ));
        }
    }

    /// Every span of `set` has an accepted status. An empty set fails: a status check over
    /// no spans would pass a test whose system emitted nothing.
    fn status_of(
        &self,
        expectation: String,
        expected: String,
        set: &[usize],
        want: ExpectedStatus,
        pattern: Option<&SpanPattern>,
    ) -> Judgement {
        if set.is_empty() {
            let (actual, closest) = match pattern {
                Some(p) => (self.missing(p), self.closest_names(p)),
                None => ("no spans received".to_string(), Vec::new()),
            };
            return Judgement {
                expectation,
                passed: false,
                expected,
                actual,
                closest,
            };
        }
        let offenders: Vec<usize> = set
            .iter()
            .copied()
            .filter(|&i| !want.accepts(self.spans[i].status.code))
            .collect();
        let actual = if offenders.is_empty() {
            format!("all {} span(s) do", set.len())
        } else {
            let mut by_code: BTreeMap<&str, usize> = BTreeMap::new();
            for &i in &offenders {
                *by_code
                    .entry(self.spans[i].status.code.as_str())
                    .or_default() += 1;
            }
            let codes: Vec<String> = by_code.iter().map(|(c, n)| format!("{n} {c}")).collect();
            format!(
                "{} of {} span(s) do not: {}",
                offenders.len(),
                set.len(),
                codes.join(", ")
            )
        };
        let closest = offenders
            .iter()
            .take(CLOSEST)
            .map(|&i| {
                self.summary(
                    i,
                    vec![format!("status is {}", status_text(&self.spans[i]))],
                )
            })
            .collect();
        Judgement {
            expectation,
            passed: offenders.is_empty(),
            expected,
            actual,
            closest,
        }
    }

    // ---- [[expect.window]] ----

    fn window(&self, index: usize, w: &WindowExpectation) -> Verdict {
        let expected = format!(
            "every span named {} lies within a {} span of its trace",
            quoted_list(&w.contains),
            w.outer
        );
        let judgement = |passed, actual, closest| {
            verdict(
                ExpectationKind::Window,
                index,
                Judgement {
                    expectation: format!("expect.window[{index}] {}", w.outer),
                    passed,
                    expected: expected.clone(),
                    actual,
                    closest,
                },
            )
        };
        let outers = self.matching(&w.outer);
        if outers.is_empty() {
            return judgement(false, self.missing(&w.outer), self.closest_names(&w.outer));
        }
        let mut by_trace: HashMap<TraceId, Vec<(u64, u64)>> = HashMap::new();
        for &i in &outers {
            let s = &self.spans[i];
            by_trace
                .entry(s.trace_id)
                .or_default()
                .push((s.start_unix_nanos, s.end_unix_nanos));
        }
        let mut problems: Vec<String> = Vec::new();
        let mut offenders: Vec<SpanSummary> = Vec::new();
        let mut checked = 0;
        for inner in &w.contains {
            let set = self.matching(inner);
            if set.is_empty() {
                problems.push(self.missing(inner));
                offenders.extend(self.closest_names(inner));
                continue;
            }
            for i in set {
                checked += 1;
                let s = &self.spans[i];
                let Some(windows) = by_trace.get(&s.trace_id) else {
                    let why = format!("no {} span in its trace {}", w.outer, s.trace_id);
                    problems.push(format!("{:?}: {why}", s.name));
                    offenders.push(self.summary(i, vec![why]));
                    continue;
                };
                let inside = windows
                    .iter()
                    .any(|&(start, end)| start <= s.start_unix_nanos && s.end_unix_nanos <= end);
                if !inside {
                    let spans: Vec<String> = windows
                        .iter()
                        .map(|&(a, b)| format!("+{:.3}..+{:.3}", self.rel_ms(a), self.rel_ms(b)))
                        .collect();
                    let why = format!(
                        "runs +{:.3}..+{:.3} ms, outside every {} of its trace ({} ms)",
                        self.rel_ms(s.start_unix_nanos),
                        self.rel_ms(s.end_unix_nanos),
                        w.outer,
                        spans.join(", ")
                    );
                    problems.push(format!("{:?} {why}", s.name));
                    offenders.push(self.summary(i, vec![why]));
                }
            }
        }
        if problems.is_empty() {
            judgement(true, format!("all {checked} span(s) do"), Vec::new())
        } else {
            let more = if problems.len() > 1 {
                format!(" (and {} more)", problems.len() - 1)
            } else {
                String::new()
            };
            offenders.truncate(CLOSEST);
            judgement(false, format!("{}{more}", problems[0]), offenders)
        }
    }

    // ---- [expect.graph] ----

    fn graph(&self, graph: &GraphExpectation, out: &mut Vec<Verdict>) {
        let mut verdicts = Verdicts::new(ExpectationKind::Graph, out);
        for (j, [parent, child]) in graph.must_include.iter().enumerate() {
            verdicts.push(self.edge_included(j, parent, child));
        }
        for (j, [a, b]) in graph.must_not_cross.iter().enumerate() {
            verdicts.push(self.edge_absent(j, a, b));
        }
        if graph.acyclic {
            verdicts.push(self.acyclic());
        }
    }

    fn edge_included(&self, j: usize, parent: &SpanPattern, child: &SpanPattern) -> Judgement {
        let expectation = format!("expect.graph.must_include[{j}] [{parent}, {child}]");
        let expected = format!("a span named {child} whose parent is named {parent}");
        let children = self.matching(child);
        if children.is_empty() {
            return Judgement {
                expectation,
                passed: false,
                expected,
                actual: self.missing(child),
                closest: self.closest_names(child),
            };
        }
        let passed = children.iter().any(|&i| {
            self.parent(i)
                .is_some_and(|p| parent.matches(&self.spans[p].name))
        });
        if passed {
            return Judgement {
                expectation,
                passed,
                expected,
                actual: "such an edge was received".to_string(),
                closest: Vec::new(),
            };
        }
        let parents: BTreeSet<String> = children
            .iter()
            .map(|&i| {
                self.parent_name(i)
                    .map_or("none (root)".to_string(), |p| format!("{p:?}"))
            })
            .collect();
        Judgement {
            expectation,
            passed,
            expected,
            actual: format!(
                "spans named {child} have parents: {}",
                parents.into_iter().collect::<Vec<_>>().join(", ")
            ),
            closest: children
                .iter()
                .take(CLOSEST)
                .map(|&i| self.summary(i, Vec::new()))
                .collect(),
        }
    }

    fn edge_absent(&self, j: usize, a: &SpanPattern, b: &SpanPattern) -> Judgement {
        let expectation = format!("expect.graph.must_not_cross[{j}] [{a}, {b}]");
        let expected = format!("no edge between {a} and {b}, either way");
        let mut children = self.matching(a);
        children.extend(self.matching(b));
        children.sort_unstable();
        children.dedup();
        let crossing: Vec<(usize, usize)> = children
            .into_iter()
            .filter_map(|c| self.parent(c).map(|p| (p, c)))
            .filter(|&(p, c)| {
                let (pn, cn) = (&self.spans[p].name, &self.spans[c].name);
                (a.matches(pn) && b.matches(cn)) || (b.matches(pn) && a.matches(cn))
            })
            .collect();
        let actual = match crossing.first() {
            None => "no such edge".to_string(),
            Some(&(p, c)) => format!(
                "{} edge(s), first {:?} → {:?}",
                crossing.len(),
                self.spans[p].name,
                self.spans[c].name
            ),
        };
        Judgement {
            expectation,
            passed: crossing.is_empty(),
            expected,
            actual,
            closest: crossing
                .iter()
                .take(CLOSEST)
                .map(|&(p, c)| self.summary(c, vec![format!("child of {:?}", self.spans[p].name)]))
                .collect(),
        }
    }

    /// Follows parent links from every span; a link back into the chain being walked is a
    /// cycle. Each span is walked once, so this is linear.
    fn acyclic(&self) -> Judgement {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnChain,
            Done,
        }
        let mut marks = vec![Mark::New; self.spans.len()];
        let mut cycle: Option<Vec<usize>> = None;
        let mut chain = Vec::new();
        'spans: for start in 0..self.spans.len() {
            let mut at = Some(start);
            while let Some(i) = at {
                match marks[i] {
                    Mark::Done => break,
                    Mark::OnChain => {
                        let from = chain.iter().position(|&c| c == i).unwrap_or(0);
                        let mut looped = chain[from..].to_vec();
                        looped.push(i);
                        cycle = Some(looped);
                        break 'spans;
                    }
                    Mark::New => {
                        marks[i] = Mark::OnChain;
                        chain.push(i);
                        at = self.parent(i);
                    }
                }
            }
            for i in chain.drain(..) {
                marks[i] = Mark::Done;
            }
        }
        let (passed, actual, closest) = match cycle {
            None => (true, "no span is its own ancestor".to_string(), Vec::new()),
            Some(looped) => {
                let names: Vec<String> = looped
                    .iter()
                    .rev()
                    .map(|&i| format!("{:?}", self.spans[i].name))
                    .collect();
                (
                    false,
                    format!("parent cycle: {}", names.join(" → ")),
                    looped
                        .iter()
                        .take(CLOSEST)
                        .map(|&i| self.summary(i, Vec::new()))
                        .collect(),
                )
            }
        };
        Judgement {
            expectation: "expect.graph.acyclic".to_string(),
            passed,
            expected: "span parents form no cycle".to_string(),
            actual,
            closest,
        }
    }

    // ---- [expect.hermeticity] ----

    fn hermeticity(&self, h: &HermeticityExpectation, context: &Context, out: &mut Vec<Verdict>) {
        let mut verdicts = Verdicts::new(ExpectationKind::Hermeticity, out);
        if h.no_external_services {
            verdicts.push(self.no_external_services(context));
        }
        if !h.resource_attrs.is_empty() {
            verdicts.push(self.resource_attrs(h));
        }
        if !h.span_attrs.forbid_keys.is_empty() {
            verdicts.push(self.forbidden_keys(&h.span_attrs.forbid_keys));
        }
    }

    fn no_external_services(&self, context: &Context) -> Judgement {
        let allowed = |host: &str| {
            let host = host.trim_end_matches('.');
            host.eq_ignore_ascii_case(COLLECTOR_HOST)
                || is_loopback(host)
                || context
                    .service_names
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(host))
        };
        let mut offenders: Vec<(usize, String)> = Vec::new();
        for (i, s) in self.spans.iter().enumerate() {
            if !matches!(s.kind, SpanKind::Client | SpanKind::Producer) {
                continue;
            }
            // A span has few attributes: walking them beats four map lookups per span.
            for (key, value) in &s.attributes {
                if !PEER_KEYS.contains(&key.as_str()) {
                    continue;
                }
                // Peer attributes are strings; others are rendered only when they occur.
                let rendered;
                let text = match value {
                    AttrValue::String(s) => s.as_str(),
                    other => {
                        rendered = other.to_string();
                        rendered.as_str()
                    }
                };
                if let Some(host) = host_of(text).filter(|h| !allowed(h)) {
                    offenders.push((i, format!("calls {host:?} ({key})")));
                    break;
                }
            }
        }
        let mut permitted: Vec<&str> = context.service_names.iter().map(String::as_str).collect();
        permitted.push(COLLECTOR_HOST);
        let actual = match offenders.first() {
            None => "no client span names another peer".to_string(),
            Some((i, why)) => format!(
                "{} span(s) call outside, first {:?} {why}",
                offenders.len(),
                self.spans[*i].name
            ),
        };
        Judgement {
            expectation: "expect.hermeticity.no_external_services".to_string(),
            passed: offenders.is_empty(),
            expected: format!("client spans call only {}", permitted.join(", ")),
            actual,
            closest: offenders
                .into_iter()
                .take(CLOSEST)
                .map(|(i, why)| self.summary(i, vec![why]))
                .collect(),
        }
    }

    /// Every span's resource carries each attribute. No spans at all fails: the check is
    /// about what spans carry, and nothing arriving proves nothing.
    fn resource_attrs(&self, h: &HermeticityExpectation) -> Judgement {
        let wanted: Vec<String> = h
            .resource_attrs
            .iter()
            .map(|(k, v)| format!("{k}={:?}", v.0))
            .collect();
        let mut offenders: Vec<(usize, String)> = Vec::new();
        for (i, s) in self.spans.iter().enumerate() {
            for (key, want) in &h.resource_attrs {
                let why = match s.resource.get(key) {
                    None => format!("resource has no {key}"),
                    Some(v) if !v.is_text(&want.0) => {
                        format!(
                            "resource {key} is {:?}, expected {:?}",
                            v.to_string(),
                            want.0
                        )
                    }
                    Some(_) => continue,
                };
                offenders.push((i, why));
                break;
            }
        }
        let actual = if self.spans.is_empty() {
            "no spans received".to_string()
        } else {
            match offenders.first() {
                None => format!("all {} span(s) do", self.spans.len()),
                Some((i, why)) => format!(
                    "{} of {} span(s) do not, first {:?}: {why}",
                    offenders.len(),
                    self.spans.len(),
                    self.spans[*i].name
                ),
            }
        };
        Judgement {
            expectation: "expect.hermeticity.resource_attrs".to_string(),
            passed: !self.spans.is_empty() && offenders.is_empty(),
            expected: format!("every span's resource has {}", wanted.join(", ")),
            actual,
            closest: offenders
                .into_iter()
                .take(CLOSEST)
                .map(|(i, why)| self.summary(i, vec![why]))
                .collect(),
        }
    }

    fn forbidden_keys(&self, keys: &[String]) -> Judgement {
        let offenders: Vec<(usize, &String)> = self
            .spans
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                keys.iter()
                    .find(|k| s.attributes.contains_key(*k))
                    .map(|k| (i, k))
            })
            .collect();
        let actual = match offenders.first() {
            None => "no span carries them".to_string(),
            Some((i, key)) => format!(
                "{} span(s) do, first {:?} has {key}",
                offenders.len(),
                self.spans[*i].name
            ),
        };
        Judgement {
            expectation: "expect.hermeticity.span_attrs.forbid_keys".to_string(),
            passed: offenders.is_empty(),
            expected: format!("no span has attribute {}", keys.join(", ")),
            actual,
            closest: offenders
                .into_iter()
                .take(CLOSEST)
                .map(|(i, key)| self.summary(i, vec![format!("has {key}")]))
                .collect(),
        }
    }
}

/// Attributes that name the peer a client span calls (SPEC §9), plus `url.full`, the current
/// semantic-conventions name of `http.url`.
const PEER_KEYS: &[&str] = &["server.address", "net.peer.name", "http.url", "url.full"];

/// The host of an address or URL: `http://user@host:80/p` → `host`, `[::1]:80` → `::1`.
fn host_of(text: &str) -> Option<&str> {
    let rest = text.split_once("://").map_or(text, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else if host_port.matches(':').count() == 1 {
        host_port.split(':').next()?
    } else {
        host_port
    };
    (!host.is_empty()).then_some(host)
}

/// A container calling itself is not an external service.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host == "::1" || host.starts_with("127.")
}

fn event_names(s: &Span) -> String {
    if s.events.is_empty() {
        return "none".to_string();
    }
    let names: Vec<&str> = s.events.iter().map(|e| e.name.as_str()).collect();
    format!("{names:?}")
}

fn status_text(s: &Span) -> String {
    if s.status.message.is_empty() {
        s.status.code.to_string()
    } else {
        format!("{} ({:?})", s.status.code, s.status.message)
    }
}

fn status_wanted(want: ExpectedStatus) -> String {
    match want {
        ExpectedStatus::Ok => "has status OK (or UNSET)".to_string(),
        other => format!("has status {other}"),
    }
}

/// The expectation in one line, for the "expected:" line of its verdict.
fn describe_span(e: &SpanExpectation) -> String {
    let mut parts = vec![if e.exists {
        format!("a span named {}", e.name)
    } else {
        format!("no span named {}", e.name)
    }];
    if let Some(p) = &e.parent {
        parts.push(format!("parent {p}"));
    }
    if let Some(k) = e.kind {
        parts.push(format!("kind {k}"));
    }
    if !e.attrs.all.is_empty() {
        let all: Vec<String> = e
            .attrs
            .all
            .iter()
            .map(|(k, v)| format!("{k}={:?}", v.0))
            .collect();
        parts.push(format!("attrs.all {{{}}}", all.join(", ")));
    }
    if !e.attrs.any.is_empty() {
        let any: Vec<String> = e.attrs.any.iter().map(|p| p.to_string()).collect();
        parts.push(format!("attrs.any [{}]", any.join(", ")));
    }
    if !e.events.all.is_empty() {
        parts.push(format!("events.all {:?}", e.events.all));
    }
    if !e.events.any.is_empty() {
        parts.push(format!("events.any {:?}", e.events.any));
    }
    if let Some(d) = e.duration_ms {
        let min = d.min.map_or(String::new(), |m| format!("{m}"));
        let max = d.max.map_or(String::new(), |m| format!("{m}"));
        parts.push(format!("duration {min}..{max} ms"));
    }
    if let Some(s) = e.status {
        parts.push(format!("status {s}"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_come_out_of_addresses_and_urls() {
        assert_eq!(host_of("db"), Some("db"));
        assert_eq!(host_of("db:5432"), Some("db"));
        assert_eq!(
            host_of("https://user@api.example.com:8443/x?y"),
            Some("api.example.com")
        );
        assert_eq!(host_of("http://[::1]:80/"), Some("::1"));
        assert_eq!(host_of("::1"), Some("::1"));
        assert_eq!(host_of(""), None);
    }
}
