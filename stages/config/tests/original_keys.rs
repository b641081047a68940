//! The original clnrm's plugins and v0.4 keys (docs/reference.md §14): `alpine` and
//! `surrealdb` services with its defaults, a step's `should_fail`, `[assertions]` and a
//! scenario's `artifacts`, read for the runner, and every mistake in them an error at its
//! place.

mod common;

use clnrm_config::Diagnostic;
use common::*;

const STEP: &str = "[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n";

fn only_error(text: &str) -> Diagnostic {
    let diags = parse(text).expect_err("an invalid test");
    let errors: Vec<Diagnostic> = diags.into_iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.into_iter().next().unwrap()
}

#[test]
fn an_alpine_plugin_is_an_idle_alpine_latest() {
    let p = ok(&format!("{HEAD}[service.box]\nplugin = \"alpine\"\n{STEP}"));
    let svc = &p.config.services["box"];
    assert_eq!(svc.image.as_deref(), Some("alpine:latest"));
    assert_eq!(svc.args, None);
    // An image written beside the plugin wins.
    let p = ok(&format!(
        "{HEAD}[service.box]\ntype = \"generic_container\"\nplugin = \"alpine\"\nimage = \"alpine:3.19\"\n{STEP}"
    ));
    assert_eq!(
        p.config.services["box"].image.as_deref(),
        Some("alpine:3.19")
    );
}

#[test]
fn a_surrealdb_plugin_starts_the_originals_image_with_its_settings() {
    let p = ok(&format!(
        "{HEAD}[services.db]\ntype = \"surrealdb\"\nusername = \"admin\"\npassword = \"pw\"\nstrict = true\n{STEP}"
    ));
    let db = &p.config.services["db"];
    assert_eq!(db.image.as_deref(), Some("surrealdb/surrealdb:v2.2"));
    assert_eq!(
        db.args.as_deref().unwrap(),
        [
            "start",
            "--user",
            "admin",
            "--pass",
            "pw",
            "--allow-all",
            "--strict",
            "memory"
        ]
    );
    assert_eq!(db.metadata["connection_string"], "ws://db:8000");
    assert_eq!(db.metadata["username"], "admin");
    // The original's defaults: root/root, not strict.
    let p = ok(&format!(
        "{HEAD}[services.db]\nplugin = \"surrealdb\"\n{STEP}"
    ));
    assert_eq!(
        p.config.services["db"].args.as_deref().unwrap(),
        [
            "start",
            "--user",
            "root",
            "--pass",
            "root",
            "--allow-all",
            "memory"
        ]
    );
}

#[test]
fn other_plugins_and_misplaced_surrealdb_settings_are_errors_at_their_line() {
    let e = only_error(&format!("{HEAD}[service.c]\nplugin = \"redis\"\n{STEP}"));
    assert_eq!(key(&e), "service.c.plugin");
    assert!(e.message.contains("plugin `redis` is not supported"), "{e}");
    assert_eq!(e.line_col.map(|(l, _)| l), Some(5));

    let e = only_error(&format!(
        "{HEAD}[service.c]\nimage = \"i\"\nusername = \"root\"\n{STEP}"
    ));
    assert_eq!(key(&e), "service.c.username");
    assert!(e.message.contains("setting of the surrealdb plugin"), "{e}");
}

#[test]
fn should_fail_marks_the_step_and_excludes_other_checks() {
    let p = ok(&format!(
        "{HEAD}{STEP}[[steps]]\nname = \"ro\"\ncommand = [\"false\"]\nshould_fail = true\n"
    ));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert!(!p.config.steps[0].should_fail);
    assert!(p.config.steps[1].should_fail);

    let e = only_error(&format!(
        "{HEAD}[[steps]]\nname = \"ro\"\ncommand = [\"false\"]\nexpected_output_regex = \"x\"\nshould_fail = true\n"
    ));
    assert_eq!(key(&e), "steps[0].should_fail");
    assert!(
        e.message
            .contains("`should_fail = true` cannot be combined with `expected_output_regex`"),
        "{e}"
    );
}

#[test]
fn assertions_are_read_and_an_unknown_one_is_an_error_with_did_you_mean() {
    let p = ok(&format!(
        "{HEAD}[service.db]\nimage = \"i\"\n{STEP}[assertions]\n\
         container_should_have_executed_commands = 2\nexecution_should_be_hermetic = true\n\
         all_steps_should_succeed = true\nall_scenarios_should_pass = true\n\
         service_should_start = \"db\"\notel_environment_configured = true\n\
         temporal_ordering_should_be_valid = true\n\
         service_metadata_should_contain = [\"host\"]\nshould_fail = false\n"
    ));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let a = &p.config.assertions;
    assert_eq!(a.container_should_have_executed_commands, Some(2));
    assert_eq!(a.service_should_start, ["db"]);
    assert_eq!(a.service_metadata_should_contain, ["host"]);
    assert_eq!(a.should_fail, Some(false));

    let e = only_error(&format!(
        "{HEAD}{STEP}[assertions]\nall_step_should_succeed = true\n"
    ));
    assert_eq!(key(&e), "assertions.all_step_should_succeed");
    assert_eq!(e.message, "unknown assertion `all_step_should_succeed`");
    assert_eq!(
        e.hint.as_deref(),
        Some("did you mean `all_steps_should_succeed`?")
    );
    assert_eq!(e.line_col, Some((8, 1)));

    let e = only_error(&format!(
        "{HEAD}[service.db]\nimage = \"i\"\n{STEP}[assertions]\nservice_should_start = \"cache\"\n"
    ));
    assert!(e.message.contains("service `cache` is not declared"), "{e}");
}

#[test]
fn artifacts_collecting_spans_are_accepted_and_others_are_errors() {
    let scenario = "[[scenario]]\nname = \"a\"\nrun = \"true\"\n";
    let p = ok(&format!(
        "{HEAD}{scenario}artifacts.collect = [\"spans:default\"]\n"
    ));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let e = only_error(&format!("{HEAD}{scenario}artifacts.collect = [\"logs\"]\n"));
    assert_eq!(key(&e), "scenario[0].artifacts.collect");
    assert!(
        e.message.contains("artifact \"logs\" cannot be collected"),
        "{e}"
    );
}

#[test]
fn a_service_declared_with_type_keeps_the_originals_args_that_never_ran() {
    // The original clnrm read `args` and never ran them; its steps ran in an idle container.
    let p = ok(&format!(
        "{HEAD}[service.box]\ntype = \"generic_container\"\nimage = \"alpine:latest\"\nargs = [\"sh\", \"-c\", \"echo ready\"]\n{STEP}"
    ));
    assert_eq!(p.config.services["box"].args, None, "kept idle");
    let warning = p
        .warnings
        .iter()
        .find(|w| w.key_path.as_deref() == Some("service.box.args"))
        .unwrap_or_else(|| panic!("a warning at the args: {:#?}", p.warnings));
    assert!(
        warning.message.contains("never ran a service's `args`"),
        "{}",
        warning.message
    );
    assert!(warning
        .hint
        .as_deref()
        .unwrap()
        .contains("plugin = \"generic_container\""));
    // Declared with `plugin`, `args` is the container's command.
    let p = ok(&format!(
        "{HEAD}[service.box]\nplugin = \"generic_container\"\ntype = \"generic_container\"\nimage = \"alpine:latest\"\nargs = [\"sleep\", \"9\"]\n{STEP}"
    ));
    assert_eq!(
        p.config.services["box"].args.as_deref(),
        Some(&["sleep".to_string(), "9".to_string()][..])
    );
}
