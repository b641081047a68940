//! `clnrm fmt`'s layout, as a user sees it on a messy file: keys in SPEC §4 order, one blank
//! line between tables, comments travelling with what they describe, and a second run that
//! changes nothing.

mod common;

use clnrm_config::format_test;

const MESSY: &str = r#"#:schema ./clnrm.schema.json

# The steps come first in this file.
[[steps]]
expected_output_regex = "hi"   # stdout
  command = ["echo", "hi"]
name="greet"


[meta]
version="1.0"
# Shown in reports.
name = "messy"
[service.web]
args = ["httpd", "-f"]
image = "busybox"
[[scenario]]
run = "true"
name = "check"
# trailing words
"#;

const TIDY: &str = r#"#:schema ./clnrm.schema.json

[meta]
# Shown in reports.
name = "messy"
version = "1.0"

[service.web]
image = "busybox"
args = ["httpd", "-f"]

# The steps come first in this file.
[[steps]]
name = "greet"
command = ["echo", "hi"]
expected_output_regex = "hi" # stdout

[[scenario]]
name = "check"
run = "true"

# trailing words
"#;

fn format(text: &str) -> String {
    format_test("tests/t.clnrm.toml", text).expect("TOML")
}

#[test]
fn a_messy_file_gets_the_canonical_layout() {
    assert_eq!(format(MESSY), TIDY);
}

#[test]
fn formatting_twice_changes_nothing() {
    assert_eq!(format(TIDY), TIDY);
    assert_eq!(format(&format(MESSY)), format(MESSY));
}

#[test]
fn the_formatted_file_is_the_same_test() {
    let before = common::ok(MESSY);
    let after = common::ok(&format(MESSY));
    assert_eq!(before.config, after.config);
}

#[test]
fn a_schema_directive_stays_on_the_first_line() {
    let text = "#:schema ./clnrm.schema.json\n# the step\n[[steps]]\nname = \"s\"\n\
                command = [\"true\"]\n\n[meta]\nname = \"t\"\nversion = \"1\"\n";
    assert_eq!(
        format(text),
        "#:schema ./clnrm.schema.json\n\n[meta]\nname = \"t\"\nversion = \"1\"\n\n\
         # the step\n[[steps]]\nname = \"s\"\ncommand = [\"true\"]\n"
    );
}

#[test]
fn unknown_keys_and_free_form_tables_keep_their_order() {
    let text = "[meta]\nzeta = 1\nname = \"t\"\nalpha = 2\nversion = \"1\"\n\n\
                [vars]\nz = \"1\"\na = \"2\"\n";
    assert_eq!(
        format(text),
        "[meta]\nname = \"t\"\nversion = \"1\"\nzeta = 1\nalpha = 2\n\n\
         [vars]\nz = \"1\"\na = \"2\"\n"
    );
}

#[test]
fn values_are_left_as_written() {
    let text = "[meta]\nname = 'single quoted'\nversion = \"1\"\n\n[[steps]]\nname = \"s\"\n\
                command = [\n  \"echo\", # the program\n  \"hi\",\n]\n\
                env = { B = \"2\",  A = \"1\" }\n";
    assert_eq!(format(text), text);
}

#[test]
fn text_that_is_not_toml_is_an_error_naming_file_and_line() {
    let errors = format_test("tests/bad.clnrm.toml", "[meta]\nname = \n").unwrap_err();
    assert_eq!(errors[0].file, "tests/bad.clnrm.toml");
    assert_eq!(errors[0].line_col.map(|(line, _)| line), Some(2));
}
