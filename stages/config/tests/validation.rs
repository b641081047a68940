//! Each validation rule of docs/reference.md §4, with the key path and line:col its error names.

mod common;

use clnrm_config::{parse_test, Severity};
use common::*;

const STEP: &str = "[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n";

#[test]
fn empty_file() {
    for text in ["", "   \n\n", "# only a comment\n"] {
        let d = error(text);
        assert_eq!(d.message, "empty test file: no [meta] or [test.metadata]");
        assert_eq!(d.file, FILE);
    }
}

#[test]
fn no_meta_at_all() {
    let d = error(STEP);
    assert_eq!(key(&d), "meta");
    assert!(
        d.message.contains("no [meta] or [test.metadata]"),
        "{}",
        d.message
    );
}

#[test]
fn name_is_required_in_both_formats() {
    let d = error(&format!("[meta]\nversion = \"1\"\n{STEP}"));
    assert_eq!(key(&d), "meta.name");
    assert_eq!(d.line_col, Some((1, 1)));
    assert_eq!(d.line_text.as_deref(), Some("[meta]"));

    let d = error(&format!("\n[test.metadata]\ndescription = \"x\"\n{STEP}"));
    assert_eq!(key(&d), "test.metadata.name");
    assert_eq!(d.line_col.map(|l| l.0), Some(2));
}

#[test]
fn version_is_required_with_meta_only() {
    let d = error(&format!("[meta]\nname = \"t\"\n{STEP}"));
    assert_eq!(key(&d), "meta.version");
    ok(&format!("[test.metadata]\nname = \"t\"\n{STEP}"));
    let d = error(&format!("[meta]\nname = \"t\"\nversion = 1.0\n{STEP}"));
    assert_eq!(key(&d), "meta.version");
    assert!(
        d.message.contains("expected a string, found a float"),
        "{}",
        d.message
    );
}

#[test]
fn both_meta_spellings_at_once() {
    let d = error(&format!("{HEAD}[test.metadata]\nname = \"u\"\n{STEP}"));
    assert_eq!(key(&d), "test.metadata");
}

#[test]
fn a_test_without_steps_is_an_error() {
    let d = error(HEAD);
    assert_eq!(key(&d), "steps");
}

#[test]
fn every_step_has_a_command_or_run() {
    let d = error(&format!(
        "{HEAD}{STEP}\n[[steps]]\nname = \"x\"\nexpected_output_regex = \"a\"\n"
    ));
    assert_eq!(key(&d), "steps[1].command");
    assert_eq!(d.line_col, Some((8, 1)));
    assert_eq!(d.line_text.as_deref(), Some("[[steps]]"));

    let d = error(&format!(
        "{HEAD}[[scenario]]\nname = \"a\"\nrun = \"true\"\n[[scenario]]\nname = \"b\"\n"
    ));
    assert_eq!(key(&d), "scenario[1].run");
    assert!(
        d.message.contains("neither `run` nor `steps`"),
        "{}",
        d.message
    );
}

#[test]
fn command_must_be_argv_and_not_both() {
    let d = error(&format!(
        "{HEAD}[[steps]]\nname = \"x\"\ncommand = \"echo hi\"\n"
    ));
    assert_eq!(key(&d), "steps[0].command");
    assert!(
        d.hint.as_deref().unwrap_or("").contains("run ="),
        "{:?}",
        d.hint
    );
    assert_eq!(d.line_col, Some((6, 11)));

    let d = error(&format!("{HEAD}[[steps]]\nname = \"x\"\ncommand = []\n"));
    assert_eq!(key(&d), "steps[0].command");

    let d = error(&format!(
        "{HEAD}[[steps]]\nname = \"x\"\ncommand = [\"a\", 1]\n"
    ));
    assert_eq!(key(&d), "steps[0].command[1]");

    let d = error(&format!(
        "{HEAD}[[steps]]\nname = \"x\"\ncommand = [\"a\"]\nrun = \"b\"\n"
    ));
    assert_eq!(key(&d), "steps[0].run");
}

