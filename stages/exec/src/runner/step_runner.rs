//! The persistent step runner of a warm (pooled) container: one `sh` started
//! once by an exec with its stdin attached, which then starts each step as a
//! fresh process, so a step costs a few forks instead of an Engine API exec
//! round trip (docs/reference.md §7; timeouts as in §5).
//!
//! Each step is one block of shell text written to the runner's stdin. Every
//! argument, variable and directory in it is single-quoted, so the step's
//! argv reaches `exec` exactly as given. The step runs in a foreground
//! subshell (a background one would start with SIGINT and SIGQUIT ignored)
//! that writes its PID to a file, moves to the step's directory, restores
//! what the shell changed in the environment (as the exec path's wrapper
//! does), exports the step's env and execs `setsid -- <argv>`: the step leads
//! a process group of its own, away from the runner's. Its stdout and stderr
//! go through two FIFOs into two files (at most the exec path's capture limit
//! each, the rest read and dropped), and the step is over when both FIFOs
//! are closed — by the step and by any child still holding them, as an exec's
//! stream is. A watchdog in the container kills the step's group at the
//! timeout (`kill -9 -<pid> <pid>`, as the exec path does); the runner
//! survives. The watchdog reaps its own `sleep` before it ends: an orphan
//! goes to the container's PID 1, and PostgreSQL's postmaster (PID 1 of its
//! image) takes any unknown child that dies by a signal for a crashed
//! backend and ends every connection. Then one frame goes back on the runner's stdout:
//! `<marker> <status> <timed out 0|1> <stdout bytes> <stderr bytes>\n`
//! followed by both files, byte for byte.
//!
//! What the runner cannot do as the exec path would, exec does: a working
//! directory that is not there (the engine's own error), a command that
//! cannot be executed (same), an env name that is not a shell name. A runner
//! that fails (died, garbled frame, no answer) is dropped and the container's
//! later steps go through exec; a step abandoned mid-way (its run was
//! cancelled) leaves its runner out of step, so the next step starts a new
//! one.

use std::time::Duration;

use futures_util::StreamExt;
use testcontainers::bollard::container::LogOutput;
use tokio::io::AsyncWriteExt;

use crate::engine::docker::DockerEngine;
use crate::engine::docker_exec::{
    capture, container_variable_not_a_shell_name, exec_failed_with, is_shell_name, original_value,
    quote, AttachedInput, AttachedOutput, CAPTURE_LIMIT, SHELL_SET_VARIABLES,
};
use crate::{ExecOutput, ExecPhases, ExecRequest};

/// How long the runner may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long past a step's timeout its frame may take (the kill inside, the
/// output files sent) before the runner is given up.
const FRAME_GRACE: Duration = Duration::from_secs(5);

/// A container's runner, as far as this backend knows it.
#[derive(Default)]
pub(crate) enum RunnerState {
    /// Not tried yet.
    #[default]
    Untried,
    /// Steps go through exec; why was logged.
    Off,
    Live(Box<Runner>),
}

pub(crate) struct Runner {
    output: AttachedOutput,
    input: AttachedInput,
    /// How the step text calls `setsid`.
    setsid: String,
    /// Stdout bytes read past the last frame.
    pending: Vec<u8>,
    /// A step was sent and its frame not read to the end (its caller was
    /// cancelled): the next frame on the stream is not the next step's.
    pub(crate) in_flight: bool,
}

/// Why a runner failed, and whether the step had been sent to it (then it
/// may have run, and must not run again by exec).
pub(crate) struct Failed {
    pub(crate) why: String,
    pub(crate) sent: bool,
}

impl From<String> for Failed {
    fn from(why: String) -> Failed {
        Failed { why, sent: true }
    }
}

/// Whether the runner can run this step exactly as exec would.
pub(crate) fn fits(request: &ExecRequest) -> bool {
    !request.argv.is_empty() && request.env.keys().all(|k| is_shell_name(k))
}

