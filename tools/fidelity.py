"""Harness fidelity: the harness's median per call against timeit's, in the same process.

Runs two fixed CPU workloads (a 256 x 256 fp32 matmul and a ~10 µs pure-Python loop) through the
harness (pytest + the bench plugin, in-process), then times the same calls with timeit, and prints
harness median / timeit median. Exit status 1 when a ratio is outside 1 ± tolerance.

    python tools/fidelity.py [--tolerance 0.05] [--max-time 1.0]
"""

from __future__ import annotations

import argparse
import functools
import importlib
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
    args = parser.parse_args()

    project = Path(tempfile.mkdtemp(prefix="bench-fidelity-"))
    try:
        (project / "suites").mkdir()
        (project / "suites" / "__init__.py").write_text("")
        shutil.copy(SUITE, project / "suites" / "fidelity.py")
        (project / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
        os.chdir(project)
        sys.path.insert(0, str(project))
        out = project / "fidelity.json"
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
        from bench.results import load_run

        run = load_run(out)
        suite = importlib.import_module("suites.fidelity")
        worst = 0.0
        for record in run.records:
            setup = suite.matmul_inputs if record.case == "fidelity.matmul" else suite.python_inputs
            fn = suite.matmul if record.case == "fidelity.matmul" else suite.python_loop
            reference = timeit_median(functools.partial(fn, **setup(dict(record.params), "cpu")))
            ratio = record.median_s / reference
            worst = max(worst, abs(ratio - 1))
            print(
                f"{record.case:18} harness {record.median_s * 1e6:9.2f} µs   timeit {reference * 1e6:9.2f} µs"
                f"   ratio {ratio:.3f}"
            )
        print(f"worst deviation {worst:.1%} (tolerance {args.tolerance:.0%})")
        return 0 if worst <= args.tolerance else 1
    finally:
        shutil.rmtree(project, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
