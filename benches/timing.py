"""Where the engine's own time goes in one rotation: marks and span totals from a build with
benches/timing.patch applied (wall-time spans printed when RUNBOOK_TIMING is set; the patch
is never committed to the engine). Medians over N runs against one sandbox.

    git apply benches/timing.patch && cargo build --release
    python3 benches/timing.py 20 11     # latency ms, runs
    git apply -R benches/timing.patch
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    latency = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 11
    work = tempfile.mkdtemp(prefix="runbook-timing-")
    sb = bench.Sandbox(work, ["raxx-api-prod", "raxx-api-staging"], latency)
    env = bench.engine_env(sb, os.path.join(work, "state"))
    env["RUNBOOK_TIMING"] = "1"
    marks, spans, outside = {}, {}, []
    try:
        for _ in range(n):
            t = time.perf_counter()
            out = subprocess.run([bench.BIN, "exec", "postmark", "--yes"], env=env, cwd=work,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            wall = (time.perf_counter() - t) * 1000
            if out.returncode != 0:
                raise SystemExit(out.stderr[-2000:])
            seen, last = set(), []
            for line in out.stderr.splitlines():
                if line.startswith("T "):
                    _, at, label = line.split(None, 2)
                    last.append((float(at), label))
                    # Marks met more than once a run (a call, a gate, a record) are in the
                    # last run's listing only.
                    if label not in seen:
                        seen.add(label)
                        marks.setdefault(label, []).append(float(at))
                elif line.startswith("S "):
                    label, rest = line[2:].rsplit(" n=", 1)
                    count, ms, _ = rest.split()
                    spans.setdefault(label.strip(), []).append((int(count), float(ms)))
            outside.append(wall - marks["end"][-1])
    finally:
        sb.stop()
    print(f"the last run's marks in order (ms from main's start, + since the mark before):")
    before = 0.0
    for at, label in last:
        print(f"  {at:8.2f} +{at - before:6.2f}  {label}")
        before = at
    print(f"engine at {latency} ms per call, median of {n} runs (ms from main's start; a"
          f" mark met more than once, its first):")
    for label, ats in sorted(marks.items(), key=lambda kv: statistics.median(kv[1])):
        if len(ats) == n:
            print(f"  {statistics.median(ats):8.1f}  {label}")
    print(f"  outside main (exec, exit, the harness): {statistics.median(outside):.1f} ms")
    print("span totals per run (median):")
    for label, rows in spans.items():
        print(f"  {label:24} x{statistics.median(r[0] for r in rows):<4.0f}"
              f" {statistics.median(r[1] for r in rows):7.2f} ms")


if __name__ == "__main__":
    main()
