//! The persistent step runner of a container: one `sh` started once by an
//! exec with its stdin attached (right after the container starts, so its
//! first step finds it ready), which then starts each step as a fresh
//! process, so a step costs a few forks instead of an Engine API exec round
//! trip (docs/reference.md §7; timeouts as in §5).
//!
//! Each step is one block of shell text written to the runner's stdin. Every
//! argument, variable and directory in it is single-quoted, so the step's
//! argv reaches `exec` exactly as given. The step runs in a foreground
//! subshell (a background one would start with SIGINT and SIGQUIT ignored)
//! that moves to the step's directory, restores
//! what the shell changed in the environment (as the exec path's wrapper
//! does), exports the step's env and execs `setsid -- <argv>` once a
//! builtin search of `PATH` has found the command as the engine would (what it
//! does not find goes by exec): the step leads a process group of its own, away
//! from the runner's, so a `kill 0` in it ends only the step. Its stdout and stderr
//! go through two FIFOs, each copied by a `cat` straight onto the runner's
//! own stdout and stderr, and the step is over when both FIFOs are closed —
//! by the step and by any child still holding them, as an exec's stream is.
//! The `cat`s for a step are started as the step before it ends, so they are
//! waiting when it comes.
//! At the step's timeout, clnrm kills the step's group inside the container
//! by one exec ([`kill_step`]), as the exec path does; the runner survives.
//! Timeouts are rare, so
//! that exec costs nothing on a step that ends in time, where a watchdog in
//! the container cost two processes per step (and its `sleep`, orphaned
//! when killed, went to the container's PID 1: PostgreSQL's postmaster, PID
//! 1 of its image, takes any unknown child that dies by a signal for a
//! crashed backend and ends every connection).
//! Then a trailer ends the frame on each stream: `\n<marker> <status>\n` on
//! stdout, `\n<marker>\n` on stderr (the marker is random per engine, so no
//! output can pass for it). Bytes past the capture limit are dropped as they
//! arrive, as the exec path drops them.
//!
//! Where a step's time went (before: ~10 ms): the shell forked about fifteen
//! processes per step (two `head`+`cat` pairs into files, two `wc -c`
//! command substitutions, a `cat` of both files, an `rm`, a subshell to test
//! the directory, the watchdog and its `sleep`); now three (two `cat`s, the
//! step), the rest builtins, and the output is framed once instead of being
//! written to files and read back. Then (~5 ms, issue 21): writing the step's
//! PID to a file on the container's overlay filesystem cost ~3 ms and reading
//! it from `/proc/self/stat` (a byte per read) ~0.8 ms, so nothing is written
//! per step and the FIFOs live in `/dev/shm` (tmpfs) when there is one. Then
//! (~2.3 ms): the `cat`s' fork and exec came before each step; they now come
//! after the one before, during clnrm's turn. `setsid`'s exec costs 0.9 ms of what
//! is left, but without it a step's `kill 0` (`trap 'kill 0' EXIT`, a common way
//! for a script to end its background jobs) would end the runner and what earlier
//! steps left running.
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
    capture, container_variable_not_a_shell_name, is_shell_name, original_value, quote,
    AttachedInput, AttachedOutput, CAPTURE_LIMIT, SHELL_SET_VARIABLES,
};
use crate::{ExecOutput, ExecPhases, ExecRequest};

/// How long the runner may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long past a step's timeout its frame may take (the kill inside, the
/// rest of its output sent) before the runner is given up.
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
    /// The engine and container, for the kill of a step past its timeout.
    engine: DockerEngine,
    container: String,
    /// The runner's folder in the container (its FIFOs).
    dir: String,
    /// The runner shell's PID in the container: the parent of every step.
    pid: u32,
    /// How the step text calls `setsid`.
    setsid: String,
    /// The runner's streams, read up to the current frame's trailers.
    stdout: Stream,
    stderr: Stream,
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

