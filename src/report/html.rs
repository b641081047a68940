//! The HTML consumer (`clnrm run --html FILE`): one self-contained page, no script
//! and nothing fetched, with the run's summary, every test (failures first, so they
//! are on the first screen), its steps, expected vs actual, the tail of its output,
//! and a timing waterfall: render, parse, plan, containers, each step, teardown.
//! Collected from the events and written once, at the end of the run.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::{tail, Event, RunFinished, Status, StepFailure, TestFinished};

/// One step as its `step_finished` event told it.
#[derive(Debug, Clone)]
struct StepRecord {
    name: String,
    service: String,
    status: Status,
    exit_code: Option<i64>,
    duration_ms: f64,
    failure: Option<StepFailure>,
    line: Option<usize>,
}

#[derive(Debug, Default)]
pub struct HtmlReport {
    tests: Vec<TestFinished>,
    steps: HashMap<String, Vec<StepRecord>>,
    summary: Option<RunFinished>,
}

/// One bar of a waterfall: a phase, when it started and how long it took.
struct Bar {
    label: String,
    class: &'static str,
    start_ms: f64,
    duration_ms: f64,
}

impl HtmlReport {
    pub fn record(&mut self, event: &Event) {
        match event {
            Event::StepFinished {
                test,
                step,
                service,
                status,
                exit_code,
                duration_ms,
                failure,
                line,
            } => self
                .steps
                .entry(test.clone())
                .or_default()
                .push(StepRecord {
                    name: step.clone(),
                    service: service.clone(),
                    status: *status,
                    exit_code: *exit_code,
                    duration_ms: *duration_ms,
                    failure: failure.clone(),
                    line: *line,
                }),
            Event::TestFinished(finished) => self.tests.push(finished.clone()),
            Event::RunFinished(run) => self.summary = Some(*run),
            Event::RunStarted { .. } | Event::TestStarted { .. } | Event::TestPlanned(_) => {}
        }
    }