#[test]
fn steps_need_names_and_names_are_unique() {
    let d = error(&format!("{HEAD}[[steps]]\ncommand = [\"true\"]\n"));
    assert_eq!(key(&d), "steps[0].name");
    let d = error(&format!("{HEAD}{STEP}{STEP}"));
    assert_eq!(key(&d), "steps[1].name");
    assert!(
        d.message.contains("duplicate step name `s`"),
        "{}",
        d.message
    );
    // Scenario steps are namespaced, so the same short name in two scenarios is fine.
    ok(&format!(
        "{HEAD}[[scenario]]\nname = \"a\"\nsteps = [{{ name = \"s\", command = [\"true\"] }}]\n[[scenario]]\nname = \"b\"\nsteps = [{{ name = \"s\", command = [\"true\"] }}]\n"
    ));
}

#[test]
fn a_step_names_a_service_that_exists() {
    let d = error(&format!(
        "{HEAD}[service.web]\nimage = \"a\"\n[[steps]]\nname = \"s\"\nservice = \"wbe\"\ncommand = [\"true\"]\n"
    ));
    assert_eq!(key(&d), "steps[0].service");
    assert_eq!(d.message, "service `wbe` is not declared");
    assert_eq!(d.hint.as_deref(), Some("did you mean `web`?"));
    assert_eq!(d.line_col, Some((8, 11)));
    assert_eq!(d.line_text.as_deref(), Some("service = \"wbe\""));

    // A scenario's service is checked too.
    let d = error(&format!(
        "{HEAD}[[scenario]]\nname = \"a\"\nservice = \"nope\"\nrun = \"true\"\n"
    ));
    assert_eq!(key(&d), "scenario[0].service");
}

#[test]
fn several_services_require_a_service_on_every_step() {
    let errs = errors(&format!(
        "{HEAD}[service.a]\nimage = \"x\"\n[service.b]\nimage = \"y\"\n{STEP}[[scenario]]\nname = \"sc\"\nrun = \"true\"\n"
    ));
    let keys: Vec<&str> = errs.iter().map(key).collect();
    assert_eq!(keys, ["steps[0].service", "scenario[0].service"]);
    assert!(
        errs[0].message.contains("several services (a, b)"),
        "{}",
        errs[0].message
    );
}

#[test]
fn unsupported_plugins_are_errors_with_a_clear_message() {
    let d = error(&format!(
        "{HEAD}[service.db]\nplugin = \"redis\"\nimage = \"redis:7\"\n{STEP}"
    ));
    assert_eq!(key(&d), "service.db.plugin");
    assert_eq!(
        d.message,
        "plugin `redis` is not supported; the plugins are generic_container, alpine and surrealdb"
    );
    assert_eq!(d.line_col, Some((5, 10)));
}

#[test]
fn a_service_needs_image_or_build() {
    let d = error(&format!("{HEAD}[service.web]\nports = [80]\n{STEP}"));
    assert_eq!(key(&d), "service.web");
    assert_eq!(d.line_col.map(|l| l.0), Some(4));
    let d = error(&format!(
        "{HEAD}[service.web]\nimage = \"a\"\nbuild = \"dir\"\n{STEP}"
    ));
    assert_eq!(key(&d), "service.web");
    let d = error(&format!(
        "{HEAD}[service.web]\nbuild = {{ dockerfile = \"D\" }}\n{STEP}"
    ));
    assert_eq!(key(&d), "service.web.build.context");
}

#[test]
fn regexes_compile() {
    let d = error(&format!(
        "{HEAD}{STEP}[[steps]]\nname = \"b\"\ncommand = [\"true\"]\n[[steps]]\nname = \"c\"\ncommand = [\"true\"]\nexpected_output_regex = \"hello (world\"\n"
    ));
    assert_eq!(key(&d), "steps[2].expected_output_regex");
    assert!(d.message.starts_with("invalid regex: "), "{}", d.message);
    assert!(d.message.contains("unclosed group"), "{}", d.message);
    assert_eq!(d.line_col, Some((13, 25)));

    let d = error(&format!(
        "{HEAD}[[steps]]\nname = \"x\"\ncommand = [\"a\"]\nexpected_stderr_regex = \"a{{2,1}}\"\n"
    ));
    assert_eq!(key(&d), "steps[0].expected_stderr_regex");
    // Counted repetitions are compiled, so a pattern over the size limit is caught too.
    let d = error(&format!("{HEAD}[[steps]]\nname = \"x\"\ncommand = [\"a\"]\nexpected_output_regex = '\\w{{1000}}{{1000}}'\n"));
    assert_eq!(key(&d), "steps[0].expected_output_regex");
}

