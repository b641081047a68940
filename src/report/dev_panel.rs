//! The readers of a `clnrm dev` session's events: the human panel (what changed, the
//! results, the timing panel, memory and CPU, the budget line) and the JSON object per
//! run (docs/reference.md §8). They finish the run's `report` and `total` times, its resource use
//! and its budget check, since drawing is part of them. Not the loop (`crate::dev`),
//! which emits the events.

use std::io::Write;
use std::time::Instant;

use super::style::{Palette, CLEAR_SCREEN, FAIL, PASS, WARN};
use super::{ms, HumanReporter, RunStats};
use crate::dev::{Budget, DevEvent, DevRun, SessionEnd};

/// What `--keep` leaves behind, said in both formats.
const KEPT: &str = "containers kept for the next clnrm dev (--keep)";

/// The human panel of `clnrm dev`.
pub struct DevPanel {
    palette: Palette,
    /// Clear the screen before each run (`--clear`).
    clear: bool,
    quiet: bool,
}

impl DevPanel {
    pub fn new(color: bool, clear: bool, quiet: bool) -> DevPanel {
        DevPanel {
            palette: Palette::new(color),
            clear,
            quiet,
        }
    }

    pub fn record(&mut self, event: DevEvent) {
        match event {
            DevEvent::Run(run) => self.show_run(*run),
            DevEvent::Watching { tests } => {
                if !self.quiet {
                    line(&format!(
                        "watching {tests} tests for changes (Ctrl-C to stop)"
                    ));
                }
            }
            DevEvent::Ended(end) => say_end(end),
        }
    }

    fn show_run(&self, mut run: DevRun) {
        let report_started = Instant::now();
        let mut head = String::new();
        if self.clear {
            head.push_str(CLEAR_SCREEN);
        }
        let title = if run.changed.is_empty() {
            format!("run {}: all tests", run.run)
        } else {
            format!("run {}: changed {}", run.run, run.changed.join(", "))
        };
        head.push_str(&format!("── {title}"));
        line(&head);
        for warning in &run.warnings {
            line(&format!(
                "{} {warning}",
                self.palette.paint("warning:", WARN)
            ));
        }
        for problem in &run.problems {
            line(&format!(
                "{} {problem}",
                self.palette.paint("INVALID", FAIL)
            ));
        }
        for test in &run.removed {
            line(&format!("removed {test}"));
        }
        let mut human = HumanReporter::new(self.palette.color(), self.quiet);
        let mut stats = RunStats::default();
        for finished in &run.results {
            stats.record_test(finished);
            human.record_test(finished);
        }
        if run.results.is_empty() && run.problems.is_empty() {
            line("nothing to run: no test's inputs changed");
        } else {
            line(&format!(
                "{} passed, {} failed, {} errors, {} cached",
                stats.passed, stats.failed, stats.errors, stats.cached
            ));
        }
        finish_clock(&mut run, report_started);
        for isolation in isolation_lines(&run) {
            line(&isolation);
        }
        line(&timing_panel(&run));
        line(&cache_panel(&run));
        line(&resources_panel(&run));
        line(&self.budget_line(&run.budget, run.timings_ms.total));
        log_run(&run);
    }
}

impl DevPanel {
    /// "✓ 88 % under budget (365 of 3000 ms)", or how far over it the run went.
    fn budget_line(&self, budget: &Budget, total_ms: f64) -> String {
        let figures = format!("({total_ms:.0} of {:.0} ms)", budget.budget_ms);
        if budget.within {
            let under = 100.0 - budget.used_percent;
            format!(
                "   {} {under:.0} % under budget {figures}",
                self.palette.paint("✓", PASS)
            )
        } else {
            let over = budget.used_percent - 100.0;
            format!(
                "   {} {over:.0} % over budget {figures}",
                self.palette.paint("✗", FAIL)
            )
        }
    }
}

/// The JSON reader of `clnrm dev --format json`: one object per run.
#[derive(Debug, Default)]
pub struct DevJson;

impl DevJson {
    pub fn record(&mut self, event: DevEvent) {
        match event {
            DevEvent::Run(run) => {
                let mut run = *run;
                finish_clock(&mut run, Instant::now());
                line(&serde_json::to_string(&run).expect("a dev run serializes"));
                log_run(&run);
            }
            DevEvent::Watching { .. } => {}
            DevEvent::Ended(end) => say_end(end),
        }
    }
}

fn say_end(end: SessionEnd) {
    if end.kept {
        line(KEPT);
    } else if end.removed > 0 {
        tracing::info!("removed {} pooled container(s)", end.removed);
    }
}

/// Sets `report` (since `report_started`) and `total` (since the run's first event),
/// then the resources used since the run started and the total against the budget.
fn finish_clock(run: &mut DevRun, report_started: Instant) {
    run.timings_ms.report = ms(report_started.elapsed());
    if let Some(start) = run.clock_start {
        run.timings_ms.total = ms(start.elapsed());
    }
    if let Some(start) = run.resources_start {
        run.resources = start.until_now();
    }
    run.budget = Budget::check(run.budget.budget_ms, run.timings_ms.total);
}

