#!/usr/bin/env python3
"""The machine's floor for a step in a running container, beside which the step
runner's cost (`cargo bench -p clnrm-exec --bench step_cost`) is read.

    python3 benches/exec_floor.py

One `sh` is attached to a running fixture container (`docker exec -i`), as the step
runner's is, and each probe is written to it and timed until its answer comes back:
a builtin (the attach round trip alone), one fork+exec of `/bin/true`, three of them,
what the runner does per step (the step exec'd through `setsid`, then the next step's two
`cat`s on FIFOs started), the same with the `cat`s started before the step (as before)
and without `setsid`,
what it did before (its step's PID written to a file on the overlay filesystem), and
the cost of one such file write against one in /dev/shm. 60 rounds each; p50 and minimum. Needs the Docker engine and
clnrm-fixture/busybox (bash fixtures/images/build.sh)."""
import os
import statistics
import subprocess
import time

IMAGE = "clnrm-fixture/busybox:latest"
PROBES = [
    ("attach round trip (a builtin)", ":"),
    ("one fork+exec (/bin/true)", "/bin/true"),
    ("three fork+execs", "/bin/true; /bin/true; /bin/true"),
    # What the runner does per step: the command exec'd through `setsid` (a process
    # group of its own), then the next step's two `cat`s started (on FIFOs of their
    # own, o2/e2, whose first `cat`s the set-up starts).
    ("a runner-like step (setsid + the command, the next cats after)",
     '(exec setsid -- echo hi) >"$d/o2" 2>"$d/e2" </dev/null; wait $a2 $b2; '
     'cat "$d/o2" >/dev/null & a2=$!; cat "$d/e2" >/dev/null & b2=$!'),
    # Before: the step's `cat`s started right before it.
    ("the same with its cats started before it (before)",
     'cat "$d/o" >/dev/null & a=$!; cat "$d/e" >/dev/null & b=$!; '
     '(exec setsid -- echo hi) >"$d/o" 2>"$d/e" </dev/null; wait $a $b'),
    # Without `setsid`: the step in the runner's own process group (a `kill 0` in it
    # would end the runner).
    ("the same without setsid (for comparison)",
     'cat "$d/o" >/dev/null & a=$!; cat "$d/e" >/dev/null & b=$!; '
     '(exec echo hi) >"$d/o" 2>"$d/e" </dev/null; wait $a $b'),
    # What the runner did per step before: its FIFOs in /tmp, and the step's PID read
    # from /proc/self/stat (a byte per read) into a file on the overlay filesystem.
    ("the same with the old PID file (in /tmp)",
     'cat "$t/o" >/dev/null & a=$!; cat "$t/e" >/dev/null & b=$!; '
     '(read -r p r </proc/self/stat; echo "$p" >"$t/p"; exec setsid -- echo hi) '
     '>"$t/o" 2>"$t/e" </dev/null; wait $a $b'),
    ("a file written on the container's overlay filesystem", 'echo 1 >"$t/p"'),
    ("a file written in /dev/shm (tmpfs)", 'echo 1 >"$d/p"'),
]


def main():
    container = subprocess.run(["docker", "run", "-d", "--rm", IMAGE, "sleep", "600"],
                               capture_output=True, text=True, check=True).stdout.strip()
    shell = subprocess.Popen(["docker", "exec", "-i", container, "sh"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    try:
        # The runner's folder is in /dev/shm; $t is one on the overlay, for comparison.
        shell.stdin.write(b'd=$(mktemp -d -p /dev/shm); mkfifo "$d/o" "$d/e" "$d/o2" "$d/e2"; '
                          b'cat "$d/o2" >/dev/null & a2=$!; cat "$d/e2" >/dev/null & b2=$!; '
                          b't=$(mktemp -d); mkfifo "$t/o" "$t/e"\n')

        def round_trip(command):
            started = time.perf_counter()
            shell.stdin.write((command + "; echo __done\n").encode())
            answer = b""
            while not answer.endswith(b"__done\n"):
                answer += os.read(shell.stdout.fileno(), 4096)
            return (time.perf_counter() - started) * 1000

        for name, command in PROBES:
            times = [round_trip(command) for _ in range(60)]
            print(f"{name:60s} p50 {statistics.median(times):6.2f} ms  min {min(times):6.2f} ms")
        print(f"load average: {os.getloadavg()}")
    finally:
        shell.stdin.close()
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)


if __name__ == "__main__":
    main()
