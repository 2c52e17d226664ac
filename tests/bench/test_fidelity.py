"""The harness records per-call times exactly as its timer sees them.

Timed against a virtual clock, a call that costs exactly 100 µs (or 300 µs) must come out as that
median, with rounds, iterations and the harness's own checks accounted for. Wall-clock agreement
with timeit depends on the machine's load: the second test is the loose version (25 %) of
`python tools/fidelity.py`, the 5 % measurement to run on an idle machine.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.environment import cpu_times, others_share, own_cpu_seconds
from bench.results import load_run

from .conftest import clock_run, harness_env

TOOL = Path(__file__).resolve().parents[2] / "tools" / "fidelity.py"
TOLERANCE = 0.25  # the loose check's bound on the harness's median against timeit's


def test_recorded_median_is_the_per_call_cost(toy_project: Path, counts_finished: None) -> None:
    out = toy_project / "clock.json"
    proc = clock_run(toy_project, "clock_suite.py", out, min_rounds=7)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = load_run(out)
    medians = {rec.params["n"]: rec.median_s for rec in run.records}
    assert set(medians) == {1, 3}
    # 100 µs per unit of n, plus a few nanoseconds of clock reads spread over the iterations.
    assert abs(medians[1] - 100e-6) < 0.01 * 100e-6, medians
    assert abs(medians[3] - 300e-6) < 0.01 * 300e-6, medians
    raw = {b["name"]: b["stats"] for b in json.loads(out.read_text())["benchmarks"]}
    assert all(stats["rounds"] >= 7 for stats in raw.values()), raw
    # A 100 µs call is shorter than the 300 µs minimum round: calls are batched, and the median is per call.
    assert raw["clock.fixed_cost[n1-cpu-reference]"]["iterations"] >= 3, raw


def test_wall_clock_median_is_loosely_timeits(counts_finished: None) -> None:
    """The loose version of tools/fidelity.py: three bracketed pairs, median ratio within 25 %."""
    # Other processes' time slices land in some timings and not others: a comparison of two timing
    # methods means nothing then. What they take is measured over a second, not read off the load
    # average, which is a minute's decaying mean and still counts the session's counting passes
    # (two cores' worth) for a minute after they have ended.
    start, own = cpu_times(), own_cpu_seconds()
    time.sleep(1.0)
    others = others_share(start, cpu_times(), own_cpu_seconds() - own)
    if others is not None and others > 0.5:
        pytest.skip(f"machine busy (other processes used {others:.0%} of the cores over a second)")
    proc = subprocess.run(
        [
            sys.executable,
            str(TOOL),
            "--tolerance",
            str(TOLERANCE),
            "--max-time",
            "0.3",
            "--timeit-budget",
            "0.3",
            "--pairs",
            "3",
            "--threads",
            "1",
        ],
        env=harness_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    drifts = [float(d) / 100 for d in re.findall(r"median drift (\d+(?:\.\d+)?)%", proc.stdout)]
    if proc.returncode != 0 and drifts and max(drifts) > TOLERANCE / 2:
        # timeit's own brackets, before and after each harness run, moved by more than half the
        # tolerance: the machine (a neighbour on the host, which neither load nor steal need
        # show) is too noisy for two timing methods to be compared at 25 %. Seen once on the
        # 2-core Xeon VM (2026-12-03): timeit against itself 21 % and 30 %, worst deviation 38 %.
        pytest.skip(f"timeit moved by up to {max(drifts):.0%} against itself: too noisy to compare")
    spreads = [float(d) / 100 for d in re.findall(r"largest spread (\d+(?:\.\d+)?)%", proc.stdout)]
    if proc.returncode != 0 and spreads and max(spreads) > TOLERANCE / 2:
        # The same for the harness's trials, seconds apart within one run: on the 2-core Xeon VM
        # (2026-12-03) the host flipped between two speeds every few seconds (a 10 µs Python loop
        # at 7 or 11 µs, whatever ran before), so the harness and timeit's brackets measured
        # different machines: ratios 0.61-1.81 over sixteen pairs, with one harness schedule or
        # the other.
        pytest.skip(f"the harness's trials moved by up to {max(spreads):.0%} against each other: too noisy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fidelity.matmul    median ratio over 3 pairs" in proc.stdout, proc.stdout
    assert "fidelity.python    median ratio over 3 pairs" in proc.stdout, proc.stdout
