//! What a template author sees from the functions whose work moved to crates: the
//! built-in macros write values through `toml_encode`, and the result is TOML that
//! reads back exactly what the template gave; the frozen clock is read as RFC 3339
//! with any offset and written back in UTC.

mod common;

use common::Project;

#[test]
fn built_in_macros_write_awkward_values_as_toml_that_reads_back_the_same() {
    let mut project = Project::new("/proj");
    project.file(
        "tests/a.clnrm.toml.tera",
        r#"{% import "_macros.toml.tera" as m %}
{{ m::service(id="web 1", image='img:"quoted"', args=["sh", "-c", 'echo "a\b" | grep x']) }}
{{ m::step(name="check", cmd="run", expected_output_regex='^\d+ (ok|"done")$') }}
"#,
    );
    let rendered = project.render("tests/a.clnrm.toml.tera").unwrap();
    let doc: toml::Table = toml::from_str(&rendered.toml)
        .unwrap_or_else(|e| panic!("not valid TOML:\n{}\n{e}", rendered.toml));

    let service = &doc["service"]["web 1"];
    assert_eq!(service["image"].as_str(), Some(r#"img:"quoted""#));
    let args: Vec<&str> = service["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|arg| arg.as_str().unwrap())
        .collect();
    assert_eq!(args, ["sh", "-c", r#"echo "a\b" | grep x"#]);
    let step = &doc["steps"].as_array().unwrap()[0];
    assert_eq!(
        step["expected_output_regex"].as_str(),
        Some(r#"^\d+ (ok|"done")$"#)
    );
}

#[test]
fn frozen_clock_with_an_offset_is_printed_in_utc() {
    let mut project = Project::new("/proj");
    project.file(
        "tests/a.clnrm.toml.tera",
        "now = \"{{ now_rfc3339() }}\"\nunix = {{ now_unix() }}\nms = {{ now_ms() }}\n",
    );
    let rendered = project
        .render_frozen("tests/a.clnrm.toml.tera", "2025-01-01T02:00:00.250+02:00")
        .unwrap();
    assert_eq!(
        rendered.toml,
        "now = \"2025-01-01T00:00:00Z\"\nunix = 1735689600\nms = 1735689600250\n"
    );
    assert!(!rendered.record.volatile);
}

#[test]
fn frozen_clock_on_a_day_that_does_not_exist_is_refused() {
    let mut project = Project::new("/proj");
    project.file("tests/a.clnrm.toml.tera", "x = 1\n");
    let e = project
        .render_frozen("tests/a.clnrm.toml.tera", "2025-02-30T00:00:00Z")
        .unwrap_err();
    assert_eq!(e.construct, "freeze clock");
    assert_eq!(e.file, "tests/a.clnrm.toml.tera");
}
