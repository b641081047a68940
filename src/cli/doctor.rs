//! `clnrm doctor`: the machine's checks (`crate::doctor`), a line each with what to do
//! about a problem, or one JSON object; exit 1 when something is broken
//! (docs/reference.md §6).

use std::path::Path;

use super::args::{DoctorArgs, Format};
use super::output::Printer;
use super::{cache_dir, open_remote, overrides, write_stdout, CliError, Exit, GlobalArgs};
use crate::discover;
use crate::doctor::{self, Check, Inputs, Report, Status};
use crate::project::Project;
use crate::report::{Palette, FAIL, PASS, SUMMARY_FAILED, SUMMARY_OK, WARN};

pub(super) fn run(
    global: &GlobalArgs,
    args: &DoctorArgs,
    cwd: &Path,
    printer: &Printer,
) -> Result<Exit, CliError> {
    let root = discover::find_root(cwd, cwd);
    let project = Project::load(&root, &overrides(global))?;
    let inputs = Inputs {
        cache_dir: cache_dir(global, &project),
        remote: open_remote(global, &project).map_err(|e| e.to_string()),
    };
    let report = doctor::examine(inputs);
    match args.format {
        Format::Json => write_stdout(&format!("{}\n", serde_json::to_string(&report)?))?,
        Format::Human => write_stdout(&human(&report, Palette::new(printer.color())))?,
    }
    Ok(match report.status {
        Status::Fail => Exit::TestsFailed,
        Status::Ok | Status::Warn => Exit::Ok,
    })
}

/// A line per check (`ok`, `warn`, `FAIL`, its name, what was found), the fix under a
/// problem, and a summary line.
fn human(report: &Report, palette: Palette) -> String {
    let width = report
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for check in &report.checks {
        out.push_str(&check_line(check, width, palette));
    }
    let count = |status| report.checks.iter().filter(|c| c.status == status).count();
    let (problems, warnings) = (count(Status::Fail), count(Status::Warn));
    let summary = match (problems, warnings) {
        (0, 0) => palette.paint("all checks passed", SUMMARY_OK),
        (0, w) => palette.paint(&format!("no problems, {w} warning(s)"), SUMMARY_OK),
        (p, w) => palette.paint(
            &format!("{p} problem(s), {w} warning(s): see the fixes above"),
            SUMMARY_FAILED,
        ),
    };
    out.push_str(&summary);
    out.push('\n');
    out
}

fn check_line(check: &Check, width: usize, palette: Palette) -> String {
    let status = match check.status {
        Status::Ok => palette.paint("ok  ", PASS),
        Status::Warn => palette.paint("warn", WARN),
        Status::Fail => palette.paint("FAIL", FAIL),
    };
    let mut line = format!("{status} {:width$}  {}\n", check.name, check.detail);
    if let Some(fix) = check.fix.as_ref().filter(|_| check.status != Status::Ok) {
        line.push_str(&format!("     {:width$}  fix: {fix}\n", ""));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_shows_its_fix_under_it_and_the_summary_counts_it() {
        let report = Report {
            status: Status::Fail,
            checks: vec![
                Check {
                    name: "engine",
                    status: Status::Ok,
                    detail: "Docker 27.0, API 1.46".into(),
                    fix: None,
                },
                Check {
                    name: "cache",
                    status: Status::Fail,
                    detail: "/ro is not writable".into(),
                    fix: Some("make it writable".into()),
                },
            ],
        };
        let text = human(&report, Palette::new(false));
        assert_eq!(
            text,
            "ok   engine  Docker 27.0, API 1.46\n\
             FAIL cache   /ro is not writable\n\
             \x20            fix: make it writable\n\
             1 problem(s), 0 warning(s): see the fixes above\n"
        );
    }
}
