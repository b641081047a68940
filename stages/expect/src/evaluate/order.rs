//! `[expect.order]`: `must_precede` and `must_follow` between span names, decided by
//! comparing the extreme end and start times. Not parent/child structure (that is graph).

use crate::expectations::OrderExpectation;
use crate::pattern::SpanPattern;
use crate::verdict::{ExpectationKind, Verdict};

use super::index::Index;
use super::{Judgement, Verdicts};

impl Index<'_> {
    pub(super) fn order(&self, order: &OrderExpectation, out: &mut Vec<Verdict>) {
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
    pub(super) fn order_pair(
        &self,
        j: usize,
        a: &SpanPattern,
        b: &SpanPattern,
        precede: bool,
    ) -> Judgement {
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
}