#[test]
fn ports_are_in_range() {
    let errs = errors(&format!(
        "{HEAD}[service.web]\nimage = \"a\"\nports = [0, 8080, 70000, \"80\"]\n{STEP}"
    ));
    let keys: Vec<&str> = errs.iter().map(key).collect();
    assert_eq!(
        keys,
        [
            "service.web.ports[0]",
            "service.web.ports[2]",
            "service.web.ports[3]"
        ]
    );
    assert_eq!(errs[0].message, "port 0 is out of range 1..65535");
    assert_eq!(errs[0].line_col, Some((6, 10)));
    assert_eq!(errs[1].line_col, Some((6, 19)));
}

#[test]
fn durations_parse() {
    let d = error(&format!(
        "{HEAD}[[steps]]\nname = \"x\"\ncommand = [\"a\"]\ntimeout = \"10x\"\n"
    ));
    assert_eq!(key(&d), "steps[0].timeout");
    assert!(d.message.contains("unknown unit `x`"), "{}", d.message);
    let d = error(&format!(
        "{HEAD}[[steps]]\nname = \"x\"\ncommand = [\"a\"]\ntimeout = 10\n"
    ));
    assert_eq!(key(&d), "steps[0].timeout");
    assert!(d.hint.as_deref().unwrap_or("").contains("\"10s\""));
    let d = error(&format!(
        "{HEAD}[service.w]\nimage = \"a\"\nhealth_check = {{ cmd = [\"true\"], interval = \"soon\" }}\n{STEP}"
    ));
    assert_eq!(key(&d), "service.w.health_check.interval");
    let d = error(&format!(
        "{HEAD}[service.w]\nimage = \"a\"\nhealth_check = {{ retries = 3 }}\n{STEP}"
    ));
    assert_eq!(key(&d), "service.w.health_check.cmd");
}

#[test]
fn volumes_are_checked_but_host_paths_are_left_to_the_engine() {
    // A host path that does not exist is fine here.
    ok(&format!("{HEAD}[service.w]\nimage = \"a\"\nvolumes = [{{ host_path = \"/definitely/missing\", container_path = \"/d\" }}]\n{STEP}"));
    let d = error(&format!("{HEAD}[service.w]\nimage = \"a\"\nvolumes = [{{ host_path = \"x\", container_path = \"rel\" }}]\n{STEP}"));
    assert_eq!(key(&d), "service.w.volumes[0].container_path");
    let d = error(&format!(
        "{HEAD}[service.w]\nimage = \"a\"\n[[service.w.volumes]]\ncontainer_path = \"/d\"\n{STEP}"
    ));
    assert_eq!(key(&d), "service.w.volumes[0].host_path");
    let d = error(&format!(
        "{HEAD}[service.w]\nimage = \"a\"\nvolumes = [\"nocolon\"]\n{STEP}"
    ));
    assert_eq!(key(&d), "service.w.volumes[0]");
}

#[test]
fn all_errors_are_collected() {
    let errs = errors(
        r#"
[meta]
version = "1"

[service.web]
image = "a"
ports = [99999]

[[steps]]
name = "a"
service = "nope"
command = ["true"]
expected_output_regex = "("

[[steps]]
name = "b"
service = "web"
timeout = "forever"
"#,
    );
    let keys: Vec<&str> = errs.iter().map(key).collect();
    assert_eq!(
        keys,
        [
            "meta.name",
            "service.web.ports[0]",
            "steps[0].service",
            "steps[0].expected_output_regex",
            "steps[1].command",
            "steps[1].timeout",
        ]
    );
}

