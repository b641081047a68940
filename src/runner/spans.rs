//! The runner's part of span expectations (docs/reference.md §9): what a test's receiver waits for, taken
//! from its config when it is prepared, and its verdicts once it has run. Receiving is
//! `crate::otel`; judging is the pure `clnrm_expect` stage.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clnrm_config::TestConfig;
use clnrm_expect::{Context, Expectations, ResourceType, SpanPattern, SpanWait, Verdict};

use crate::otel::{
    DefaultBridge, FlushRule, FlushWait, ReceiverSettings, TestReceiver, DEFAULT_FLUSH_TIMEOUT,
};
use crate::report::SpansWait;

/// Everything a test with span collection needs at run time.
#[derive(Debug, Clone)]
pub struct SpanPlan {
    pub expectations: Expectations,
    pub settings: ReceiverSettings,
    /// The test's services: peers `no_external_services` allows.
    pub services: Vec<String>,
    /// Where the received spans are written.
    pub spans_file: PathBuf,
    /// What of it a result depends on (the expectations and waits as written).
    pub hash: [u8; 32],
}

impl SpanPlan {
    /// `None` for a test that collects no spans.
    pub fn of(config: &TestConfig, spans_file: PathBuf) -> Result<Option<SpanPlan>, String> {
        let otel = &config.otel;
        if !otel.collects() {
            return Ok(None);
        }
        let expectations = match &otel.expect {
            Some(table) => table.expectations()?,
            None => Expectations::default(),
        };
        let flush_timeout = otel
            .flush_timeout_ms
            .map_or(DEFAULT_FLUSH_TIMEOUT, Duration::from_millis);
        let wait_for_span = otel
            .wait_for_span
            .iter()
            .map(|(service, wait)| {
                let timeout = wait.timeout_ms.map_or(flush_timeout, Duration::from_millis);
                (service.clone(), (SpanPattern::new(&wait.span), timeout))
            })
            .collect();
        let hash = *blake3::hash(&bincode::serialize(otel).expect("the otel config serializes"))
            .as_bytes();
        // clnrm's own spans are added after the run: no need to wait for them.
        let steps: Vec<String> = config.steps.iter().map(|s| s.name.clone()).collect();
        let own = super::checks::TestChecks::of(config).own_span_names(&steps);
        let mut awaited = expectations.awaited_span_names();
        awaited.retain(|p| !own.iter().any(|name| p.matches(name)));
        // Expectations on clnrm's own spans do not hold before those are added, after the
        // wait: such a test falls back to the quiet period.
        let rule = match clnrm_expect::span_wait(&expectations, &config.assertions) {
            SpanWait::Named(_) => FlushRule::Held(Box::new(expectations.clone())),
            SpanWait::AllSpans(because) => FlushRule::Quiet(because),
        };
        Ok(Some(SpanPlan {
            settings: ReceiverSettings {
                awaited,
                flush_timeout,
                wait_for_span,
                rule,
            },
            expectations,
            services: config.services.keys().cloned().collect(),
            spans_file,
            hash,
        }))
    }

    /// Its receiver; with `bridge`, the run's listeners on the default bridge, which a
    /// one-service test on fresh containers shares.
    pub fn receiver(&self, bridge: Option<Arc<DefaultBridge>>) -> TestReceiver {
        TestReceiver::new(self.settings.clone(), bridge)
    }
}

/// A test's spans judged: the verdicts, and the text of its failure when one failed.
#[derive(Debug, Clone, Default)]
pub struct Judged {
    pub verdicts: Vec<Verdict>,
    /// How long the wait after the last step took.
    pub wait_ms: f64,
    /// What ended that wait (`None` when it did not run).
    pub wait: Option<SpansWait>,
    /// Every failed expectation, then where the spans are and what never arrived.
    pub failure: Option<String>,
    /// The first failed expectation (`expect.span[2] "db.query"`).
    pub first_failed: Option<Verdict>,
}

/// Judges what `receiver` got against `plan`, and writes the spans to the plan's file.
/// `resources` are what the run had (`[[expect.resource]]`).
pub fn judge(
    plan: &SpanPlan,
    receiver: &TestReceiver,
    resources: &[(ResourceType, String)],
) -> Judged {
    let spans = receiver.spans();
    let written = receiver.write_jsonl(&plan.spans_file);
    let waited = receiver.flush_wait();
    let wait = waited.clone().unwrap_or_default();
    let context = resources.iter().fold(
        Context::new(plan.services.iter().cloned()),
        |context, (kind, name)| context.with_resource(*kind, name.clone()),
    );
    let verdicts = clnrm_expect::evaluate(&spans, &plan.expectations, &context);
    let failed: Vec<&Verdict> = verdicts.iter().filter(|v| !v.passed).collect();
    let failure = (!failed.is_empty()).then(|| {
        let mut text: Vec<String> = failed.iter().map(|v| v.message()).collect();
        text.push(wait_note(&wait, spans.len()));
        match written {
            Ok(()) => text.push(format!("spans received: {}", plan.spans_file.display())),
            Err(err) => text.push(format!(
                "could not write the spans to {}: {err}",
                plan.spans_file.display()
            )),
        }
        text.join("\n")
    });
    Judged {
        first_failed: failed.first().map(|v| (*v).clone()),
        verdicts,
        wait_ms: wait.waited.as_secs_f64() * 1000.0,
        wait: waited.map(|w| SpansWait {
            ended: w.ended.as_str(),
            because: w.quiet_because,
        }),
        failure,
    }
}

fn wait_note(wait: &FlushWait, received: usize) -> String {
    if wait.timed_out && !wait.missing.is_empty() {
        format!(
            "{received} span(s) received; waited {:.1} s (the flush timeout) for {} that never arrived",
            wait.waited.as_secs_f64(),
            wait.missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        format!(
            "{received} span(s) received; waited {:.0} ms after the last step",
            wait.waited.as_secs_f64() * 1000.0
        )
    }
}
