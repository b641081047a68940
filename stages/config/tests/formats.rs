//! Both clnrm formats, both service spellings, and how steps are assembled.

mod common;

use clnrm_config::{Command, HealthCheck, VolumeConfig};
use common::*;

#[test]
fn v1_format_meta_and_scenarios() {
    let p = ok(r#"
[meta]
name = "api_smoke"
version = "1.0"
description = "smoke"

[service.web]
plugin = "generic_container"
image = "alpine:3.20"

[[scenario]]
name = "check"
service = "web"
run = "echo ok && test -d /tmp"
timeout_ms = 30000

[[scenario]]
name = "explicit"
steps = [ { name = "s1", command = ["true"] }, { name = "s2", run = "echo two", timeout = "2s" } ]
"#);
    let c = &p.config;
    assert_eq!(c.name, "api_smoke");
    assert_eq!(c.version.as_deref(), Some("1.0"));
    assert_eq!(c.description.as_deref(), Some("smoke"));
    let names: Vec<&str> = c.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["check", "explicit/s1", "explicit/s2"]);
    assert_eq!(
        c.steps[0].command,
        Command::Shell("echo ok && test -d /tmp".into())
    );
    assert_eq!(c.steps[0].timeout_ms, Some(30_000));
    assert_eq!(c.steps[0].key_path, "scenario[0]");
    assert_eq!(c.steps[1].command, Command::Argv(vec!["true".into()]));
    assert_eq!(c.steps[1].key_path, "scenario[1].steps[0]");
    assert_eq!(c.steps[2].command, Command::Shell("echo two".into()));
    assert_eq!(c.steps[2].timeout_ms, Some(2_000));
    // One service: steps that name none get it.
    assert!(c.steps.iter().all(|s| s.service.as_deref() == Some("web")));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn legacy_format_test_metadata_and_steps() {
    let p = ok(r#"
[test.metadata]
name = "basic_test"
description = "Basic integration test"

[services.box]
type = "generic_container"
image = "alpine:latest"

[[steps]]
name = "hello"
command = ["echo", "Hello"]
expected_output_regex = "Hello"
expected_exit_code = 0

[[steps]]
name = "env"
command = ["env"]
workdir = "/tmp"
continue_on_failure = true
expected_exit_code = 3
expected_stderr_regex = "^$"

[steps.env]
A = "1"
"#);
    let c = &p.config;
    assert_eq!(c.name, "basic_test");
    assert_eq!(c.version, None);
    assert_eq!(c.steps.len(), 2);
    assert_eq!(
        c.steps[0].command,
        Command::Argv(vec!["echo".into(), "Hello".into()])
    );
    assert_eq!(c.steps[0].expected_output_regex.as_deref(), Some("Hello"));
    let s = &c.steps[1];
    assert_eq!(s.workdir.as_deref(), Some("/tmp"));
    assert!(s.continue_on_failure);
    assert_eq!(s.expected_exit_code, 3);
    assert_eq!(s.expected_stderr_regex.as_deref(), Some("^$"));
    assert_eq!(s.env.get("A").map(String::as_str), Some("1"));
    assert_eq!(s.key_path, "steps[1]");
    assert_eq!(s.service.as_deref(), Some("box"));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn steps_come_before_scenarios_whatever_the_file_order() {
    let p = ok(&format!(
        "{HEAD}[[scenario]]\nname = \"sc\"\nrun = \"true\"\n[[steps]]\nname = \"st\"\ncommand = [\"true\"]\n"
    ));
    let names: Vec<&str> = p.config.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["st", "sc"]);
}

#[test]
fn scenario_with_run_and_steps_runs_run_first() {
    let p = ok(&format!(
        "{HEAD}[[scenario]]\nname = \"sc\"\nrun = \"echo a\"\n[[scenario.steps]]\nname = \"x\"\ncommand = [\"true\"]\n"
    ));
    let names: Vec<&str> = p.config.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["sc", "sc/x"]);
    assert_eq!(p.config.steps[1].key_path, "scenario[0].steps[0]");
}

#[test]
fn service_and_services_spellings_are_the_same() {
    let body = |section: &str| {
        format!(
            "{HEAD}[{section}.web]\nimage = \"alpine:3.20\"\nports = [8080]\n[{section}.web.env]\nA = \"b\"\n[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n"
        )
    };
    let a = ok(&body("service")).config;
    let b = ok(&body("services")).config;
    assert_eq!(a, b);
    assert_eq!(a.services["web"].ports, [8080]);
}

#[test]
fn a_service_declared_under_both_spellings_is_an_error() {
    let d = error(&format!(
        "{HEAD}[service.web]\nimage = \"a\"\n[services.web]\nimage = \"a\"\n[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n"
    ));
    assert_eq!(key(&d), "services.web");
    assert!(d.message.contains("declared twice"), "{}", d.message);
    assert_eq!(d.line_col.map(|l| l.0), Some(6));
}

#[test]
fn every_service_field() {
    let p = ok(&format!(
        r#"{HEAD}
[service.web]
plugin = "generic_container"
image = "alpine:3.20"
args = ["httpd", "-f", "-p", "8080"]
env = {{ APP_ENV = "test", PORT = 8080 }}
ports = [8080, 9090]
volumes = [{{ host_path = "data", container_path = "/data", read_only = true }}, "cfg:/cfg:ro", "out:/out"]
health_check = {{ cmd = ["wget", "-q", "-O-", "http://localhost:8080/"], interval = "200ms", timeout = "10s", retries = 50 }}

[service.built]
build = {{ context = "images/web", dockerfile = "Dockerfile" }}
health_check = {{ cmd = "test -f /ready" }}

[[steps]]
name = "s"
service = "web"
command = ["true"]
"#
    ));
    let web = &p.config.services["web"];
    assert_eq!(web.name, "web");
    assert_eq!(web.image.as_deref(), Some("alpine:3.20"));
    assert_eq!(web.args.as_ref().map(Vec::len), Some(4));
    assert_eq!(web.env.get("PORT").map(String::as_str), Some("8080"));
    assert_eq!(web.ports, [8080, 9090]);
    assert_eq!(
        web.volumes,
        [
            VolumeConfig {
                host_path: "data".into(),
                container_path: "/data".into(),
                read_only: true
            },
            VolumeConfig {
                host_path: "cfg".into(),
                container_path: "/cfg".into(),
                read_only: true
            },
            VolumeConfig {
                host_path: "out".into(),
                container_path: "/out".into(),
                read_only: false
            },
        ]
    );
    assert_eq!(
        web.health_check,
        Some(HealthCheck {
            cmd: Command::Argv(vec![
                "wget".into(),
                "-q".into(),
                "-O-".into(),
                "http://localhost:8080/".into()
            ]),
            interval_ms: 200,
            timeout_ms: 10_000,
            retries: 50,
        })
    );
    let built = &p.config.services["built"];
    assert_eq!(built.image, None);
    let build = built.build.as_ref().expect("build");
    assert_eq!(build.context, "images/web");
    assert_eq!(build.dockerfile.as_deref(), Some("Dockerfile"));
    let hc = built.health_check.as_ref().expect("health check");
    assert_eq!(hc.cmd, Command::Shell("test -f /ready".into()));
    assert_eq!(
        (hc.interval_ms, hc.timeout_ms, hc.retries),
        (500, 10_000, 60)
    );
    assert_eq!(built.args, None);
}

#[test]
fn without_services_steps_keep_no_service() {
    let p = ok(&format!(
        "{HEAD}[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n"
    ));
    assert!(p.config.services.is_empty());
    assert_eq!(p.config.steps[0].service, None);
}

#[test]
fn several_services_with_explicit_service_per_step() {
    let p = ok(&format!(
        "{HEAD}[service.a]\nimage = \"x\"\n[service.b]\nimage = \"y\"\n[[steps]]\nname = \"s\"\nservice = \"b\"\ncommand = [\"true\"]\n[[scenario]]\nname = \"sc\"\nservice = \"a\"\nrun = \"true\"\n"
    ));
    let services: Vec<_> = p
        .config
        .steps
        .iter()
        .map(|s| s.service.as_deref())
        .collect();
    assert_eq!(services, [Some("b"), Some("a")]);
}

#[test]
fn type_is_a_legacy_spelling_of_plugin() {
    // `type = generic_container` alone is fine.
    ok(&format!("{HEAD}[services.w]\ntype = \"generic_container\"\nimage = \"a\"\n[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n"));
    // `testcontainers` is clnrm's synonym of generic_container.
    ok(&format!("{HEAD}[services.w]\nplugin = \"testcontainers\"\nimage = \"a\"\n[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n"));
    // A `type` that disagrees with `plugin` is ignored, with a warning (not an error under --strict).
    let mut input = input(&format!(
        "{HEAD}[services.w]\ntype = \"otel_collector\"\nplugin = \"generic_container\"\nimage = \"a\"\n[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n"
    ));
    input.strict = true;
    let p = clnrm_config::parse_test(&input).expect("valid");
    assert_eq!(p.warnings.len(), 1);
    assert_eq!(key(&p.warnings[0]), "services.w.type");
    // `type` alone decides the plugin.
    let p = ok(&format!("{HEAD}[services.db]\ntype = \"surrealdb\"\n[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n"));
    assert_eq!(
        p.config.services["db"].image.as_deref(),
        Some("surrealdb/surrealdb:v2.2")
    );
    let d = error(&format!(
        "{HEAD}[services.db]\ntype = \"redis\"\n[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n"
    ));
    assert_eq!(key(&d), "services.db.type");
    assert_eq!(
        d.message,
        "plugin `redis` is not supported; the plugins are generic_container, alpine and surrealdb"
    );
}
