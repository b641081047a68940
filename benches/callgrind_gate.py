#!/usr/bin/env python3
"""The CI performance gate: instruction counts of clnrm's pure hot paths under
callgrind, compared with the committed baseline (README "Performance gate").

    python3 benches/callgrind_gate.py            # compare; exit 1 on a regression
    python3 benches/callgrind_gate.py --update   # rewrite the baseline
    python3 benches/callgrind_gate.py --runs 3   # also show how much counts vary

Builds benches/callgrind_hotpaths.rs with `cargo bench --no-run` (the bench
profile: release with line tables and symbols, which the shipped release profile
strips; see Cargo.toml), runs each hot path under `valgrind --tool=callgrind`, counting
only inside `clnrm_gate_measured` (no process start, setup or warm-up), and
prints a table: benchmark, baseline, new count and ratio, per iteration. A count
more than 10 % above its baseline fails the gate. Instruction counts, not time:
a busy machine does not move them. Exit codes: 0 within budget (or baseline
written), 1 a regression or a baseline that does not match the benchmarks,
2 the gate could not run (no valgrind, build failed, ...)."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BENCH = "callgrind_hotpaths"
MEASURED = "clnrm_gate_measured"
DEFAULT_BASELINE = os.path.join(HERE, "callgrind_baseline.json")
# Counts repeat to well within 1 % on one machine; 10 % is a real change.
MAX_GROWTH = 0.10


class GateError(Exception):
    """The gate could not measure (exit 2), as opposed to a regression."""


def build():
    """Builds the hot-path binary and returns its path."""
    cmd = ["cargo", "bench", "--no-run", "--locked", "--bench", BENCH,
           "--message-format=json-render-diagnostics"]
    out = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise GateError(f"`{' '.join(cmd)}` failed (exit {out.returncode}); its errors are above")
    for line in out.stdout.splitlines():
        if not line.startswith("{"):
            continue
        msg = json.loads(line)
        if (msg.get("reason") == "compiler-artifact" and msg.get("executable")
                and msg.get("target", {}).get("name") == BENCH):
            return msg["executable"]
    raise GateError(f"cargo built no executable for bench `{BENCH}`")


def hot_paths(exe):
    """(name, iterations, description) of every hot path the binary knows."""
    out = subprocess.run([exe, "--list"], stdout=subprocess.PIPE, text=True, check=True)
    paths = []
    for line in out.stdout.splitlines():
        name, iterations, what = line.split("\t")
        paths.append((name, int(iterations), what))
    return paths


# Under callgrind all eight hot paths take about 20 s here, together.
PATH_TIMEOUT = 300
ATTEMPTS = 2


def count(exe, name, iterations, workdir):
    """Instructions per iteration of hot path `name`, as callgrind counts them."""
    out_file = os.path.join(workdir, f"callgrind.{name}.out")
    # --fair-sched=yes: valgrind runs one thread at a time, and with its default
    # (unfair) lock a thread spinning on a lock-free structure (sled's, crossbeam's)
    # can keep the one it waits for from ever running; a memo_hit run hung for 25
    # minutes that way in CI. Counts are the same either way (the measured code is
    # one thread's). A run still past PATH_TIMEOUT is tried again, then fails.
    cmd = ["valgrind", "--tool=callgrind", "--fair-sched=yes", "--collect-atstart=no",
           f"--toggle-collect={MEASURED}", f"--callgrind-out-file={out_file}",
           exe, name]
    for attempt in range(1, ATTEMPTS + 1):
        try:
            run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 timeout=PATH_TIMEOUT)
            break
        except subprocess.TimeoutExpired:
            print(f"hot path `{name}` still running under callgrind after {PATH_TIMEOUT} s "
                  f"(attempt {attempt} of {ATTEMPTS})", file=sys.stderr)
    else:
        raise GateError(f"hot path `{name}` did not finish under callgrind in {ATTEMPTS} "
                        f"attempts of {PATH_TIMEOUT} s")
    if run.returncode != 0:
        raise GateError(f"hot path `{name}` failed under callgrind (exit {run.returncode}):\n"
                        f"{run.stdout}{run.stderr}")
    total = None
    with open(out_file) as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                total = int(line.split()[1])
    if not total:
        raise GateError(f"callgrind counted nothing inside `{MEASURED}` for `{name}`: "
                        "was the function renamed or inlined?")
    return total // iterations


def rustc_version():
    out = subprocess.run(["rustc", "-V"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    return out.stdout.strip()


def valgrind_version():
    out = subprocess.run(["valgrind", "--version"], stdout=subprocess.PIPE, text=True)
    return out.stdout.strip()


def load_baseline(path):
    try:
        with open(path) as f:
            baseline = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise GateError(f"{path}: cannot read the baseline ({e})")
    counts = baseline.get("instructions_per_iteration") if isinstance(baseline, dict) else None
    if not isinstance(counts, dict) or not all(isinstance(v, int) for v in counts.values()):
        raise GateError(f"{path}: `instructions_per_iteration` must map each hot path to "
                        "an integer count; rewrite it with --update")
    return baseline


def write_baseline(path, counts, descriptions, old):
    merged = dict(old["instructions_per_iteration"]) if old else {}
    merged.update(counts)
    # Drop benchmarks that no longer exist.
    merged = {name: merged[name] for name in descriptions if name in merged}
    baseline = {
        "what": "instructions (callgrind Ir) per iteration of each hot path in "
                "benches/callgrind_hotpaths.rs; update with "
                "`python3 benches/callgrind_gate.py --update`",
        "rustc": rustc_version(),
        "valgrind": valgrind_version(),
        "instructions_per_iteration": merged,
        "descriptions": {name: descriptions[name] for name in merged},
    }
    with open(path, "w") as f:
        json.dump(baseline, f, indent=2)
        f.write("\n")


def compare(counts, baseline):
    """Prints the table; returns the lines that explain a failure (empty: pass)."""
    known = baseline["instructions_per_iteration"]
    failures = []
    rows = []
    for name, new in counts.items():
        old = known.get(name)
        if old is None:
            rows.append((name, "-", f"{new:,}", "-", "NEW: no baseline"))
            failures.append(f"{name}: no baseline count")
            continue
        ratio = new / old
        if ratio > 1 + MAX_GROWTH:
            verdict = f"REGRESSION (> +{MAX_GROWTH:.0%})"
            failures.append(f"{name}: {old:,} -> {new:,} instructions per iteration "
                            f"({ratio:.3f}x, limit {1 + MAX_GROWTH:.2f}x)")
        elif ratio < 1 - MAX_GROWTH:
            verdict = "faster: consider --update"
        else:
            verdict = "ok"
        rows.append((name, f"{old:,}", f"{new:,}", f"{ratio:.3f}", verdict))
    for name in known:
        if name not in counts:
            rows.append((name, f"{known[name]:,}", "-", "-", "GONE: not measured"))
            failures.append(f"{name}: in the baseline but no longer a hot path")
    header = ("benchmark", "baseline", "new", "ratio", "")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
    print(f"{header[0]:<{widths[0]}}  {header[1]:>{widths[1]}}  {header[2]:>{widths[2]}}  "
          f"{header[3]:>{widths[3]}}")
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  "
              f"{r[3]:>{widths[3]}}  {r[4]}")
    print("(instructions per iteration, counted by callgrind)")
    if baseline.get("rustc") and baseline["rustc"] != rustc_version():
        print(f"note: the baseline was counted with {baseline['rustc']}, this run with "
              f"{rustc_version()}; a compiler change moves counts")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true",
                        help="write the counts to the baseline instead of comparing")
    parser.add_argument("--baseline", default=DEFAULT_BASELINE,
                        help="baseline file (default: benches/callgrind_baseline.json)")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="measure only this hot path (repeatable)")
    parser.add_argument("--runs", type=int, default=1, metavar="N",
                        help="measure each hot path N times, print the spread and use "
                             "the median (default 1: counts repeat to within 0.2 %%)")
    args = parser.parse_args()
    # cargo and valgrind share our stderr; keep the table in order with them in CI logs.
    sys.stdout.reconfigure(line_buffering=True)
    if args.runs < 1:
        raise GateError("--runs must be at least 1")

    if shutil.which("valgrind") is None:
        raise GateError("valgrind is not installed (apt-get install valgrind)")
    exe = build()
    paths = hot_paths(exe)
    descriptions = {name: what for name, _, what in paths}
    if args.only:
        unknown = sorted(set(args.only) - set(descriptions))
        if unknown:
            raise GateError(f"no hot path named {', '.join(unknown)} "
                            f"(known: {', '.join(descriptions)})")
        paths = [p for p in paths if p[0] in args.only]

    counts = {}
    with tempfile.TemporaryDirectory(prefix="clnrm-gate-") as workdir:
        for name, iterations, _ in paths:
            runs = sorted(count(exe, name, iterations, workdir) for _ in range(args.runs))
            counts[name] = runs[len(runs) // 2]
            if args.runs > 1:
                spread = (runs[-1] - runs[0]) / runs[0]
                print(f"{name:<22} {args.runs} runs: {', '.join(f'{c:,}' for c in runs)} "
                      f"(spread {spread:.3%})")

    old = load_baseline(args.baseline)
    if args.update:
        write_baseline(args.baseline, counts, descriptions, old)
        for name, new in counts.items():
            print(f"{name:<22} {new:>14,}")
        print(f"baseline written to {args.baseline}")
        return 0
    if old is None:
        print(f"error: no baseline at {args.baseline}; write one with "
              "`python3 benches/callgrind_gate.py --update`", file=sys.stderr)
        return 1
    if args.only:
        old = dict(old, instructions_per_iteration={
            k: v for k, v in old["instructions_per_iteration"].items() if k in counts})
    failures = compare(counts, old)
    if failures:
        print("\nperformance gate FAILED:", file=sys.stderr)
        for line in failures:
            print(f"  {line}", file=sys.stderr)
        print("If the change is intended, update the baseline with "
              "`python3 benches/callgrind_gate.py --update` and commit it.", file=sys.stderr)
        return 1
    print(f"performance gate passed: no hot path grew by more than {MAX_GROWTH:.0%}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except GateError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
