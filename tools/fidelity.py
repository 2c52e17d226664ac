"""Harness fidelity: the harness's median per call against timeit's, in the same process.

Runs two fixed CPU workloads (a 256 x 256 fp32 matmul and a ~10 µs pure-Python loop) through the
harness (pytest + the bench plugin, in-process), then times the same calls with timeit, and prints
harness median / timeit median. Each of `--pairs` pairs times with timeit just before and just
after one harness run, in the same process; the reference is their geometric mean and the ratio
reported is the median over the pairs, so a drift of the machine's speed between one measurement
and the next (frequency, a neighbour's burst) does not pass for a harness error. timeit before ÷
timeit after is printed too: that is the noise floor any timer comparison on this machine has.
Exit status 1 when a ratio is outside 1 ± tolerance.

    python tools/fidelity.py [--tolerance 0.05] [--max-time 1.0] [--pairs 5] [--threads N]
                             [--timeit-budget 1.0]

`--threads 1` takes OpenMP's thread hand-off out of the matmul, whose per-call time is otherwise
bimodal on a 2-core machine whichever timer measures it.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import math
import os
import shutil
import statistics
import sys
import tempfile
import timeit
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SUITE = HERE.parent / "tests" / "bench" / "data" / "fidelity_suite.py"


def timeit_median(fn, round_s: float = 0.0005, budget_s: float = 1.0) -> float:
    """timeit's median per-call time, with repeats as short as the harness's rounds.

    Short repeats matter on a shared machine: a long repeat always contains the other processes'
    time slices, a short one mostly does not, so long repeats and short rounds would measure
    different things.
    """
    timer = timeit.Timer(fn)
    single = min(timer.repeat(repeat=3, number=1))
    number = max(1, round(round_s / max(single, 1e-9)))
    repeats = max(20, int(budget_s / max(single * number, 1e-9)))
    return statistics.median(t / number for t in timer.repeat(repeats, number))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument("--max-time", type=float, default=1.0, help="pytest-benchmark seconds per item")
    parser.add_argument("--pairs", type=int, default=5, help="harness/timeit alternations")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--timeit-budget", type=float, default=1.0, help="timeit seconds per measurement")
    args = parser.parse_args()
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)

    project = Path(tempfile.mkdtemp(prefix="bench-fidelity-"))
    try:
        (project / "suites").mkdir()
        (project / "suites" / "__init__.py").write_text("")
        shutil.copy(SUITE, project / "suites" / "fidelity.py")
        (project / "pytest.ini").write_text("[pytest]\npythonpath = .\nbench_suites = suites\n")
        os.chdir(project)
        sys.path.insert(0, str(project))
        suite = importlib.import_module("suites.fidelity")
        workloads = {
            "fidelity.matmul": functools.partial(suite.matmul, **suite.matmul_inputs({"n": 256}, "cpu")),
            "fidelity.python": functools.partial(suite.python_loop, **suite.python_inputs({"n": 150}, "cpu")),
        }
        ratios: dict[str, list[float]] = {}
        controls: dict[str, list[float]] = {}
        spreads: dict[str, list[float]] = {}
        for pair in range(args.pairs):
            # timeit just before and just after the harness: their geometric mean is the reference,
            # and their ratio is the control, the machine's own drift over one harness run.
            before = {case: timeit_median(fn, budget_s=args.timeit_budget) for case, fn in workloads.items()}
            out = project / f"fidelity-{pair}.json"
            code = pytest.main(
                [
                    "suites",
                    "--benchmark-only",
                    f"--benchmark-json={out}",
                    "--benchmark-quiet",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "--bench-no-probes",
                    f"--benchmark-max-time={args.max_time}",
                    "--benchmark-min-time=0.0005",
                ]
            )
            if code != 0:
                print(f"the harness run failed (pytest exit {code})")
                return 2
            after = {case: timeit_median(fn, budget_s=args.timeit_budget) for case, fn in workloads.items()}
            from bench.results import load_run

            for record in load_run(out).records:
                reference = math.sqrt(before[record.case] * after[record.case])
                ratio = record.median_s / reference
                ratios.setdefault(record.case, []).append(ratio)
                controls.setdefault(record.case, []).append(before[record.case] / after[record.case])
                # The harness's trials against each other: the machine's own moves during the run.
                medians = [statistics.median(t) for t in record.trials if t]
                spread = max(medians) / min(medians) - 1 if medians else 0.0
                spreads.setdefault(record.case, []).append(spread)
                print(
                    f"pair {pair + 1}  {record.case:18} harness {record.median_s * 1e6:9.2f} µs"
                    f"   timeit {before[record.case] * 1e6:9.2f} / {after[record.case] * 1e6:9.2f} µs"
                    f"   ratio {ratio:.3f}   trials spread {spread:.1%}"
                )
        worst = 0.0
        for case, values in ratios.items():
            ratio = statistics.median(values)
            drift = statistics.median(abs(c - 1) for c in controls[case])
            worst = max(worst, abs(ratio - 1))
            print(
                f"{case:18} median ratio over {len(values)} pairs {ratio:.3f}"
                f"   (timeit against itself across one harness run: median drift {drift:.1%};"
                f" the harness's trials against each other: largest spread {max(spreads[case]):.1%})"
            )
        print(f"worst deviation {worst:.1%} (tolerance {args.tolerance:.0%})")
        return 0 if worst <= args.tolerance else 1
    finally:
        shutil.rmtree(project, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