#[test]
fn toml_syntax_errors_have_line_col_and_the_line() {
    let d = error("[meta]\nname = \"t\"\nversion = \"1\n[[steps]]\n");
    assert_eq!(d.key_path, None);
    assert!(d.message.starts_with("invalid TOML: "), "{}", d.message);
    assert_eq!(d.line_col.map(|l| l.0), Some(3));
    assert_eq!(d.line_text.as_deref(), Some("version = \"1"));
    assert_eq!(d.hint, None);

    let d = error("[meta]\nname = \"t\" ; version = \"1\"\n");
    assert_eq!(d.line_col, Some((2, 12)));
    assert_eq!(
        d.line_text.as_deref(),
        Some("name = \"t\" ; version = \"1\"")
    );

    // Columns count characters, not bytes.
    let d = error("[meta]\nname = \"é\" x\n");
    assert_eq!(d.line_col, Some((2, 12)));
}

#[test]
fn template_hint_and_rendered_wording() {
    let text = "[meta]\nname = \"{{ svc }}\"\nversion = {{ v }}\n";
    let d = error(text);
    assert_eq!(
        d.hint.as_deref(),
        Some("this looks like a template; name it `.clnrm.toml.tera`")
    );
    assert_eq!(d.line_col.map(|l| l.0), Some(3));

    // Rendered text: no template hint, and the message says the line is in rendered text.
    let mut i = input("[meta]\nname = \"x\"\nversion = \n");
    i.rendered_from_template = true;
    let diags = parse_test(&i).expect_err("invalid");
    assert_eq!(diags[0].hint, None);
    assert!(
        diags[0].message.contains("in the rendered template"),
        "{}",
        diags[0].message
    );
    let mut i = input(&format!("{HEAD}[[steps]]\nname = \"x\"\n"));
    i.rendered_from_template = true;
    let diags = parse_test(&i).expect_err("invalid");
    assert!(
        diags[0].message.contains("in the rendered template"),
        "{}",
        diags[0].message
    );
}

#[test]
fn unknown_keys_warn_with_did_you_mean() {
    let p = ok(&format!(
        "{HEAD}[[steps]]\nname = \"x\"\ncommand = [\"a\"]\nexpected_ouput_regex = \"a\"\n[sevice.web]\nimage = \"a\"\n"
    ));
    assert_eq!(p.warnings.len(), 2);
    let w = &p.warnings[0];
    assert_eq!(w.severity, Severity::Warning);
    assert_eq!(key(w), "steps[0].expected_ouput_regex");
    assert_eq!(w.message, "unknown key `expected_ouput_regex`");
    assert_eq!(
        w.hint.as_deref(),
        Some("did you mean `expected_output_regex`?")
    );
    assert_eq!(w.line_col, Some((7, 1)));
    assert_eq!(
        p.warnings[1].hint.as_deref(),
        Some("did you mean `service`?")
    );
    assert_eq!(p.warnings[1].line_col, Some((8, 2)));

    // Nothing close: list what is known instead.
    let p = ok(&format!("{HEAD}{STEP}zzz = 1\n"));
    assert!(p.warnings[0]
        .hint
        .as_deref()
        .unwrap_or("")
        .starts_with("known keys here: name"));
}

#[test]
fn strict_turns_unknown_keys_into_errors_but_not_legacy_notes() {
    let text = format!("{HEAD}{STEP}expected_ouput_regex = \"a\"\n[template]\nx = 1\n");
    let mut i = input(&text);
    let p = parse_test(&i).expect("valid without --strict");
    assert_eq!(p.warnings.len(), 2);
    i.strict = true;
    let diags = parse_test(&i).expect_err("invalid with --strict");
    let errs: Vec<_> = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    assert_eq!(errs.len(), 1);
    assert_eq!(key(errs[0]), "steps[0].expected_ouput_regex");
    // The [template] note stays a warning, and comes along with the errors.
    assert!(diags
        .iter()
        .any(|d| d.severity == Severity::Warning && key(d) == "template"));
    // The schemas agree: `clnrm schema` lets the file pass, `clnrm --strict schema` does not.
    assert_eq!(schema_verdict(&text, false), Some(Ok(())));
    assert!(matches!(schema_verdict(&text, true), Some(Err(_))));
}

