//! `clnrm completions SHELL` and `clnrm man`: shell completion scripts (`clap_complete`) and
//! roff man pages (`clap_mangen`), both generated from the command line's own definition so
//! they list every subcommand and flag there is. Nothing here is written by hand.

use std::path::Path;

use clap::CommandFactory;

use super::args::{Cli, ManArgs};
use super::{write_stdout, CliError, Exit};

/// Prints the completion script of `shell` for `clnrm`.
pub fn completions(shell: clap_complete::Shell) -> Result<Exit, CliError> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "clnrm", &mut script);
    write_stdout(&String::from_utf8_lossy(&script))?;
    Ok(Exit::Ok)
}

/// Prints `clnrm(1)`, or with `--out-dir` writes it and one page per subcommand
/// (`clnrm-run.1`, `clnrm-cache-gc.1`, ...) there.
pub fn man(args: &ManArgs) -> Result<Exit, CliError> {
    // `clnrm help` is clap's; the pages document the commands themselves (as `generate_to`
    // does), so the main page links no page that is not written.
    let command = Cli::command().disable_help_subcommand(true);
    match &args.out_dir {
        Some(dir) => write_pages(command, dir),
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command).render(&mut page)?;
            write_stdout(&String::from_utf8_lossy(&page))?;
            Ok(Exit::Ok)
        }
    }
}

fn write_pages(command: clap::Command, dir: &Path) -> Result<Exit, CliError> {
    let write_error = |source| CliError::Write {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(write_error)?;
    clap_mangen::generate_to(command, dir).map_err(write_error)?;
    Ok(Exit::Ok)
}