    /// The page. `title` names the run (the project folder).
    pub fn to_html(&self, title: &str) -> String {
        let mut tests: Vec<&TestFinished> = self.tests.iter().collect();
        // Failures and errors first, then runs, then cached passes; by name within.
        tests.sort_by_key(|t| (rank(t), t.test.clone()));
        let RunFinished {
            passed,
            failed,
            errors,
            cached,
            skipped,
            flaky,
            duration_ms,
        } = self.summary.unwrap_or_else(|| {
            let count = |s: Status| self.tests.iter().filter(|t| t.status == s).count();
            RunFinished {
                passed: count(Status::Pass) + count(Status::Flaky),
                failed: count(Status::Fail),
                errors: count(Status::Error),
                cached: self.tests.iter().filter(|t| t.cached).count(),
                skipped: count(Status::Skip),
                flaky: count(Status::Flaky),
                duration_ms: self.tests.iter().map(|t| t.duration_ms).sum(),
            }
        });
        let verdict = if failed + errors == 0 { "pass" } else { "fail" };
        let mut page = String::new();
        let _ = write!(
            page,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>clnrm: {title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <header class=\"{verdict}\"><h1>clnrm run <span class=\"where\">{title}</span></h1>\
             <p class=\"counts\"><b class=\"n-pass\">{passed} passed</b> <b class=\"n-fail\">{failed} failed</b> \
             <b class=\"n-error\">{errors} errors</b> <b class=\"n-cached\">{cached} cached</b> \
             {extra}<span>in {:.2}s</span></p></header>\n<main>\n",
            duration_ms / 1000.0,
            extra = extra_counts(flaky, skipped),
            title = escape(title),
        );
        page.push_str(
            "<table class=\"overview\">\n<thead><tr><th>outcome</th><th>test</th>\
             <th>what went wrong</th><th>where the time went</th><th class=\"num\">time</th>\
             </tr></thead>\n<tbody>\n",
        );
        // The overview's bars share one scale, so the slowest test stands out.
        let longest_ms = self
            .tests
            .iter()
            .filter(|t| t.timings.is_some())
            .map(|t| t.duration_ms)
            .fold(0.0, f64::max);
        for (index, test) in tests.iter().enumerate() {
            let steps = self.steps.get(&test.test).map(Vec::as_slice).unwrap_or(&[]);
            let _ = writeln!(
                page,
                "<tr class=\"test {class}\"><td>{badge}</td><td><a href=\"#t{index}\">{name}</a> \
                 <span class=\"path\">{path}</span></td><td class=\"why\">{why}</td>\
                 <td>{bars}</td><td class=\"num\">{time}</td></tr>",
                class = status_class(test),
                badge = badge(test),
                name = escape(&test.name),
                path = escape(&location(&test.test, test.line)),
                why = escape(&one_line_reason(test)),
                bars = mini_waterfall(&waterfall(test, steps), longest_ms),
                time = time_label(test),
            );
        }
        page.push_str("</tbody>\n</table>\n");
        for (index, test) in tests.iter().enumerate() {
            self.write_test(&mut page, index, test);
        }
        page.push_str("</main>\n</body>\n</html>\n");
        page
    }

    fn write_test(&self, page: &mut String, index: usize, test: &TestFinished) {
        let steps = self.steps.get(&test.test).map(Vec::as_slice).unwrap_or(&[]);
        let open = if test.status == Status::Pass {
            ""
        } else {
            " open"
        };
        let _ = writeln!(
            page,
            "<section id=\"t{index}\" class=\"detail {class}\"><details{open}><summary>{badge} \
             <b>{name}</b> <span class=\"path\">{path}</span> <span class=\"time\">{time}</span>\
             </summary>",
            class = status_class(test),
            badge = badge(test),
            name = escape(&test.name),
            path = escape(&test.test),
            time = time_label(test),
        );
        if let Some(message) = &test.message {
            let _ = writeln!(page, "<pre class=\"message\">{}</pre>", escape(message));
        }
        write_attempts(page, test);
        if let (Some(step), Some(failure)) = (&test.failed_step, &test.failure) {
            let _ = write!(
                page,
                "<p>step <code>{}</code> failed{}</p>\n<div class=\"versus\">\
                 <div><h4>expected</h4><pre>{}</pre></div><div><h4>actual</h4><pre>{}</pre></div></div>\n",
                escape(step),
                test.line
                    .map(|line| format!(" at line {line}"))
                    .unwrap_or_default(),
                escape(&failure.expected),
                escape(&failure.actual),
            );
            write_output(page, failure);
        }
        write_step_attempts(page, test);
        if !steps.is_empty() {
            page.push_str(
                "<table class=\"steps\"><thead><tr><th>step</th><th>service</th><th>outcome</th>\
                 <th class=\"num\">exit</th><th class=\"num\">time</th></tr></thead><tbody>\n",
            );
            for step in steps {
                let _ = writeln!(
                    page,
                    "<tr class=\"{}\"><td>{}{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
                     <td class=\"num\">{:.1} ms</td></tr>",
                    step_class(step.status),
                    escape(&step.name),
                    step.line
                        .map(|line| format!(" <span class=\"path\">line {line}</span>"))
                        .unwrap_or_default(),
                    escape(&step.service),
                    step_class(step.status),
                    step.exit_code.map(|c| c.to_string()).unwrap_or_default(),
                    step.duration_ms,
                );
            }
            page.push_str("</tbody></table>\n");
            // Output of failing steps other than the one the test reports (continue_on_failure).
            for step in steps {
                if let Some(failure) = &step.failure {
                    if Some(&step.name) != test.failed_step.as_ref() {
                        let _ = writeln!(
                            page,
                            "<p>step <code>{}</code>: expected {}, actual {}</p>",
                            escape(&step.name),
                            escape(&failure.expected),
                            escape(&failure.actual)
                        );
                    }
                }
            }
        }
        write_waterfall(page, &waterfall(test, steps));
        page.push_str("</details></section>\n");
    }
}

fn write_output(page: &mut String, failure: &StepFailure) {
    for (label, text) in [("stdout", &failure.stdout), ("stderr", &failure.stderr)] {
        if !text.trim().is_empty() {
            let _ = writeln!(
                page,
                "<h4>{label} (last lines)</h4><pre class=\"output\">{}</pre>",
                escape(&tail(text, 20))
            );
        }
    }
}

/// The phases of a test in the order they happened: before the run (render, parse,
/// plan), then containers, the steps one after another, and teardown.
fn waterfall(test: &TestFinished, steps: &[StepRecord]) -> Vec<Bar> {
    let mut bars = Vec::new();
    let mut at = 0.0;
    let mut push = |bars: &mut Vec<Bar>, label: String, class, duration_ms: f64| {
        bars.push(Bar {
            label,
            class,
            start_ms: at,
            duration_ms,
        });
        at += duration_ms;
    };
    let Some(timings) = &test.timings else {
        return bars;
    };
    push(&mut bars, "render".into(), "stage", timings.render_ms);
    push(&mut bars, "parse".into(), "stage", timings.parse_ms);
    push(&mut bars, "plan".into(), "stage", timings.plan_ms);
    let containers = format!(
        "containers ({} started, {} reused)",
        timings.containers_started, timings.containers_reused
    );
    push(&mut bars, containers, "containers", timings.containers_ms);
    for step in steps {
        let class = match step.status {
            Status::Pass => "step",
            _ => "step failed",
        };
        push(
            &mut bars,
            format!("step {}", step.name),
            class,
            step.duration_ms,
        );
    }
    push(
        &mut bars,
        "teardown".into(),
        "teardown",
        timings.teardown_ms,
    );
    bars
}

fn write_waterfall(page: &mut String, bars: &[Bar]) {
    let Some(end) = bars.last().map(|b| b.start_ms + b.duration_ms) else {
        return;
    };
    let total = end.max(0.001);
    page.push_str("<div class=\"waterfall\"><h4>where the time went</h4>\n");
    for bar in bars {
        let _ = writeln!(
            page,
            "<div class=\"phase\"><span class=\"label\">{}</span><span class=\"track\">\
             <span class=\"bar {}\" style=\"margin-left:{:.2}%;width:{:.2}%\"></span></span>\
             <span class=\"ms\">{:.1} ms</span></div>",
            escape(&bar.label),
            bar.class,
            bar.start_ms / total * 100.0,
            (bar.duration_ms / total * 100.0).max(0.2),
            bar.duration_ms,
        );
    }
    page.push_str("</div>\n");
}

/// The phases of one test as one stacked bar, on a scale shared by every test.
fn mini_waterfall(bars: &[Bar], longest_ms: f64) -> String {
    if bars.is_empty() || longest_ms <= 0.0 {
        return String::new();
    }
    let mut out = String::from("<span class=\"mini\">");
    for bar in bars {
        let _ = write!(
            out,
            "<span class=\"bar {}\" style=\"width:{:.2}%\" title=\"{}: {:.1} ms\"></span>",
            bar.class,
            bar.duration_ms / longest_ms * 100.0,
            escape(&bar.label),
            bar.duration_ms
        );
    }
    out.push_str("</span>");
    out
}

fn rank(test: &TestFinished) -> u8 {
    match (test.status, test.cached) {
        (Status::Fail, _) => 0,
        (Status::Error, _) => 1,
        (Status::Flaky, _) => 2,
        (Status::Pass, false) => 3,
        (Status::Pass, true) => 4,
        (Status::Skip, _) => 5,
    }
}

fn status_class(test: &TestFinished) -> &'static str {
    match (test.status, test.cached) {
        (Status::Pass, true) => "pass cached",
        (status, _) => step_class(status),
    }
}

