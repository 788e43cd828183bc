"""Where a rotation's time over the floor goes: from the process's start to the first vendor
request, between the rounds of calls (a round: calls that overlapped at the simulators), and
from the last answer to the exit. Medians over N runs against one sandbox; the simulators'
clock is matched to this one with a logged request first.

    RUNBOOK_BIN=target/dist/runbook python3 benches/gaps.py 20 11    # latency ms, runs
"""

import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def offset(sb):
    """The simulators' clock (µs since their start) minus this one's monotonic clock, in s:
    the least of a few requests' arrival less their send (the rest is the client's own)."""
    host, port = sb.env["POSTMARK_API_URL"].split("//")[1].split("/")[0].split(":")
    conn = http.client.HTTPConnection(host, int(port))
    best = None
    for _ in range(9):
        before = sb.requests()
        t0 = time.monotonic()
        conn.request("GET", "/server")
        conn.getresponse().read()
        got = sb.state()["requests"][before]["start_us"] / 1e6 - t0
        best = got if best is None else min(best, got)
    return best


def rounds(reqs):
    """The calls grouped into rounds that ran together, in order."""
    groups, end = [], -1
    for r in sorted(reqs, key=lambda r: r["start_us"]):
        if groups and r["start_us"] < end:
            groups[-1].append(r)
            end = max(end, r["end_us"])
        else:
            groups.append([r])
            end = r["end_us"]
    return groups


def main():
    latency = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 11
    work = tempfile.mkdtemp(prefix="runbook-gaps-")
    sb = bench.Sandbox(work, ["raxx-api-prod", "raxx-api-staging"], latency)
    env = bench.engine_env(sb, os.path.join(work, "state"))
    off = offset(sb)
    runs = []
    try:
        for _ in range(n):
            before = sb.requests()
            t0 = time.monotonic()
            out = subprocess.run([bench.BIN, "exec", "postmark", "--yes"], env=env, cwd=work,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            t1 = time.monotonic()
            if out.returncode != 0:
                raise SystemExit(out.stderr[-2000:])
            groups = rounds(sb.state()["requests"][before:])
            head = (groups[0][0]["start_us"] / 1e6 - off - t0) * 1000
            ends = [max(r["end_us"] for r in g) for g in groups]
            gaps = [(g[0]["start_us"] - e) / 1000 for g, e in zip(groups[1:], ends)]
            tail = (t1 - (ends[-1] / 1e6 - off)) * 1000
            runs.append(((t1 - t0) * 1000, head, gaps, tail))
    finally:
        sb.stop()
    med = statistics.median
    print(f"{n} rotations at {latency} ms: wall {med(r[0] for r in runs):.1f} ms; "
          f"start to first request {med(r[1] for r in runs):.2f} ms; "
          f"last answer to exit {med(r[3] for r in runs):.2f} ms")
    k = min(len(r[2]) for r in runs)
    print("between rounds (ms): " + " ".join(f"{med(r[2][j] for r in runs):.2f}" for j in range(k))
          + f"; in all {med(sum(r[2]) for r in runs):.1f}")


if __name__ == "__main__":
    main()
