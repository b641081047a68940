//! The plan stage's story: a validated test becomes containers and bound steps. Idle
//! services no step uses are left out, `run` strings become `sh -c` whole, paths become
//! root-relative, and the container spec hash follows the spec and nothing else.

use clnrm_config::{
    BuildSpec, Command, HealthCheck, Limits, ServiceConfig, StepConfig, TestConfig, VolumeConfig,
};
use clnrm_plan::{
    plan, root_relative, spec_hash, ImageSource, PlanError, PlanInput, TestPlan, DEFAULT_SERVICE,
};

fn input(test: TestConfig) -> PlanInput {
    PlanInput {
        test,
        default_image: "alpine:3.20".into(),
        default_step_timeout_ms: 60_000,
        test_dir: "tests/api".into(),
    }
}

#[test]
fn no_services_uses_the_default_image_in_one_implicit_service() {
    let p = plan(&input(TestConfig::new(
        "t",
        vec![],
        vec![StepConfig::argv("a", &["true"])],
    )))
    .unwrap();
    assert_eq!(p.containers.len(), 1);
    assert_eq!(p.containers[0].service, DEFAULT_SERVICE);
    assert_eq!(
        p.containers[0].image,
        ImageSource::Reference {
            reference: "alpine:3.20".into()
        }
    );
    assert_eq!(p.containers[0].command, None);
    assert_eq!(p.steps[0].service, DEFAULT_SERVICE);
    assert_eq!(p.steps[0].timeout_ms, 60_000);
}

#[test]
fn empty_default_image_is_an_error_only_when_needed() {
    let mut i = input(TestConfig::new(
        "t",
        vec![],
        vec![StepConfig::argv("a", &["true"])],
    ));
    i.default_image = " ".into();
    assert_eq!(plan(&i), Err(PlanError::NoDefaultImage));
    let mut i = input(TestConfig::new(
        "t",
        vec![ServiceConfig::from_image("web", "x")],
        vec![StepConfig::argv("a", &["true"])],
    ));
    i.default_image = String::new();
    assert!(plan(&i).is_ok());
}

#[test]
fn shell_commands_become_sh_c_whole_and_argv_is_untouched() {
    let p = plan(&input(TestConfig::new(
        "t",
        vec![ServiceConfig::from_image("web", "img")],
        vec![
            StepConfig::shell("a", "a && b 'c d'"),
            StepConfig::argv("b", &["echo", "x y", "&&", "z"]).in_service("web"),
        ],
    )))
    .unwrap();
    assert_eq!(p.steps[0].argv, vec!["sh", "-c", "a && b 'c d'"]);
    assert_eq!(p.steps[1].argv, vec!["echo", "x y", "&&", "z"]);
}

#[test]
fn only_used_services_are_planned_and_steps_keep_order_and_binding() {
    let p = plan(&input(TestConfig::new(
        "t",
        vec![
            ServiceConfig::from_image("web", "w"),
            ServiceConfig::from_image("db", "d"),
            ServiceConfig::from_image("unused", "u"),
        ],
        vec![
            StepConfig::argv("1", &["a"]).in_service("web"),
            StepConfig::argv("2", &["b"]).in_service("db"),
            StepConfig::argv("3", &["c"]).in_service("web"),
        ],
    )))
    .unwrap();
    let names: Vec<_> = p.containers.iter().map(|c| c.service.as_str()).collect();
    assert_eq!(names, vec!["db", "web"]);
    let bound: Vec<_> = p
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.service.as_str()))
        .collect();
    assert_eq!(bound, vec![("1", "web"), ("2", "db"), ("3", "web")]);
}

#[test]
fn services_with_their_own_command_start_even_when_no_step_runs_in_them() {
    let mut web = ServiceConfig::from_image("web", "w");
    web.args = Some(vec!["httpd".into(), "-f".into()]);
    let p = plan(&input(TestConfig::new(
        "t",
        vec![
            web.clone(),
            ServiceConfig::from_image("client", "c"),
            ServiceConfig::from_image("idle", "i"),
        ],
        vec![StepConfig::argv("get", &["wget", "http://web/"]).in_service("client")],
    )))
    .unwrap();
    let names: Vec<_> = p.containers.iter().map(|c| c.service.as_str()).collect();
    assert_eq!(names, vec!["client", "web"]);
    // A test without steps starts nothing.
    let p = plan(&input(TestConfig::new("t", vec![web], vec![]))).unwrap();
    assert!(p.containers.is_empty());
}

