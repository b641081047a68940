//! A test file (`*.clnrm.toml`, or a rendered template) to a validated [`TestConfig`]: the
//! top-level tables, `[meta]` / `[test.metadata]`, `[otel]`, `[expect.*]`, `[limits]`, and
//! the assembly of the parts. Services, steps, regex patterns, `[determinism]` and `[expect]`
//! have files of their own; this one reads no files and evaluates no expectation.

use std::collections::{BTreeMap, BTreeSet};

use toml_edit::{ImDocument, TableLike};

use crate::determinism::parse_determinism;
use crate::expect::{judged_table, parse_expect, parse_otel_validation, warn_local_collector};
use crate::language::check_references;
use crate::service::parse_service;
use crate::step::{bind_steps, parse_scenario, parse_step, RawStep, StepDefaults};
use crate::walk::{did_you_mean, fields, join, kind, value_span, Ctx, Field, Span};
use crate::{
    Diagnostic, Isolation, Limits, OtelConfig, ParseInput, ParsedTest, ServiceConfig, SkipIf,
    TestConfig,
};

pub(crate) fn parse_test(input: &ParseInput) -> Result<ParsedTest, Vec<Diagnostic>> {
    let mut ctx = Ctx::new(
        &input.file,
        &input.text,
        input.rendered_from_template,
        input.strict,
    );
    let doc = match ImDocument::parse(input.text.as_str()) {
        Ok(doc) => doc,
        Err(e) => {
            ctx.syntax_error(&e, input.rendered_from_template);
            return Err(ctx.into_sorted());
        }
    };
    let root = doc.as_table();
    if root.is_empty() {
        ctx.error_hint(
            "",
            &None,
            "empty test file: no [meta] or [test.metadata]",
            "start with [meta] name = \"...\" version = \"1.0\", then [[steps]] or [[scenario]]",
        );
        return Err(ctx.into_sorted());
    }
    let mut b = Builder::default();
    for f in fields(root, "") {
        b.top_level(&mut ctx, &f);
    }
    let config = b.finish(&mut ctx);
    if ctx.has_errors() {
        Err(ctx.into_sorted())
    } else {
        Ok(ParsedTest {
            config,
            warnings: ctx.into_sorted(),
        })
    }
}

struct Meta {
    name: Option<String>,
    version: Option<String>,
    description: Option<String>,
    timeout_ms: Option<u64>,
    retries: u32,
    skip_if: Option<SkipIf>,
    isolation: Option<Isolation>,
}

#[derive(Default)]
struct Builder {
    meta: Option<(Meta, String, Span)>,
    services: BTreeMap<String, ServiceConfig>,
    /// Every declared service (also invalid ones, so references to them do not cascade),
    /// with the table it was declared under.
    declared: BTreeMap<String, String>,
    setup: Vec<RawStep>,
    steps: Vec<RawStep>,
    scenario_steps: Vec<RawStep>,
    teardown: Vec<RawStep>,
    limits: Limits,
    seed: Option<u64>,
    freeze_clock: Option<String>,
    unevaluated: BTreeSet<String>,
    otel: OtelConfig,
    otel_validation: Option<toml_edit::Item>,
    assertions: clnrm_expect::Assertions,
    /// Where `service_should_start` was written, to name an undeclared service there.
    service_should_start_at: Option<(String, Span)>,
}

