//! A test's services (`[service.NAME]` / `[services.NAME]`): plugin and legacy `type`, image
//! or build, args, env, ports, volumes and health check, to a [`ServiceConfig`]. It checks
//! shape and values only: build contexts and volume host paths are not looked at on disk.

use toml_edit::{Item, TableLike, Value};

use crate::expect::warn_local_collector;
use crate::step::argv;
use crate::walk::{fields, index, join, kind, value_span, Ctx, Field, Span};
use crate::{BuildSpec, Command, HealthCheck, ServiceConfig, SpanWait, VolumeConfig};

/// Plugins that mean "a container from an image" (`testcontainers` is clnrm's own synonym).
const GENERIC_PLUGINS: &[&str] = &["generic_container", "testcontainers"];

/// The original clnrm's `alpine` plugin: this image, kept idle.
pub(crate) const ALPINE_IMAGE: &str = "alpine:latest";
/// The original's `surrealdb` plugin (testcontainers-modules' SurrealDB): this image, started
/// with `start`, root/root and every capability allowed, in memory, on port 8000.
pub(crate) const SURREALDB_IMAGE: &str = "surrealdb/surrealdb:v2.2";
const SURREALDB_PORT: u16 = 8000;

/// A service's plugin, as `plugin` (or legacy `type`) names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plugin {
    Generic,
    Alpine,
    SurrealDb,
}

impl Plugin {
    fn named(name: &str) -> Option<Plugin> {
        match name {
            "alpine" => Some(Plugin::Alpine),
            "surrealdb" => Some(Plugin::SurrealDb),
            _ if GENERIC_PLUGINS.contains(&name) => Some(Plugin::Generic),
            _ => None,
        }
    }
}

/// `username`, `password`, `strict`: the surrealdb plugin's settings, where they were written.
#[derive(Default)]
struct SurrealSettings {
    username: Option<String>,
    password: Option<String>,
    strict: Option<bool>,
    written: Vec<(String, Span)>,
}

impl SurrealSettings {
    /// The original's defaults (root/root, not strict) mapped to `surreal start`'s flags.
    fn apply(&self, name: &str, svc: &mut ServiceConfig) {
        let username = self.username.clone().unwrap_or_else(|| "root".to_string());
        let password = self.password.clone().unwrap_or_else(|| "root".to_string());
        if svc.image.is_none() && svc.build.is_none() {
            svc.image = Some(SURREALDB_IMAGE.to_string());
        }
        if svc.args.is_none() {
            let mut args: Vec<String> = ["start", "--user", &username, "--pass", &password]
                .iter()
                .map(|a| a.to_string())
                .collect();
            args.push("--allow-all".to_string());
            if self.strict == Some(true) {
                args.push("--strict".to_string());
            }
            args.push("memory".to_string());
            svc.args = Some(args);
        }
        // What the original's plugin reported about the service it started.
        for (key, value) in [
            ("host", name.to_string()),
            ("port", SURREALDB_PORT.to_string()),
            ("username", username),
            ("database_type", "surrealdb".to_string()),
            ("connection_string", format!("ws://{name}:{SURREALDB_PORT}")),
        ] {
            svc.metadata.insert(key.to_string(), value);
        }
    }
}

const HEALTH_DEFAULT_INTERVAL_MS: u64 = 500;
const HEALTH_DEFAULT_TIMEOUT_MS: u64 = 10_000;
const HEALTH_DEFAULT_RETRIES: u32 = 60;

