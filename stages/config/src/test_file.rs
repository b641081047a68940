//! A test file (`*.clnrm.toml`, or a rendered template) to a validated [`TestConfig`].

use std::collections::{BTreeMap, BTreeSet};

use toml_edit::{ImDocument, Item, TableLike, Value};

use crate::walk::{did_you_mean, fields, index, join, kind, value_span, Ctx, Field, Span};
use crate::{
    BuildSpec, Command, Diagnostic, HealthCheck, Limits, ParseInput, ParsedTest, ServiceConfig,
    StepConfig, TestConfig, VolumeConfig,
};

const TOP_KEYS: &[&str] = &[
    "meta",
    "test",
    "service",
    "services",
    "steps",
    "scenario",
    "vars",
    "matrix",
    "otel",
    "otel_validation",
    "expect",
    "report",
    "determinism",
    "limits",
];
const META_KEYS: &[&str] = &["name", "version", "description"];
const LEGACY_META_KEYS: &[&str] = &["name", "version", "description", "timeout"];
const SERVICE_KEYS: &[&str] = &[
    "plugin",
    "type",
    "image",
    "build",
    "args",
    "env",
    "ports",
    "volumes",
    "health_check",
];
const STEP_KEYS: &[&str] = &[
    "name",
    "service",
    "command",
    "run",
    "expected_exit_code",
    "expected_output_regex",
    "expected_stderr_regex",
    "workdir",
    "env",
    "timeout",
    "timeout_ms",
    "continue_on_failure",
    "description",
];
const SCENARIO_KEYS: &[&str] = &[
    "name",
    "service",
    "run",
    "steps",
    "timeout_ms",
    "timeout",
    "description",
    "expected_exit_code",
    "expected_output_regex",
    "expected_stderr_regex",
    "workdir",
    "env",
    "continue_on_failure",
    "expect_success",
];
/// Kinds of `[expect.*]` clnrm defines; all are span expectations this version cannot evaluate.
const EXPECT_KINDS: &[&str] = &[
    "span",
    "graph",
    "counts",
    "window",
    "order",
    "status",
    "hermeticity",
    "temporal",
    "resource",
];
const OTEL_KEYS: &[&str] = &[
    "exporter",
    "endpoint",
    "protocol",
    "sample_ratio",
    "resources",
    "headers",
    "propagators",
];
const REPORT_KEYS: &[&str] = &["json", "junit", "digest"];
const LIMITS_KEYS: &[&str] = &["cpu_millicores", "memory_mb"];
const DETERMINISM_KEYS: &[&str] = &["seed", "freeze_clock"];
const VOLUME_KEYS: &[&str] = &["host_path", "container_path", "read_only"];
const HEALTH_KEYS: &[&str] = &["cmd", "interval", "timeout", "retries"];
const BUILD_KEYS: &[&str] = &["context", "dockerfile"];

/// Plugins that mean "a container from an image" (`testcontainers` is clnrm's own synonym).
const GENERIC_PLUGINS: &[&str] = &["generic_container", "testcontainers"];

pub(crate) const HEALTH_DEFAULT_INTERVAL_MS: u64 = 500;
pub(crate) const HEALTH_DEFAULT_TIMEOUT_MS: u64 = 10_000;
pub(crate) const HEALTH_DEFAULT_RETRIES: u32 = 60;

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
            syntax_error(&mut ctx, &e, input.rendered_from_template);
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

pub(crate) fn syntax_error(ctx: &mut Ctx, e: &toml_edit::TomlError, rendered: bool) {
    let message = format!(
        "invalid TOML: {}",
        e.message()
            .trim()
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("; ")
    );
    let looks_like_template = ctx.text.contains("{{") || ctx.text.contains("{%");
    if !rendered && looks_like_template {
        ctx.error_hint(
            "",
            &e.span(),
            message,
            "this looks like a template; name it `.clnrm.toml.tera`",
        );
    } else {
        ctx.error("", &e.span(), message);
    }
}

struct Meta {
    name: Option<String>,
    version: Option<String>,
    description: Option<String>,
}

/// A step before service references are resolved.
struct RawStep {
    step: StepConfig,
    service_span: Span,
    table_span: Span,
    name_span: Span,
}

#[derive(Clone, Default)]
struct StepDefaults {
    service: Option<(String, Span)>,
    timeout_ms: Option<u64>,
    env: BTreeMap<String, String>,
    workdir: Option<String>,
}

