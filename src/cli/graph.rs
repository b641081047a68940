//! `clnrm graph`: validates and plans the selected tests (no containers, no Docker)
//! and prints the graph `clnrm dev` chooses tests by — each test, the files its
//! render read, its services and their images, build contexts and volumes.

use std::path::Path;

use super::args::{GraphArgs, GraphFormat};
use super::output::Printer;
use super::{finish_memo, load, open_memo, thread_pool, write_stdout, CliError, Exit, GlobalArgs};
use crate::pipeline::{FsWorld, Pipeline};
use crate::report::DependencyGraph;
use crate::runner::plan_test;

pub fn run(
    global: &GlobalArgs,
    args: &GraphArgs,
    cwd: &Path,
    printer: &Printer,
) -> Result<Exit, CliError> {
    let (project, tests) = load(global, &args.paths, cwd, printer)?;
    let memo = open_memo(global, &project, printer)?;
    let pipeline = Pipeline::new(&project, &FsWorld, &memo);
    let checked = thread_pool(None)?.install(|| pipeline.check_all(&tests));
    let mut graph = DependencyGraph::default();
    let mut invalid = 0;
    for item in &checked {
        let identity = &item.test.key();
        match &item.outcome {
            Ok(valid) => {
                // The same records `dev` keeps: what the render read, and the plan.
                let reads: Vec<String> = valid
                    .record
                    .files
                    .iter()
                    .map(|dep| dep.path.clone())
                    .collect();
                let plan = match plan_test(&memo, &project, &item.test, valid) {
                    Ok(plan) => Some(plan),
                    Err(message) => {
                        printer.warn(&format!("{identity}: cannot plan: {message}"));
                        None
                    }
                };
                graph.add_test(identity, &valid.config.name, &reads, plan.as_ref());
            }
            Err(problem) => {
                invalid += 1;
                printer.warn(&format!(
                    "{identity} is invalid; its dependencies are unknown:\n{problem}"
                ));
                graph.add_invalid_test(identity);
            }
        }
    }
    finish_memo(&memo, &project, printer);
    let text = match args.format {
        GraphFormat::Dot => graph.to_dot(),
        GraphFormat::Mermaid => graph.to_mermaid(),
        GraphFormat::Json => graph.to_json() + "\n",
    };
    write_stdout(&text)?;
    Ok(if invalid == 0 {
        Exit::Ok
    } else {
        Exit::TestsFailed
    })
}