/// Whether a shell started in a container with this environment passes it on whole:
/// a variable whose name is not a shell name would be dropped from every step's.
pub(crate) fn fit_environment(container_env: &[String]) -> Result<(), String> {
    match container_variable_not_a_shell_name(container_env) {
        Some(bad) => Err(format!(
            "the container's variable `{bad}` is not a shell name"
        )),
        None => Ok(()),
    }
}

/// Whether the runner can run this step exactly as exec would.
pub(crate) fn fits(request: &ExecRequest) -> bool {
    // A command starting with `-` goes by exec, where the engine answers for it.
    request.argv.first().is_some_and(|c| !c.starts_with('-'))
        && request.env.keys().all(|k| is_shell_name(k))
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
        fit_environment(container_env)?;
        let streams = engine.attach_shell(container).await?;
        Runner::adopt(engine, container, streams, marker).await
    }

    /// Checks that the shell on `streams` (started by [`Runner::start`], or the
    /// container's main process) can host the runner, and makes it one.
    pub(crate) async fn adopt(
        engine: &DockerEngine,
        container: &str,
        (output, input): (AttachedOutput, AttachedInput),
        marker: &str,
    ) -> Result<Runner, String> {
        let mut runner = Runner {
            output,
            input,
            engine: engine.clone(),
            container: container.to_string(),
            dir: String::new(),
            pid: 0,
            stdout: Stream::default(),
            stderr: Stream::default(),
            in_flight: false,
            setsid: String::new(),
        };
        // `__clnrm_f <fields>` ends a frame: a trailer line on stdout and
        // one on stderr, each after a newline of its own (so the body's
        // last bytes are the step's own, byte for byte). The stream's
        // stderr moves to fd 3, for the steps' stderr alone: the shell's own
        // messages ("Killed" after a step's signal) go nowhere.
        let probe = format!(
            "exec 3>&2 2>/dev/null; \
             __clnrm_f() {{ printf '\\n%s %s\\n' '{marker}' \"$*\"; printf '\\n%s\\n' '{marker}' >&3; }}; \
             {FIND_COMMAND} \
             for __clnrm_t in mktemp mkfifo setsid cat; do \
               command -v \"$__clnrm_t\" >/dev/null 2>&1 || {{ __clnrm_f unfit no $__clnrm_t; exit 0; }}; \
             done; \
             [ -r /proc/self/stat ] || {{ __clnrm_f unfit no /proc/self/stat; exit 0; }}; \
             __clnrm_d=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d 2>/dev/null) \
               && mkfifo \"$__clnrm_d/po\" \"$__clnrm_d/pe\" \
               || {{ __clnrm_f unfit no room for its FIFOs; exit 0; }}; \
             {SPAWN_CATS} \
             trap 'kill $__clnrm_a $__clnrm_b; rm -rf \"$__clnrm_d\"' EXIT; \
             __clnrm_f ready \"$$\" \"$__clnrm_d\" \"$(command -v setsid)\"\n"
        );
        runner.send(&probe).await?;
        let frame = runner
            .frame(marker, tokio::time::Instant::now() + START_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        let line = frame.trailer;
        match line.strip_prefix("unfit ") {
            Some(why) => Err(format!("the image cannot host it: {why}")),
            // Where `setsid` is, so a step's own PATH cannot hide it (a
            // bare name: the shell's own applet, found without PATH).
            // mktemp's folder has no space in it; `setsid`'s path is the rest.
            None => match line
                .strip_prefix("ready ")
                .and_then(|r| r.split_once(' '))
                .and_then(|(pid, r)| Some((pid.parse::<u32>().ok()?, r.split_once(' ')?)))
            {
                Some((pid, (dir, setsid))) if !dir.is_empty() && !setsid.is_empty() => {
                    runner.pid = pid;
                    runner.dir = dir.to_string();
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
        self.send(&step_text(request, container_env, &self.setsid))
            .await
            .map_err(|why| Failed { why, sent: false })?;
        let timeout_at = started + request.timeout;
        let (frame, timed_out) = match self.frame(marker, timeout_at).await {
            Ok(frame) => (frame, false),
            Err(Unanswered::Late) => {
                // Owned copies: the runner's streams are not `Sync`, so no
                // borrow of `self` may be held across the kill's await.
                kill_step(
                    self.engine.clone(),
                    self.container.clone(),
                    self.pid,
                    self.dir.clone(),
                )
                .await?;
                let frame = self
                    .frame(marker, timeout_at + FRAME_GRACE)
                    .await
                    .map_err(|e| e.to_string())?;
                (frame, true)
            }
            Err(failed) => return Err(failed.to_string().into()),
        };
        self.in_flight = false;
        // The container's main process says its runner shell ended (`IdleMain`).
        if frame.trailer == "ended" {
            return Err("it ended".to_string().into());
        }
        if frame.trailer == "nodir" {
            return Ok(Ran::UseExec("its working directory is not a directory"));
        }
        if frame.trailer == "noexec" {
            return Ok(Ran::UseExec("its command cannot be executed"));
        }
        let fields: Vec<i64> = frame
            .trailer
            .split(' ')
            .map(|f| {
                f.parse()
                    .map_err(|_| format!("garbled frame `{}`", frame.trailer))
            })
            .collect::<Result<_, String>>()?;
        let [status] = fields[..] else {
            return Err(format!("garbled frame `{}`", frame.trailer).into());
        };
        let (stdout, out_cut) = capture(&frame.stdout);
        let (stderr, err_cut) = capture(&frame.stderr);
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

    /// Reads one frame: both streams up to their trailers.
    async fn frame(
        &mut self,
        marker: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Frame, Unanswered> {
        let out_end = format!("\n{marker} ");
        let err_end = format!("\n{marker}\n");
        loop {
            if let (Some(trailer), Some(_)) = (
                self.stdout.trailer(out_end.as_bytes(), true),
                self.stderr.trailer(err_end.as_bytes(), false),
            ) {
                return Ok(Frame {
                    stdout: self.stdout.take_body(),
                    stderr: self.stderr.take_body(),
                    trailer,
                });
            }
            self.more(deadline).await?;
        }
    }

    /// Reads what the runner wrote next.
    async fn more(&mut self, deadline: tokio::time::Instant) -> Result<(), Unanswered> {
        let item = tokio::time::timeout_at(deadline, self.output.next())
            .await
            .map_err(|_| Unanswered::Late)?
            .ok_or(Unanswered::Ended)?
            .map_err(|e| Unanswered::Broken(e.to_string()))?;
        match item {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                self.stdout.push(&message)
            }
            LogOutput::StdErr { message } => self.stderr.push(&message),
            LogOutput::StdIn { .. } => {}
        }
        Ok(())
    }
}

/// Kills the running step's process group inside the container, by an exec of
/// its own (the runner's shell is waiting for the step), as the exec path kills
/// its command's. The step is the runner's child that leads its own group
/// (`setsid`); once it has exited, its group lives on in what still holds its
/// output (a background child, say), so the group of every process holding one of
/// the step's FIFOs is killed too. The runner's own group (the runner, its `cat`s,
/// the container's first process when the runner is its child) is never touched.
/// Found in `/proc` here, at the rare timeout, rather than written down by every
/// step (a file written on the container's overlay filesystem cost about 3 ms per
/// step).
async fn kill_step(
    engine: DockerEngine,
    container: String,
    runner_pid: u32,
    dir: String,
) -> Result<(), Failed> {
    // `stat` is `pid (comm) state ppid pgrp ...`; comm may hold spaces and
    // parentheses, so the fields are read after its last `)`.
    let script = "r=$1; d=$2; read -r l < /proc/$r/stat || exit 0; set -- ${l##*\")\"}; g=$3; \
                  for f in /proc/[0-9]*/stat; do \
                    read -r l < \"$f\" || continue; p=${f#/proc/}; p=${p%/stat}; \
                    set -- ${l##*\")\"}; \
                    [ \"$3\" = \"$g\" ] && continue; \
                    if [ \"$2\" = \"$r\" ] && [ \"$3\" = \"$p\" ]; then kill -9 -\"$p\" \"$p\"; continue; fi; \
                    for o in /proc/$p/fd/*; do \
                      if [ \"$o\" -ef \"$d/po\" ] || [ \"$o\" -ef \"$d/pe\" ]; then \
                        kill -9 -\"$3\" \"$p\"; break; \
                      fi; \
                    done; \
                  done 2>/dev/null; exit 0";
    let kill = ExecRequest {
        argv: vec![
            "sh".into(),
            "-c".into(),
            script.into(),
            "sh".into(),
            runner_pid.to_string(),
            dir,
        ],
        env: Default::default(),
        workdir: None,
        timeout: FRAME_GRACE,
    };
    engine
        .exec_in_container(&container, &kill)
        .await
        .map(|_| ())
        .map_err(|e| Failed::from(format!("killing the step past its timeout: {e}")))
}

/// Why no frame came.
enum Unanswered {
    /// Not by the deadline.
    Late,
    /// The runner's stream ended.
    Ended,
    Broken(String),
}

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unanswered::Late => f.write_str("it did not answer in time"),
            Unanswered::Ended => f.write_str("it ended"),
            Unanswered::Broken(why) => f.write_str(why),
        }
    }
}

/// One step's answer: both streams and the trailer's fields.
struct Frame {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    trailer: String,
}

/// One of the runner's streams, read up to the end of the current step's
/// output (its trailer). Past the capture limit, the middle is dropped as it
/// arrives; the tail is kept so the trailer can still be found.
#[derive(Default)]
struct Stream {
    bytes: Vec<u8>,
    /// Bytes were dropped past the capture limit.
    cut: bool,
    /// Where the trailer was found: end of the body, end of the trailer.
    end: Option<(usize, usize)>,
    /// How far the trailer was looked for.
    searched: usize,
}

/// Room kept past the capture limit for a trailer split across reads.
const TAIL: usize = 4096;

impl Stream {
    fn push(&mut self, message: &[u8]) {
        self.bytes.extend_from_slice(message);
        if self.end.is_none() && self.bytes.len() > CAPTURE_LIMIT + 1 + TAIL {
            // Keep one byte past the limit (it says the output was cut).
            let drop_to = self.bytes.len() - TAIL;
            self.bytes.drain(CAPTURE_LIMIT + 1..drop_to);
            self.cut = true;
            self.searched = CAPTURE_LIMIT + 1;
        }
    }

    /// The trailer after `end`, when it has arrived in full: its line's text
    /// when `fields`, else nothing past `end`.
    fn trailer(&mut self, end: &[u8], fields: bool) -> Option<String> {
        let from = self.searched.saturating_sub(end.len());
        let Some(at) = self.bytes[from..].windows(end.len()).position(|w| w == end) else {
            self.searched = self.bytes.len();
            return None;
        };
        let at = from + at;
        let rest = &self.bytes[at + end.len()..];
        if !fields {
            self.end = Some((at, at + end.len()));
            return Some(String::new());
        }
        let line = rest.iter().position(|&b| b == b'\n')?;
        let text = String::from_utf8_lossy(&rest[..line]).into_owned();
        self.end = Some((at, at + end.len() + line + 1));
        Some(text)
    }

    /// The body before the trailer; what came after it stays for the next frame.
    fn take_body(&mut self) -> Vec<u8> {
        let (body_end, trailer_end) = self
            .end
            .take()
            .unwrap_or((self.bytes.len(), self.bytes.len()));
        let rest = self.bytes.split_off(trailer_end);
        let mut body = std::mem::replace(&mut self.bytes, rest);
        body.truncate(body_end);
        self.searched = 0;
        if std::mem::take(&mut self.cut) {
            body.truncate(CAPTURE_LIMIT + 1);
        }
        body
    }
}

/// A shell function, defined once in the runner: whether `$1` names a file the
/// engine's exec would run, found as it finds one (a name with a `/` as is, any
/// other along `PATH`, where a first match in a relative entry, the empty one
/// included, is refused: runc's "cannot run executable found relative to
/// current directory"). Builtins only, so it costs no process; a step it says
/// no to goes by exec, for the engine's own answer.
const FIND_COMMAND: &str = "__clnrm_x() { \
     case $1 in */*) [ -f \"$1\" ] && [ -x \"$1\" ]; return;; esac; \
     __clnrm_r=${PATH-}:; \
     while [ -n \"$__clnrm_r\" ]; do \
       __clnrm_p=${__clnrm_r%%:*}; __clnrm_r=${__clnrm_r#*:}; \
       if [ -f \"${__clnrm_p:-.}/$1\" ] && [ -x \"${__clnrm_p:-.}/$1\" ]; then \
         case $__clnrm_p in /*) return 0;; *) return 1;; esac; \
       fi; \
     done; return 1; };";

/// Starts the `cat`s that copy the next step's FIFOs onto the runner's own
/// streams (each until every writer has closed its FIFO, as an exec's stream
/// ends). They are started before that step comes, right after the one before
/// ends, so their fork and exec overlap clnrm's turn between two steps instead
/// of coming before the step (0.35 ms of a 2.3 ms step). They wait in `open`
/// until the step opens the FIFOs.
const SPAWN_CATS: &str = "cat \"$__clnrm_d/po\" & __clnrm_a=$!; \
     cat \"$__clnrm_d/pe\" >&3 & __clnrm_b=$!;";

/// The shell text that runs one step and sends its frame.
fn step_text(request: &ExecRequest, container_env: &[String], setsid: &str) -> String {
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
    // A builtin test, not a subshell: no fork before the step.
    let dir_check = match &request.workdir {
        Some(dir) => format!("[ -d {0} ] && [ -x {0} ]", quote(dir)),
        None => "true".into(),
    };
    // Forks per step: the step itself (its subshell execs `setsid`, which execs
    // the command), and the next step's two `cat`s once this one is over; the rest
    // are builtins. A command the engine's exec would not run is said by a line in
    // the runner's folder (on tmpfs when there is one), not by a status the step
    // could also exit with.
    format!(
        "if {dir_check}; then \
           ( {setup}__clnrm_x {argv0} || {{ echo > \"$__clnrm_d/x\"; exit 127; }}; \
             exec {setsid} -- {argv} ) \
             > \"$__clnrm_d/po\" 2> \"$__clnrm_d/pe\" < /dev/null 3>&-; \
           __clnrm_s=$?; wait $__clnrm_a $__clnrm_b; {SPAWN_CATS} \
           if [ -s \"$__clnrm_d/x\" ]; then : > \"$__clnrm_d/x\"; __clnrm_f noexec; \
           else __clnrm_f \"$__clnrm_s\"; fi; \
         else __clnrm_f nodir; fi\n",
        argv0 = argv[0],
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
        request.argv = vec!["-x".into()];
        assert!(!fits(&request));
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
        let text = step_text(&request, &["PWD=/".into()], "/bin/setsid");
        assert!(
            text.contains(r#"|| { echo > "$__clnrm_d/x"; exit 127; }; "#),
            "{text}"
        );
        assert!(
            text.contains(r"exec '/bin/setsid' -- 'printf' '%s|' 'it'\''s $HOME"),
            "{text}"
        );
        assert!(text.contains("__clnrm_x 'printf' ||"), "{text}");
        assert!(text.contains(r"export A='a b'\''c'; "), "{text}");
        assert!(text.contains("cd -- '/w d' || exit 126; "), "{text}");
        assert!(
            text.contains("PWD='/'; export PWD; unset SHLVL; unset OLDPWD;"),
            "{text}"
        );
        // No watchdog in the container: clnrm kills a step past its timeout.
        assert!(!text.contains("sleep"), "{text}");
        assert!(text.ends_with("else __clnrm_f nodir; fi\n"), "{text}");
        assert!(
            text.starts_with("if [ -d '/w d' ] && [ -x '/w d' ]; then"),
            "{text}"
        );
    }
}