fn timing_panel(run: &DevRun) -> String {
    let t = &run.timings_ms;
    let c = &run.containers;
    // The wait for spans after the last step, shown when a test collected any.
    let spans = if t.spans > 0.0 {
        format!(" · spans {:.1}", t.spans)
    } else {
        String::new()
    };
    format!(
        "   detect {:.1} · debounce {:.1} · render {:.1} · parse {:.1} · plan {:.1} · containers {:.1} ({} reused, {} started) · execute {:.1}{spans} · report {:.1} · total {:.1} ms",
        t.detect, t.debounce, t.render, t.parse, t.plan, t.containers, c.reused, c.started, t.execute, t.report, t.total
    )
}

/// How each test got its containers (`fresh (spare ready)`, `fresh (waited 840 ms
/// for a spare)`, `reused`), then the spare sets held: `spares 3 ready · 412 MB`.
fn isolation_lines(run: &DevRun) -> Vec<String> {
    let mut lines: Vec<String> = match run.isolation.len() {
        0 => Vec::new(),
        1 => run
            .isolation
            .values()
            .map(|got| format!("   containers: {}", got.label()))
            .collect(),
        _ => run
            .isolation
            .iter()
            .map(|(test, got)| format!("   {test}: {}", got.label()))
            .collect(),
    };
    let spares = &run.spares;
    if spares.ready + spares.preparing > 0 {
        let mut text = format!("   spares {} ready", spares.ready);
        if spares.preparing > 0 {
            text.push_str(&format!(" · {} preparing", spares.preparing));
        }
        if let Some(mb) = spares.memory_mb {
            text.push_str(&format!(" · {mb:.0} MB"));
        }
        lines.push(text);
    }
    lines
}

fn cache_panel(run: &DevRun) -> String {
    let c = &run.containers;
    let cache: Vec<String> = run
        .cache
        .iter()
        .map(|(stage, hm)| format!("{stage} {}/{}", hm.hits, hm.hits + hm.misses))
        .collect();
    let reuse = if c.reused + c.started == 0 {
        String::from("-")
    } else {
        format!(
            "{:.0} %",
            100.0 * c.reused as f64 / (c.reused + c.started) as f64
        )
    };
    format!(
        "   cache hits: {} · container reuse {reuse}",
        cache.join(" · ")
    )
}

fn resources_panel(run: &DevRun) -> String {
    let r = &run.resources;
    format!(
        "   memory {:.1} MB resident · CPU {:.1} ms ({:.0} % of a core over {:.0} ms)",
        r.rss_mb, r.cpu_ms, r.cpu_percent, r.wall_ms
    )
}

fn log_run(run: &DevRun) {
    tracing::info!(
        run = run.run,
        ran = run.ran.len(),
        detect_ms = run.timings_ms.detect,
        debounce_ms = run.timings_ms.debounce,
        render_ms = run.timings_ms.render,
        parse_ms = run.timings_ms.parse,
        plan_ms = run.timings_ms.plan,
        containers_ms = run.timings_ms.containers,
        execute_ms = run.timings_ms.execute,
        spans_ms = run.timings_ms.spans,
        report_ms = run.timings_ms.report,
        total_ms = run.timings_ms.total,
        reused = run.containers.reused,
        started = run.containers.started,
        rss_mb = run.resources.rss_mb,
        cpu_ms = run.resources.cpu_ms,
        within_budget = run.budget.within,
        "dev run"
    );
}

fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::{HitsMisses, RunResources, DEV_RUN_EVENT};
    use crate::report::{Status, TestFinished};
    use std::collections::BTreeMap;

    fn run_with_two_reused_one_started() -> DevRun {
        DevRun {
            event: DEV_RUN_EVENT,
            run: 2,
            changed: vec!["a.clnrm.toml".into()],
            ran: vec!["a.clnrm.toml".into()],
            results: vec![TestFinished::without_steps(
                "a.clnrm.toml".into(),
                "a".into(),
                Status::Pass,
                false,
                70.0,
                None,
            )],
            timings_ms: Default::default(),
            cache: BTreeMap::from([("render", HitsMisses { hits: 1, misses: 3 })]),
            containers: crate::runner::ContainerUse {
                reused: 2,
                started: 1,
                removed: 0,
            },
            isolation: BTreeMap::new(),
            spares: Default::default(),
            resources: RunResources {
                rss_mb: 23.44,
                cpu_ms: 12.06,
                cpu_percent: 17.2,
                wall_ms: 70.1,
            },
            budget: Budget::check(3000.0, 365.0),
            removed: vec![],
            problems: vec![],
            warnings: vec![],
            clock_start: None,
            resources_start: None,
        }
    }

    #[test]
    fn the_panels_show_stage_times_container_use_and_cache_hits() {
        let run = run_with_two_reused_one_started();
        let timing = timing_panel(&run);
        assert!(timing.contains("(2 reused, 1 started)"), "{timing}");
        assert!(timing.ends_with("total 0.0 ms"), "{timing}");
        let cache = cache_panel(&run);
        assert!(cache.contains("render 1/4"), "{cache}");
        assert!(cache.contains("container reuse 67 %"), "{cache}");
    }

    #[test]
    fn each_run_says_fresh_or_reused_and_the_spares_held() {
        use crate::pool::{RunIsolation, SpareSummary};
        let mut run = run_with_two_reused_one_started();
        assert!(
            isolation_lines(&run).is_empty(),
            "nothing ran on containers"
        );
        run.isolation.insert(
            "a.clnrm.toml".into(),
            RunIsolation::Fresh {
                spare_ready: true,
                waited_ms: 0,
            },
        );
        run.spares = SpareSummary {
            ready: 3,
            preparing: 0,
            memory_mb: Some(412.3),
        };
        assert_eq!(
            isolation_lines(&run),
            [
                "   containers: fresh (spare ready)",
                "   spares 3 ready · 412 MB"
            ]
        );
        run.isolation.insert(
            "b.clnrm.toml".into(),
            RunIsolation::Fresh {
                spare_ready: false,
                waited_ms: 840,
            },
        );
        run.isolation
            .insert("c.clnrm.toml".into(), RunIsolation::Reused);
        run.spares = SpareSummary {
            ready: 1,
            preparing: 2,
            memory_mb: None,
        };
        assert_eq!(
            isolation_lines(&run),
            [
                "   a.clnrm.toml: fresh (spare ready)",
                "   b.clnrm.toml: fresh (waited 840 ms for a spare)",
                "   c.clnrm.toml: reused",
                "   spares 1 ready · 2 preparing"
            ]
        );
    }

    #[test]
    fn the_span_wait_is_its_own_figure_when_a_test_collected_spans() {
        let mut run = run_with_two_reused_one_started();
        assert!(!timing_panel(&run).contains("spans"));
        run.timings_ms.execute = 40.0;
        run.timings_ms.spans = 192.5;
        let timing = timing_panel(&run);
        assert!(
            timing.contains("execute 40.0 · spans 192.5 · report"),
            "{timing}"
        );
    }

    #[test]
    fn the_panel_shows_memory_cpu_and_the_budget_line() {
        let run = run_with_two_reused_one_started();
        let resources = resources_panel(&run);
        assert_eq!(
            resources,
            "   memory 23.4 MB resident · CPU 12.1 ms (17 % of a core over 70 ms)"
        );
        let panel = DevPanel::new(false, false, false);
        assert_eq!(
            panel.budget_line(&run.budget, 365.0),
            "   ✓ 88 % under budget (365 of 3000 ms)"
        );
        let over = Budget::check(3000.0, 3750.0);
        assert!(!over.within);
        assert_eq!(
            panel.budget_line(&over, 3750.0),
            "   ✗ 25 % over budget (3750 of 3000 ms)"
        );
    }

    #[test]
    fn finishing_a_run_measures_its_resources_and_checks_the_budget() {
        let mut run = run_with_two_reused_one_started();
        run.budget = Budget {
            budget_ms: 50.0,
            ..Budget::default()
        };
        run.clock_start = Some(Instant::now() - std::time::Duration::from_millis(100));
        run.resources_start = crate::dev::ResourceSample::now();
        finish_clock(&mut run, Instant::now());
        assert!(run.timings_ms.total >= 100.0);
        assert!(!run.budget.within, "{:?}", run.budget);
        assert!(run.budget.used_percent >= 200.0, "{:?}", run.budget);
        assert!(run.resources.rss_mb > 0.0, "{:?}", run.resources);
    }

    #[test]
    fn the_json_object_has_the_panels_memory_cpu_and_budget_fields() {
        let run = run_with_two_reused_one_started();
        let value: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&run).unwrap()).unwrap();
        let resources = &value["resources"];
        assert_eq!(resources["rss_mb"], 23.44);
        assert_eq!(resources["cpu_ms"], 12.06);
        assert_eq!(resources["cpu_percent"], 17.2);
        assert_eq!(resources["wall_ms"], 70.1);
        let budget = &value["budget"];
        assert_eq!(budget["budget_ms"], 3000.0);
        assert_eq!(budget["within"], true);
        let used = budget["used_percent"].as_f64().unwrap();
        assert!((used - 12.1667).abs() < 0.01, "{used}");
        assert!(value.get("resources_start").is_none());
    }

    #[test]
    fn a_dev_result_serializes_as_spec_section_8_shows_it() {
        let run = run_with_two_reused_one_started();
        let value: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&run).unwrap()).unwrap();
        assert_eq!(value["event"], "dev_run");
        let result = &value["results"][0];
        assert_eq!(
            result,
            &serde_json::json!({"test":"a.clnrm.toml","name":"a","status":"pass","cached":false,"duration_ms":70.0})
        );
        assert!(value.get("clock_start").is_none() && value.get("problems").is_none());
    }
}