#[test]
fn unknown_and_ambiguous_services_are_errors() {
    let e = plan(&input(TestConfig::new(
        "t",
        vec![ServiceConfig::from_image("web", "w")],
        vec![StepConfig::argv("x", &["a"]).in_service("dbb")],
    )))
    .unwrap_err();
    assert!(matches!(e, PlanError::UnknownService { ref service, .. } if service == "dbb"));
    assert!(e.to_string().contains("declared: web"), "{e}");
    let e = plan(&input(TestConfig::new(
        "t",
        vec![
            ServiceConfig::from_image("web", "w"),
            ServiceConfig::from_image("db", "d"),
        ],
        vec![StepConfig::argv("x", &["a"])],
    )))
    .unwrap_err();
    assert!(matches!(e, PlanError::AmbiguousService { .. }));
}

#[test]
fn empty_commands_and_unevaluated_expectations_are_errors() {
    let e = plan(&input(TestConfig::new(
        "t",
        vec![],
        vec![StepConfig::argv("x", &[])],
    )))
    .unwrap_err();
    assert_eq!(
        e,
        PlanError::EmptyCommand {
            key_path: "steps[x].command".into()
        }
    );
    let mut t = TestConfig::new("t", vec![], vec![StepConfig::argv("x", &["true"])]);
    t.unevaluated_expectations = vec!["expect.span".into()];
    let e = plan(&input(t)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "expect.span is not evaluated by this version"
    );
}

#[test]
fn image_sources_are_checked_and_build_paths_are_root_relative() {
    let mut s = ServiceConfig::from_image("web", "w");
    s.build = Some(BuildSpec {
        context: "../images/web".into(),
        dockerfile: None,
    });
    let e = plan(&input(TestConfig::new(
        "t",
        vec![s.clone()],
        vec![StepConfig::argv("x", &["a"])],
    )))
    .unwrap_err();
    assert!(matches!(e, PlanError::ImageAndBuild { .. }));
    s.image = None;
    let p = plan(&input(TestConfig::new(
        "t",
        vec![s.clone()],
        vec![StepConfig::argv("x", &["a"])],
    )))
    .unwrap();
    assert_eq!(
        p.containers[0].image,
        ImageSource::Build {
            context: "tests/images/web".into(),
            dockerfile: "Dockerfile".into()
        }
    );
    s.build = None;
    let e = plan(&input(TestConfig::new(
        "t",
        vec![s],
        vec![StepConfig::argv("x", &["a"])],
    )))
    .unwrap_err();
    assert!(matches!(e, PlanError::NoImage { .. }));
}

#[test]
fn volumes_limits_health_checks_and_step_fields_are_carried() {
    let mut s = ServiceConfig::from_image("web", "w");
    s.args = Some(vec!["httpd".into(), "-f".into()]);
    s.env.insert("A".into(), "1".into());
    s.ports = vec![8080];
    s.volumes = vec![
        VolumeConfig {
            host_path: "./data".into(),
            container_path: "/data".into(),
            read_only: true,
        },
        VolumeConfig {
            host_path: "/abs/../x".into(),
            container_path: "/x".into(),
            read_only: false,
        },
    ];
    s.health_check = Some(HealthCheck {
        cmd: Command::Shell("wget -q -O- http://localhost:8080/".into()),
        interval_ms: 200,
        timeout_ms: 10_000,
        retries: 0,
    });
    let mut st = StepConfig::argv("x", &["a"]);
    st.timeout_ms = Some(1000);
    st.workdir = Some("/tmp".into());
    st.env.insert("B".into(), "2".into());
    st.expected_exit_code = 3;
    st.expected_output_regex = Some("o".into());
    st.expected_stderr_regex = Some("e".into());
    st.continue_on_failure = true;
    let mut t = TestConfig::new("t", vec![s], vec![st]);
    t.limits = Limits {
        cpu_millicores: Some(500),
        memory_mb: Some(256),
    };
    let p = plan(&input(t)).unwrap();
    let c = &p.containers[0];
    assert_eq!(
        c.command.as_deref(),
        Some(&["httpd".to_string(), "-f".to_string()][..])
    );
    assert_eq!(c.env["A"], "1");
    assert_eq!(c.ports, vec![8080]);
    assert_eq!(c.volumes[0].host_path, "tests/api/data");
    assert!(c.volumes[0].read_only);
    assert_eq!(c.volumes[1].host_path, "/x");
    assert_eq!(c.limits.nano_cpus, Some(500_000_000));
    assert_eq!(c.limits.memory_bytes, Some(256 * 1024 * 1024));
    let hc = c.health_check.as_ref().unwrap();
    assert_eq!(hc.argv[..2], ["sh".to_string(), "-c".to_string()]);
    assert_eq!(hc.retries, 1, "at least one attempt");
    let s = &p.steps[0];
    assert_eq!(s.timeout_ms, 1000);
    assert_eq!(s.workdir.as_deref(), Some("/tmp"));
    assert_eq!(s.env["B"], "2");
    assert_eq!(s.expected_exit_code, 3);
    assert_eq!(s.expected_output_regex.as_deref(), Some("o"));
    assert_eq!(s.expected_stderr_regex.as_deref(), Some("e"));
    assert!(s.continue_on_failure);
}

