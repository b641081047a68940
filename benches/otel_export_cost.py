#!/usr/bin/env python3
"""What clnrm's own trace costs a run (issue 20 criteria 3 and 4; docs/reference.md
"Exporting clnrm's own trace"). Prints figures; asserts nothing.

"Without self-spans" is a run without --otel-endpoint: a test that declares no [otel] gets
clnrm's own spans built only for the export, so the flag is the switch. Both variants set
TRACEPARENT in the containers (every run does). "With" is --otel-endpoint at a live local
receiver (tests/otlp_receiver.py, the independent decoder) that answers as soon as it has
read a request, as a collector that queues what it receives does; "with-dec" is the same
receiver answering only after decoding and recording the spans (what tests/otel_export.rs
uses), so the run waits for a Python decoder too.

1. Cost: a TESTS-test fully cached run, CACHED_RUNS alternated rounds (one such run is a
   few tens of ms, less than its noise on a loaded machine, hence more rounds) of without /
   with / with-dec / a dead endpoint (a closed port) / a slow one (answering after 5 s):
   median wall and CPU times, what each adds (targets: with < 2 %, dead and slow < 100 ms).
   Also clnrm's own count of the CPU time it spent on its trace (`clnrm.export.busy_ms` on
   the exported root span).
2. Per step: one test of STEPS steps run with --force, RUNS alternated rounds without and
   with: (median with - median without) / STEPS (target < 1 ms). Container execs vary by
   milliseconds, so this wall-clock figure is noisy; the busy time per step beside it is
   clnrm's own count of building, queuing and encoding that test's spans, divided by STEPS.

Needs the Docker engine, the fixture image (fixtures/images/build.sh), python3 with
`opentelemetry-proto` and a built clnrm: CLNRM, default target/release/clnrm if it exists,
else target/debug/clnrm (the figures say which).
"""
import json, os, resource, socket, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(HERE, "..", "target")
RELEASE = os.path.join(TARGET, "release", "clnrm")
CLNRM = os.path.abspath(os.environ.get("CLNRM") or (
    RELEASE if os.path.exists(RELEASE) else os.path.join(TARGET, "debug", "clnrm")))
RECEIVER = os.path.join(HERE, "..", "tests", "otlp_receiver.py")
IMAGE = "clnrm-fixture/busybox:latest"
TESTS = int(os.environ.get("TESTS", "100"))
STEPS = int(os.environ.get("STEPS", "100"))
RUNS = int(os.environ.get("RUNS", "5"))
CACHED_RUNS = int(os.environ.get("CACHED_RUNS", "30"))


def env():
    e = dict(os.environ)
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "CLNRM_CACHE_DIR", "RUST_LOG"):
        e.pop(var, None)
    e["NO_COLOR"] = "1"
    return e


def cpu_ms():
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (used.ru_utime + used.ru_stime) * 1000


