//! Running a command in a container on a Docker engine, with its timeout
//! enforced INSIDE the container (docs/reference.md §5): the engine may be remote, rootless
//! or in a VM, where the PIDs it reports are not this host's, so clnrm never
//! signals a host process here and never reads the host's `/proc` for this.
//!
//! How: the command is started through a tiny `sh` wrapper that writes its own
//! PID (in the container's namespace) as the first line of stderr, restores
//! the environment the shell touched, runs the command with exactly the
//! standard streams it would have had, and writes the command's exit status
//! as a last stderr line of its own (a marker no output can guess) — so
//! argv, env, workdir, stdout, stderr and exit code are the command's own, and
//! the exit code comes with the output instead of from one more round trip
//! to the engine (an inspect of the exec, which can even report the exec
//! still running for a moment after its stream ended). Both lines are taken
//! off stderr before anyone sees it; the shell's own diagnostics (bash's
//! "Killed" after a signal) go nowhere.
//!
//! An exec'd process leads its own process group, and the command stays in
//! the wrapper's, so on timeout a second exec runs `kill -9 -<pid> <pid>`.
//! Where that is impossible (an image without `sh`) or does not end the
//! command, the container itself is killed through the engine API, and the
//! output says so ([`ExecOutput::killed_container`]) so the caller can replace
//! it and fail later steps on it with the reason.
//!
//! Every engine call is timed ([`ExecPhases`]), so a step's time splits into
//! the engine's and clnrm's own.
//!
//! Not here: what a step's result means (the `steps` module).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use testcontainers::bollard::container::LogOutput;
use testcontainers::bollard::exec::{CreateExecOptions, StartExecResults};
use testcontainers::bollard::query_parameters::KillContainerOptions;

use super::docker::DockerEngine;
use super::docker_answers::engine;
use crate::{ExecError, ExecOutput, ExecPhases, ExecRequest};

/// Output kept per stream and exec; the rest is dropped (and flagged).
pub(crate) const CAPTURE_LIMIT: usize = 8 * 1024 * 1024;

/// Variables a POSIX `sh` sets or changes at startup (ash and dash export
/// `PWD`, ash and bash `SHLVL`, bash `OLDPWD` after a `cd`): the wrapper puts
/// them back as the command would have had them without it.
pub(crate) const SHELL_SET_VARIABLES: [&str; 3] = ["PWD", "SHLVL", "OLDPWD"];

/// How long a killed command may take to be reported ended before the
/// container is killed instead.
const KILL_GRACE: Duration = Duration::from_secs(3);

/// Why a container is killed when a timed-out command cannot be ended inside it.
const NO_SHELL: &str = "its image has no `sh` to end the timed-out command inside the container";
const NO_PID: &str = "the timed-out command's process could not be found inside the container";
const KILL_INEFFECTIVE: &str = "the timed-out command did not end when killed inside the container";

/// What one exec produced, before interpretation.
struct Streamed {
    exec_id: String,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    truncated: bool,
    /// The wrapper's PID line, when the command was wrapped and the wrapper ran.
    pid: Option<u32>,
    /// The command's exit status, from the wrapper's last line.
    status: Option<i64>,
    phases: ExecPhases,
    /// The stream ended before the timeout.
    finished: bool,
    /// The stream ended (before the timeout or during the PID grace).
    ended: bool,
}