/// What a step sent to the runner came back as.
pub(crate) enum Ran {
    Output(ExecOutput),
    /// It did not start (no such directory, command not executable): exec
    /// gives the engine's own answer.
    UseExec(&'static str),
}

impl Runner {
    /// Starts `sh` in the container and checks it can host the runner: the
    /// tools the step text uses, fractional `sleep`, a directory for the FIFOs.
    /// `Err`: why not.
    pub(crate) async fn start(
        engine: &DockerEngine,
        container: &str,
        container_env: &[String],
        marker: &str,
    ) -> Result<Runner, String> {
        if let Some(bad) = container_variable_not_a_shell_name(container_env) {
            return Err(format!(
                "the container's variable `{bad}` is not a shell name"
            ));
        }
        let (output, input) = engine.attach_shell(container).await?;
        let mut runner = Runner {
            output,
            input,
            pending: Vec::new(),
            in_flight: false,
            setsid: String::new(),
        };
        let probe = format!(
            "for __clnrm_t in mktemp mkfifo setsid sleep cat head wc; do \
               command -v \"$__clnrm_t\" >/dev/null 2>&1 || {{ echo \"{marker} unfit no $__clnrm_t\"; exit 0; }}; \
             done; \
             sleep 0.001 2>/dev/null || {{ echo \"{marker} unfit sleep takes no fractions\"; exit 0; }}; \
             [ -r /proc/self/stat ] || {{ echo \"{marker} unfit no /proc/self/stat\"; exit 0; }}; \
             __clnrm_d=$(mktemp -d 2>/dev/null) && mkfifo \"$__clnrm_d/po\" \"$__clnrm_d/pe\" \
               || {{ echo \"{marker} unfit no room for its FIFOs\"; exit 0; }}; \
             trap 'rm -rf \"$__clnrm_d\"' EXIT; \
             echo \"{marker} ready $(command -v setsid)\"\n"
        );
        runner.send(&probe).await?;
        let line = runner.header(marker, START_TIMEOUT).await?;
        match line.strip_prefix("unfit ") {
            Some(why) => Err(format!("the image cannot host it: {why}")),
            // Where `setsid` is, so a step's own PATH cannot hide it (a
            // bare name: the shell's own applet, found without PATH).
            None => match line.strip_prefix("ready ") {
                Some(setsid) if !setsid.is_empty() => {
                    runner.setsid = setsid.to_string();
                    Ok(runner)
                }
                _ => Err(format!("unexpected answer `{line}`")),
            },
        }
    }

    /// Runs one step. `Err`: the runner failed (the step's fate unknown, if
    /// it was sent at all).
    pub(crate) async fn run(
        &mut self,
        request: &ExecRequest,
        container_env: &[String],
        marker: &str,
    ) -> Result<Ran, Failed> {
        let started = tokio::time::Instant::now();
        self.in_flight = true;
        self.send(&step_text(request, container_env, &self.setsid, marker))
            .await
            .map_err(|why| Failed { why, sent: false })?;
        let header = self.header(marker, request.timeout + FRAME_GRACE).await?;
        if header == "nodir" {
            self.in_flight = false;
            return Ok(Ran::UseExec("its working directory is not a directory"));
        }
        let fields: Vec<i64> = header
            .split(' ')
            .map(|f| f.parse().map_err(|_| format!("garbled frame `{header}`")))
            .collect::<Result<_, String>>()?;
        let [status, timed_out, out_len, err_len] = fields[..] else {
            return Err(format!("garbled frame `{header}`").into());
        };
        let lengths = [out_len, err_len].map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        if lengths.iter().any(|&n| n > CAPTURE_LIMIT + 1) {
            return Err(format!("garbled frame `{header}`").into());
        }
        let deadline = started + request.timeout + FRAME_GRACE;
        let body = self
            .bytes(lengths[0].saturating_add(lengths[1]), deadline)
            .await?;
        self.in_flight = false;
        let (stdout, stderr) = body.split_at(lengths[0]);
        let (stdout, out_cut) = capture(stdout);
        let (stderr, err_cut) = capture(stderr);
        let timed_out = timed_out == 1;
        let output = ExecOutput {
            exit_code: (!timed_out).then_some(status),
            stdout,
            stderr,
            timed_out,
            truncated: out_cut || err_cut,
            killed_container: None,
            phases: ExecPhases {
                wait: started.elapsed(),
                ..ExecPhases::default()
            },
        };
        if exec_failed_with("setsid:", request, &output) {
            return Ok(Ran::UseExec("its command cannot be executed"));
        }
        Ok(Ran::Output(output))
    }

    async fn send(&mut self, text: &str) -> Result<(), String> {
        self.input
            .write_all(text.as_bytes())
            .await
            .map_err(|e| format!("writing to it: {e}"))?;
        self.input
            .flush()
            .await
            .map_err(|e| format!("writing to it: {e}"))
    }

    /// The next frame header after `marker `, as text.
    async fn header(&mut self, marker: &str, wait: Duration) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line[..end]).into_owned();
                return match line.strip_prefix(marker).and_then(|l| l.strip_prefix(' ')) {
                    Some(rest) => Ok(rest.to_string()),
                    None => Err(format!("garbled frame `{line}`")),
                };
            }
            self.more(deadline).await?;
        }
    }

    /// Exactly `len` bytes of the frame's body.
    async fn bytes(
        &mut self,
        len: usize,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<u8>, String> {
        while self.pending.len() < len {
            self.more(deadline).await?;
        }
        let rest = self.pending.split_off(len);
        Ok(std::mem::replace(&mut self.pending, rest))
    }

    /// Reads what the runner wrote next; its own stderr is only logged.
    async fn more(&mut self, deadline: tokio::time::Instant) -> Result<(), String> {
        loop {
            let item = tokio::time::timeout_at(deadline, self.output.next())
                .await
                .map_err(|_| "it did not answer in time".to_string())?
                .ok_or("it ended")?
                .map_err(|e| e.to_string())?;
            match item {
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    self.pending.extend_from_slice(&message);
                    return Ok(());
                }
                LogOutput::StdErr { message } => {
                    tracing::info!(
                        "step runner said on stderr: {}",
                        String::from_utf8_lossy(&message).trim_end()
                    );
                }
                LogOutput::StdIn { .. } => {}
            }
        }
    }
}

