"""Paired rounds: the reference and a variant timed in alternation, for a speedup that drift cancels.

pytest-benchmark times each item on its own, seconds apart from its reference. On a shared machine
the speed of the CPU drifts on that time scale (a neighbour's burst, frequency changes): measured
on the 2-core machine this project runs on, the same item's median moved by 10-30 % from one
process to the next, and a speedup of two separately timed items by as much. Timing the two
implementations in adjacent batches, reference then variant then variant then reference, exposes
both to the same machine speed, so the ratio of each adjacent pair carries little of the drift.
The gate's ratio rule uses these per-pair ratios where both runs have them.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Each side's batch lasts at least this long (and as long as one call of the slower side).
BATCH_S = 0.005
MIN_PAIRS = 5
MAX_PAIRS = 200


@dataclass(frozen=True)
class Paired:
    """Per-pair speedups (reference batch time / variant batch time, per call)."""

    ratios: tuple[float, ...]
    reference_iterations: int
    variant_iterations: int

    @property
    def speedup(self) -> float:
        return float(statistics.median(self.ratios))

    def as_dict(self) -> dict[str, Any]:
        return {
            "speedup": self.speedup,
            "ratios": list(self.ratios),
            "reference_iterations": self.reference_iterations,
            "variant_iterations": self.variant_iterations,
        }


def _once(fn: Callable[[], Any], timer: Callable[[], float]) -> float:
    started = timer()
    fn()
    return max(timer() - started, 1e-9)


def _batch(fn: Callable[[], Any], n: int, timer: Callable[[], float]) -> float:
    started = timer()
    for _ in range(n):
        fn()
    return (timer() - started) / n


def paired_speedup(
    reference: Callable[[], Any],
    variant: Callable[[], Any],
    budget_s: float,
    *,
    batch_s: float = BATCH_S,
    min_pairs: int = MIN_PAIRS,
    max_pairs: int = MAX_PAIRS,
    cap_s: float = math.inf,
    timer: Callable[[], float] = time.perf_counter,
    estimates: tuple[float, float] | None = None,
) -> Paired | None:
    """Alternate batches of the two callables until `budget_s` has passed (at least `min_pairs`).

    The order flips every pair (R V, V R, ...), so a steady speed-up or slow-down of the machine
    within a pair favours neither side on average. None when `min_pairs` pairs would take longer
    than `cap_s` (a reference of seconds per call): the item keeps its unpaired timings only.
    `estimates` are the seconds per call of reference and variant where they are already known
    (their medians, just timed); without them one call of each side measures it.
    """
    if budget_s < 0 or min_pairs < 1 or max_pairs < min_pairs:
        raise ValueError("paired_speedup needs budget_s >= 0 and 1 <= min_pairs <= max_pairs")
    if estimates is not None and min(estimates) > 0:
        # No calibration calls: for a reference of seconds per call that is past the cap anyway,
        # they would cost seconds for nothing.
        ref_once, var_once = estimates
    else:
        ref_once, var_once = _once(reference, timer), _once(variant, timer)
    # Both batches span the same time (at least batch_s, at least one call of the slower side), so
    # a slow spell of the machine of that length weighs on both sides alike.
    window = max(batch_s, ref_once, var_once)
    n_ref, n_var = math.ceil(window / ref_once), math.ceil(window / var_once)
    if min_pairs * (n_ref * ref_once + n_var * var_once) > cap_s:
        return None
    ratios: list[float] = []
    started = timer()
    while len(ratios) < min_pairs or (len(ratios) < max_pairs and timer() - started < budget_s):
        if len(ratios) % 2 == 0:
            t_ref = _batch(reference, n_ref, timer)
            t_var = _batch(variant, n_var, timer)
        else:
            t_var = _batch(variant, n_var, timer)
            t_ref = _batch(reference, n_ref, timer)
        ratios.append(t_ref / max(t_var, 1e-12))
    return Paired(tuple(ratios), n_ref, n_var)
