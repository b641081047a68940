//! `clnrm schema`: prints the JSON Schema of the test format for editors (taplo, Even Better
//! TOML: `#:schema ./clnrm.schema.json` at the top of a test). The schema itself comes from
//! the parse stage's layout types; this file only prints it.

use super::{write_stdout, CliError, Exit};

/// Prints the schema; under `--strict` it rejects unknown keys, as `--strict` does.
pub fn run(strict: bool) -> Result<Exit, CliError> {
    let schema = serde_json::to_string_pretty(&clnrm_config::test_file_schema(strict))?;
    write_stdout(&format!("{schema}\n"))?;
    Ok(Exit::Ok)
}
