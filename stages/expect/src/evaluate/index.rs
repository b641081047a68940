//! The received spans indexed for the lookups expectations make (by id, by name, glob
//! matching) and the span summaries failure messages show. Not any expectation's rules.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::pattern::SpanPattern;
use crate::span::{Span, SpanId, TraceId};
use crate::verdict::SpanSummary;

use super::CLOSEST;

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
pub(super) struct Index<'s> {
    pub(super) spans: &'s [Span],
    by_id: FxMap<(TraceId, SpanId), usize>,
    by_name: FxMap<&'s str, Vec<usize>>,
    /// Distinct names in first-received order (globs are matched against these, not spans).
    names: Vec<&'s str>,
    /// The earliest start: times in messages are relative to it, in ms.
    origin: u64,
}

impl<'s> Index<'s> {
    pub(super) fn new(spans: &'s [Span]) -> Self {
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
    pub(super) fn matching(&self, pattern: &SpanPattern) -> Vec<usize> {
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

    pub(super) fn parent(&self, i: usize) -> Option<usize> {
        let s = &self.spans[i];
        let parent = s.parent_span_id?;
        self.by_id.get(&(s.trace_id, parent)).copied()
    }

    /// The parent's name for messages: `None` for a root.
    pub(super) fn parent_name(&self, i: usize) -> Option<String> {
        self.spans[i].parent_span_id?;
        Some(match self.parent(i) {
            Some(p) => self.spans[p].name.clone(),
            None => "<not received>".to_string(),
        })
    }

    pub(super) fn rel_ms(&self, t: u64) -> f64 {
        t.saturating_sub(self.origin) as f64 / 1e6
    }

    pub(super) fn summary(&self, i: usize, mismatch: Vec<String>) -> SpanSummary {
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
    pub(super) fn closest_names(&self, pattern: &SpanPattern) -> Vec<SpanSummary> {
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

    pub(super) fn missing(&self, pattern: &SpanPattern) -> String {
        format!(
            "no span named {pattern} among the {} received",
            self.spans.len()
        )
    }
}
