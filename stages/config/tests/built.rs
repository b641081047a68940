//! Configs built in code (the constructors other crates' tests use) are the configs the parser
//! gives for the same test written as TOML, so a test built by hand checks what a user's file
//! would run.

mod common;

use clnrm_config::{Command, ServiceConfig, StepConfig, TestConfig};

#[test]
fn a_built_test_equals_the_parsed_file_that_says_the_same() {
    let parsed = common::ok(
        r#"
[meta]
name = "smoke"
version = "1.0"

[service.web]
image = "alpine:3.20"

[[steps]]
name = "hello"
command = ["echo", "hi"]

[[steps]]
name = "count"
run = "ls | wc -l"
"#,
    );
    let built = TestConfig::new(
        "smoke",
        vec![ServiceConfig::from_image("web", "alpine:3.20")],
        vec![
            StepConfig::at(
                "steps[0]",
                "hello",
                Command::Argv(vec!["echo".into(), "hi".into()]),
            )
            .in_service("web"),
            StepConfig::at("steps[1]", "count", Command::Shell("ls | wc -l".into()))
                .in_service("web"),
        ],
    );
    assert_eq!(parsed.config, built);
}

#[test]
fn steps_built_without_a_file_are_named_by_their_key_path() {
    let step = StepConfig::argv("hello", &["echo", "hi"]);
    assert_eq!(step.key_path, "steps[hello]");
    assert_eq!(
        step.command,
        Command::Argv(vec!["echo".into(), "hi".into()])
    );
    assert_eq!(step.service, None);
    assert_eq!(step.expected_exit_code, 0);
    let shell = StepConfig::shell("count", "ls | wc -l").in_service("web");
    assert_eq!(shell.command, Command::Shell("ls | wc -l".into()));
    assert_eq!(shell.service.as_deref(), Some("web"));
}

#[test]
fn a_service_without_an_image_is_what_the_parser_starts_from() {
    let bare = ServiceConfig::new("db");
    assert_eq!((bare.image, bare.build, bare.args), (None, None, None));
    assert_eq!(
        ServiceConfig::from_image("db", "postgres:16")
            .image
            .as_deref(),
        Some("postgres:16")
    );
}
