"""Drives benches/run.sh: starts `runbook sandbox` processes, runs the engine and the peer
scripts alternately, and prints tables of medians. Only the standard library."""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.abspath(os.environ.get("RUNBOOK_BIN", os.path.join(ROOT, "target/dist/runbook")))
PEER = os.path.join(ROOT, "benches/peer")
LATENCY_MS = 20
# The SOP's own chain of dependent vendor calls (docs/performance.md, "The floor"): read the
# stored token; check it at Postmark with the consumers' config read alongside; check the new
# token; send the test email; store it; set it on every app (config:set restarts each: the
# SOP's "after dyno restart"); read their config back; Raptor's test email, with the apps'
# log sessions opened alongside (a session's lines are those logged when it is read, so
# opening it does not wait for the email); read the logs; check the old token is refused.
# The dashboard steps are the operator's, not vendor calls. (Counted as 12 until the fifth
# session: the sessions opened after the email, and a second restart of every app.)
SOP_CHAIN = 10


def scenario(apps, faults, pool=None):
    """A scenario TOML: the SOP's server and secret, `apps` Heroku apps holding the token;
    `pool` is Heroku's request pool as (capacity, per_minute), unlimited when None."""
    lines = []
    if faults:
        lines.append("faults = [" + ", ".join(f'"{f}"' for f in faults) + "]")
    lines += [
        # Postmark's processing time is Postmark's, not the engine's: processed at once.
        "[postmark]", "token_limit = 3", "delivery_ms = 0",
        "[[postmark.servers]]", 'name = "raxx-prod"', "id = 4242",
        "[infisical]", 'project_id = "raxx-project"',
        "[[infisical.secrets]]", 'name = "POSTMARK_SERVER_TOKEN"',
        'versions = ["@random", "@postmark:raxx-prod"]',
        "[heroku]",
        # Unless measuring the pool: the engine, not Heroku's pool (4,500 requests, 75 a
        # minute), which a 1,000-app fan-out repeated would drain.
        "[heroku.rate_limit]",
        f"capacity = {pool[0]}" if pool else "capacity = 100000000",
        f"per_minute = {pool[1]}" if pool else "per_minute = 75",
    ]
    for app in apps:
        lines += ["[[heroku.apps]]", f'name = "{app}"',
                  'config = { POSTMARK_SERVER_TOKEN = "@postmark:raxx-prod" }',
                  # The engine's time, not a simulated boot's.
                  'boot_ms = 0']
    return "\n".join(lines) + "\n"


class Sandbox:
    def __init__(self, work, apps, latency, pool=None):
        # Every vendor the rotation calls (GitHub: discovery's repository listing; without
        # latency its instant answer made a false link in the critical path).
        faults = [f"{v}=latency={latency}" for v in ("postmark", "infisical", "heroku", "github", "raptor")] if latency else []
        path = os.path.join(work, f"scenario-{len(apps)}-{latency}-{pool}.toml")
        with open(path, "w") as f:
            f.write(scenario(apps, faults, pool))
        self.proc = subprocess.Popen([BIN, "sandbox", "--scenario", path], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.env = {}
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit("the sandbox did not start")
            if line.strip() == "# ready":
                break
            if line.startswith("export "):
                k, v = line[len("export "):].strip().split("=", 1)
                self.env[k] = v.strip("'")

    def state(self):
        url = self.env["POSTMARK_API_URL"] + "/_sandbox/state"
        with urllib.request.urlopen(url) as r:
            return json.load(r)

    def requests(self):
        return len(self.state()["requests"])

    def refused(self):
        """Requests Heroku's pool refused (429) so far."""
        return self.state()["heroku"]["rate_limit"]["refused"]

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def timed(cmd, env, cwd):
    """Runs cmd: (wall s, cpu s). The wall is timed here, around the child's start and its
    reaping; the CPU is the kernel's, from wait4. Until 2026-12-07 the child ran under
    `/usr/bin/time`: its own exec (about 1 ms: `perf stat -r 100 /bin/true`) was in every
    wall of both sides, and the CPU it printed was cut to 10 ms (20 ms for the engine's
    28 at 0 ms)."""
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{cmd[0]} failed:\n{err.read().decode(errors='replace')}")
    return wall, usage.ru_utime + usage.ru_stime


def peak_rss(cmd, env, cwd):
    """Peak RSS of one run of cmd, KiB, from `/usr/bin/time` (a run of its own: a child
    started from here counts this Python's pages from before its exec)."""
    out = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], env=env, cwd=cwd,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed:\n{out.stderr}")
    return int(out.stderr.strip().splitlines()[-1])


def engine_env(sb, state):
    env = dict(os.environ, **sb.env)
    env.update(RUNBOOK_STATE_DIR=state, RUNBOOK_SANDBOX_DASHBOARD=sb.env["POSTMARK_API_URL"],
               RUNBOOK_PATH=os.path.join(ROOT, "runbooks"), CI="1")
    return env