/// The shell text that runs one step and sends its frame.
fn step_text(
    request: &ExecRequest,
    container_env: &[String],
    setsid: &str,
    marker: &str,
) -> String {
    let mut setup = String::new();
    if let Some(dir) = &request.workdir {
        setup.push_str(&format!("cd -- {} || exit 126; ", quote(dir)));
    }
    for name in SHELL_SET_VARIABLES {
        match original_value(name, request, container_env) {
            Some(value) => setup.push_str(&format!("{name}={}; export {name}; ", quote(value))),
            None => setup.push_str(&format!("unset {name}; ")),
        }
    }
    for (name, value) in &request.env {
        setup.push_str(&format!("export {name}={}; ", quote(value)));
    }
    let argv: Vec<String> = request.argv.iter().map(|a| quote(a)).collect();
    let dir_check = match &request.workdir {
        Some(dir) => format!("(cd -- {}) 2>/dev/null", quote(dir)),
        None => "true".into(),
    };
    let ms = request.timeout.as_millis();
    format!(
        "if {dir_check}; then \
           rm -f \"$__clnrm_d/t\" \"$__clnrm_d/p\"; \
           ( __clnrm_z=; trap 'kill $__clnrm_z 2>/dev/null; wait $__clnrm_z; exit 0' TERM; \
             sleep {secs}.{millis:03} & __clnrm_z=$!; wait $__clnrm_z && {{ \
               read -r __clnrm_p < \"$__clnrm_d/p\"; : > \"$__clnrm_d/t\"; kill -9 -\"$__clnrm_p\" \"$__clnrm_p\"; }} \
           ) >/dev/null 2>&1 </dev/null & __clnrm_w=$!; \
           {{ head -c {keep} > \"$__clnrm_d/o\"; cat > /dev/null; }} < \"$__clnrm_d/po\" & __clnrm_a=$!; \
           {{ head -c {keep} > \"$__clnrm_d/e\"; cat > /dev/null; }} < \"$__clnrm_d/pe\" & __clnrm_b=$!; \
           ( read -r __clnrm_p __clnrm_r < /proc/self/stat; echo \"$__clnrm_p\" > \"$__clnrm_d/p\"; \
             {setup}exec {setsid} -- {argv} ) > \"$__clnrm_d/po\" 2> \"$__clnrm_d/pe\" < /dev/null; \
           __clnrm_s=$?; wait $__clnrm_a $__clnrm_b; \
           kill $__clnrm_w 2>/dev/null; wait $__clnrm_w; \
           if [ -e \"$__clnrm_d/t\" ]; then __clnrm_t=1; else __clnrm_t=0; fi; \
           echo \"{marker} $__clnrm_s $__clnrm_t $(wc -c < \"$__clnrm_d/o\") $(wc -c < \"$__clnrm_d/e\")\"; \
           cat \"$__clnrm_d/o\" \"$__clnrm_d/e\"; : > \"$__clnrm_d/o\"; : > \"$__clnrm_d/e\"; \
         else echo \"{marker} nodir\"; fi\n",
        // One byte past what is kept says the output was cut; the rest is
        // read and dropped, so the step writes on as it would by exec.
        keep = CAPTURE_LIMIT + 1,
        secs = ms / 1000,
        millis = ms % 1000,
        argv = argv.join(" "),
        setsid = quote(setsid),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn only_shell_names_can_be_exported_by_the_runner() {
        let mut request = ExecRequest {
            argv: vec!["true".into()],
            env: BTreeMap::from([("GOOD_1".into(), "x".into())]),
            workdir: None,
            timeout: Duration::from_secs(1),
        };
        assert!(fits(&request));
        request.env.insert("not.a.name".into(), "x".into());
        assert!(!fits(&request));
        request.env.clear();
        request.argv.clear();
        assert!(!fits(&request));
        assert!(!is_shell_name("1X"));
        assert!(is_shell_name("_x1"));
    }

    #[test]
    fn the_step_text_quotes_every_argument_and_value() {
        let request = ExecRequest {
            argv: vec!["printf".into(), "%s|".into(), "it's $HOME\nnext".into()],
            env: BTreeMap::from([("A".into(), "a b'c".into())]),
            workdir: Some("/w d".into()),
            timeout: Duration::from_millis(1500),
        };
        let text = step_text(&request, &["PWD=/".into()], "/bin/setsid", "M");
        assert!(
            text.contains(r"exec '/bin/setsid' -- 'printf' '%s|' 'it'\''s $HOME"),
            "{text}"
        );
        assert!(text.contains(r"export A='a b'\''c'; "), "{text}");
        assert!(text.contains("cd -- '/w d' || exit 126; "), "{text}");
        assert!(
            text.contains("PWD='/'; export PWD; unset SHLVL; unset OLDPWD;"),
            "{text}"
        );
        assert!(text.contains("sleep 1.500 &"), "{text}");
        assert!(text.ends_with("else echo \"M nodir\"; fi\n"), "{text}");
    }
}
