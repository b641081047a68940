//! `clnrm schema`: prints the JSON Schema of the test format for editors (taplo, Even Better
//! TOML: `#:schema ./clnrm.schema.json` at the top of a test). The schema itself comes from
//! the parse stage's layout types; this file only prints it.

use super::{write_stdout, CliError, Exit};

pub fn run() -> Result<Exit, CliError> {
    let schema = serde_json::to_string_pretty(&clnrm_config::test_file_schema())?;
    write_stdout(&format!("{schema}\n"))?;
    Ok(Exit::Ok)
}