#[test]
fn span_expectations_are_kept_and_what_cannot_be_judged_is_recorded() {
    let p = ok(&format!(
        "{HEAD}{STEP}[[expect.span]]\nname = \"clnrm.run\"\n[expect.graph]\nacyclic = true\n[otel_validation]\nenabled = true\n[[otel_validation.expected_spans]]\nname = \"x\"\n"
    ));
    // The judged kinds and [otel_validation] go to the expect stage.
    assert!(p.config.unevaluated_expectations.is_empty());
    let expectations = p
        .config
        .otel
        .expect
        .as_ref()
        .unwrap()
        .expectations()
        .unwrap();
    assert_eq!(expectations.span.len(), 1);
    assert_eq!(
        expectations.otel_validation.unwrap().expected_spans.len(),
        1
    );
    assert!(p.warnings.is_empty());
    // An unknown expectation kind is still recorded (never silently dropped), and warned about.
    let p = ok(&format!("{HEAD}{STEP}[expect.spam]\nx = 1\n"));
    assert_eq!(p.config.unevaluated_expectations, ["expect.spam"]);
    assert_eq!(p.warnings[0].hint.as_deref(), Some("did you mean `span`?"));
}

#[test]
fn determinism_limits_and_other_sections_are_type_checked() {
    let p = ok(&format!(
        "{HEAD}{STEP}[determinism]\nseed = 42\nfreeze_clock = \"2025-01-01T00:00:00Z\"\n[limits]\ncpu_millicores = 500\nmemory_mb = 256\n[vars]\na = \"b\"\n[matrix]\nos = [\"a\", \"b\"]\n[otel]\nexporter = \"otlp\"\nsample_ratio = 1\nresources = {{ \"service.name\" = \"x\" }}\n[otel.propagators]\nuse = [\"tracecontext\"]\n[report]\njson = \"r.json\"\n"
    ));
    assert_eq!(p.config.seed, Some(42));
    assert_eq!(
        p.config.freeze_clock.as_deref(),
        Some("2025-01-01T00:00:00Z")
    );
    assert_eq!(p.config.limits.cpu_millicores, Some(500));
    assert_eq!(p.config.limits.memory_mb, Some(256));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    // An unquoted TOML date-time is accepted too.
    let p = ok(&format!(
        "{HEAD}{STEP}[determinism]\nfreeze_clock = 2025-01-01T00:00:00Z\n"
    ));
    assert_eq!(
        p.config.freeze_clock.as_deref(),
        Some("2025-01-01T00:00:00Z")
    );

    let errs = errors(&format!(
        "{HEAD}{STEP}[determinism]\nseed = -1\nfreeze_clock = \"tomorrow\"\n[limits]\nmemory_mb = 0\n[vars]\n[matrix]\nos = \"a\"\n[otel]\nsample_ratio = 2.0\n[report]\njson = 1\n"
    ));
    let keys: Vec<&str> = errs.iter().map(key).collect();
    assert_eq!(
        keys,
        [
            "determinism.seed",
            "determinism.freeze_clock",
            "limits.memory_mb",
            "matrix.os",
            "otel.sample_ratio",
            "report.json",
        ]
    );
    let d = error(&format!("vars = 3\n{HEAD}{STEP}"));
    assert_eq!(key(&d), "vars");
}

