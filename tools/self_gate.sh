#!/usr/bin/env bash
# The harness gates itself: quick runs of a PaCo-2 selection, gated against the committed baseline
# runs for this machine kind in reports/baselines/ (ratio rule; thresholds in ci-rules.toml).
#
#   tools/self_gate.sh          3 runs, then `bench gate` (exit 1 on a regression, 2 without a baseline)
#   tools/self_gate.sh --save   5 runs saved as this machine kind's baseline (commit them)
#
# Each run is its own process: on a shared machine a speedup varies most from one process to the
# next, so the gate compares per-run speedups, and several runs are needed on each side.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH:-.venv/bin/bench}
SELECTION="paco2.mahalanobis or paco2.soc_distance"
OUT=results/self-gate
rm -rf "$OUT" && mkdir -p "$OUT"

runs=3
[[ "${1:-}" == "--save" ]] && runs=5
for i in $(seq 1 "$runs"); do
  # One thread: OpenMP's thread hand-off makes sub-millisecond calls bimodal on a 2-core machine.
  "$BENCH" run --profile quick -k "$SELECTION" --threads 1 --no-probes \
    --json "$OUT/run-$i.json" --report "$OUT/run-$i.md" > "$OUT/run-$i.log" 2>&1 \
    || { cat "$OUT/run-$i.log"; exit 1; }
  echo "self-gate: run $i of $runs done"
done

if [[ "${1:-}" == "--save" ]]; then
  "$BENCH" baseline save "$OUT"/run-*.json --dir reports/baselines
else
  "$BENCH" gate "$OUT"/run-*.json --baseline reports/baselines --rules reports/baselines/ci-rules.toml \
    --json "$OUT/gate.json"
fi
