"""How stable are the claims' verdicts over many runs? The claims whose verdict changed, and the share
of verdicts two runs would have in common.

    python tools/verdict_stability.py RUN1.json RUN2.json [RUN3.json ...]

For every claim judged in all the runs (in the order given): its verdict, estimate and interval in
each run where its verdict ever changed; the share of identical verdicts between consecutive runs;
and, from each claim's verdict frequencies over the runs, the share two runs drawn from them would
have in common (a claim with verdicts v seen with frequencies p_v agrees with probability
sum p_v^2). A bar on identical verdicts between two runs can only be met where that share is above it.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.claims import ClaimResult, audit  # noqa: E402
from bench.results import load_run  # noqa: E402


def _shown(claim: ClaimResult) -> str:
    value = "—" if claim.value is None else f"{claim.value:.4g}"
    interval = f" [{claim.interval[0]:.4g}, {claim.interval[1]:.4g}]" if claim.interval else ""
    return f"{claim.verdict:14s} {value}{interval}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="results files, oldest first")
    args = parser.parse_args()
    if len(args.runs) < 2:
        print("give at least two results files", file=sys.stderr)
        return 2
    runs = [{(c.case, c.id): c for c in audit(load_run(path))} for path in args.runs]
    keys = sorted(set.intersection(*(set(run) for run in runs)))
    if not keys:
        print("the runs have no claim in common", file=sys.stderr)
        return 2
    expected = 0.0
    changed = 0
    for key in keys:
        counts = Counter(run[key].verdict for run in runs)
        expected += sum((n / len(runs)) ** 2 for n in counts.values())
        if len(counts) > 1:
            changed += 1
            claim = runs[0][key]
            print(f"{key[1]} ({key[0]}, {claim.metric}, expected {claim.expected}):")
            for path, run in zip(args.runs, runs, strict=True):
                print(f"    {_shown(run[key])}    {path.name}")
    pairs = [sum(a[k].verdict == b[k].verdict for k in keys) for a, b in itertools.pairwise(runs)]
    n = len(keys)
    print(f"claims judged in all {len(runs)} runs: {n}; verdict changed in at least one: {changed}")
    print("identical verdicts, consecutive runs: " + ", ".join(f"{p} ({100 * p / n:.1f} %)" for p in pairs))
    share = 100 * expected / n
    print(f"identical verdicts expected between two of these runs: {expected:.1f} of {n} ({share:.1f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