def run(root, *extra):
    """Wall ms and CPU ms (user + system) of one `clnrm run`, and its stderr."""
    cpu = cpu_ms()
    started = time.perf_counter()
    out = subprocess.run([CLNRM, "run", "--format", "json", *extra], cwd=root, env=env(),
                         capture_output=True, text=True)
    took = (time.perf_counter() - started) * 1000
    if out.returncode != 0:
        sys.exit(f"clnrm run failed in {root} ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return (took, cpu_ms() - cpu), out.stderr


def receiver(out, delay, *flags):
    proc = subprocess.Popen([sys.executable, RECEIVER, "--out", out, "--delay", str(delay),
                             *flags], stdout=subprocess.PIPE, text=True)
    return proc, f"http://127.0.0.1:{int(proc.stdout.readline())}"


def roots(path):
    """The `clnrm run` root spans the receiver decoded, one per run."""
    if not os.path.exists(path):
        return []
    return [s for line in open(path) for s in json.loads(line).get("spans", [])
            if s["name"] == "clnrm run"]


def alternate(root, variants, extra=(), runs=RUNS):
    """(wall ms, CPU ms) of each variant (name -> args) per round, interleaved so load
    meets all alike, and how many runs of each warned of undelivered spans."""
    times = {name: [] for name in variants}
    warnings = {name: 0 for name in variants}
    order = list(variants.items())
    for round in range(runs):
        # Reversed every other round: the run after another meets its leftovers (container
        # removal, page cache) whichever variant it is.
        for name, args in (order if round % 2 == 0 else order[::-1]):
            took, stderr = run(root, *extra, *args)
            times[name].append(took)
            warnings[name] += "not delivered" in stderr
    return times, warnings


def load():
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def busy_ms(path):
    return [r["attributes"]["clnrm.export.busy_ms"] for r in roots(path)]


def report(title, times, variants, warnings):
    """Prints the medians of `times` (name -> [(wall, cpu)]) against "without"; returns the
    base's (wall, cpu) medians."""
    median = {name: (statistics.median(t[0] for t in runs), statistics.median(t[1] for t in runs))
              for name, runs in times.items()}
    base, base_cpu = median["without"]
    walls = sorted(t[0] for t in times["without"])
    spread = f"{walls[0]:.0f}..{walls[-1]:.0f}"
    print(f"\n{title}, medians of {len(times['without'])}: without self-spans wall {base:.1f} ms "
          f"(from {spread}), CPU {base_cpu:.1f} ms")
    base_min = min(t[0] for t in times["without"])
    for name in variants:
        wall, cpu = median[name]
        # Each round's with-minus-without: load that drifts between rounds cancels out.
        paired = statistics.median(w[0] - b[0] for w, b in zip(times[name], times["without"]))
        fastest = min(t[0] for t in times[name])
        print(f"  {name:<8} wall {wall:7.1f} ms, added {wall - base:+6.1f} ms, ratio "
              f"{wall / base:.4f} ({(wall - base) / base * 100:+.2f} %); median of paired "
              f"differences {paired:+6.1f} ms ({paired / base * 100:+.2f} %); fastest run "
              f"{fastest:.1f} vs {base_min:.1f} ms ({(fastest - base_min) / base_min * 100:+.2f} %)")
        print(f"  {'':<8} CPU {cpu:7.1f} ms, added {cpu - base_cpu:+6.1f} ms "
              f"({(cpu - base_cpu) / base_cpu * 100:+.2f} %); runs warning of undelivered "
              f"spans: {warnings[name]}/{len(times[name])}")
    return base, base_cpu


def main():
    build = "release" if "release" in os.path.abspath(CLNRM) else "debug"
    print(f"clnrm: {CLNRM} ({build} build); {RUNS} alternated rounds per figure; "
          f"{os.cpu_count()} CPUs, {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        cached = os.path.join(tmp, "cached")
        os.makedirs(os.path.join(cached, "tests"))
        for i in range(TESTS):
            open(os.path.join(cached, "tests", f"t{i:03}.clnrm.toml"), "w").write(
                f'[meta]\nname = "t{i:03}"\nversion = "1"\n\n[service.box]\nimage = "{IMAGE}"\n\n'
                f'[[steps]]\nname = "check"\nservice = "box"\ncommand = ["echo", "{i}"]\n')
        run(cached)  # fills the result cache: every later run is fully cached
        live_out = os.path.join(tmp, "live.jsonl")
        live, live_url = receiver(live_out, 0, "--ack-first")
        decoding, decoding_url = receiver(os.path.join(tmp, "decoding.jsonl"), 0)
        slow, slow_url = receiver(os.path.join(tmp, "slow.jsonl"), 5)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead_url = f"http://127.0.0.1:{s.getsockname()[1]}"
        try:
            for url in (live_url, decoding_url):
                run(cached, "--otel-endpoint", url)  # a receiver's first answer is slow
            os.remove(live_out)
            times, warnings = alternate(cached, {
                "without": [],
                "with": ["--otel-endpoint", live_url],
                "with-dec": ["--otel-endpoint", decoding_url],
                "dead": ["--otel-endpoint", dead_url],
                "slow": ["--otel-endpoint", slow_url],
            }, runs=CACHED_RUNS)
            base, base_cpu = report(f"{TESTS}-test cached run", times,
                                    ("with", "with-dec", "dead", "slow"), warnings)
            busy = statistics.median(busy_ms(live_out))
            print(f"  the live receiver decoded {len(roots(live_out))} runs' traces; clnrm's own "
                  f"count of CPU time on its trace (clnrm.export.busy_ms): median {busy:.3f} ms "
                  f"= {busy / base * 100:.3f} % of the run's wall time")
            print(f"  ({load()})")

            steps = os.path.join(tmp, "steps")
            os.makedirs(os.path.join(steps, "tests"))
            text = f'[meta]\nname = "steps"\nversion = "1"\n\n[service.box]\nimage = "{IMAGE}"\n'
            for i in range(STEPS):
                text += f'\n[[steps]]\nname = "s{i}"\nservice = "box"\ncommand = ["true"]\n'
            open(os.path.join(steps, "tests", "steps.clnrm.toml"), "w").write(text)
            os.remove(live_out)
            times, warnings = alternate(steps, {"without": [], "with": ["--otel-endpoint", live_url]},
                                        ["--force"])
            base, base_cpu = report(f"one test of {STEPS} steps, --force", times, ("with",),
                                    warnings)
            wall = (statistics.median(t[0] for t in times["with"]) - base) / STEPS
            cpu = (statistics.median(t[1] for t in times["with"]) - base_cpu) / STEPS
            busy = statistics.median(busy_ms(live_out))
            print(f"  per step: wall {wall:+.3f} ms, CPU {cpu:+.3f} ms (differences of medians / "
                  f"{STEPS}); clnrm's own count (clnrm.export.busy_ms / {STEPS}): "
                  f"{busy / STEPS * 1000:.1f} us")
            print(f"  ({load()})")
        finally:
            for proc in (live, decoding, slow):
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    main()
