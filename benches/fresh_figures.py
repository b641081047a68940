#!/usr/bin/env python3
"""Fresh every run, still warm (issue 18, criterion 2): the figures, in one run.

    cargo build --release && python3 benches/fresh_figures.py [path/to/clnrm] [--saves N]

Each `clnrm dev --format json` below runs at default settings, and each save-to-result
time is from the script's write() to the run's JSON line arriving. It prints p50/p95/max
of:
  1. the PostgreSQL test (create a table, insert two rows, count them) saved with only
     its count step changed, saves 4 s apart: every run leases a ready spare set;
  2. `clnrm run --force` of the same test, once per save: a fresh container per run;
  3. a count-only variant (one step, leaves no state) in `dev` on fresh spares, and
     with `isolation = "reuse"` on the same warm container;
  4. the one-step busybox test in `dev` (fresh spares), and `docker run --rm` of the
     step once per save.
and checks: 1 is >= 4x faster than 2; 3 fresh is within 30 ms of 3 reuse; 4 is
< 100 ms and >= 4x faster than `docker run --rm`. Needs the Docker engine and the images
clnrm-fixture/busybox (fixtures/images/build.sh) and clnrm-fixture/services
(fixtures/images/build-services.sh).

Steps go through the step runner as by default; `--no-runner` runs the PostgreSQL
scenarios with CLNRM_STEP_RUNNER=off (by exec), as before the runner's watchdog stopped
orphaning its sleep (which killed the fixture PostgreSQL mid-run)."""
import argparse
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PARSER = argparse.ArgumentParser(description="clnrm fresh-spare figures")
PARSER.add_argument("clnrm", nargs="?", default=os.path.join(HERE, "..", "target", "release", "clnrm"))
PARSER.add_argument("--saves", type=int, default=8)
PARSER.add_argument("--no-runner", action="store_true",
                    help="PostgreSQL scenarios with CLNRM_STEP_RUNNER=off")
OPTIONS = PARSER.parse_args()
CLNRM = os.path.abspath(OPTIONS.clnrm)
SAVES = OPTIONS.saves
BUSYBOX = "clnrm-fixture/busybox:latest"
SERVICES = "clnrm-fixture/services:latest"
NO_RUNNER = {"CLNRM_STEP_RUNNER": "off"} if OPTIONS.no_runner else None

POSTGRES_SERVICE = (f'[service.db]\nimage = "{SERVICES}"\nargs = ["start-postgres"]\n'
                    'health_check = { cmd = ["pg_isready", "--quiet"], interval = "100ms", '
                    'timeout = "5s", retries = 300 }\n\n')


def psql(name, sql, expect=None):
    step = (f'[[steps]]\nname = "{name}"\ncommand = ["psql", "--set=ON_ERROR_STOP=1", '
            f'"--tuples-only", "--no-align", "--command={sql}"]\n')
    if expect:
        step += f'expected_output_regex = "{expect}"\n'
    return step + "\n"