def depth(reqs):
    """The critical path of a run's vendor calls: the longest chain of calls each of which
    started after the one before it had answered (calls that overlap ran together)."""
    reqs = sorted(reqs, key=lambda r: r["start_us"])
    chain = []
    for i, r in enumerate(reqs):
        before = [chain[j] for j in range(i) if reqs[j]["end_us"] <= r["start_us"]]
        chain.append(1 + max(before, default=0))
    return max(chain, default=0)


def rounds(reqs):
    """The calls in order, grouped into the rounds that ran together, as one line each, with
    the engine's own time before the round: from the end of the round before it (or, for the
    first, from the first request) to the round's first request, in ms."""
    reqs = sorted(reqs, key=lambda r: r["start_us"])
    lines, group, end, gap = [], [], -1, 0.0
    for r in reqs:
        if group and r["start_us"] >= end:
            lines.append(f"+{gap:5.1f} ms  " + " | ".join(group))
            gap = (r["start_us"] - end) / 1000
            group = []
        group.append(f'{r["vendor"]} {r["method"]} {r["path"]}')
        end = max(end, r["end_us"]) if len(group) > 1 else r["end_us"]
    if group:
        lines.append(f"+{gap:5.1f} ms  " + " | ".join(group))
    return lines


def end_to_end(work, n):
    rows = []
    for latency in (0, LATENCY_MS):
        sb = Sandbox(work, ["raxx-api-prod", "raxx-api-staging"], latency)
        env = engine_env(sb, os.path.join(work, f"state-{latency}"))
        engine, peer = [], []
        engine_cmd = [BIN, "exec", "postmark", "--yes"]
        peer_cmd = ["bash", os.path.join(PEER, "postmark.sh")]
        calls, paths = {}, {}
        # How long the simulators took per call: the injected latency and their handler.
        served = []
        for _ in range(n):
            before = sb.requests()
            engine.append(timed(engine_cmd, env, work))
            mid = sb.requests()
            peer.append(timed(peer_cmd, env, work))
            log = sb.state()["requests"]
            # The sandbox does not log its control routes, so the bench's own reads of the
            # state are not in the log: every request here is one side's. (Until 2026-12-05
            # each side's last request, the revoke's check, was dropped as if it were one.)
            mine = {"engine": log[before:mid], "peer": log[mid:]}
            calls = {side: len(r) for side, r in mine.items()}
            paths = {side: depth(r) for side, r in mine.items()}
            served += [(r["end_us"] - r["start_us"]) / 1000 for r in log[before:]]
            if os.environ.get("BENCH_ROUNDS") and latency:
                reqs = mine["engine"]
                span = (max(r["end_us"] for r in reqs) - min(r["start_us"] for r in reqs)) / 1000
                print(f"\nengine rounds at {latency} ms (wall {engine[-1][0] * 1000:.0f} ms, "
                      f"first request to last answer {span:.0f} ms):")
                for i, line in enumerate(rounds(mine["engine"]), 1):
                    print(f"  {i:>2}. {line}")
        rss = {"engine": peak_rss(engine_cmd, env, work), "peer": peak_rss(peer_cmd, env, work)}
        sb.stop()
        rows.append((latency, engine, peer, calls, paths, statistics.median(served), rss))
    print("\n1. Postmark rotation end to end (median of %d alternating runs)" % n)
    print(f"{'latency':>8} {'side':<8} {'wall ms':>9} {'cpu ms':>8} {'rss MiB':>8} {'calls':>6} {'path':>5} {'floor ms':>9} {'wall/floor':>10} {'SOP floor':>10} {'wall/SOP':>9}")
    for latency, engine, peer, calls, paths, served, rss in rows:
        for side, runs in (("engine", engine), ("peer", peer)):
            wall = statistics.median(r[0] for r in runs) * 1000
            cpu = statistics.median(r[1] for r in runs) * 1000
            # Its own floor: its critical path (dependent calls, measured at the simulators)
            # x the latency; the SOP's floor: the SOP's own chain of dependent calls.
            floor = paths[side] * latency
            sop = SOP_CHAIN * latency
            ratio = f"{wall / floor:.2f}" if floor else "-"
            sop_ratio = f"{wall / sop:.2f}" if sop else "-"
            print(f"{latency:>6}ms {side:<8} {wall:>9.0f} {cpu:>8.0f} {rss[side] / 1024:>8.1f} {calls[side]:>6} {paths[side]:>5} {floor:>9} {ratio:>10} {sop:>10} {sop_ratio:>9}")
        e = statistics.median(r[0] for r in engine)
        p = statistics.median(r[0] for r in peer)
        print(f"{'':>8} peer/engine wall ratio: {p / e:.1f}x; "
              f"a call took the simulators {served:.2f} ms (median)")


