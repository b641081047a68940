#!/usr/bin/env python3
"""What exporting clnrm's own trace costs (issue 20 criteria 3 and 4; docs/reference.md
"Exporting clnrm's own trace"). Prints figures; asserts nothing.

1. A 100-test fully cached run, alternated RUNS times each: without export, and with
   --otel-endpoint at a live local receiver (tests/otlp_receiver.py): median wall time and
   the added percentage (target < 2 %).
2. Per step: one test of STEPS steps run with --force, alternated without and with export:
   (median with - median without) / STEPS (target < 1 ms). Container execs vary by
   milliseconds, so this figure is noisy; the median of RUNS is what it is worth.
3. The same cached run against a dead endpoint (a closed port) and a slow one (the
   receiver answering after 5 s): the added wall time (target < 100 ms).

Needs the Docker engine, the fixture image (fixtures/images/build.sh), python3 with
`opentelemetry-proto` and a built clnrm (CLNRM, default target/debug/clnrm: say which
build the figures come from).
"""
import os, socket, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
CLNRM = os.environ.get("CLNRM", os.path.join(HERE, "..", "target", "debug", "clnrm"))
RECEIVER = os.path.join(HERE, "..", "tests", "otlp_receiver.py")
IMAGE = "clnrm-fixture/busybox:latest"
TESTS = int(os.environ.get("TESTS", "100"))
STEPS = int(os.environ.get("STEPS", "50"))
RUNS = int(os.environ.get("RUNS", "10"))


def env():
    e = dict(os.environ)
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "CLNRM_CACHE_DIR", "RUST_LOG"):
        e.pop(var, None)
    e["NO_COLOR"] = "1"
    return e


def run(root, *extra):
    started = time.perf_counter()
    out = subprocess.run([CLNRM, "run", "--format", "json", *extra], cwd=root, env=env(),
                         capture_output=True, text=True)
    took = (time.perf_counter() - started) * 1000
    if out.returncode != 0:
        sys.exit(f"clnrm run failed in {root} ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return took, out.stderr


def receiver(out, delay):
    proc = subprocess.Popen([sys.executable, RECEIVER, "--out", out, "--delay", str(delay)],
                            stdout=subprocess.PIPE, text=True)
    return proc, f"http://127.0.0.1:{int(proc.stdout.readline())}"


def spans_received(path):
    import json
    if not os.path.exists(path):
        return 0
    return sum(len(json.loads(l).get("spans", [])) for l in open(path))


def alternate(root, variants, extra=()):
    """Median wall ms of each variant (name -> args), interleaved so load meets all alike."""
    times = {name: [] for name in variants}
    warnings = {name: 0 for name in variants}
    order = list(variants.items())
    for round in range(RUNS):
        # Reversed every other round: the run after another meets its leftovers (container
        # removal, page cache) whichever variant it is.
        for name, args in (order if round % 2 == 0 else order[::-1]):
            took, stderr = run(root, *extra, *args)
            times[name].append(took)
            warnings[name] += "not delivered" in stderr
    return {name: statistics.median(t) for name, t in times.items()}, warnings


def main():
    build = "release" if "release" in os.path.abspath(CLNRM) else "debug"
    print(f"clnrm: {CLNRM} ({build} build); {RUNS} alternated runs per figure")
    with tempfile.TemporaryDirectory() as tmp:
        cached = os.path.join(tmp, "cached")
        os.makedirs(os.path.join(cached, "tests"))
        for i in range(TESTS):
            open(os.path.join(cached, "tests", f"t{i:03}.clnrm.toml"), "w").write(
                f'[meta]\nname = "t{i:03}"\nversion = "1"\n\n[service.box]\nimage = "{IMAGE}"\n\n'
                f'[[steps]]\nname = "check"\nservice = "box"\ncommand = ["echo", "{i}"]\n')
        run(cached)  # fills the result cache: every later run is fully cached
        live_out = os.path.join(tmp, "live.jsonl")
        live, live_url = receiver(live_out, 0)
        slow, slow_url = receiver(os.path.join(tmp, "slow.jsonl"), 5)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead_url = f"http://127.0.0.1:{s.getsockname()[1]}"
        try:
            medians, warnings = alternate(cached, {
                "without": [],
                "live": ["--otel-endpoint", live_url],
                "dead": ["--otel-endpoint", dead_url],
                "slow": ["--otel-endpoint", slow_url],
            })
            base = medians["without"]
            print(f"{TESTS}-test cached run, median wall time: without export {base:.1f} ms")
            for name in ("live", "dead", "slow"):
                delta = medians[name] - base
                print(f"  {name:<5} endpoint {medians[name]:7.1f} ms  added {delta:+6.1f} ms "
                      f"({delta / base * 100:+.2f} %); runs warning of undelivered spans: "
                      f"{warnings[name]}/{RUNS}")
            print(f"  spans the live receiver decoded over {RUNS} runs: {spans_received(live_out)}")

            steps = os.path.join(tmp, "steps")
            os.makedirs(os.path.join(steps, "tests"))
            text = f'[meta]\nname = "steps"\nversion = "1"\n\n[service.box]\nimage = "{IMAGE}"\n'
            for i in range(STEPS):
                text += f'\n[[steps]]\nname = "s{i}"\nservice = "box"\ncommand = ["true"]\n'
            open(os.path.join(steps, "tests", "steps.clnrm.toml"), "w").write(text)
            medians, _ = alternate(steps, {"without": [], "live": ["--otel-endpoint", live_url]},
                                   ["--force"])
            per_step = (medians["live"] - medians["without"]) / STEPS
            print(f"one test of {STEPS} steps, --force, median wall time: without export "
                  f"{medians['without']:.1f} ms, with {medians['live']:.1f} ms: "
                  f"{per_step:+.3f} ms per step")
        finally:
            for proc in (live, slow):
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    main()