def postgres_rows(i):
    return ('[meta]\nname = "pg_rows"\nversion = "1"\n\n' + POSTGRES_SERVICE
            + psql("create_table", "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
            + psql("insert_two_rows", "INSERT INTO items (name) VALUES ('apple'), ('pear')")
            + psql("count_rows", f"SELECT count(*) FROM items WHERE {i} = {i}", "^2$"))


def postgres_count_only(i):
    return ('[meta]\nname = "pg_count"\nversion = "1"\n\n' + POSTGRES_SERVICE
            + psql("count_tables", f"SELECT count(*) > 0 FROM pg_class WHERE {i} = {i}", "^t$"))


def one_step(i):
    return (f'[meta]\nname = "one"\nversion = "1"\n\n[service.box]\nimage = "{BUSYBOX}"\n\n'
            f'[[steps]]\nname = "say"\ncommand = ["echo", "save{i}"]\nexpected_output_regex = "save{i}"\n')


def project(test_text, cleanroom=""):
    root = tempfile.mkdtemp(prefix="clnrm-fresh-bench-")
    with open(os.path.join(root, "cleanroom.toml"), "w") as f:
        f.write(cleanroom)
    with open(os.path.join(root, "t.clnrm.toml"), "w") as f:
        f.write(test_text)
    return root


def save(root, text):
    with open(os.path.join(root, "t.clnrm.toml"), "w") as f:
        f.write(text)


class Dev:
    def __init__(self, root, env=None):
        env = dict(os.environ, CLNRM_CACHE_DIR=os.path.join(root, ".clnrm", "cache"),
                   NO_COLOR="1", **(env or {}))
        self.proc = subprocess.Popen([CLNRM, "dev", "--format", "json"], cwd=root, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.runs = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.runs.put((time.perf_counter(), json.loads(line)))

    def next_run(self, timeout=180):
        return self.runs.get(timeout=timeout)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=120)


def dev_saves(root, texts, pause, env=None, expect_fresh=None):
    """Save-to-result times of `clnrm dev` for each text, `pause` seconds apart."""
    dev = Dev(root, env)
    dev.next_run()
    times = []
    for text in texts:
        time.sleep(pause)
        while not dev.runs.empty():
            dev.runs.get()
        saved = time.perf_counter()
        save(root, text)
        arrived, run = dev.next_run()
        bad = [r for r in run["results"] if r["status"] != "pass"]
        if bad:
            dev.stop()
            sys.exit(f"a run failed: {bad}")
        got = run["isolation"].get("t.clnrm.toml", {})
        if expect_fresh is not None and (got.get("isolation") == "fresh") != expect_fresh:
            dev.stop()
            sys.exit(f"expected {'fresh' if expect_fresh else 'reused'}, got {got}")
        times.append((arrived - saved) * 1000)
    dev.stop()
    return times


def command_times(argv, cwd, count, env=None):
    env = dict(os.environ, CLNRM_CACHE_DIR=os.path.join(cwd, ".clnrm", "cache"), **(env or {}))
    times = []
    for _ in range(count):
        started = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append((time.perf_counter() - started) * 1000)
    return times


def percentiles(values):
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
    return statistics.median(values), p95, values[-1]


def main():
    rows = []
    pg = project(postgres_rows(0))
    fresh_pg = dev_saves(pg, [postgres_rows(i) for i in range(1, SAVES + 1)], 4.0, NO_RUNNER, True)
    rows.append(("PostgreSQL test, dev, fresh (spare ready)", fresh_pg))
    run_pg = command_times([CLNRM, "run", "--force"], pg, SAVES, NO_RUNNER)
    rows.append(("PostgreSQL test, clnrm run --force", run_pg))

    count = project(postgres_count_only(0))
    fresh_count = dev_saves(count, [postgres_count_only(i) for i in range(1, SAVES + 1)], 4.0,
                            NO_RUNNER, True)
    rows.append(("count-only variant, dev, fresh (spare ready)", fresh_count))
    reuse = project(postgres_count_only(0), '[dev]\nisolation = "reuse"\n')
    reused_count = dev_saves(reuse, [postgres_count_only(i) for i in range(1, SAVES + 1)], 1.5,
                             NO_RUNNER, False)
    rows.append(('count-only variant, dev, isolation = "reuse"', reused_count))

    box = project(one_step(0))
    fresh_box = dev_saves(box, [one_step(i) for i in range(1, SAVES + 1)], 1.5, None, True)
    rows.append(("busybox one-step test, dev, fresh (spare ready)", fresh_box))
    docker = command_times(["docker", "run", "--rm", BUSYBOX, "echo", "x"], box, SAVES)
    rows.append(("busybox step, docker run --rm", docker))

    print(f"fresh spares, {SAVES} saves per scenario (milliseconds, save -> result)")
    print(f"{'scenario':<52} {'p50':>8} {'p95':>8} {'max':>8}")
    for label, values in rows:
        p = percentiles(values)
        print(f"{label:<52} {p[0]:8.0f} {p[1]:8.0f} {p[2]:8.0f}")

    p50 = lambda values: percentiles(values)[0]
    checks = [
        (f"PostgreSQL: run --force / fresh dev = {p50(run_pg) / p50(fresh_pg):.1f}x (>= 4x)",
         p50(run_pg) >= 4 * p50(fresh_pg)),
        (f"count-only: fresh - reuse = {p50(fresh_count) - p50(reused_count):+.0f} ms (<= 30 ms)",
         p50(fresh_count) - p50(reused_count) <= 30),
        (f"busybox: p50 {p50(fresh_box):.0f} ms (< 100 ms)", p50(fresh_box) < 100),
        (f"busybox: docker run --rm / fresh dev = {p50(docker) / p50(fresh_box):.1f}x (>= 4x)",
         p50(docker) >= 4 * p50(fresh_box)),
    ]
    for text, ok in checks:
        print(f"{text}: {'met' if ok else 'NOT MET'}")
    if not all(ok for _, ok in checks):
        sys.exit("issue 18 figures not met")


if __name__ == "__main__":
    main()