#[test]
fn scenario_rules() {
    let d = error(&format!(
        "{HEAD}[[scenario]]\nname = \"a\"\nrun = \"true\"\nexpect_success = false\n"
    ));
    assert_eq!(key(&d), "scenario[0].expect_success");
    ok(&format!(
        "{HEAD}[[scenario]]\nname = \"a\"\nrun = \"true\"\nexpect_success = true\n"
    ));
    let d = error(&format!(
        "{HEAD}[[scenario]]\nname = \"a\"\nexpected_output_regex = \"x\"\nsteps = [{{ name = \"s\", command = [\"true\"] }}]\n"
    ));
    assert_eq!(key(&d), "scenario[0].expected_output_regex");
    let d = error(&format!("{HEAD}[[scenario]]\nrun = \"true\"\n"));
    assert_eq!(key(&d), "scenario[0].name");
    // Scenario-level checks describe its run step; defaults flow to its steps.
    let p = ok(&format!(
        "{HEAD}[[scenario]]\nname = \"a\"\nrun = \"exit 3\"\nexpected_exit_code = 3\nenv = {{ K = \"v\" }}\ntimeout = \"1m\"\nsteps = [{{ name = \"s\", command = [\"true\"] }}]\n"
    ));
    assert_eq!(p.config.steps[0].expected_exit_code, 3);
    assert_eq!(p.config.steps[1].expected_exit_code, 0);
    assert_eq!(
        p.config.steps[1].env.get("K").map(String::as_str),
        Some("v")
    );
    assert_eq!(p.config.steps[1].timeout_ms, Some(60_000));
}

#[test]
fn diagnostics_print_like_rustc() {
    let d = error(&format!(
        "{HEAD}[[steps]]\nname = \"x\"\ncommand = [\"a\"]\nexpected_output_regex = \"(\"\n"
    ));
    assert_eq!(
        d.to_string(),
        "error: tests/t.clnrm.toml:7:25: steps[0].expected_output_regex: invalid regex: unclosed group at `(`\n  |\n7 | expected_output_regex = \"(\"\n  |                         ^"
    );
    let d = error("");
    assert_eq!(
        d.to_string(),
        "error: tests/t.clnrm.toml: empty test file: no [meta] or [test.metadata]\nhint: start with [meta] name = \"...\" version = \"1.0\", then [[steps]] or [[scenario]]"
    );
    // A very long line is cut around the column, and the caret still points at it.
    let long = format!("[meta]\nname = \"{}\" x\n", "a".repeat(500));
    let text = error(&long).to_string();
    let lines: Vec<&str> = text.lines().collect();
    let shown = lines[2];
    let caret = lines[3];
    assert!(shown.len() < 200, "{shown}");
    let pos = caret.find('^').expect("caret");
    assert_eq!(&shown[pos..pos + 1], "x", "{shown}\n{caret}");
}

#[test]
fn outputs_serialize_round_trip() {
    let p = ok(&format!(
        "{HEAD}[service.w]\nimage = \"a\"\n{STEP}zzz = 1\n"
    ));
    let json = serde_json::to_string(&p).expect("serialize");
    let back: clnrm_config::ParsedTest = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, p);
    let i = input("x");
    let back: clnrm_config::ParseInput =
        serde_json::from_str(&serde_json::to_string(&i).unwrap()).unwrap();
    assert_eq!(back, i);
}

#[test]
fn large_files_parse_in_linear_time() {
    // ~2 MB of steps, each with an unknown key: 20k+ warnings must not make location lookup
    // or did-you-mean quadratic. (10 MB in a release build takes about a second.)
    let mut text = format!("{HEAD}[service.web]\nimage = \"a\"\n");
    let mut i = 0;
    while text.len() < 2_000_000 {
        text.push_str(&format!(
            "[[steps]]\nname = \"s{i}\"\ncommand = [\"echo\", \"{i}\"]\nexpected_output_regex = \"^{i}$\"\ncomand = 1\n\n"
        ));
        i += 1;
    }
    let start = std::time::Instant::now();
    let p = ok(&text);
    assert_eq!(p.config.steps.len(), i);
    assert_eq!(p.warnings.len(), i);
    assert!(start.elapsed().as_secs() < 60, "took {:?}", start.elapsed());

    // 10 MB in one string value.
    let text = format!("{HEAD}description = \"{}\"\n{STEP}", "x".repeat(10_000_000));
    ok(&text);
}