fn step_class(status: Status) -> &'static str {
    match status {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Error => "error",
        Status::Skip => "skip",
        Status::Flaky => "flaky",
    }
}

/// The attempts of steps that may run more than once, and the values steps captured.
fn write_step_attempts(page: &mut String, test: &TestFinished) {
    if let Some(note) = test.flaky_note() {
        let _ = writeln!(page, "<p class=\"flaky\">FLAKY: {}</p>", escape(&note));
    }
    if !test.step_attempts.is_empty() {
        page.push_str(
            "<table class=\"attempts\"><thead><tr><th>step</th><th class=\"num\">attempt</th>\
             <th>outcome</th><th class=\"num\">exit</th><th>why</th><th class=\"num\">time</th>\
             </tr></thead><tbody>\n",
        );
        for a in &test.step_attempts {
            let of = a.of.map(|of| format!(" of {of}")).unwrap_or_default();
            let why = a
                .failure
                .as_ref()
                .map(|f| format!("expected {}; actual {}", f.expected, f.actual))
                .unwrap_or_default();
            let _ = writeln!(
                page,
                "<tr class=\"{class}\"><td>{}</td><td class=\"num\">{}{of}</td><td>{class}</td>\
                 <td class=\"num\">{}</td><td>{}</td><td class=\"num\">{:.1} ms</td></tr>",
                escape(&a.step),
                a.attempt,
                a.exit_code.map(|c| c.to_string()).unwrap_or_default(),
                escape(&why),
                a.duration_ms,
                class = step_class(a.status),
            );
        }
        page.push_str("</tbody></table>\n");
    }
    if !test.captures.is_empty() {
        page.push_str("<table class=\"captures\"><thead><tr><th>capture</th><th>step</th><th>value</th></tr></thead><tbody>\n");
        for c in &test.captures {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                escape(&c.name),
                escape(&c.step),
                escape(&c.value)
            );
        }
        page.push_str("</tbody></table>\n");
    }
}