impl Builder {
    fn top_level(&mut self, ctx: &mut Ctx, f: &Field) {
        match f.key {
            "meta" => {
                if let Some(t) = ctx.table(f) {
                    let meta = parse_meta(ctx, t, &f.path, crate::keys::known("meta"));
                    self.set_meta(ctx, meta, f);
                }
            }
            "test" => {
                let Some(t) = ctx.table(f) else { return };
                for g in fields(t, &f.path) {
                    if g.key == "metadata" {
                        if let Some(m) = ctx.table(&g) {
                            let meta =
                                parse_meta(ctx, m, &g.path, crate::keys::known("test.metadata"));
                            self.set_meta(ctx, meta, &g);
                        }
                    } else {
                        ctx.unknown_key(&g.path, g.key, &g.span, &["metadata"]);
                    }
                }
            }
            "service" | "services" => {
                let Some(t) = ctx.table(f) else { return };
                for g in fields(t, &f.path) {
                    self.service(ctx, &g, f.key);
                }
            }
            "steps" | "setup" | "teardown" => {
                let list = match f.key {
                    "setup" => &mut self.setup,
                    "teardown" => &mut self.teardown,
                    _ => &mut self.steps,
                };
                for (path, t, span) in ctx.table_list(f) {
                    if let Some(s) = parse_step(ctx, &path, t, span, None, &StepDefaults::default())
                    {
                        list.push(s);
                    }
                }
            }
            "scenario" => {
                for (path, t, span) in ctx.table_list(f) {
                    parse_scenario(ctx, &path, t, span, &mut self.scenario_steps);
                }
            }
            "vars" => {
                // Authoring-time variables: only their shape is checked.
                ctx.table(f);
            }
            "matrix" => {
                if let Some(t) = ctx.table(f) {
                    // The engine expands the matrix from the template's text (matrix.rs);
                    // here only its shape is checked. `exclude` may be `[[matrix.exclude]]`.
                    for g in fields(t, &f.path) {
                        if g.key != "exclude" && g.item.as_array().is_none() {
                            ctx.value_error(
                                &g,
                                format!("expected an array of values, found {}", kind(g.item)),
                            );
                        }
                    }
                }
            }
            "otel" => {
                self.otel.declared = true;
                parse_otel(ctx, f, &mut self.otel);
            }
            "otel_validation" => self.otel_validation = parse_otel_validation(ctx, f),
            "expect" => {
                let (expect, unevaluated) = parse_expect(ctx, f);
                self.otel.expect = expect;
                self.unevaluated.extend(unevaluated);
            }
            "report" => {
                if let Some(t) = ctx.table(f) {
                    for g in fields(t, &f.path) {
                        if crate::keys::known("report").contains(&g.key) {
                            ctx.string(&g);
                        } else {
                            ctx.unknown_key(&g.path, g.key, &g.span, crate::keys::known("report"));
                        }
                    }
                }
            }
            "determinism" => {
                if let Some(t) = ctx.table(f) {
                    let (seed, clock) = parse_determinism(ctx, t, &f.path);
                    self.seed = seed;
                    self.freeze_clock = clock;
                }
            }
            "limits" => {
                let Some(t) = ctx.table(f) else { return };
                for g in fields(t, &f.path) {
                    let slot = match g.key {
                        "cpu_millicores" => &mut self.limits.cpu_millicores,
                        "memory_mb" => &mut self.limits.memory_mb,
                        _ => {
                            ctx.unknown_key(&g.path, g.key, &g.span, crate::keys::known("limits"));
                            continue;
                        }
                    };
                    *slot = positive(ctx, &g);
                }
            }
            "assertions" => self.parse_assertions(ctx, f),
            "template" => ctx.note_ignored(
                &f.path,
                &f.span,
                "[template] is a legacy key and is ignored; template variables come from \
                 cleanroom.toml [vars] or --var",
            ),
            _ => ctx.unknown_key(&f.path, f.key, &f.span, crate::keys::known("")),
        }
    }

    /// `[assertions]`: every key the original's files use; any other is an error.
    fn parse_assertions(&mut self, ctx: &mut Ctx, f: &Field) {
        let Some(t) = ctx.table(f) else { return };
        let a = &mut self.assertions;
        for g in fields(t, &f.path) {
            match g.key {
                "container_should_have_executed_commands" => {
                    a.container_should_have_executed_commands = ctx.unsigned(&g)
                }
                "execution_should_be_hermetic" => a.execution_should_be_hermetic = ctx.boolean(&g),
                "all_steps_should_succeed" => a.all_steps_should_succeed = ctx.boolean(&g),
                "all_scenarios_should_pass" => a.all_scenarios_should_pass = ctx.boolean(&g),
                "otel_environment_configured" => a.otel_environment_configured = ctx.boolean(&g),
                "temporal_ordering_should_be_valid" => {
                    a.temporal_ordering_should_be_valid = ctx.boolean(&g)
                }
                "should_fail" => a.should_fail = ctx.boolean(&g),
                "service_should_start" => {
                    a.service_should_start = match g.item.as_str() {
                        Some(one) => vec![one.to_string()],
                        None => ctx.string_array(&g).unwrap_or_default(),
                    };
                    self.service_should_start_at = Some((g.path.clone(), value_span(&g)));
                }
                "service_metadata_should_contain" => {
                    a.service_metadata_should_contain = ctx.string_array(&g).unwrap_or_default()
                }
                _ => {
                    let hint = match did_you_mean(g.key, clnrm_expect::ASSERTION_KEYS) {
                        Some(best) => format!("did you mean `{best}`?"),
                        None => format!(
                            "the assertions are: {}",
                            clnrm_expect::ASSERTION_KEYS.join(", ")
                        ),
                    };
                    ctx.error_hint(
                        &g.path,
                        &g.span,
                        format!("unknown assertion `{}`", g.key),
                        hint,
                    );
                }
            }
        }
    }

