#!/usr/bin/env bash
# The harness gates itself on instruction counts: one quick run of a selection that covers every
# family's CPU cases that count in reasonable time under valgrind, with `--counts`, gated against
# the committed baseline in reports/baselines/ (thresholds in ci-rules.toml). Counts are exact, so
# one run on each side is enough; the wall-clock ratios of the same run are reported beside them
# and only warn where the counts are unchanged (or the baseline comes from another CPU model).
#
#   tools/self_gate.sh          one run, then `bench gate` (exit 1 on a regression)
#   tools/self_gate.sh --save   one run saved as this machine kind's baseline (commit it)
#
# Left out, because one item takes minutes under valgrind (about 50x slower than native, and the
# inputs are built under it too): PennyLane-simulated circuits per sample, DCGAN training steps
# and EMA (about 25 s to build one width-64 model), every SeqSetVAE case (one quick point's
# synthetic patients and model take 1.6 s natively, past 120 s under valgrind), multi-process
# cases. And one small call whose count follows the checkout's path: paco2.matching/hungarian_k4
# (180,000 instructions of SciPy and NumPy, 4.4 % apart between two checkouts, from the state of
# glibc's free lists that the counting process leaves; every other item held within 0.55 %).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${BENCH:-.venv/bin/bench}
SELECTION="paco2.mahalanobis or paco2.soc_distance or (paco2.matching and not hungarian_k4) or paco2.covariance \
or dcgan.params \
or (gaussgan.generator and (reference or uniform or fused)) \
or (gaussgan.qubit_scaling and (qubits4 or qubits6) and (torch or fused)) \
or (gaussgan.validation and (two_metrics or kl_)) \
or qmann.memory_read or qmann.forward"
OUT=results/self-gate
rm -rf "$OUT" && mkdir -p "$OUT"

# One thread: OpenMP's thread hand-off makes sub-millisecond calls bimodal on a 2-core machine.
"$BENCH" run --profile quick --device cpu -k "$SELECTION" --threads 1 --no-probes --counts \
  --json "$OUT/run.json" --report "$OUT/run.md" > "$OUT/run.log" 2>&1 \
  || { cat "$OUT/run.log"; exit 1; }
grep -E "^counted|timed," "$OUT/run.log" || true

if [[ "${1:-}" == "--save" ]]; then
  "$BENCH" baseline save "$OUT/run.json" --dir reports/baselines
else
  "$BENCH" gate "$OUT/run.json" --baseline reports/baselines --rules reports/baselines/ci-rules.toml \
    --json "$OUT/gate.json"
fi