def fanout(work):
    print("\n2. Fan-out: propagate to N Heroku apps, 20 ms latency per call")
    print(f"{'apps':>6} {'engine ms':>10} {'engine c=32 ms':>15} {'bash loop ms':>13}")
    for n in (1, 10, 100, 1000):
        apps = [f"app-{i:04d}" for i in range(1, n + 1)]
        sb = Sandbox(work, apps, LATENCY_MS)
        env = engine_env(sb, os.path.join(work, f"fan-{n}"))
        cmd = [BIN, "exec", os.path.join(ROOT, "benches/fanout.rhai"), "--yes", "--param", f"count={n}"]
        engine = timed(cmd, env, work)[0] * 1000
        wide = timed(cmd, dict(env, RUNBOOK_CONCURRENCY="32"), work)[0] * 1000
        peer = timed(["bash", os.path.join(PEER, "fanout.sh"), str(n)], env, work)[0] * 1000
        sb.stop()
        print(f"{n:>6} {engine:>10.0f} {wide:>15.0f} {peer:>13.0f}")


def timed_status(cmd, env, cwd):
    """Like `timed`, but a failing command is a result: (wall s, exit code)."""
    t = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t, out.returncode


def rate_limited(work):
    n = 1000
    apps = [f"app-{i:04d}" for i in range(1, n + 1)]
    print(f"\n5. Rate limits: propagate to {n} Heroku apps under a request pool, {LATENCY_MS} ms latency")
    print(f"{'pool':<22} {'side':<26} {'wall s':>7} {'exit':>5} {'429s':>6} {'floor s':>8} {'wall/floor':>10}")
    # Heroku's pool, and one scaled so that 1,000 requests must wait for the refill.
    for capacity, per_minute in ((4500, 75), (200, 6000)):
        per_sec = per_minute / 60
        # The fastest the pool allows, or (when it does not bind) the fan-out's own bound:
        # 8 at a time, one round trip each.
        pool_floor = max(0.0, (n - capacity) / per_sec)
        floor = max(pool_floor, n / 8 * LATENCY_MS / 1000)
        sb = Sandbox(work, apps, LATENCY_MS, (capacity, per_minute))
        env = engine_env(sb, os.path.join(work, f"pool-{capacity}"))
        cmd = [BIN, "exec", os.path.join(ROOT, "benches/fanout.rhai"), "--yes", "--param", f"count={n}"]
        sides = (("engine (paced)", cmd, env),
                 ("engine, pacing off", cmd, dict(env, RUNBOOK_HEROKU_REFILL_PER_MINUTE="0")),
                 ("bash loop", ["bash", os.path.join(PEER, "fanout.sh"), str(n)], env))
        for side, c, e in sides:
            before = sb.refused()
            wall, code = timed_status(c, e, work)
            refused = sb.refused() - before
            print(f"{capacity}/{per_minute} a min{'':<8} {side:<26} {wall:>7.1f} {code:>5} {refused:>6} {floor:>8.1f} {wall / floor:>10.2f}")
            # Let the pool refill before the next side.
            time.sleep(min(60.0, capacity / per_sec))
        sb.stop()


def authoring(work):
    tree = os.path.join(work, "many")
    template = open(os.path.join(ROOT, "tests/fixtures/clean.rhai")).read()
    for d in range(100):
        sub = os.path.join(tree, f"team-{d:02d}", "rotations")
        os.makedirs(sub)
        for f in range(100):
            with open(os.path.join(sub, f"rb-{d:02d}-{f:02d}.rhai"), "w") as out:
                out.write(template.replace('id: "clean"', f'id: "rb-{d:02d}-{f:02d}"'))
    env = dict(os.environ, RUNBOOK_STATE_DIR=os.path.join(work, "state-many"), RUNBOOK_PATH=tree)
    print("\n3. Authoring scale: 10,000 runbooks in 100 folders")
    print(f"{'command':<22} {'wall ms':>9} {'rss MiB':>8}")
    for name, cmd in (("check DIR", [BIN, "check", tree]),
                      ("list (RUNBOOK_PATH)", [BIN, "list", "--json"])):
        wall = timed(cmd, env, work)[0]
        print(f"{name:<22} {wall * 1000:>9.0f} {peak_rss(cmd, env, work) / 1024:>8.1f}")


def startup(work):
    print("\n4. Start-up (median of 50)")
    env = dict(os.environ, RUNBOOK_STATE_DIR=os.path.join(work, "state-start"))
    for name, cmd in (("runbook --version", [BIN, "--version"]),
                      ("runbook show postmark", [BIN, "show", "postmark"]),
                      ("runbook check postmark", [BIN, "check", "runbooks/postmark.rhai"])):
        times = []
        for _ in range(50):
            t = time.perf_counter()
            subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - t)
        print(f"{name:<26} {statistics.median(times) * 1000:>7.1f} ms")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    work = tempfile.mkdtemp(prefix="runbook-bench-")
    try:
        print(f"machine: {os.cpu_count()} cores; binary: {BIN}")
        sections = {"end_to_end": lambda: end_to_end(work, n), "fanout": lambda: fanout(work),
                    "authoring": lambda: authoring(work), "startup": lambda: startup(work),
                    "rate_limited": lambda: rate_limited(work)}
        only = os.environ.get("BENCH_ONLY", "").split(",")
        for name, run in sections.items():
            if only == [""] or name in only:
                run()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