    fn set_meta(&mut self, ctx: &mut Ctx, meta: Meta, f: &Field) {
        if let Some((_, first, _)) = &self.meta {
            let first = first.clone();
            ctx.error_hint(
                &f.path,
                &f.span,
                format!("the test has both [{first}] and [{}]", f.path),
                "keep one: [meta] (with name and version) or the legacy [test.metadata]",
            );
        } else {
            let span = f.item.span().or_else(|| f.span.clone());
            self.meta = Some((meta, f.path.clone(), span));
        }
    }

    fn service(&mut self, ctx: &mut Ctx, f: &Field, section: &str) {
        let name = f.key.to_string();
        if let Some(other) = self.declared.get(&name) {
            let other = other.clone();
            ctx.error(
                &f.path,
                &f.span,
                format!("service `{name}` is declared twice (also under [{other}])"),
            );
            return;
        }
        self.declared.insert(name.clone(), section.to_string());
        let Some(t) = ctx.table(f) else { return };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            ctx.error(
                &f.path,
                &f.span,
                format!(
                    "service name `{name}` cannot be a container host name \
                     (use letters, digits, `_`, `-`, `.`)"
                ),
            );
        }
        let span = f.item.span().or_else(|| f.span.clone());
        let mut wait = None;
        if let Some(svc) = parse_service(ctx, &name, &f.path, t, &span, &mut wait) {
            if let Some(wait) = wait {
                self.otel.wait_for_span.insert(name.clone(), wait);
            }
            self.services.insert(name, svc);
        }
    }

    fn finish(self, ctx: &mut Ctx) -> TestConfig {
        let Builder {
            meta,
            services,
            declared,
            setup,
            steps,
            scenario_steps,
            teardown,
            limits,
            seed,
            freeze_clock,
            unevaluated,
            mut otel,
            otel_validation,
            assertions,
            service_should_start_at,
        } = self;
        let mut retries = 0;
        let mut skip_if = None;
        let mut isolation = None;
        if let Some((at, span)) = &service_should_start_at {
            for name in &assertions.service_should_start {
                if !declared.contains_key(name) {
                    let names: Vec<&str> = declared.keys().map(String::as_str).collect();
                    ctx.error_hint(
                        at,
                        span,
                        format!("service `{name}` is not declared by the test"),
                        format!("declared: {}", names.join(", ")),
                    );
                }
            }
        }
        otel.expect = judged_table(otel.expect.take(), otel_validation);
        let (name, version, description, timeout_ms) = match meta {
            None => {
                ctx.error_hint(
                    "meta",
                    &None,
                    "no [meta] or [test.metadata]: the test has no name",
                    "add [meta] with name = \"...\" and version = \"1.0\"",
                );
                (String::new(), None, None, None)
            }
            Some((m, path, span)) => {
                let name = match m.name {
                    Some(n) => n,
                    None => {
                        ctx.error(
                            &join(&path, "name"),
                            &span,
                            format!("[{path}] has no `name`"),
                        );
                        String::new()
                    }
                };
                if path == "meta" && m.version.is_none() {
                    ctx.error_hint(
                        "meta.version",
                        &span,
                        "[meta] has no `version`",
                        "add version = \"1.0\"",
                    );
                }
                retries = m.retries;
                skip_if = m.skip_if;
                isolation = m.isolation;
                (name, m.version, m.description, m.timeout_ms)
            }
        };

        let raw_steps: Vec<RawStep> = steps.into_iter().chain(scenario_steps).collect();
        if raw_steps.is_empty() {
            ctx.error_hint(
                "steps",
                &None,
                "the test has no steps, so it would check nothing",
                "add [[steps]] with a command, or [[scenario]] with run = \"...\"",
            );
        }
        // Setup, steps and teardown share one namespace of step names and of captures, and
        // run in that order.
        let (n_setup, n_steps) = (setup.len(), raw_steps.len());
        let all: Vec<RawStep> = setup.into_iter().chain(raw_steps).chain(teardown).collect();
        let refs: Vec<_> = all
            .iter()
            .map(|r| (r.refs.clone(), r.capture_spans.clone()))
            .collect();
        let mut steps = bind_steps(ctx, all, &declared);
        let in_order: Vec<_> = steps
            .iter()
            .zip(&refs)
            .map(|(s, (r, spans))| (s, r.as_slice(), spans.as_slice()))
            .collect();
        check_references(ctx, &in_order);
        let teardown = steps.split_off(n_setup + n_steps);
        let steps_only = steps.split_off(n_setup);
        let setup = steps;

        TestConfig {
            name,
            version,
            description,
            services,
            steps: steps_only,
            setup,
            teardown,
            timeout_ms,
            limits,
            seed,
            freeze_clock,
            unevaluated_expectations: unevaluated.into_iter().collect(),
            otel,
            retries,
            skip_if,
            assertions,
            isolation,
        }
    }
}

