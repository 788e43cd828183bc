"""A rotation's start against a store with a history: the Postmark rotation at 0 ms per
call with a fresh store, then with 1,000 more settled runs in it (the first run's journal
copied), for each binary given, runs alternated. Every start asks whether an earlier run
of its rotation is unfinished, from each run's last journal line.

    python3 benches/history.py files BINARY [BINARY...]
    python3 benches/history.py postgres://USER:PASS@HOST/DB BINARY [BINARY...]

The PostgreSQL URL names a role that may create databases: the bench makes `rb_history`
(dropped first) and keeps the runs there.
"""

import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

RUNS = 7
HISTORY = 1000


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    store, bins = sys.argv[1], [os.path.abspath(b) for b in sys.argv[2:]]
    work = tempfile.mkdtemp(prefix="runbook-history-")
    sb = bench.Sandbox(work, ["raxx-api-prod", "raxx-api-staging"], 0)
    env = bench.engine_env(sb, os.path.join(work, "state"))
    env["RUNBOOK_ACTOR"] = "bench"
    if store != "files":
        subprocess.run(["psql", store, "-qc", "DROP DATABASE IF EXISTS rb_history"], check=True)
        subprocess.run(["psql", store, "-qc", "CREATE DATABASE rb_history"], check=True)
        env["RUNBOOK_STATE_URL"] = store.rsplit("/", 1)[0] + "/rb_history"

    def rotation(b):
        t = time.perf_counter()
        out = subprocess.run([b, "exec", "postmark", "--yes"], env=env, cwd=work,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{b}: exit {out.returncode}\n{out.stderr[-2000:]}")
        return (time.perf_counter() - t) * 1000

    def medians():
        walls = {b: [] for b in bins}
        for _ in range(RUNS):
            for b in bins:
                walls[b].append(rotation(b))
        return {b: statistics.median(w) for b, w in walls.items()}

    try:
        rotation(bins[0])
        fresh = medians()
        if store == "files":
            runs = os.path.join(work, "state", "runs")
            first = sorted(glob.glob(os.path.join(runs, "*.jsonl")))[0]
            for i in range(HISTORY):
                shutil.copy(first, os.path.join(runs, f"20250101T000000{i:03d}Z-{i:06x}.jsonl"))
        else:
            subprocess.run(["psql", env["RUNBOOK_STATE_URL"], "-qc", f"""
                INSERT INTO runbook_journal (run_id, line)
                SELECT 'history-' || lpad(g::text, 5, '0'), j.line
                FROM runbook_journal j, generate_series(1, {HISTORY}) g
                WHERE j.run_id = (SELECT min(run_id) FROM runbook_journal)
                ORDER BY g, j.seq"""], check=True)
        more = medians()
    finally:
        sb.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"the rotation at 0 ms per call, {store} store, median of {RUNS} runs each (ms):")
    for b in bins:
        print(f"  {b:40} fresh {fresh[b]:7.1f}   with {HISTORY} runs more {more[b]:7.1f}")


if __name__ == "__main__":
    main()
