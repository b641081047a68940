#!/usr/bin/env python3
"""The machine's floor for a step in a running container, beside which the step
runner's cost (`cargo bench -p clnrm-exec --bench step_cost`) is read.

    python3 benches/exec_floor.py

One `sh` is attached to a running fixture container (`docker exec -i`), as the step
runner's is, and each probe is written to it and timed until its answer comes back:
a builtin (the attach round trip alone), one fork+exec of `/bin/true`, three of them,
what the runner does per step (two `cat`s on FIFOs and the step), the same with the step
exec'd through `setsid` (as before),
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
    ("a runner-like step (2 cats on FIFOs, the command)",
     'cat "$d/o" >/dev/null & a=$!; cat "$d/e" >/dev/null & b=$!; '
     '(exec echo hi) >"$d/o" 2>"$d/e" </dev/null; wait $a $b'),
    # What the runner did per step before: the command exec'd through `setsid`.
    ("the same through setsid (before)",
     'cat "$d/o" >/dev/null & a=$!; cat "$d/e" >/dev/null & b=$!; '
     '(exec setsid -- echo hi) >"$d/o" 2>"$d/e" </dev/null; wait $a $b'),
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
        shell.stdin.write(b'd=$(mktemp -d -p /dev/shm); mkfifo "$d/o" "$d/e"; '
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