fn parse_meta(ctx: &mut Ctx, t: &dyn TableLike, path: &str, known: &[&str]) -> Meta {
    let mut m = Meta {
        name: None,
        version: None,
        description: None,
        timeout_ms: None,
        retries: 0,
        skip_if: None,
        isolation: None,
    };
    let mut skip_reason = None;
    for f in fields(t, path) {
        match f.key {
            // Present but invalid still counts as a name: the error is already reported.
            "name" => m.name = Some(ctx.non_blank_string(&f, "test name").unwrap_or_default()),
            "version" => {
                m.version = Some(match f.item.as_float() {
                    // `version = 1.0` is a common slip; say so rather than reject it.
                    Some(_) => {
                        ctx.string(&f);
                        String::new()
                    }
                    None => ctx.string(&f).unwrap_or_default(),
                })
            }
            "description" => m.description = ctx.string(&f),
            "retries" if known.contains(&"retries") => {
                m.retries = match ctx.unsigned(&f).map(u32::try_from) {
                    Some(Ok(n)) if n <= MAX_TEST_RETRIES => n,
                    Some(_) => {
                        ctx.value_error(
                            &f,
                            format!("at most {MAX_TEST_RETRIES} whole-test retries"),
                        );
                        0
                    }
                    None => 0,
                }
            }
            "skip_if" if known.contains(&"skip_if") => m.skip_if = parse_skip_if(ctx, &f),
            "isolation" if known.contains(&"isolation") => {
                m.isolation = ctx.string(&f).and_then(|text| {
                    let isolation = match text.as_str() {
                        "fresh" => Ok(Isolation::Fresh),
                        "reuse" => Ok(Isolation::Reuse),
                        _ => Err("expected \"fresh\" or \"reuse\"".to_string()),
                    };
                    ctx.checked(&f, isolation)
                })
            }
            "skip_reason" if known.contains(&"skip_reason") => {
                skip_reason = ctx.non_blank_string(&f, "skip reason").map(|r| (r, f.span))
            }
            "timeout" => {
                let ms = timeout_duration(ctx, &f);
                m.timeout_ms = whole_test_timeout(ctx, &f, ms);
            }
            "timeout_seconds" if known.contains(&"timeout_seconds") => {
                let ms = ctx.unsigned(&f).map(|s| s.saturating_mul(1000));
                m.timeout_ms = whole_test_timeout(ctx, &f, ms);
            }
            _ => ctx.unknown_key(&f.path, f.key, &f.span, known),
        }
    }
    match (&mut m.skip_if, skip_reason) {
        (Some(skip), Some((reason, _))) => skip.reason = Some(reason),
        (None, Some((_, span))) => ctx.error_hint(
            &join(path, "skip_reason"),
            &span,
            "`skip_reason` without `skip_if`: the test is never skipped",
            "add skip_if = { env = \"VAR\" }, or remove skip_reason",
        ),
        _ => {}
    }
    m
}

