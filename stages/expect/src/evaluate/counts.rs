//! `[expect.counts]`: how many spans, events and errors arrived, in total, by name and by
//! kind. Not the bound's own rules (`CountBound::holds`), which live with the expectation types.

use crate::expectations::{CountBound, CountsExpectation};
use crate::span::StatusCode;
use crate::verdict::{ExpectationKind, SpanSummary, Verdict};

use super::index::Index;
use super::{Judgement, Verdicts, CLOSEST};

impl Index<'_> {
    pub(super) fn counts(&self, counts: &CountsExpectation, out: &mut Vec<Verdict>) {
        let spans = self.spans;
        let mut verdicts = Verdicts::new(ExpectationKind::Counts, out);
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
            let matching = self.matching(pattern);
            let n = matching.len();
            // None arrived: the names the user may have meant; too many or too few: the
            // ones that were counted.
            let closest = if bound.holds(n as u64) {
                Vec::new()
            } else if matching.is_empty() {
                self.closest_names(pattern)
            } else {
                matching
                    .iter()
                    .take(CLOSEST)
                    .map(|&i| self.summary(i, Vec::new()))
                    .collect()
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
