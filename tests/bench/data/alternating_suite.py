"""A case timed on a virtual clock whose variant costs 100 µs in one worker process and 125 µs
in the next (tests/bench/test_claims.py: a claim that two trials leave inconclusive and a third
decides).

Worker processes run one after another; each counts itself in ``workers.count`` in the project
the first time it calls the variant: the check's worker is 0, the trials' 1, 2, 3, ...
"""

from __future__ import annotations

import os
from pathlib import Path

from bench import Case, Claim, Grid, register

CALL_COST_S = 100e-6
SLOWER_BY = 1.25  # the variant's cost in the even-numbered workers
_now = [0.0]
_worker: dict[int, int] = {}  # pid -> this worker's number


def virtual_timer() -> float:
    _now[0] += 1e-9  # each read moves the clock a little, as a real clock's does
    return _now[0]


def inputs(params, device):
    return {"n": params["n"]}


def reference(n):
    _now[0] += CALL_COST_S * n
    return float(n)


def _number() -> int:
    pid = os.getpid()
    if pid not in _worker:
        counter = Path("workers.count")
        _worker[pid] = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(_worker[pid] + 1))
    return _worker[pid]


def alternating(n):
    _now[0] += CALL_COST_S * n * (SLOWER_BY if _number() % 2 == 0 else 1.0)
    return float(n)


register(
    Case(
        name="clock.alternating",
        setup=inputs,
        reference=reference,
        variants={"alternating": alternating},
        grids={"quick": Grid(n=[1]), "full": Grid(n=[1])},
        # Without a GPU the CUDA items are collected and skipped: the claim is judged on CPU.
        devices=("cpu", "cuda"),
        claims=[
            Claim("A1", "1.5-3x faster", metric="speedup", variant="alternating", expected=(1.5, 3.0)),
        ],
    )
)
