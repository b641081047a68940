#!/usr/bin/env python3
"""What span expectations add to a test (README "Performance"; issue 11 asks <= 250 ms).

The same one-service test runs 10 times with --force with [[expect.span]] and 10 times
without, alternating; its single step posts the spans (busybox wget, OTLP/JSON), so every span is in
when the last step ends. Prints the median test duration of each and their difference, then
the median of each phase (containers, steps, span wait, teardown) with and without.
Needs the Docker engine, the fixture image (fixtures/images/build.sh) and a built clnrm
(CLNRM, default target/release/clnrm).
"""
import json, os, statistics, subprocess, sys, tempfile

CLNRM = os.environ.get("CLNRM", os.path.join(os.path.dirname(__file__), "..", "target", "release", "clnrm"))
IMAGE = "clnrm-fixture/busybox:latest"
EXPORT = ('{\\"resourceSpans\\":[{\\"scopeSpans\\":[{\\"spans\\":[{\\"traceId\\":\\"5b8efff798038103d269b633813fc60c\\",'
          '\\"spanId\\":\\"00000000000000a1\\",\\"name\\":\\"checkout\\",\\"kind\\":2,'
          '\\"startTimeUnixNano\\":\\"1000\\",\\"endTimeUnixNano\\":\\"2000\\"}]}]}]}')
STEP = ("[[steps]]\nname = \"emit\"\ncommand = [\"sh\", \"-c\", \"wget -q -O - --header 'Content-Type: application/json' "
        f"--post-data '{EXPORT}' http://otel-collector:4318/v1/traces || true\"]\n")


def project(root: str, expectations: bool) -> None:
    os.makedirs(f"{root}/tests")
    text = f"[meta]\nname = \"t\"\nversion = \"1\"\n\n[service.app]\nimage = \"{IMAGE}\"\n\n{STEP}"
    if expectations:
        text += "\n[[expect.span]]\nname = \"checkout\"\n"
    open(f"{root}/tests/t.clnrm.toml", "w").write(text)


PHASES = ("containers_ms", "execute_ms", "spans_ms", "teardown_ms")


def finished(root: str) -> dict:
    out = subprocess.run([CLNRM, "run", "--force", "--format", "json"], cwd=root,
                         capture_output=True, text=True).stdout
    event = next(json.loads(l) for l in out.splitlines() if '"test_finished"' in l)
    if event["status"] != "pass":
        sys.exit(f"the test did not pass in {root}: {event}")
    return event


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as without_root, tempfile.TemporaryDirectory() as with_root:
        project(without_root, False)
        project(with_root, True)
        # Alternated, so a change in the machine's load meets both alike.
        without, with_ = [], []
        for _ in range(10):
            without.append(finished(without_root))
            with_.append(finished(with_root))
    a = statistics.median(e["duration_ms"] for e in without)
    b = statistics.median(e["duration_ms"] for e in with_)
    print(f"median of 10: without expectations {a:.0f} ms, with {b:.0f} ms, added {b - a:.0f} ms")
    for phase in PHASES:
        pa = statistics.median(e["timings"].get(phase) or 0 for e in without)
        pb = statistics.median(e["timings"].get(phase) or 0 for e in with_)
        print(f"  {phase[:-3]:<11} without {pa:6.0f} ms   with {pb:6.0f} ms")
    sys.exit(0)
