"""The harness records per-call times exactly as its timer sees them.

Timed against a virtual clock, a call that costs exactly 100 µs (or 300 µs) must come out as that
median, with rounds, iterations and the harness's own checks accounted for. Wall-clock agreement
with timeit is a measurement, not a unit test (it depends on the machine's load): run
`python tools/fidelity.py` on an idle machine for that.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench.results import load_run

from .conftest import DATA, run_in


def test_recorded_median_is_the_per_call_cost(toy_project: Path) -> None:
    shutil.copy(DATA / "clock_suite.py", toy_project / "suites" / "clock.py")
    (toy_project / "suites" / "toy.py").unlink()
    out = toy_project / "clock.json"
    proc = run_in(
        toy_project,
        "-m",
        "pytest",
        "suites",
        "--benchmark-only",
        f"--benchmark-json={out}",
        "--benchmark-timer=suites.clock.virtual_timer",
        "--benchmark-min-rounds=7",
        "--benchmark-max-time=0.01",
        "--benchmark-min-time=0.0003",
        "--bench-no-probes",
        "-p",
        "no:cacheprovider",
        "-q",
    )
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
