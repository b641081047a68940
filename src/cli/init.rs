//! `clnrm init`: a project that passes on its first `clnrm run`. The files are text
//! with comments for the reader; the one value from the command line, the image, goes
//! in as a TOML string the `toml` crate writes, so any name stays one valid value.

use std::path::Path;

use super::output::Printer;
use super::{CliError, Exit};

/// `text` as a TOML basic string, quotes included, escaped where it must be.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

pub fn project_file(image: &str) -> String {
    let image = toml_string(image);
    format!(
        r#"# clnrm project file: every section is optional.

[vars]
image = {image}

[defaults]
image = {image}
step_timeout = "60s"

[cache]
max_size = "2GiB"
"#
    )
}

pub fn hello_test(image: &str) -> String {
    let image = toml_string(image);
    format!(
        r#"[meta]
name = "hello"
version = "1.0"
description = "A first test: one container, two steps that share state."

[service.box]
image = {image}

[[steps]]
name = "write"
service = "box"
command = ["sh", "-c", "mkdir -p /tmp && echo hello > /tmp/greeting"]

[[steps]]
name = "read"
service = "box"
command = ["cat", "/tmp/greeting"]
expected_output_regex = "^hello"
"#
    )
}

pub fn run(cwd: &Path, image: &str, printer: &Printer) -> Result<Exit, CliError> {
    let files = [
        (cwd.join("cleanroom.toml"), project_file(image)),
        (cwd.join("tests/hello.clnrm.toml"), hello_test(image)),
    ];
    if let Some((existing, _)) = files.iter().find(|(path, _)| path.exists()) {
        return Err(CliError::ProjectExists {
            path: existing.clone(),
        });
    }
    let tests_dir = cwd.join("tests");
    std::fs::create_dir_all(&tests_dir).map_err(|source| CliError::Write {
        path: tests_dir,
        source,
    })?;
    for (path, text) in &files {
        std::fs::write(path, text).map_err(|source| CliError::Write {
            path: path.clone(),
            source,
        })?;
        printer.line(&format!(
            "created {}",
            path.strip_prefix(cwd).unwrap_or(path).display()
        ));
    }
    printer.line("next: clnrm validate && clnrm run");
    Ok(Exit::Ok)
}