#[derive(Default)]
struct Builder {
    meta: Option<(Meta, String, Span)>,
    services: BTreeMap<String, ServiceConfig>,
    /// Every declared service (also invalid ones, so references to them do not cascade),
    /// with the table it was declared under.
    declared: BTreeMap<String, String>,
    steps: Vec<RawStep>,
    scenario_steps: Vec<RawStep>,
    limits: Limits,
    seed: Option<u64>,
    freeze_clock: Option<String>,
    unevaluated: BTreeSet<String>,
}

impl Builder {
    fn top_level(&mut self, ctx: &mut Ctx, f: &Field) {
        match f.key {
            "meta" => {
                if let Some(t) = ctx.table(f) {
                    let meta = parse_meta(ctx, t, &f.path, META_KEYS);
                    self.set_meta(ctx, meta, f);
                }
            }
            "test" => {
                let Some(t) = ctx.table(f) else { return };
                for g in fields(t, &f.path) {
                    if g.key == "metadata" {
                        if let Some(m) = ctx.table(&g) {
                            let meta = parse_meta(ctx, m, &g.path, LEGACY_META_KEYS);
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
            "steps" => {
                for (path, t, span) in ctx.table_list(f) {
                    if let Some(s) = parse_step(ctx, &path, t, span, None, &StepDefaults::default())
                    {
                        self.steps.push(s);
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
                    for g in fields(t, &f.path) {
                        if g.item.as_array().is_none() {
                            let span = value_span(&g);
                            ctx.error(
                                &g.path,
                                &span,
                                format!("expected an array of values, found {}", kind(g.item)),
                            );
                        }
                    }
                }
            }
            "otel" => parse_otel(ctx, f),
            "otel_validation" => {
                if ctx.table(f).is_some() {
                    self.unevaluated.insert("otel_validation".to_string());
                }
            }
            "expect" => {
                let Some(t) = ctx.table(f) else { return };
                for g in fields(t, &f.path) {
                    if !EXPECT_KINDS.contains(&g.key) {
                        ctx.unknown_key(&g.path, g.key, &g.span, EXPECT_KINDS);
                    }
                    if g.item.is_table_like() || g.item.is_array_of_tables() || g.item.is_array() {
                        self.unevaluated.insert(g.path.clone());
                    } else {
                        let span = value_span(&g);
                        ctx.error(
                            &g.path,
                            &span,
                            format!("expected a table, found {}", kind(g.item)),
                        );
                    }
                }
            }
            "report" => {
                if let Some(t) = ctx.table(f) {
                    for g in fields(t, &f.path) {
                        if REPORT_KEYS.contains(&g.key) {
                            ctx.string(&g);
                        } else {
                            ctx.unknown_key(&g.path, g.key, &g.span, REPORT_KEYS);
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
                            ctx.unknown_key(&g.path, g.key, &g.span, LIMITS_KEYS);
                            continue;
                        }
                    };
                    *slot = positive(ctx, &g);
                }
            }
            "assertions" => ctx.note_ignored(
                &f.path,
                &f.span,
                "[assertions] is a clnrm 0.4 key that this version does not evaluate; \
                 it is ignored (use expected_exit_code / expected_output_regex on steps)",
            ),
            "template" => ctx.note_ignored(
                &f.path,
                &f.span,
                "[template] is a legacy key and is ignored; template variables come from \
                 cleanroom.toml [vars] or --var",
            ),
            _ => ctx.unknown_key(&f.path, f.key, &f.span, TOP_KEYS),
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
        if let Some(svc) = parse_service(ctx, &name, &f.path, t, &span) {
            self.services.insert(name, svc);
        }
    }

    fn finish(self, ctx: &mut Ctx) -> TestConfig {
        let Builder {
            meta,
            services,
            declared,
            steps,
            scenario_steps,
            limits,
            seed,
            freeze_clock,
            unevaluated,
        } = self;
        let (name, version, description) = match meta {
            None => {
                ctx.error_hint(
                    "meta",
                    &None,
                    "no [meta] or [test.metadata]: the test has no name",
                    "add [meta] with name = \"...\" and version = \"1.0\"",
                );
                (String::new(), None, None)
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
                (name, m.version, m.description)
            }
        };

        let mut all: Vec<RawStep> = steps;
        all.extend(scenario_steps);
        if all.is_empty() {
            ctx.error_hint(
                "steps",
                &None,
                "the test has no steps, so it would check nothing",
                "add [[steps]] with a command, or [[scenario]] with run = \"...\"",
            );
        }

        let names: Vec<&str> = declared.keys().map(String::as_str).collect();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut out = Vec::with_capacity(all.len());
        for mut raw in all {
            let s = &mut raw.step;
            if let Some(first) = seen.get(&s.name) {
                ctx.error(
                    &join(&s.key_path, "name"),
                    &raw.name_span.clone().or(raw.table_span.clone()),
                    format!("duplicate step name `{}` (first used by {first})", s.name),
                );
            } else {
                seen.insert(s.name.clone(), s.key_path.clone());
            }
            match &s.service {
                Some(svc) if !declared.contains_key(svc) => {
                    let hint = match (names.is_empty(), did_you_mean(svc, &names)) {
                        (true, _) => "this test declares no services; remove `service` to run \
                                      the step in the default image, or add [service.NAME]"
                            .to_string(),
                        (false, Some(best)) => format!("did you mean `{best}`?"),
                        (false, None) => format!("declared services: {}", names.join(", ")),
                    };
                    ctx.error_hint(
                        &join(&s.key_path, "service"),
                        &raw.service_span,
                        format!("service `{svc}` is not declared"),
                        hint,
                    );
                }
                Some(_) => {}
                None if names.len() == 1 => s.service = Some(names[0].to_string()),
                None if names.len() > 1 => ctx.error_hint(
                    &join(&s.key_path, "service"),
                    &raw.table_span,
                    format!(
                        "the test has several services ({}); say which one runs this step",
                        names.join(", ")
                    ),
                    format!("add service = \"{}\"", names[0]),
                ),
                None => {}
            }
            out.push(raw.step);
        }

        TestConfig {
            name,
            version,
            description,
            services,
            steps: out,
            limits,
            seed,
            freeze_clock,
            unevaluated_expectations: unevaluated.into_iter().collect(),
        }
    }
}

fn parse_meta(ctx: &mut Ctx, t: &dyn TableLike, path: &str, known: &[&str]) -> Meta {
    let mut m = Meta {
        name: None,
        version: None,
        description: None,
    };
    for f in fields(t, path) {
        match f.key {
            "name" => {
                if let Some(n) = ctx.string(&f) {
                    if n.trim().is_empty() {
                        let span = value_span(&f);
                        ctx.error(&f.path, &span, "the test name is empty");
                    }
                    m.name = Some(n);
                } else {
                    m.name = Some(String::new());
                }
            }
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
            "timeout" if known.contains(&"timeout") => {
                if ctx.duration(&f).is_some() {
                    ctx.note_ignored(
                        &f.path,
                        &f.span,
                        "a whole-test timeout is not supported and is ignored; \
                         set `timeout` on steps (or [defaults] step_timeout in cleanroom.toml)",
                    );
                }
            }
            _ => ctx.unknown_key(&f.path, f.key, &f.span, known),
        }
    }
    m
}

fn parse_service(
    ctx: &mut Ctx,
    name: &str,
    path: &str,
    t: &dyn TableLike,
    span: &Span,
) -> Option<ServiceConfig> {
    let mut plugin: Option<(String, String, Span)> = None;
    let mut type_: Option<(String, String, Span)> = None;
    let mut svc = ServiceConfig {
        name: name.to_string(),
        image: None,
        build: None,
        args: None,
        env: BTreeMap::new(),
        ports: Vec::new(),
        volumes: Vec::new(),
        health_check: None,
    };
    let errors_before = ctx.error_count();
    for f in fields(t, path) {
        match f.key {
            "plugin" => plugin = ctx.string(&f).map(|s| (s, f.path.clone(), value_span(&f))),
            "type" => type_ = ctx.string(&f).map(|s| (s, f.path.clone(), value_span(&f))),
            "image" => {
                if let Some(image) = ctx.string(&f) {
                    if image.trim().is_empty() {
                        let span = value_span(&f);
                        ctx.error(&f.path, &span, "the image name is empty");
                    }
                    svc.image = Some(image);
                }
            }
            "build" => svc.build = parse_build(ctx, &f),
            "args" => svc.args = ctx.string_array(&f),
            "env" => svc.env = ctx.string_map(&f).unwrap_or_default(),
            "ports" => svc.ports = parse_ports(ctx, &f),
            "volumes" => svc.volumes = parse_volumes(ctx, &f),
            "health_check" => svc.health_check = parse_health_check(ctx, &f),
            "username" | "password" | "strict" => ctx.note_ignored(
                &f.path,
                &f.span,
                format!(
                    "`{}` configured clnrm's surrealdb plugin and is ignored; \
                     pass settings to a generic_container through `env`",
                    f.key
                ),
            ),
            "wait_for_span" | "wait_for_span_timeout_secs" => ctx.note_ignored(
                &f.path,
                &f.span,
                format!(
                    "`{}` waits for OTEL spans, which this version does not collect; \
                     it is ignored (use health_check)",
                    f.key
                ),
            ),
            _ => ctx.unknown_key(&f.path, f.key, &f.span, SERVICE_KEYS),
        }
    }
    // `type` is clnrm 0.4's spelling of `plugin`: it decides only when `plugin` is absent.
    let effective = match (&plugin, &type_) {
        (Some(p), Some(t)) => {
            if t.0 != p.0 && !GENERIC_PLUGINS.contains(&t.0.as_str()) {
                ctx.note_ignored(
                    &t.1,
                    &t.2,
                    format!(
                        "`type = \"{}\"` is ignored: `plugin = \"{}\"` decides the service kind",
                        t.0, p.0
                    ),
                );
            }
            Some(p)
        }
        (Some(p), None) => Some(p),
        (None, Some(t)) => Some(t),
        (None, None) => None,
    };
    let mut plugin_ok = true;
    if let Some((value, ppath, pspan)) = effective {
        if !GENERIC_PLUGINS.contains(&value.as_str()) {
            plugin_ok = false;
            let hint = if ppath.ends_with(".type") {
                format!(
                    "`type` is read as `plugin` when `plugin` is absent; declare \
                     plugin = \"generic_container\" and image = \"...\" for service `{name}`"
                )
            } else {
                format!("declare plugin = \"generic_container\" and image = \"...\" for service `{name}`")
            };
            ctx.error_hint(
                ppath,
                pspan,
                format!("plugin `{value}` is not supported; use generic_container with an image"),
                hint,
            );
        }
    }
    let image_given = t.contains_key("image");
    let build_given = t.contains_key("build");
    if plugin_ok {
        match (image_given, build_given) {
            (false, false) => ctx.error_hint(
                path,
                span,
                format!("service `{name}` has neither `image` nor `build`"),
                "add image = \"alpine:3.20\" (or build = { context = \"DIR\" })",
            ),
            (true, true) => ctx.error(
                path,
                span,
                format!("service `{name}` has both `image` and `build`; give one"),
            ),
            _ => {}
        }
    }
    let errors_after = ctx.error_count();
    (errors_after == errors_before).then_some(svc)
}

fn parse_build(ctx: &mut Ctx, f: &Field) -> Option<BuildSpec> {
    if let Some(context) = f.item.as_str() {
        return Some(BuildSpec {
            context: context.to_string(),
            dockerfile: None,
        });
    }
    let t = ctx.table(f)?;
    let mut context = None;
    let mut dockerfile = None;
    for g in fields(t, &f.path) {
        match g.key {
            "context" => context = ctx.string(&g),
            "dockerfile" => dockerfile = ctx.string(&g),
            _ => ctx.unknown_key(&g.path, g.key, &g.span, BUILD_KEYS),
        }
    }
    match context {
        Some(context) => Some(BuildSpec {
            context,
            dockerfile,
        }),
        None => {
            let span = value_span(f);
            ctx.error(
                &join(&f.path, "context"),
                &span,
                "`build` needs a `context` folder",
            );
            None
        }
    }
}

fn parse_ports(ctx: &mut Ctx, f: &Field) -> Vec<u16> {
    let Some(array) = f.item.as_array() else {
        let span = value_span(f);
        ctx.error(
            &f.path,
            &span,
            format!("expected an array of port numbers, found {}", kind(f.item)),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, v) in array.iter().enumerate() {
        let path = index(&f.path, i);
        match v.as_integer() {
            Some(p) if (1..=65535).contains(&p) => out.push(p as u16),
            Some(p) => ctx.error(
                &path,
                &v.span(),
                format!("port {p} is out of range 1..65535"),
            ),
            None => ctx.error(
                &path,
                &v.span(),
                format!(
                    "expected a port number, found {}",
                    kind(&Item::Value(v.clone()))
                ),
            ),
        }
    }
    out
}

/// One element of `volumes`: its key path, the table it is (if it is one), the value it is (when
/// written inline), and where.
type VolumeElement<'t> = (String, Option<&'t dyn TableLike>, Option<&'t Value>, Span);

fn parse_volumes(ctx: &mut Ctx, f: &Field) -> Vec<VolumeConfig> {
    let mut out = Vec::new();
    let elements: Vec<VolumeElement> = match f.item {
        Item::ArrayOfTables(tables) => tables
            .iter()
            .enumerate()
            .map(|(i, t)| (index(&f.path, i), Some(t as &dyn TableLike), None, t.span()))
            .collect(),
        Item::Value(Value::Array(array)) => array
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let t = v.as_inline_table().map(|t| t as &dyn TableLike);
                (index(&f.path, i), t, Some(v), v.span())
            })
            .collect(),
        _ => {
            let span = value_span(f);
            ctx.error(
                &f.path,
                &span,
                format!("expected an array of volumes, found {}", kind(f.item)),
            );
            return out;
        }
    };
    for (path, table, value, span) in elements {
        if let Some(t) = table {
            let mut host = None;
            let mut container = None;
            let mut read_only = false;
            for g in fields(t, &path) {
                match g.key {
                    "host_path" => host = ctx.string(&g),
                    "container_path" => container = ctx.string(&g),
                    "read_only" => read_only = ctx.boolean(&g).unwrap_or(false),
                    _ => ctx.unknown_key(&g.path, g.key, &g.span, VOLUME_KEYS),
                }
            }
            match (host, container) {
                (Some(host_path), Some(container_path)) => {
                    if check_container_path(
                        ctx,
                        &join(&path, "container_path"),
                        &container_path,
                        &span,
                    ) {
                        out.push(VolumeConfig {
                            host_path,
                            container_path,
                            read_only,
                        });
                    }
                }
                (h, _) => {
                    let missing = if h.is_none() {
                        "host_path"
                    } else {
                        "container_path"
                    };
                    ctx.error(
                        &join(&path, missing),
                        &span,
                        format!("the volume has no `{missing}`"),
                    );
                }
            }
        } else if let Some(s) = value.and_then(Value::as_str) {
            // docker's short form: "HOST:CONTAINER[:ro|rw]"
            let parts: Vec<&str> = s.split(':').collect();
            let parsed = match parts.as_slice() {
                [h, c] => Some((h, c, false)),
                [h, c, "ro"] => Some((h, c, true)),
                [h, c, "rw"] => Some((h, c, false)),
                _ => None,
            };
            match parsed {
                Some((h, c, ro)) if !h.is_empty() => {
                    if check_container_path(ctx, &path, c, &span) {
                        out.push(VolumeConfig {
                            host_path: h.to_string(),
                            container_path: c.to_string(),
                            read_only: ro,
                        });
                    }
                }
                _ => ctx.error_hint(
                    &path,
                    &span,
                    format!("invalid volume `{s}`"),
                    "write \"HOST:CONTAINER\", \"HOST:CONTAINER:ro\", or \
                     { host_path = \"...\", container_path = \"...\" }",
                ),
            }
        } else {
            ctx.error(
                &path,
                &span,
                "expected a volume table or \"HOST:CONTAINER\"",
            );
        }
    }
    out
}

fn check_container_path(ctx: &mut Ctx, path: &str, container_path: &str, span: &Span) -> bool {
    if container_path.starts_with('/') {
        true
    } else {
        ctx.error(
            path,
            span,
            format!("container path `{container_path}` must be absolute (start with `/`)"),
        );
        false
    }
}

fn parse_health_check(ctx: &mut Ctx, f: &Field) -> Option<HealthCheck> {
    let t = ctx.table(f)?;
    let mut cmd = None;
    let mut interval_ms = HEALTH_DEFAULT_INTERVAL_MS;
    let mut timeout_ms = HEALTH_DEFAULT_TIMEOUT_MS;
    let mut retries = HEALTH_DEFAULT_RETRIES;
    let mut ok = true;
    for g in fields(t, &f.path) {
        match g.key {
            "cmd" => {
                cmd = if let Some(s) = g.item.as_str() {
                    Some(Command::Shell(s.to_string()))
                } else {
                    argv(ctx, &g).map(Command::Argv)
                };
                ok &= cmd.is_some();
            }
            "interval" => match ctx.duration(&g) {
                Some(ms) => interval_ms = ms,
                None => ok = false,
            },
            "timeout" => match ctx.duration(&g) {
                Some(ms) => timeout_ms = ms,
                None => ok = false,
            },
            "retries" => match ctx.unsigned(&g).map(u32::try_from) {
                Some(Ok(r)) => retries = r,
                Some(Err(_)) => {
                    let span = value_span(&g);
                    ctx.error(&g.path, &span, "too many retries");
                    ok = false;
                }
                None => ok = false,
            },
            _ => ctx.unknown_key(&g.path, g.key, &g.span, HEALTH_KEYS),
        }
    }
    if cmd.is_none() && ok {
        let span = value_span(f);
        ctx.error(&join(&f.path, "cmd"), &span, "health_check has no `cmd`");
    }
    Some(HealthCheck {
        cmd: cmd?,
        interval_ms,
        timeout_ms,
        retries,
    })
    .filter(|_| ok)
}

/// A non-empty argv.
fn argv(ctx: &mut Ctx, f: &Field) -> Option<Vec<String>> {
    if f.item.as_str().is_some() {
        let span = value_span(f);
        ctx.error_hint(
            &f.path,
            &span,
            "expected an array of strings (argv), found a string",
            "write command = [\"prog\", \"arg\"], or use run = \"...\" for a shell line",
        );
        return None;
    }
    let v = ctx.string_array(f)?;
    if v.is_empty() {
        let span = value_span(f);
        ctx.error(&f.path, &span, "the command is empty");
        return None;
    }
    Some(v)
}

fn regex(ctx: &mut Ctx, f: &Field) -> Option<String> {
    let pattern = ctx.string(f)?;
    match check_regex(&pattern) {
        Ok(()) => Some(pattern),
        Err(e) => {
            let span = value_span(f);
            ctx.error(
                &f.path,
                &span,
                format!("invalid regex: {}", regex_error(&e)),
            );
            None
        }
    }
}

/// Whether `regex::Regex::new(pattern)` would succeed, without paying for compilation when the
/// syntax check settles it: only counted repetitions and long patterns can exceed the compiled
/// size limit, so only those are compiled.
fn check_regex(pattern: &str) -> Result<(), String> {
    regex_syntax::Parser::new()
        .parse(pattern)
        .map_err(|e| e.to_string())?;
    if pattern.contains('{') || pattern.len() > 512 {
        regex::Regex::new(pattern).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The regex crate's error, on one line: its "error: ..." line names the cause.
fn regex_error(text: &str) -> String {
    match text.lines().find_map(|l| l.trim().strip_prefix("error: ")) {
        Some(cause) => {
            let excerpt: Vec<&str> = text.lines().skip(1).take(2).map(str::trim_end).collect();
            match excerpt.as_slice() {
                [pattern, caret] if caret.trim_start().starts_with('^') => {
                    format!("{cause} at `{}`", pointed(pattern, caret))
                }
                _ => cause.to_string(),
            }
        }
        None => text.lines().map(str::trim).collect::<Vec<_>>().join(" "),
    }
}

/// The part of `pattern` a `^^^` caret line points at.
fn pointed(pattern: &str, caret: &str) -> String {
    let start = caret.find('^').unwrap_or(0);
    let len = caret[start..].chars().take_while(|&c| c == '^').count();
    pattern.chars().skip(start).take(len.max(1)).collect()
}

fn exit_code(ctx: &mut Ctx, f: &Field) -> Option<i32> {
    let code = ctx.integer(f)?;
    match i32::try_from(code) {
        Ok(c) => Some(c),
        Err(_) => {
            let span = value_span(f);
            ctx.error(&f.path, &span, format!("exit code {code} is out of range"));
            None
        }
    }
}

fn parse_step(
    ctx: &mut Ctx,
    path: &str,
    t: &dyn TableLike,
    table_span: Span,
    prefix: Option<&str>,
    defaults: &StepDefaults,
) -> Option<RawStep> {
    let mut name: Option<(String, Span)> = None;
    let mut service: Option<(String, Span)> = defaults.service.clone();
    let mut command: Option<Command> = None;
    let mut step = StepConfig {
        name: String::new(),
        service: None,
        command: Command::Argv(Vec::new()),
        expected_exit_code: 0,
        expected_output_regex: None,
        expected_stderr_regex: None,
        workdir: defaults.workdir.clone(),
        env: defaults.env.clone(),
        timeout_ms: defaults.timeout_ms,
        continue_on_failure: false,
        key_path: path.to_string(),
    };
    let mut broken = false;
    for f in fields(t, path) {
        match f.key {
            "name" => match ctx.string(&f) {
                Some(n) if n.trim().is_empty() => {
                    let span = value_span(&f);
                    ctx.error(&f.path, &span, "the step name is empty");
                }
                Some(n) => name = Some((n, value_span(&f))),
                None => {}
            },
            "service" => service = ctx.string(&f).map(|s| (s, value_span(&f))),
            "command" | "run" => {
                if command.is_some() {
                    ctx.error_hint(
                        &f.path,
                        &f.span,
                        "the step has both `command` and `run`",
                        "keep one: command = [argv...] runs as is, run = \"...\" runs through sh -c",
                    );
                    broken = true;
                    continue;
                }
                command = if f.key == "run" {
                    ctx.string(&f).map(Command::Shell)
                } else {
                    argv(ctx, &f).map(Command::Argv)
                };
                broken |= command.is_none();
            }
            "expected_exit_code" => step.expected_exit_code = exit_code(ctx, &f).unwrap_or(0),
            "expected_output_regex" => step.expected_output_regex = regex(ctx, &f),
            "expected_stderr_regex" => step.expected_stderr_regex = regex(ctx, &f),
            "workdir" => step.workdir = ctx.string(&f),
            "env" => step.env.extend(ctx.string_map(&f).unwrap_or_default()),
            "timeout" => step.timeout_ms = ctx.duration(&f),
            "timeout_ms" => step.timeout_ms = ctx.unsigned(&f),
            "continue_on_failure" => step.continue_on_failure = ctx.boolean(&f).unwrap_or(false),
            "description" => {
                ctx.string(&f);
            }
            "expected_output_regex_not" => ctx.note_ignored(
                &f.path,
                &f.span,
                "`expected_output_regex_not` is a clnrm 0.4 key that this version does not \
                 evaluate; it is ignored",
            ),
            "should_fail" => ctx.note_ignored(
                &f.path,
                &f.span,
                "`should_fail` is a clnrm 0.4 key and is ignored; set expected_exit_code to the \
                 exit code the command should return",
            ),
            _ => ctx.unknown_key(&f.path, f.key, &f.span, STEP_KEYS),
        }
    }
    let name_span = name.as_ref().and_then(|(_, s)| s.clone());
    let base = match name {
        Some((n, _)) => n,
        None => {
            ctx.error(&join(path, "name"), &table_span, "the step has no `name`");
            path.to_string()
        }
    };
    step.name = match prefix {
        Some(p) => format!("{p}/{base}"),
        None => base,
    };
    match command {
        Some(c) => step.command = c,
        None if !broken => {
            ctx.error_hint(
                &join(path, "command"),
                &table_span,
                "the step has no `command` (or `run`)",
                "add command = [\"echo\", \"hi\"] or run = \"echo hi\"",
            );
        }
        None => {}
    }
    let (service, service_span) = match service {
        Some((s, span)) => (Some(s), span),
        None => (None, None),
    };
    step.service = service;
    Some(RawStep {
        step,
        service_span,
        table_span,
        name_span,
    })
}

fn parse_scenario(
    ctx: &mut Ctx,
    path: &str,
    t: &dyn TableLike,
    table_span: Span,
    out: &mut Vec<RawStep>,
) {
    let mut name: Option<(String, Span)> = None;
    let mut defaults = StepDefaults::default();
    let mut run: Option<(String, Span)> = None;
    let mut steps_field: Option<Field> = None;
    // Keys that describe the `run` step; they need a `run`.
    let mut run_only: Vec<(String, Span)> = Vec::new();
    let mut expected_exit_code = 0;
    let mut out_regex = None;
    let mut err_regex = None;
    let mut continue_on_failure = false;
    let mut run_broken = false;
    let fs = fields(t, path);
    for f in &fs {
        match f.key {
            "name" => match ctx.string(f) {
                Some(n) if n.trim().is_empty() => {
                    let span = value_span(f);
                    ctx.error(&f.path, &span, "the scenario name is empty");
                }
                Some(n) => name = Some((n, value_span(f))),
                None => {}
            },
            "service" => defaults.service = ctx.string(f).map(|s| (s, value_span(f))),
            "run" => match ctx.string(f) {
                Some(r) => run = Some((r, value_span(f))),
                None => run_broken = true,
            },
            "steps" => {}
            "timeout_ms" => defaults.timeout_ms = ctx.unsigned(f),
            "timeout" => defaults.timeout_ms = ctx.duration(f),
            "description" => {
                ctx.string(f);
            }
            "workdir" => defaults.workdir = ctx.string(f),
            "env" => defaults.env = ctx.string_map(f).unwrap_or_default(),
            "expected_exit_code" => {
                run_only.push((f.path.clone(), f.span.clone()));
                expected_exit_code = exit_code(ctx, f).unwrap_or(0);
            }
            "expected_output_regex" => {
                run_only.push((f.path.clone(), f.span.clone()));
                out_regex = regex(ctx, f);
            }
            "expected_stderr_regex" => {
                run_only.push((f.path.clone(), f.span.clone()));
                err_regex = regex(ctx, f);
            }
            "continue_on_failure" => {
                run_only.push((f.path.clone(), f.span.clone()));
                continue_on_failure = ctx.boolean(f).unwrap_or(false);
            }
            "expect_success" => {
                if ctx.boolean(f) == Some(false) {
                    let span = value_span(f);
                    ctx.error_hint(
                        &f.path,
                        &span,
                        "`expect_success = false` is not supported",
                        "set expected_exit_code to the exit code the command should return",
                    );
                }
            }
            "artifacts" => ctx.note_ignored(
                &f.path,
                &f.span,
                "`artifacts` collects OTEL spans, which this version does not do; it is ignored",
            ),
            _ => ctx.unknown_key(&f.path, f.key, &f.span, SCENARIO_KEYS),
        }
    }
    for f in fs {
        if f.key == "steps" {
            steps_field = Some(f);
        }
    }
    let scenario_name = match name {
        Some((n, _)) => n,
        None => {
            ctx.error(
                &join(path, "name"),
                &table_span,
                "the scenario has no `name`",
            );
            path.to_string()
        }
    };
    let has_steps = steps_field.is_some();
    if let Some((cmd, span)) = run {
        out.push(RawStep {
            step: StepConfig {
                name: scenario_name.clone(),
                service: defaults.service.as_ref().map(|(s, _)| s.clone()),
                command: Command::Shell(cmd),
                expected_exit_code,
                expected_output_regex: out_regex,
                expected_stderr_regex: err_regex,
                workdir: defaults.workdir.clone(),
                env: defaults.env.clone(),
                timeout_ms: defaults.timeout_ms,
                continue_on_failure,
                key_path: path.to_string(),
            },
            service_span: defaults.service.as_ref().and_then(|(_, s)| s.clone()),
            table_span: table_span.clone(),
            name_span: span,
        });
    } else if !run_broken {
        for (p, s) in &run_only {
            ctx.error_hint(
                p,
                s,
                "this key describes a scenario's `run` step, and the scenario has no `run`",
                "move it onto the step it checks",
            );
        }
        if !has_steps {
            ctx.error_hint(
                &join(path, "run"),
                &table_span,
                "the scenario has neither `run` nor `steps`",
                "add run = \"echo hi\" (one sh -c step) or steps = [{ name = \"...\", command = [...] }]",
            );
        }
    }
    if let Some(f) = steps_field {
        for (spath, st, sspan) in ctx.table_list(&f) {
            if let Some(s) = parse_step(ctx, &spath, st, sspan, Some(&scenario_name), &defaults) {
                out.push(s);
            }
        }
    }
}

fn parse_otel(ctx: &mut Ctx, f: &Field) {
    let Some(t) = ctx.table(f) else { return };
    for g in fields(t, &f.path) {
        match g.key {
            "exporter" | "endpoint" | "protocol" => {
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
                        let span = value_span(&g);
                        ctx.error(&g.path, &span, format!("sample_ratio {r} is not in 0..1"));
                    }
                    None => {
                        let span = value_span(&g);
                        ctx.error(
                            &g.path,
                            &span,
                            format!("expected a number in 0..1, found {}", kind(g.item)),
                        );
                    }
                }
            }
            "resources" | "headers" => {
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
            _ => ctx.unknown_key(&g.path, g.key, &g.span, OTEL_KEYS),
        }
    }
}

/// `[determinism]`: seed and freeze_clock (an RFC 3339 date-time, quoted or not).
pub(crate) fn parse_determinism(
    ctx: &mut Ctx,
    t: &dyn TableLike,
    path: &str,
) -> (Option<u64>, Option<String>) {
    let mut seed = None;
    let mut clock = None;
    for f in fields(t, path) {
        match f.key {
            "seed" => seed = ctx.unsigned(&f),
            "freeze_clock" => {
                let text = match f.item.as_datetime() {
                    Some(d) => Some(d.to_string()),
                    None => ctx.string(&f),
                };
                if let Some(text) = text {
                    if is_rfc3339(&text) {
                        clock = Some(text);
                    } else {
                        let span = value_span(&f);
                        ctx.error_hint(
                            &f.path,
                            &span,
                            format!("`{text}` is not an RFC 3339 date-time"),
                            "write e.g. \"2025-01-01T00:00:00Z\"",
                        );
                    }
                }
            }
            _ => ctx.unknown_key(&f.path, f.key, &f.span, DETERMINISM_KEYS),
        }
    }
    (seed, clock)
}

fn is_rfc3339(text: &str) -> bool {
    match text.parse::<toml_edit::Datetime>() {
        Ok(d) => d.date.is_some() && d.time.is_some() && d.offset.is_some(),
        Err(_) => false,
    }
}

fn positive(ctx: &mut Ctx, f: &Field) -> Option<u64> {
    match ctx.unsigned(f)? {
        0 => {
            let span = value_span(f);
            ctx.error(&f.path, &span, "must be greater than 0");
            None
        }
        n => Some(n),
    }
}
