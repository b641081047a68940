//! `[[expect.span]]`: some received span meets every constraint (or, with `exists = false`,
//! none does), what each candidate misses, and the expectation described in one line. Not
//! `[expect.status]`, which judges every span (in `status`, which also words a span's status).

use crate::expectations::SpanExpectation;
use crate::span::Span;
use crate::verdict::{ExpectationKind, SpanSummary, Verdict};

use super::index::Index;
use super::status::status_text;
use super::{verdict, Judgement, CLOSEST};

impl Index<'_> {
    pub(super) fn span(&self, index: usize, e: &SpanExpectation) -> Verdict {
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
    pub(super) fn span_misses(&self, e: &SpanExpectation, i: usize, all: bool) -> Vec<String> {
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
}

fn event_names(s: &Span) -> String {
    if s.events.is_empty() {
        return "none".to_string();
    }
    let names: Vec<&str> = s.events.iter().map(|e| e.name.as_str()).collect();
    format!("{names:?}")
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