impl DockerEngine {
    /// [`Backend::exec`](crate::Backend::exec) on this engine, by an exec of its own.
    pub(crate) async fn exec_in_container(
        &self,
        container: &str,
        request: &ExecRequest,
    ) -> Result<ExecOutput, ExecError> {
        // What a wrapped attempt cost when the command then runs unwrapped.
        let mut wrapper_phases = ExecPhases::default();
        let wrap_with_env = match self.containers.has_shell(container) {
            Some(false) => None,
            _ => {
                let env = self.container_env(container).await?;
                match not_a_shell_name(request, &env) {
                    // A shell drops such a variable from what it passes on: the command
                    // runs as it is, with all of them (a timeout then kills its container).
                    Some(name) => {
                        tracing::debug!(
                            "`{name}` is not a shell name: the command runs without the wrapper"
                        );
                        None
                    }
                    None => Some(env),
                }
            }
        };
        if let Some(env) = wrap_with_env {
            let wrapped = wrapped_argv(request, &env, self.status_marker());
            let streamed = self.stream(container, &wrapped, request, true).await?;
            match streamed.pid {
                Some(pid) => {
                    self.containers.remember_shell(container, true);
                    let output = self.finish_wrapped(container, streamed, pid).await?;
                    if !exec_of_command_failed(request, &output) {
                        return Ok(output);
                    }
                    // `sh` could not start the command, so it never ran: the
                    // engine's own answer (its exit code and message) is the
                    // step's, as without the wrapper.
                    wrapper_phases = output.phases;
                }
                None if streamed.ended => {
                    let mut phases = streamed.phases;
                    let code = self.exit_code(&streamed.exec_id, &mut phases).await?;
                    wrapper_phases = phases;
                    if !matches!(code, Some(126 | 127)) {
                        return Err(ExecError::Engine(format!(
                            "the command wrapper in container {container} ended without starting the command (exit code {code:?})"
                        )));
                    }
                    // No `sh` in the image: run the command as it is.
                    self.containers.remember_shell(container, false);
                }
                None => {
                    // Timed out, and the wrapper said nothing even in the grace:
                    // nothing inside can be addressed.
                    let killed = self.kill_container(container, NO_PID).await?;
                    return Ok(output_of(streamed, None, Some(killed)));
                }
            }
        }
        let mut streamed = self
            .stream(container, &request.argv, request, false)
            .await?;
        streamed.phases.add(&wrapper_phases);
        if streamed.finished {
            let code = self
                .exit_code(&streamed.exec_id, &mut streamed.phases)
                .await?;
            let mut output = output_of(streamed, code, None);
            as_docker_answers_a_missing_command(request, &mut output);
            return Ok(output);
        }
        // Run as it is: either there is no `sh`, or the command was not found
        // (which should not take long enough to time out).
        let why = if self.containers.has_shell(container) == Some(false) {
            NO_SHELL
        } else {
            NO_PID
        };
        let killed = self.kill_container(container, why).await?;
        Ok(output_of(streamed, None, Some(killed)))
    }

    /// The exit code of a finished wrapped command; a timed-out one killed by
    /// its PID inside the container (or, failing that, with its container).
    async fn finish_wrapped(
        &self,
        container: &str,
        mut streamed: Streamed,
        pid: u32,
    ) -> Result<ExecOutput, ExecError> {
        if streamed.finished {
            let code = match streamed.status {
                Some(code) => Some(code),
                // The wrapper did not get to say (its shell was killed).
                None => {
                    self.exit_code(&streamed.exec_id, &mut streamed.phases)
                        .await?
                }
            };
            return Ok(output_of(streamed, code, None));
        }
        let kill = ExecRequest {
            argv: vec![
                "sh".into(),
                "-c".into(),
                // The group (the command and what it started), then the command
                // itself should it have left its group.
                "kill -9 -$1 $1 2>/dev/null; exit 0".into(),
                "sh".into(),
                pid.to_string(),
            ],
            env: BTreeMap::new(),
            workdir: None,
            timeout: KILL_GRACE,
        };
        let killed_inside = self.stream(container, &kill.argv, &kill, false).await;
        let ended = killed_inside.is_ok_and(|k| k.finished)
            && self.ended_within(&streamed.exec_id, KILL_GRACE).await;
        if ended {
            return Ok(output_of(streamed, None, None));
        }
        let killed = self.kill_container(container, KILL_INEFFECTIVE).await?;
        Ok(output_of(streamed, None, Some(killed)))
    }

