//! `clnrm completions SHELL` and `clnrm man`, generated as a user would, list every subcommand
//! and every flag of the command line (read from its own definition, so a new flag cannot be
//! missed).

mod common;

use clap::CommandFactory;
use clnrm::cli::Cli;
use common::{clnrm_command, Run};

/// Every command, as the words that name it (`[]` for `clnrm`, `["cache", "gc"]`), with its
/// long flags (the global ones included) and its subcommands' names.
struct CommandInfo {
    path: Vec<String>,
    long_flags: Vec<String>,
    subcommands: Vec<String>,
}

fn all_commands() -> Vec<CommandInfo> {
    let mut root = Cli::command();
    root.build();
    let mut out = Vec::new();
    collect(&root, Vec::new(), &mut out);
    out
}

fn collect(command: &clap::Command, path: Vec<String>, out: &mut Vec<CommandInfo>) {
    let long_flags = command
        .get_arguments()
        .filter_map(|arg| arg.get_long().map(str::to_string))
        .collect();
    let subcommands = command
        .get_subcommands()
        .filter(|sub| sub.get_name() != "help")
        .map(|sub| sub.get_name().to_string())
        .collect();
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let mut sub_path = path.clone();
        sub_path.push(sub.get_name().to_string());
        collect(sub, sub_path, out);
    }
    out.push(CommandInfo {
        path,
        long_flags,
        subcommands,
    });
}

#[test]
fn every_shell_completes_every_subcommand_and_flag() {
    let commands = all_commands();
    assert!(commands.len() >= 12, "commands: {}", commands.len());
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let run = Run(clnrm_command()
            .args(["completions", shell])
            .output()
            .unwrap());
        run.expect_code(0);
        let script = run.stdout();
        for command in &commands {
            for sub in &command.subcommands {
                let offered = subcommand_completion(shell, &command.path, sub);
                assert!(
                    script.contains(&offered),
                    "{shell}: no {offered:?} for clnrm {}",
                    command.path.join(" ")
                );
            }
            for flag in &command.long_flags {
                // fish names a long flag `-l NAME`; the others spell it out.
                let spelled = match shell {
                    "fish" => format!("-l {flag}"),
                    _ => format!("--{flag}"),
                };
                assert!(
                    script.contains(&spelled),
                    "{shell}: no {spelled} for clnrm {}",
                    command.path.join(" ")
                );
            }
        }
    }
}

/// How `shell`'s script offers subcommand `sub` of `clnrm PATH`.
fn subcommand_completion(shell: &str, path: &[String], sub: &str) -> String {
    match shell {
        "bash" => {
            let words: Vec<String> = path.iter().map(|w| format!("__subcmd__{w}")).collect();
            format!("clnrm{},{sub})", words.concat())
        }
        "zsh" => format!("'{sub}:"),
        "fish" => format!("-a \"{sub}\""),
        _ => {
            let mut words = vec!["clnrm"];
            words.extend(path.iter().map(String::as_str));
            words.push(sub);
            format!("'{}'", words.join(";"))
        }
    }
}

#[test]
fn the_man_pages_document_every_subcommand_and_flag() {
    let dir = tempfile::tempdir().unwrap();
    Run(clnrm_command()
        .arg("man")
        .arg("--out-dir")
        .arg(dir.path())
        .output()
        .unwrap())
    .expect_code(0);
    for command in all_commands() {
        let mut words = vec!["clnrm".to_string()];
        words.extend(command.path.iter().cloned());
        let file = dir.path().join(format!("{}.1", words.join("-")));
        let page =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for flag in &command.long_flags {
            // roff escapes every `-`.
            let spelled = format!("--{flag}").replace('-', "\\-");
            assert!(page.contains(&spelled), "{}: no --{flag}", file.display());
        }
        for sub in &command.subcommands {
            assert!(
                page.contains(&format!("{}\\-{sub}(1)", words.join("\\-"))),
                "{}: no subcommand {sub}",
                file.display()
            );
        }
    }

    // `clnrm man` alone prints the main page.
    let run = Run(clnrm_command().arg("man").output().unwrap());
    run.expect_code(0);
    let main_page = std::fs::read_to_string(dir.path().join("clnrm.1")).unwrap();
    assert_eq!(run.stdout(), main_page);
    assert!(main_page.starts_with(".ie") || main_page.contains(".TH clnrm 1"));
}
