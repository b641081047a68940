#!/usr/bin/env python3
"""What span expectations add to a test (README "Performance"; issue 11 asks <= 250 ms).

The same one-service test runs 10 times with --force, once with [[expect.span]] and once
without; its single step posts the spans (busybox wget, OTLP/JSON), so every span is in
when the last step ends. Prints the median test duration of each and their difference.
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


def median_ms(expectations: bool) -> float:
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(f"{root}/tests")
        text = f"[meta]\nname = \"t\"\nversion = \"1\"\n\n[service.app]\nimage = \"{IMAGE}\"\n\n{STEP}"
        if expectations:
            text += "\n[[expect.span]]\nname = \"checkout\"\n"
        open(f"{root}/tests/t.clnrm.toml", "w").write(text)
        times = []
        for _ in range(10):
            out = subprocess.run([CLNRM, "run", "--force", "--format", "json"], cwd=root,
                                 capture_output=True, text=True).stdout
            event = next(json.loads(l) for l in out.splitlines() if '"test_finished"' in l)
            times.append(event["duration_ms"])
        return statistics.median(times)


if __name__ == "__main__":
    without = median_ms(False)
    with_ = median_ms(True)
    print(f"median of 10: without expectations {without:.0f} ms, with {with_:.0f} ms, added {with_ - without:.0f} ms")
    sys.exit(0)