    /// Starts an exec of `argv` with the request's env and workdir and
    /// collects its output until it ends or the request's timeout passes.
    /// With `wrapped`, the first line of stderr is the wrapper's PID.
    async fn stream(
        &self,
        container: &str,
        argv: &[String],
        request: &ExecRequest,
        wrapped: bool,
    ) -> Result<Streamed, ExecError> {
        let env: Vec<String> = request
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut phases = ExecPhases::default();
        let t = Instant::now();
        let created = self
            .docker()
            .create_exec(
                container,
                CreateExecOptions::<String> {
                    cmd: Some(argv.to_vec()),
                    env: (!env.is_empty()).then_some(env),
                    working_dir: request.workdir.clone(),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(engine)?;
        phases.create = t.elapsed();
        let t = Instant::now();
        let started = self
            .docker()
            .start_exec(&created.id, None)
            .await
            .map_err(engine)?;
        phases.start = t.elapsed();
        phases.calls = 2;
        let t = Instant::now();
        let StartExecResults::Attached { mut output, input } = started else {
            return Err(ExecError::Engine("exec started detached".into()));
        };
        drop(input);
        let mut streamed = Streamed {
            exec_id: created.id,
            stdout: Vec::new(),
            stderr: Vec::new(),
            truncated: false,
            pid: None,
            status: None,
            phases,
            finished: false,
            ended: false,
        };
        // The wrapper's PID line, until its newline arrives.
        let mut pid_line: Option<Vec<u8>> = wrapped.then(Vec::new);
        let deadline = tokio::time::Instant::now() + request.timeout;
        // Past the deadline, a wrapper that has not said its PID yet gets a
        // grace to say it, so the command can still be ended inside.
        let mut pid_grace: Option<tokio::time::Instant> = None;
        loop {
            let until = pid_grace.unwrap_or(deadline);
            let item = match tokio::time::timeout_at(until, output.next()).await {
                Ok(Some(item)) => item,
                Ok(None) => {
                    streamed.ended = true;
                    streamed.finished = tokio::time::Instant::now() <= deadline;
                    break;
                }
                Err(_) if pid_line.is_some() && pid_grace.is_none() => {
                    pid_grace = Some(deadline + KILL_GRACE);
                    continue;
                }
                Err(_) => break,
            };
            let (to_stdout, mut message) = match item.map_err(engine)? {
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    (true, message.to_vec())
                }
                LogOutput::StdErr { message } => (false, message.to_vec()),
                LogOutput::StdIn { .. } => continue,
            };
            if !to_stdout {
                if let Some(line) = pid_line.as_mut() {
                    match message.iter().position(|&b| b == b'\n') {
                        Some(end) => {
                            line.extend_from_slice(&message[..end]);
                            streamed.pid = parse_pid(line);
                            pid_line = None;
                            message.drain(..=end);
                        }
                        None => {
                            line.extend_from_slice(&message);
                            continue;
                        }
                    }
                }
            }
            let buf = if to_stdout {
                &mut streamed.stdout
            } else {
                &mut streamed.stderr
            };
            let room = CAPTURE_LIMIT.saturating_sub(buf.len());
            if message.len() > room {
                streamed.truncated = true;
            }
            buf.extend_from_slice(&message[..message.len().min(room)]);
            if pid_grace.is_some() && pid_line.is_none() {
                // Known now: the command is past its deadline.
                break;
            }
        }
        streamed.phases.wait = t.elapsed();
        // Whatever stands in for a PID line that never ended (no shell: the
        // engine's message) is output.
        if let Some(partial) = pid_line {
            streamed.stderr.splice(0..0, partial);
        }
        if wrapped {
            streamed.status = take_status_line(&mut streamed.stderr, self.status_marker());
        }
        Ok(streamed)
    }

    /// The exit code once the engine has recorded it (the stream can end a
    /// moment before the exec is marked finished).
    async fn exit_code(
        &self,
        exec_id: &str,
        phases: &mut ExecPhases,
    ) -> Result<Option<i64>, ExecError> {
        let t = Instant::now();
        let mut code = None;
        for attempt in 0..50u32 {
            let info = self.docker().inspect_exec(exec_id).await.map_err(engine)?;
            phases.calls += 1;
            if info.running != Some(true) {
                code = info.exit_code;
                break;
            }
            tokio::time::sleep(Duration::from_millis(2 * u64::from(attempt + 1))).await;
        }
        phases.inspect += t.elapsed();
        Ok(code)
    }

    /// Whether the engine reports the exec ended within `grace`.
    async fn ended_within(&self, exec_id: &str, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            match self.docker().inspect_exec(exec_id).await {
                Ok(info) if info.running != Some(true) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills a container through the engine API (never a host signal), so it
    /// can be replaced; returns why, for the steps that would have used it.
    async fn kill_container(&self, container: &str, why: &str) -> Result<String, ExecError> {
        tracing::warn!(
            container,
            why,
            "killing the container of a timed-out command"
        );
        let options = KillContainerOptions {
            signal: "KILL".into(),
        };
        match self.docker().kill_container(container, Some(options)).await {
            Ok(()) => {}
            // Already stopped: nothing runs in it any more.
            Err(testcontainers::bollard::errors::Error::DockerResponseServerError {
                status_code: 409,
                ..
            }) => {}
            Err(e) => return Err(engine(e)),
        }
        Ok(format!("its container was killed because {why}"))
    }
}

/// The output of a process started with its standard streams attached.
pub(crate) type AttachedOutput = std::pin::Pin<
    Box<
        dyn futures_util::Stream<Item = Result<LogOutput, testcontainers::bollard::errors::Error>>
            + Send,
    >,
>;
/// The standard input of a process started with its standard streams attached.
pub(crate) type AttachedInput = std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

impl DockerEngine {
    /// Starts `sh` in `container` by an exec with stdin, stdout and stderr
    /// attached, for a caller that talks to it over the streams. `Err`: why not.
    pub(crate) async fn attach_shell(
        &self,
        container: &str,
    ) -> Result<(AttachedOutput, AttachedInput), String> {
        let created = self
            .docker()
            .create_exec(
                container,
                CreateExecOptions::<String> {
                    cmd: Some(vec!["sh".into()]),
                    attach_stdin: Some(true),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        let started = self
            .docker()
            .start_exec(&created.id, None)
            .await
            .map_err(|e| e.to_string())?;
        let StartExecResults::Attached { output, input } = started else {
            return Err("the shell's exec started detached".into());
        };
        Ok((output, input))
    }

    /// Attaches to the stdin, stdout and stderr of `container`'s main process (a
    /// step runner's shell, [`super::docker::IdleMain::StepRunner`]). `Err`: why not.
    pub(crate) async fn attach_main(
        &self,
        container: &str,
    ) -> Result<(AttachedOutput, AttachedInput), String> {
        let options = testcontainers::bollard::query_parameters::AttachContainerOptions {
            stdin: true,
            stdout: true,
            stderr: true,
            stream: true,
            logs: false,
            // The engine detaches at this key sequence in stdin; a NUL cannot be in a
            // step's text (no argument or variable can hold one).
            detach_keys: Some("ctrl-@".into()),
        };
        let attached = self
            .docker()
            .attach_container(container, Some(options))
            .await
            .map_err(|e| e.to_string())?;
        Ok((attached.output, attached.input))
    }
}

/// `sh -c <script> sh <argv...>`: report the PID, restore what the shell
/// changed in the environment, run the command with the wrapper's own stderr
/// kept aside on fd 3 (the command sees only 0, 1 and 2; the shell's own
/// messages after it go nowhere), then report its status on fd 3. The
/// command runs in a subshell so that ash's "Killed" after a signal is
/// the wrapper's own message, sent nowhere, not part of the command's stderr.
fn wrapped_argv(request: &ExecRequest, container_env: &[String], marker: &str) -> Vec<String> {
    let mut script = String::from("echo $$ >&2; ");
    for name in SHELL_SET_VARIABLES {
        match original_value(name, request, container_env) {
            Some(value) => {
                script.push_str(&format!("{name}={}; export {name}; ", quote(value)));
            }
            None => script.push_str(&format!("unset {name}; ")),
        }
    }
    script.push_str(&format!(
        "exec 3>&2 2>/dev/null; ( \"$@\" 2>&3 3>&- ); printf '\\n%s %s\\n' {marker} $? >&3"
    ));
    let mut argv = vec!["sh".into(), "-c".into(), script, "sh".into()];
    argv.extend(request.argv.iter().cloned());
    argv
}

/// Whether `name` can be a shell variable's (`[A-Za-z_][A-Za-z0-9_]*`): a shell drops the
/// others (`my.setting`) from the environment it passes on.
pub(crate) fn is_shell_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The first variable of the command's environment (the step's, the container's) that is
/// not a shell name.
fn not_a_shell_name<'a>(request: &'a ExecRequest, container_env: &'a [String]) -> Option<&'a str> {
    request
        .env
        .keys()
        .map(String::as_str)
        .find(|name| !is_shell_name(name))
        .or_else(|| container_variable_not_a_shell_name(container_env))
}

/// The first of a container's variables (`KEY=value`) whose name is not a shell name.
pub(crate) fn container_variable_not_a_shell_name(container_env: &[String]) -> Option<&str> {
    container_env
        .iter()
        .map(|kv| kv.split('=').next().unwrap_or(""))
        .find(|name| !is_shell_name(name))
}

/// A variable's value in the command's environment without the wrapper: the
/// step's env over the container's.
pub(crate) fn original_value<'a>(
    name: &str,
    request: &'a ExecRequest,
    container_env: &'a [String],
) -> Option<&'a str> {
    if let Some(v) = request.env.get(name) {
        return Some(v);
    }
    container_env
        .iter()
        .rev()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// A single-quoted shell word.
pub(crate) fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn parse_pid(line: &[u8]) -> Option<u32> {
    std::str::from_utf8(line).ok()?.trim().parse().ok()
}

/// Whether the wrapper's shell could not start the command (not found, not
/// executable): it says so in one line of its own (`sh: ...`) naming the
/// command, and the status is 126/127.
fn exec_of_command_failed(request: &ExecRequest, output: &ExecOutput) -> bool {
    exec_failed_with("sh:", request, output)
}

/// Whether `output` is only the one line in which the program that was to
/// exec the command (starting with `says`) reports it could not.
pub(crate) fn exec_failed_with(says: &str, request: &ExecRequest, output: &ExecOutput) -> bool {
    let Some(command) = request.argv.first() else {
        return false;
    };
    matches!(output.exit_code, Some(126 | 127))
        && output.stdout.is_empty()
        && output.stderr.trim_end().lines().count() == 1
        && output.stderr.starts_with(says)
        && output.stderr.contains(command.as_str())
}

/// A stream's output as kept: at most [`CAPTURE_LIMIT`] bytes, and whether
/// some were dropped.
pub(crate) fn capture(bytes: &[u8]) -> (String, bool) {
    let kept = &bytes[..bytes.len().min(CAPTURE_LIMIT)];
    (
        String::from_utf8_lossy(kept).into_owned(),
        kept.len() < bytes.len(),
    )
}

/// Takes the wrapper's status line (`<marker> <status>`, its own line, the
/// last the wrapper wrote) out of stderr and returns the status. A background
/// process of the command may still write after it, so it is looked for from
/// the end rather than assumed last.
fn take_status_line(stderr: &mut Vec<u8>, marker: &str) -> Option<i64> {
    let marker = marker.as_bytes();
    let start = stderr
        .windows(marker.len())
        .rposition(|w| w == marker)
        .filter(|&at| at > 0 && stderr[at - 1] == b'\n')?;
    let rest = &stderr[start + marker.len()..];
    let end = rest.iter().position(|&b| b == b'\n')?;
    let status = std::str::from_utf8(&rest[..end])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // With the newline the wrapper put before it, so output that did not
    // end with one is left as it was.
    stderr.drain(start - 1..start + marker.len() + end + 1);
    Some(status)
}

/// Podman's runtime could not find the command: `Error: runc: exec failed: … executable
/// file not found in $PATH: OCI runtime attempted to invoke a command that was not found`,
/// exit code 127. Docker answers the same exec with 126 (any exec its runtime cannot
/// start), and a step's exit code must not depend on the engine, so Podman's 127 becomes
/// Docker's 126. A command that itself exits 127 says something else, and keeps its code.
/// Podman may add a line of its own about the attach ending (`Error: read unixpacket …`),
/// which Docker has no counterpart of; the runtime's message goes where Docker puts it.
fn as_docker_answers_a_missing_command(request: &ExecRequest, output: &mut ExecOutput) {
    let Some(command) = request.argv.first() else {
        return;
    };
    let first_line = output.stderr.lines().next().unwrap_or_default();
    if output.exit_code == Some(127)
        && output.stdout.is_empty()
        && output
            .stderr
            .lines()
            .all(|line| line.starts_with("Error: "))
        && first_line.contains(&format!("\"{command}\""))
        && first_line.contains("OCI runtime attempted to invoke a command that was not found")
    {
        // Docker writes the runtime's message to the exec's stdout, Podman to its stderr.
        output.stdout = format!("{first_line}\n");
        output.stderr.clear();
        output.exit_code = Some(126);
    }
}

fn output_of(streamed: Streamed, exit_code: Option<i64>, killed: Option<String>) -> ExecOutput {
    let timed_out = !streamed.finished;
    ExecOutput {
        exit_code: if timed_out { None } else { exit_code },
        stdout: String::from_utf8_lossy(&streamed.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&streamed.stderr).into_owned(),
        timed_out,
        truncated: streamed.truncated,
        killed_container: killed,
        phases: streamed.phases,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podmans_127_for_a_command_it_cannot_find_is_dockers_126() {
        let req = request(&["no-such-command"], &[]);
        let answer = |code: i64, stderr: &str| {
            let mut output = ExecOutput {
                exit_code: Some(code),
                stderr: stderr.into(),
                ..ExecOutput::default()
            };
            as_docker_answers_a_missing_command(&req, &mut output);
            output.exit_code
        };
        let mut podman_answer = ExecOutput {
            exit_code: Some(127),
            stderr: "Error: runc: exec failed: exec: \"no-such-command\": executable file not \
                     found in $PATH: OCI runtime attempted to invoke a command that was not found\n\
                     Error: read unixpacket @->/proc/self/fd/14/attach: read: connection reset by peer"
                .into(),
            ..ExecOutput::default()
        };
        as_docker_answers_a_missing_command(&req, &mut podman_answer);
        assert_eq!(
            (podman_answer.exit_code, podman_answer.stderr.as_str()),
            (Some(126), "")
        );
        assert!(
            podman_answer.stdout.starts_with("Error: runc: exec failed")
                && podman_answer.stdout.ends_with("was not found\n"),
            "{:?}",
            podman_answer.stdout
        );
        let podman = "Error: runc: exec failed: unable to start container process: exec: \
                      \"no-such-command\": executable file not found in $PATH: \
                      OCI runtime attempted to invoke a command that was not found\n";
        assert_eq!(answer(127, podman), Some(126));
        let with_attach_line = format!(
            "{podman}Error: read unixpacket @->/proc/self/fd/14/attach: read: connection reset by peer"
        );
        assert_eq!(answer(127, &with_attach_line), Some(126));
        let docker = "OCI runtime exec failed: exec failed: unable to start container \
                      process: exec: \"no-such-command\": executable file not found in $PATH: unknown\n";
        assert_eq!(answer(126, docker), Some(126));
        // The command's own 127, whatever it prints, is its own.
        assert_eq!(
            answer(127, "Error: no-such-command: my own message\n"),
            Some(127)
        );
        assert_eq!(answer(127, ""), Some(127));
    }

    fn request(argv: &[&str], env: &[(&str, &str)]) -> ExecRequest {
        ExecRequest {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            workdir: None,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_wrapper_passes_the_command_as_arguments_and_restores_shell_variables() {
        let req = request(&["echo", "a && b", "'c'"], &[("SHLVL", "it's 5")]);
        let argv = wrapped_argv(&req, &["PWD=/from/image".into()], "clnrm-status-x");
        assert_eq!(argv[..2], ["sh", "-c"]);
        assert_eq!(argv[3..], ["sh", "echo", "a && b", "'c'"]);
        let script = &argv[2];
        assert!(script.starts_with("echo $$ >&2; "), "{script}");
        assert!(
            script.contains("PWD='/from/image'; export PWD;"),
            "{script}"
        );
        assert!(
            script.contains(r"SHLVL='it'\''s 5'; export SHLVL;"),
            "{script}"
        );
        assert!(script.contains("unset OLDPWD;"), "{script}");
        assert!(
            script.ends_with(
                "exec 3>&2 2>/dev/null; ( \"$@\" 2>&3 3>&- ); printf '\\n%s %s\\n' clnrm-status-x $? >&3"
            ),
            "{script}"
        );
    }

    #[test]
    fn the_status_line_is_taken_off_stderr_wherever_later_output_put_it() {
        let marker = "clnrm-status-x";
        let mut alone = b"\nclnrm-status-x 0\n".to_vec();
        assert_eq!(take_status_line(&mut alone, marker), Some(0));
        assert!(alone.is_empty());
        let mut no_newline = b"err\nclnrm-status-x 3\n".to_vec();
        assert_eq!(take_status_line(&mut no_newline, marker), Some(3));
        assert_eq!(no_newline, b"err");
        let mut after_output = b"err\n\nclnrm-status-x 42\nlate background line\n".to_vec();
        assert_eq!(take_status_line(&mut after_output, marker), Some(42));
        assert_eq!(after_output, b"err\nlate background line\n");
        // Not on a line of its own after the wrapper's newline, or cut off: not the wrapper's.
        let mut inside = b"\nsay clnrm-status-x 1\n".to_vec();
        assert_eq!(take_status_line(&mut inside, marker), None);
        let mut first = b"clnrm-status-x 1\n".to_vec();
        assert_eq!(take_status_line(&mut first, marker), None);
        let mut cut = b"\nclnrm-status-x 1".to_vec();
        assert_eq!(take_status_line(&mut cut, marker), None);
        assert_eq!(cut, b"\nclnrm-status-x 1");
        let mut cut = b"clnrm-status-x 1".to_vec();
        assert_eq!(take_status_line(&mut cut, marker), None);
        assert_eq!(cut, b"clnrm-status-x 1");
    }

    #[test]
    fn only_the_shells_one_line_exec_failure_counts_as_a_command_that_never_started() {
        let req = request(&["nonexist"], &[]);
        let out = |code, stderr: &str| ExecOutput {
            exit_code: Some(code),
            stderr: stderr.into(),
            ..Default::default()
        };
        assert!(exec_of_command_failed(
            &req,
            &out(127, "sh: nonexist: not found\n")
        ));
        assert!(exec_of_command_failed(
            &req,
            &out(127, "sh: line 1: nonexist: command not found\n")
        ));
        assert!(!exec_of_command_failed(
            &req,
            &out(1, "sh: nonexist: not found\n")
        ));
        assert!(!exec_of_command_failed(
            &req,
            &out(127, "nonexist: my own message\n")
        ));
        assert!(!exec_of_command_failed(&req, &out(127, "something else\n")));
        assert_eq!(parse_pid(b"70"), Some(70));
        assert_eq!(parse_pid(b"OCI runtime exec failed"), None);
    }
}
