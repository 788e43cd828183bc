"""Two or more engine binaries side by side: alternating runs of the Postmark rotation
against one sandbox, each binary's median wall time, and the simulators' span (first
request to last answer) and what is left outside it (the start and the end).

    python3 benches/ab.py 20 21 /tmp/before/runbook target/release/runbook

The machine's speed moves by several percent over minutes; pairs run back to back see the
same machine, so their difference is the binaries' (docs/performance.md, section 1).
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
    latency, n = int(sys.argv[1]), int(sys.argv[2])
    bins = [os.path.abspath(b) for b in sys.argv[3:]]
    work = tempfile.mkdtemp(prefix="runbook-ab-")
    sb = bench.Sandbox(work, ["raxx-api-prod", "raxx-api-staging"], latency)
    env = bench.engine_env(sb, os.path.join(work, "state"))
    runs = {b: [] for b in bins}
    try:
        for i in range(n):
            for b in bins if i % 2 == 0 else list(reversed(bins)):
                before = sb.requests()
                t = time.perf_counter()
                out = subprocess.run([b, "exec", "postmark", "--yes"], env=env, cwd=work,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                wall = (time.perf_counter() - t) * 1000
                if out.returncode != 0:
                    raise SystemExit(out.stderr[-2000:])
                reqs = sb.state()["requests"][before:]
                span = (max(r["end_us"] for r in reqs) - min(r["start_us"] for r in reqs)) / 1000
                runs[b].append((wall, span, wall - span))
    finally:
        sb.stop()
    print(f"{n} alternating runs each at {latency} ms per call (medians, ms):")
    for b in bins:
        wall, span, rest = (statistics.median(r[k] for r in runs[b]) for k in range(3))
        print(f"  {b:40} wall {wall:7.1f}  span {span:7.1f}  outside it {rest:6.1f}")


if __name__ == "__main__":
    main()
