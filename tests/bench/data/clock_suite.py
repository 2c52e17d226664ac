"""A case whose every call costs exactly 100 µs on a virtual clock (tests/bench/test_fidelity.py).

`virtual_timer` is given to pytest-benchmark as its timer (`--benchmark-timer`), so the figures the
harness records can be checked exactly: no other process's time slice, no frequency scaling.
"""

from __future__ import annotations

from bench import Case, Grid, register

CALL_COST_S = 100e-6
# Each read moves the clock a little, as a real clock's does (pytest-benchmark's calibration needs it).
READ_COST_S = 1e-9
_now = [0.0]


def virtual_timer() -> float:
    _now[0] += READ_COST_S
    return _now[0]


def inputs(params, device):
    return {"n": params["n"]}


def costly(n):
    _now[0] += CALL_COST_S * n
    return float(n)


register(
    Case(
        name="clock.fixed_cost",
        setup=inputs,
        reference=costly,
        variants={},
        grids={"quick": Grid(n=[1, 3]), "full": Grid(n=[1, 3])},
        devices=("cpu",),
    )
)
