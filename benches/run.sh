#!/usr/bin/env bash
# Benchmarks (not run by CI). Prints five tables:
#   1. the Postmark rotation end to end: engine vs the bash+curl+jq peer, with and without
#      20 ms latency on every vendor route, against the floor of sequential calls x 20 ms;
#   2. fan-out: propagating to 1, 10, 100 and 1000 Heroku apps with 20 ms latency per call;
#   3. authoring scale: `check` and `list` over 10,000 generated runbooks;
#   4. start-up: `--version`, `show postmark` (and the Criterion micro-benchmark);
#   5. rate limits: a 1,000-app fan-out under Heroku's request pool, paced, unpaced, bash.
# Usage: benches/run.sh [N]   (N alternating end-to-end runs per side, default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
# The binary operators install (Cargo.toml, `[profile.dist]`).
cargo build --profile dist --quiet
export RUNBOOK_BIN="${CARGO_TARGET_DIR:-target}/dist/runbook"
python3 benches/bench.py "${1:-15}"
if [ "${CRITERION:-1}" = 1 ]; then
  cargo bench --quiet --bench startup -- --noplot 2>/dev/null | grep -E "^[a-z].*|time:" || true
fi
