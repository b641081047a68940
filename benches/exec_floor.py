#!/usr/bin/env python3
"""The machine's floor for a step in a running container, beside which the step
runner's cost (`cargo bench -p clnrm-exec --bench step_cost`) is read.

    python3 benches/exec_floor.py

One `sh` is attached to a running fixture container (`docker exec -i`), as the step
runner's is, and each probe is written to it and timed until its answer comes back:
a builtin (the attach round trip alone), one fork+exec of `/bin/true`, three of them,
and what the runner does per step (two `cat`s on FIFOs and the step exec'd by
`setsid`). 60 rounds each; p50 and minimum. Needs the Docker engine and
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
    ("a runner-like step (2 cats on FIFOs, setsid + the command)",
     'cat "$d/o" >/dev/null & a=$!; cat "$d/e" >/dev/null & b=$!; '
     '(exec setsid -- echo hi) >"$d/o" 2>"$d/e" </dev/null; wait $a $b'),
]


def main():
    container = subprocess.run(["docker", "run", "-d", "--rm", IMAGE, "sleep", "600"],
                               capture_output=True, text=True, check=True).stdout.strip()
    shell = subprocess.Popen(["docker", "exec", "-i", container, "sh"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    try:
        shell.stdin.write(b'd=$(mktemp -d); mkfifo "$d/o" "$d/e"\n')

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