/// The status badge, and a `reused` one for a result on containers an earlier run left.
fn badge(test: &TestFinished) -> String {
    let status = status_badge(test);
    if test.reused() {
        format!("{status} <span class=\"badge reused\">reused</span>")
    } else {
        status.to_string()
    }
}

fn status_badge(test: &TestFinished) -> &'static str {
    match (test.status, test.cached) {
        (Status::Fail, _) => "<span class=\"badge fail\">FAIL</span>",
        (Status::Error, _) => "<span class=\"badge error\">ERROR</span>",
        (Status::Pass, false) => "<span class=\"badge pass\">PASS</span>",
        (Status::Pass, true) => "<span class=\"badge pass\">PASS (cached)</span>",
        (Status::Skip, _) => "<span class=\"badge skip\">SKIP</span>",
        (Status::Flaky, _) => "<span class=\"badge flaky\">FLAKY</span>",
    }
}

/// `1 flaky`, `2 skipped` in the header, when there are any.
fn extra_counts(flaky: usize, skipped: usize) -> String {
    let mut out = String::new();
    if flaky > 0 {
        let _ = write!(out, "<b class=\"n-flaky\">{flaky} flaky</b> ");
    }
    if skipped > 0 {
        let _ = write!(out, "<b class=\"n-skip\">{skipped} skipped</b> ");
    }
    out
}