pub(crate) fn parse_service(
    ctx: &mut Ctx,
    name: &str,
    path: &str,
    t: &dyn TableLike,
    span: &Span,
    wait: &mut Option<SpanWait>,
) -> Option<ServiceConfig> {
    let mut plugin: Option<(String, String, Span)> = None;
    let mut type_: Option<(String, String, Span)> = None;
    let mut svc = ServiceConfig::new(name);
    let errors_before = ctx.error_count();
    let mut wait_timeout_ms = None;
    let mut surreal = SurrealSettings::default();
    let mut args_span: Option<(String, Span)> = None;
    for f in fields(t, path) {
        match f.key {
            "plugin" => plugin = ctx.string(&f).map(|s| (s, f.path.clone(), value_span(&f))),
            "type" => type_ = ctx.string(&f).map(|s| (s, f.path.clone(), value_span(&f))),
            "image" => svc.image = ctx.non_blank_string(&f, "image name"),
            "build" => svc.build = parse_build(ctx, &f),
            "args" => {
                svc.args = ctx.string_array(&f);
                args_span = Some((f.path.clone(), value_span(&f)));
            }
            "env" => {
                svc.env = ctx.string_map(&f).unwrap_or_default();
                if let Some(env) = f.item.as_table_like() {
                    for g in fields(env, &f.path) {
                        if let Some(value) = g.item.as_str() {
                            warn_local_collector(ctx, &g, value);
                        }
                    }
                }
            }
            "ports" => svc.ports = parse_ports(ctx, &f),
            "volumes" => svc.volumes = parse_volumes(ctx, &f),
            "health_check" => svc.health_check = parse_health_check(ctx, &f),
            "username" | "password" | "strict" => {
                surreal.written.push((f.path.clone(), f.span.clone()));
                match f.key {
                    "username" => surreal.username = ctx.string(&f),
                    "password" => surreal.password = ctx.string(&f),
                    _ => surreal.strict = ctx.boolean(&f),
                }
            }
            "wait_for_span" => {
                if let Some(span) = ctx.non_blank_string(&f, "span name") {
                    wait.get_or_insert(SpanWait {
                        span: String::new(),
                        timeout_ms: None,
                    })
                    .span = span;
                }
            }
            "wait_for_span_timeout_secs" => {
                if let Some(secs) = ctx.unsigned(&f) {
                    wait_timeout_ms = Some(secs.saturating_mul(1000));
                }
            }
            _ => ctx.unknown_key(&f.path, f.key, &f.span, crate::keys::known("service.*")),
        }
    }
    match wait.as_mut() {
        Some(w) => w.timeout_ms = wait_timeout_ms,
        None if wait_timeout_ms.is_some() => ctx.note_ignored(
            &join(path, "wait_for_span_timeout_secs"),
            span,
            "`wait_for_span_timeout_secs` without `wait_for_span` waits for nothing; it is ignored",
        ),
        None => {}
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
    let mut kind = Plugin::Generic;
    if let Some((value, ppath, pspan)) = effective {
        match Plugin::named(value) {
            Some(p) => kind = p,
            None => {
                plugin_ok = false;
                let hint = if ppath.ends_with(".type") {
                    format!(
                        "`type` is read as `plugin` when `plugin` is absent; declare \
                         plugin = \"generic_container\" and image = \"...\" for service `{name}`"
                    )
                } else {
                    format!(
                        "use generic_container (with an image), alpine or surrealdb for \
                         service `{name}`"
                    )
                };
                ctx.error_hint(
                    ppath,
                    pspan,
                    format!(
                        "plugin `{value}` is not supported; the plugins are generic_container, \
                         alpine and surrealdb"
                    ),
                    hint,
                );
            }
        }
    }
    if kind != Plugin::SurrealDb {
        for (key_path, key_span) in &surreal.written {
            let key = key_path.rsplit('.').next().unwrap_or_default();
            ctx.error_hint(
                key_path,
                key_span,
                format!("`{key}` is a setting of the surrealdb plugin, not of service `{name}`'s"),
                "pass settings to a generic_container through `env`, or use plugin = \"surrealdb\"",
            );
        }
    }
    // The original clnrm read a generic service's `args` but never ran them: its steps ran
    // in an idle container of the image. A service it declared (`type`, no `plugin`) keeps
    // that meaning, so its files pass as they did; `plugin` gives `args` our meaning.
    if plugin.is_none() && type_.is_some() && kind == Plugin::Generic && svc.args.is_some() {
        if let Some((args_path, args_span)) = &args_span {
            svc.args = None;
            ctx.warning_hint(
                args_path,
                args_span,
                format!(
                    "service `{name}` is declared with the original clnrm's `type`, which never \
                     ran a service's `args`: the container is kept idle for the steps, as there"
                ),
                "write plugin = \"generic_container\" to run `args` as the container's command",
            );
        }
    }
    match kind {
        Plugin::Alpine if svc.image.is_none() && svc.build.is_none() => {
            svc.image = Some(ALPINE_IMAGE.to_string());
        }
        Plugin::SurrealDb => surreal.apply(name, &mut svc),
        _ => {}
    }
    let image_given = t.contains_key("image");
    let build_given = t.contains_key("build");
    if plugin_ok && kind == Plugin::Generic && !image_given && !build_given {
        ctx.error_hint(
            path,
            span,
            format!("service `{name}` has neither `image` nor `build`"),
            "add image = \"alpine:3.20\" (or build = { context = \"DIR\" })",
        );
    }
    if image_given && build_given {
        ctx.error(
            path,
            span,
            format!("service `{name}` has both `image` and `build`; give one"),
        );
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
            _ => ctx.unknown_key(
                &g.path,
                g.key,
                &g.span,
                crate::keys::known("service.*.build"),
            ),
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
        ctx.value_error(
            f,
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
            ctx.value_error(
                f,
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
                    _ => ctx.unknown_key(
                        &g.path,
                        g.key,
                        &g.span,
                        crate::keys::known("service.*.volumes[]"),
                    ),
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
                    ctx.value_error(&g, "too many retries");
                    ok = false;
                }
                None => ok = false,
            },
            _ => ctx.unknown_key(
                &g.path,
                g.key,
                &g.span,
                crate::keys::known("service.*.health_check"),
            ),
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
