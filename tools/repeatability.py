"""Do a run's numbers hold on a second run? Intervals and claim verdicts of two runs, side by side.

    python tools/repeatability.py FIRST.json SECOND.json

For every (case, point, device, variant) speedup both runs measured: do the two 95 % intervals
overlap, does the second run's estimate lie inside the first run's interval (a calibrated 95 %
interval holds the next estimate about 83 % of the time), how wide are the intervals; and for
every claim: is the verdict the same, and how many measurable claims are inconclusive.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.claims import INCONCLUSIVE, NOT_MEASURABLE, NOT_RUN, OTHER_HARDWARE, audit  # noqa: E402
from bench.compare import compare_run  # noqa: E402
from bench.results import load_run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument(
        "--list", action="store_true", help="print every speedup whose intervals do not overlap"
    )
    args = parser.parse_args()
    runs = [load_run(args.first), load_run(args.second)]
    rows = [
        {(r.case, r.point, r.device, r.variant): r for r in compare_run(run) if r.speedup_ci} for run in runs
    ]
    common = sorted(set(rows[0]) & set(rows[1]))
    overlap = inside = 0
    half_widths, moves = [], []
    for key in common:
        a, b = rows[0][key], rows[1][key]
        assert a.speedup_ci and b.speedup_ci and a.speedup and b.speedup
        (a_lo, a_hi), (b_lo, b_hi) = a.speedup_ci, b.speedup_ci
        overlaps = a_lo <= b_hi and b_lo <= a_hi
        overlap += overlaps
        inside += a_lo <= b.speedup <= a_hi
        half_widths += [(a_hi - a_lo) / 2 / a.speedup, (b_hi - b_lo) / 2 / b.speedup]
        moves.append(abs(math.log(b.speedup / a.speedup)))
        if args.list and not overlaps:
            print(
                f"  no overlap: {key}: {a.speedup:.3g} [{a_lo:.3g}, {a_hi:.3g}] "
                f"then {b.speedup:.3g} [{b_lo:.3g}, {b_hi:.3g}]"
            )
    n = len(common)
    if not n:
        print("the two runs have no speedup with an interval in common", file=sys.stderr)
        return 2
    print(f"speedups with intervals in both runs: {n}")
    print(f"  intervals overlap:                  {overlap} ({100 * overlap / n:.1f} %)")
    print(f"  second estimate in first interval:  {inside} ({100 * inside / n:.1f} %)")
    print(
        f"  median half-width:                  {100 * statistics.median(half_widths):.1f} % of the estimate"
    )
    print(f"  median |log ratio| between runs:    {100 * statistics.median(moves):.1f} %")
    claims = [{(c.case, c.id): c for c in audit(run)} for run in runs]
    shared = sorted(set(claims[0]) & set(claims[1]))
    same = sum(claims[0][k].verdict == claims[1][k].verdict for k in shared)
    print(f"claims in both: {len(shared)}; same verdict: {same} ({100 * same / max(len(shared), 1):.1f} %)")
    for k in shared:
        if claims[0][k].verdict != claims[1][k].verdict:
            print(f"  {k[0]} {k[1]}: {claims[0][k].verdict} then {claims[1][k].verdict}")
    unmeasured = (NOT_MEASURABLE, NOT_RUN, OTHER_HARDWARE)
    for i, run_claims in enumerate(claims, start=1):
        measurable = [c for c in run_claims.values() if c.verdict not in unmeasured]
        inconclusive = sum(c.verdict == INCONCLUSIVE for c in measurable)
        print(
            f"run {i}: {inconclusive} of {len(measurable)} measurable claims inconclusive "
            f"({100 * inconclusive / max(len(measurable), 1):.1f} %)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