/// A whole-test timeout as written: a duration, or (legacy) a bare number of seconds.
fn timeout_duration(ctx: &mut Ctx, f: &Field) -> Option<u64> {
    match f.item.as_integer() {
        // The legacy `[test.metadata] timeout = 60` is in seconds.
        Some(_) if f.path.starts_with("test.") => ctx.unsigned(f).map(|s| s.saturating_mul(1000)),
        _ => ctx.duration(f),
    }
}

/// A whole-test timeout, which must leave time to run something.
fn whole_test_timeout(ctx: &mut Ctx, f: &Field, ms: Option<u64>) -> Option<u64> {
    match ms? {
        0 => {
            ctx.value_error(f, "a whole-test timeout must be greater than 0");
            None
        }
        ms => Some(ms),
    }
}

/// Whole-test attempts beyond the first are each a fresh set of containers: a handful is
/// plenty, and a typo such as `retries = 100` should not keep a run going for an hour.
const MAX_TEST_RETRIES: u32 = 10;

/// `skip_if = { env = "VAR" }`.
fn parse_skip_if(ctx: &mut Ctx, f: &Field) -> Option<SkipIf> {
    let t = ctx.table(f)?;
    let mut env = None;
    for g in fields(t, &f.path) {
        if g.key == "env" {
            env = ctx.non_blank_string(&g, "environment variable name");
        } else {
            ctx.unknown_key(&g.path, g.key, &g.span, crate::keys::known("meta.skip_if"));
        }
    }
    if env.is_none() && fields(t, &f.path).iter().all(|g| g.key != "env") {
        ctx.error_hint(
            &f.path,
            &value_span(f),
            "`skip_if` names no condition",
            "write skip_if = { env = \"VAR\" }: skipped when VAR is set and non-empty",
        );
    }
    Some(SkipIf {
        env: env?,
        reason: None,
    })
}

/// Checks `[otel]`; keeps its `flush_timeout` and `resources`.
fn parse_otel(ctx: &mut Ctx, f: &Field, otel: &mut OtelConfig) {
    let Some(t) = ctx.table(f) else { return };
    for g in fields(t, &f.path) {
        match g.key {
            "flush_timeout" => otel.flush_timeout_ms = ctx.duration(&g),
            "endpoint" => {
                if let Some(endpoint) = ctx.string(&g) {
                    warn_local_collector(ctx, &g, &endpoint);
                }
            }
            "exporter" | "protocol" => {
                ctx.string(&g);
            }
            "sample_ratio" => {
                let ratio = g
                    .item
                    .as_float()
                    .or_else(|| g.item.as_integer().map(|i| i as f64));
                match ratio {
                    Some(r) if (0.0..=1.0).contains(&r) => {}
                    Some(r) => {
                        ctx.value_error(&g, format!("sample_ratio {r} is not in 0..1"));
                    }
                    None => {
                        ctx.value_error(
                            &g,
                            format!("expected a number in 0..1, found {}", kind(g.item)),
                        );
                    }
                }
            }
            "resources" => otel.resources = ctx.string_map(&g).unwrap_or_default(),
            "headers" => {
                ctx.string_map(&g);
            }
            "propagators" => {
                let Some(p) = ctx.table(&g) else { continue };
                for h in fields(p, &g.path) {
                    if h.key == "use" {
                        ctx.string_array(&h);
                    } else {
                        ctx.unknown_key(&h.path, h.key, &h.span, &["use"]);
                    }
                }
            }
            _ => ctx.unknown_key(&g.path, g.key, &g.span, crate::keys::known("otel")),
        }
    }
}
fn positive(ctx: &mut Ctx, f: &Field) -> Option<u64> {
    match ctx.unsigned(f)? {
        0 => {
            ctx.value_error(f, "must be greater than 0");
            None
        }
        n => Some(n),
    }
}
