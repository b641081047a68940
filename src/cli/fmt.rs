//! `clnrm fmt [PATHS] [--check]`: rewrites `*.clnrm.toml` files in canonical layout (the
//! parse stage's `format_test`), or with `--check` only lists the files that would change.
//! Templates are left alone with a note: their text is not TOML until rendered. It does not
//! validate: a file in the wrong shape is laid out all the same.

use std::path::{Path, PathBuf};

use super::args::FmtArgs;
use super::output::Printer;
use super::{CliError, Exit};
use crate::discover;

/// What became of the files, for the summary line.
#[derive(Default)]
struct Tally {
    changed: usize,
    unchanged: usize,
    templates: usize,
    unreadable: usize,
}

pub fn run(args: &FmtArgs, cwd: &Path, printer: &Printer) -> Result<Exit, CliError> {
    let paths: Vec<PathBuf> = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let root = discover::find_root(&paths[0], cwd);
    let tests = discover::discover(&root, &paths, cwd)?;
    let mut tally = Tally::default();
    for test in &tests {
        if test.is_template {
            tally.templates += 1;
            printer.line(&format!(
                "skipped   {}: a template is not formatted (only plain *.clnrm.toml files are)",
                test.identity
            ));
            continue;
        }
        let Ok(text) = String::from_utf8(std::fs::read(&test.path)?) else {
            tally.unreadable += 1;
            printer.error(&format!("{}: not UTF-8", test.identity));
            continue;
        };
        let formatted = match clnrm_config::format_test(&test.identity, &text) {
            Ok(formatted) => formatted,
            Err(diagnostics) => {
                tally.unreadable += 1;
                for diagnostic in &diagnostics {
                    printer.diagnostic(diagnostic);
                }
                continue;
            }
        };
        if formatted == text {
            tally.unchanged += 1;
            continue;
        }
        tally.changed += 1;
        if args.check {
            printer.line(&format!("would reformat {}", test.identity));
        } else {
            std::fs::write(&test.path, &formatted).map_err(|source| CliError::Write {
                path: test.path.clone(),
                source,
            })?;
            printer.line(&format!("formatted {}", test.identity));
        }
    }
    let changed = if args.check {
        "would be reformatted"
    } else {
        "formatted"
    };
    printer.summary(&format!(
        "{} {changed}, {} unchanged, {} templates skipped, {} not TOML",
        tally.changed, tally.unchanged, tally.templates, tally.unreadable
    ));
    let failed = tally.unreadable > 0 || (args.check && tally.changed > 0);
    Ok(if failed { Exit::TestsFailed } else { Exit::Ok })
}