#[test]
fn spec_hash_is_stable_and_changes_with_the_spec() {
    let t = || {
        TestConfig::new(
            "t",
            vec![ServiceConfig::from_image("web", "w")],
            vec![StepConfig::argv("x", &["a"])],
        )
    };
    let a = plan(&input(t())).unwrap();
    let b = plan(&input(t())).unwrap();
    assert_eq!(a.containers[0].hash, b.containers[0].hash);
    assert_eq!(a.containers[0].hash.0.len(), 64);
    assert_eq!(a.containers[0].hash, spec_hash(&a.containers[0]));
    // Steps are not part of the container spec: changing them keeps the hash.
    let mut t2 = t();
    t2.steps[0].command = Command::Argv(vec!["b".into()]);
    assert_eq!(
        plan(&input(t2)).unwrap().containers[0].hash,
        a.containers[0].hash
    );
    // The container's env is.
    let mut t3 = t();
    t3.services
        .get_mut("web")
        .unwrap()
        .env
        .insert("K".into(), "V".into());
    assert_ne!(
        plan(&input(t3)).unwrap().containers[0].hash,
        a.containers[0].hash
    );
}

#[test]
fn plans_round_trip_through_json() {
    let p = plan(&input(TestConfig::new(
        "t",
        vec![],
        vec![StepConfig::argv("a", &["true"])],
    )))
    .unwrap();
    let json = serde_json::to_string(&p).unwrap();
    let back: TestPlan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p);
}

#[test]
fn root_relative_paths_are_normalised() {
    assert_eq!(root_relative("tests", "data"), "tests/data");
    assert_eq!(root_relative("", "data/./x/"), "data/x");
    assert_eq!(root_relative(".", "data"), "data");
    assert_eq!(root_relative("tests/a", "../../x"), "x");
    assert_eq!(root_relative("tests", "../../x"), "../x");
    assert_eq!(root_relative("tests", "."), "tests");
    assert_eq!(root_relative("", "."), ".");
    assert_eq!(root_relative("tests", "/srv/../data"), "/data");
}

#[test]
fn setup_teardown_timeout_and_the_language_keys_are_carried_into_the_plan() {
    let mut create = StepConfig::argv("create", &["echo", "{}"]).in_service("client");
    create.attempts = clnrm_plan::Attempts::Retries {
        count: 2,
        delay_ms: 10,
    };
    create.expected_json = vec![clnrm_config::JsonCheck {
        path: "$.id".into(),
        check: clnrm_config::JsonCheckKind::Exists(true),
    }];
    create.expected_output_regex_not = Some("ERROR".into());
    let mut test = TestConfig::new(
        "t",
        vec![
            ServiceConfig::from_image("client", "busybox"),
            ServiceConfig::from_image("db", "busybox"),
        ],
        vec![create],
    );
    // A service only teardown uses is started too: teardown runs in it.
    test.setup = vec![StepConfig::shell("migrate", "true").in_service("client")];
    test.teardown = vec![StepConfig::shell("dump", "true").in_service("db")];
    test.timeout_ms = Some(2000);
    let p = plan(&input(test.clone())).unwrap();
    assert_eq!(p.timeout_ms, Some(2000));
    assert_eq!(p.setup[0].name, "migrate");
    assert_eq!(p.teardown[0].service, "db");
    let services: Vec<&str> = p.containers.iter().map(|c| c.service.as_str()).collect();
    assert_eq!(services, ["client", "db"]);
    let e = p.steps[0].expectations();
    assert_eq!(e.output_regex_not.as_deref(), Some("ERROR"));
    assert_eq!(e.json.len(), 1);
    assert_eq!(
        p.steps[0].attempts,
        clnrm_plan::Attempts::Retries {
            count: 2,
            delay_ms: 10
        }
    );

    // A changed expectation is a changed plan, so a changed result key.
    let bytes = |t: &TestConfig| serde_json::to_string(&plan(&input(t.clone())).unwrap()).unwrap();
    let mut changed = test.clone();
    changed.steps[0].expected_json[0].check = clnrm_config::JsonCheckKind::Exists(false);
    assert_ne!(bytes(&test), bytes(&changed));
    let mut changed = test.clone();
    changed.timeout_ms = Some(3000);
    assert_ne!(bytes(&test), bytes(&changed));
}