/// A test run more than once: each attempt, how it ended and why.
fn write_attempts(page: &mut String, test: &TestFinished) {
    if test.attempts.is_empty() {
        return;
    }
    let note = test.attempts_note().unwrap_or_default();
    let _ = writeln!(
        page,
        "<table class=\"attempts\"><caption>attempts {}</caption><tbody>",
        escape(&note)
    );
    for attempt in &test.attempts {
        let why = match (&attempt.failed_step, &attempt.failure, &attempt.message) {
            (Some(step), Some(failure), _) => format!(
                "step `{step}`: {}",
                failure.actual.lines().next().unwrap_or("")
            ),
            (_, _, Some(message)) => message.lines().next().unwrap_or("").to_string(),
            _ => String::new(),
        };
        let _ = writeln!(
            page,
            "<tr class=\"{class}\"><td>attempt {}</td><td>{class}</td><td>{}</td>\
             <td class=\"num\">{:.1} ms</td></tr>",
            attempt.attempt,
            escape(&why),
            attempt.duration_ms,
            class = step_class(attempt.status),
        );
    }
    page.push_str("</tbody></table>\n");
}

fn location(test: &str, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{test}:{line}"),
        None => test.to_string(),
    }
}

fn time_label(test: &TestFinished) -> String {
    if test.cached || (test.status == Status::Error && test.duration_ms == 0.0) {
        String::new()
    } else {
        format!("{:.2}s", test.duration_ms / 1000.0)
    }
}

