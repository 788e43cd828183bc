"""Two or more engine binaries side by side: alternating runs of the Postmark rotation
against one sandbox (started from RUNBOOK_BIN, as benches/bench.py does, so the simulators
are the same for every binary), each binary with a state directory of its own. For each
binary: the median wall time, the simulators' span (first request to last answer) and what
is outside it (the start and the end); for each binary after the first, the median of its
differences from the first, pair by pair, and their quartiles.

    RUNBOOK_BIN=target/dist/runbook python3 benches/ab.py 20 31 /tmp/before/runbook target/dist/runbook

A binary may be given settings of its own, `NAME=VALUE,NAME=VALUE@BINARY`, to compare one
binary under two environments (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1@target/dist/runbook`).

The machine's speed moves by several percent over minutes; runs back to back see the same
machine, so a pair's difference is the binaries' (docs/performance.md, section 1).
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def quartiles(values):
    v = sorted(values)
    return v[len(v) // 4], statistics.median(v), v[(3 * len(v)) // 4]


def main():
    if len(sys.argv) < 5:
        raise SystemExit("usage: ab.py LATENCY_MS RUNS BINARY BINARY [BINARY...]")
    latency, n = int(sys.argv[1]), int(sys.argv[2])
    # A binary may carry settings of its own: `MALLOC_ARENA_MAX=2@target/dist/runbook`.
    specs = sys.argv[3:]
    bins = [os.path.abspath(s.rpartition("@")[2]) for s in specs]
    work = tempfile.mkdtemp(prefix="runbook-ab-")
    sb = bench.Sandbox(work, ["raxx-api-prod", "raxx-api-staging"], latency)
    envs = [bench.engine_env(sb, os.path.join(work, f"state-{i}")) for i in range(len(bins))]
    for env, spec in zip(envs, specs):
        settings = spec.rpartition("@")[0]
        env.update(kv.split("=", 1) for kv in settings.split(",") if kv)
    runs = {s: [] for s in specs}
    try:
        for i in range(n):
            order = list(enumerate(bins))
            for k, b in order if i % 2 == 0 else reversed(order):
                spec = specs[k]
                before = sb.requests()
                t = time.perf_counter()
                out = subprocess.run([b, "exec", "postmark", "--yes"], env=envs[k], cwd=work,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                wall = (time.perf_counter() - t) * 1000
                if out.returncode != 0:
                    raise SystemExit(f"{spec}: exit {out.returncode}\n{out.stderr[-2000:]}")
                reqs = sb.state()["requests"][before:]
                if not reqs:
                    raise SystemExit(f"{spec}: the simulators logged no request")
                span = (max(r["end_us"] for r in reqs) - min(r["start_us"] for r in reqs)) / 1000
                runs[spec].append((wall, span, wall - span))
    finally:
        sb.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{n} alternating runs each at {latency} ms per call (medians, ms):")
    for b in specs:
        wall, span, rest = (statistics.median(r[k] for r in runs[b]) for k in range(3))
        print(f"  {b:40} wall {wall:7.1f}  span {span:7.1f}  outside it {rest:6.1f}")
    first = runs[specs[0]]
    for b in specs[1:]:
        q1, med, q3 = quartiles([r[0] - f[0] for r, f in zip(runs[b], first)])
        print(f"  {b} minus the first, pair by pair: median {med:+.1f} ms (quartiles {q1:+.1f}, {q3:+.1f})")


if __name__ == "__main__":
    main()