/// What went wrong, in one line for the overview.
fn one_line_reason(test: &TestFinished) -> String {
    if let (Some(step), Some(failure)) = (&test.failed_step, &test.failure) {
        return format!(
            "step `{step}`: {}",
            failure.actual.lines().next().unwrap_or("")
        );
    }
    match &test.message {
        Some(message) => message.lines().next().unwrap_or("").to_string(),
        None => String::new(),
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
:root{--pass:#1a7f37;--fail:#cf222e;--error:#bc4c00;--muted:#57606a;--line:#d0d7de}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1f2328;background:#f6f8fa}
header{padding:10px 20px;color:#fff}
header.pass{background:var(--pass)}header.fail{background:var(--fail)}
h1{margin:0;font-size:20px}h1 .where{font-weight:400;opacity:.85}
.counts{margin:4px 0 0}.counts b{margin-right:10px}
main{padding:12px 20px;max-width:1200px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line)}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#eaeef2;font-weight:600}
.num{text-align:right;white-space:nowrap}
.path{color:var(--muted);font-family:ui-monospace,monospace;font-size:12px}
.why{font-family:ui-monospace,monospace;font-size:12px;max-width:400px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
tr.fail td:first-child,tr.error td:first-child{font-weight:700}
tr.fail{background:#ffebe9}tr.error{background:#fff1e5}
.badge{display:inline-block;min-width:52px;padding:0 6px;border-radius:10px;color:#fff;font-size:12px;text-align:center}
.badge.pass{background:var(--pass)}.badge.fail{background:var(--fail)}.badge.error{background:var(--error)}
.badge.skip{background:#888}.badge.flaky{background:#b58900}.badge.reused{background:#6c71c4}
section.detail{margin:12px 0;background:#fff;border:1px solid var(--line);border-left:4px solid var(--pass);padding:6px 12px}
section.fail{border-left-color:var(--fail)}section.error{border-left-color:var(--error)}
summary{cursor:pointer}
pre{background:#f6f8fa;border:1px solid var(--line);padding:6px;overflow:auto;max-height:260px;margin:4px 0;white-space:pre-wrap}
.versus{display:grid;grid-template-columns:1fr 1fr;gap:12px}
h4{margin:8px 0 2px;font-size:13px}
table.steps{margin:8px 0}td.fail{color:var(--fail);font-weight:600}
.waterfall .phase{display:grid;grid-template-columns:260px 1fr 90px;gap:8px;align-items:center;font-size:12px}
.waterfall .label{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.waterfall .track{background:#eaeef2;height:12px;position:relative}
.waterfall .bar{display:block;height:12px;background:#8c959f}
.bar.stage{background:#8250df}.bar.containers{background:#0969da}.bar.step{background:var(--pass)}
.bar.failed{background:var(--fail)}.bar.teardown{background:#8c959f}
.waterfall .ms{text-align:right;font-family:ui-monospace,monospace}
.mini{display:flex;width:220px;height:10px;margin-top:4px;background:#eaeef2}
.mini .bar{display:block;height:10px}
";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::TestTimings;

    fn finished(name: &str, status: Status) -> TestFinished {
        TestFinished {
            test: format!("tests/{name}.clnrm.toml"),
            name: name.into(),
            status,
            cached: false,
            duration_ms: 30.0,
            message: None,
            failed_step: None,
            failure: None,
            timings: Some(TestTimings {
                render_ms: 1.0,
                parse_ms: 1.0,
                plan_ms: 1.0,
                containers_ms: 20.0,
                execute_ms: 5.0,
                teardown_ms: 2.0,
                containers_reused: 0,
                containers_started: 1,
                containers_removed: 1,
                spans_ms: 0.0,
            }),
            isolation: None,
            spans_wait: None,
            line: None,
            expectations: Vec::new(),
            attempts: Vec::new(),
            max_attempts: None,
            step_attempts: Vec::new(),
            captures: Vec::new(),
            teardown: Vec::new(),
        }
    }

    #[test]
    fn failures_come_first_and_markup_in_output_is_shown_as_text() {
        let mut report = HtmlReport::default();
        report.record(&Event::TestFinished(finished("a_pass", Status::Pass)));
        let mut failed = finished("z_fail", Status::Fail);
        failed.failed_step = Some("s".into());
        failed.failure = Some(StepFailure {
            expected: "exit code 0".into(),
            actual: "<script>alert(1)</script>".into(),
            stdout: String::new(),
            stderr: String::new(),
        });
        report.record(&Event::StepFinished {
            test: failed.test.clone(),
            step: "s".into(),
            service: "box".into(),
            status: Status::Fail,
            exit_code: Some(1),
            duration_ms: 4.0,
            failure: failed.failure.clone(),
            line: Some(7),
        });
        report.record(&Event::TestFinished(failed));
        let page = report.to_html("demo");
        let fail_at = page.find("tests/z_fail.clnrm.toml").unwrap();
        let pass_at = page.find("tests/a_pass.clnrm.toml").unwrap();
        assert!(fail_at < pass_at, "the failure is listed first");
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(
            page.contains("step s"),
            "the step has a bar in the waterfall"
        );
        assert!(!page.contains("http"), "nothing is fetched");
    }

    #[test]
    fn a_flaky_test_shows_its_badge_its_attempts_and_its_captures() {
        let mut t = finished("retried", Status::Flaky);
        for (n, status) in [(1, Status::Fail), (2, Status::Pass)] {
            t.step_attempts.push(crate::report::StepAttempt {
                step: "call".into(),
                attempt: n,
                of: Some(3),
                status,
                exit_code: Some(if n == 1 { 1 } else { 0 }),
                duration_ms: 4.0,
                failure: (n == 1).then(|| crate::report::StepFailure {
                    expected: "exit code 0".into(),
                    actual: "exit code 1".into(),
                    stdout: String::new(),
                    stderr: String::new(),
                }),
            });
        }
        t.captures.push(crate::report::CapturedValue {
            step: "call".into(),
            name: "id".into(),
            value: "item <1>".into(),
        });
        let mut report = HtmlReport::default();
        report.record(&Event::TestFinished(t));
        let page = report.to_html("p");
        assert!(
            page.contains("<span class=\"badge flaky\">FLAKY</span>"),
            "{page}"
        );
        assert!(page.contains("FLAKY: passed on attempt 2 of 3"), "{page}");
        assert!(
            page.contains("<td class=\"num\">1 of 3</td><td>fail</td>"),
            "{page}"
        );
        assert!(
            page.contains("expected exit code 0; actual exit code 1"),
            "{page}"
        );
        assert!(page.contains("<code>item &lt;1&gt;</code>"), "{page}");
    }
}
