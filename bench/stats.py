"""Medians, spreads and intervals of timing rounds (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

MAX_BOOTSTRAP_SAMPLES = 1000


def median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=float)))


def iqr(values: Sequence[float]) -> float:
    q1, q3 = np.percentile(np.asarray(values, dtype=float), [25, 75])
    return float(q3 - q1)


def thin(values: Sequence[float], limit: int = MAX_BOOTSTRAP_SAMPLES) -> np.ndarray:
    """At most ``limit`` rounds, evenly spaced in run order (keeps drift, bounds bootstrap cost)."""
    arr = np.asarray(values, dtype=float)
    if arr.size <= limit:
        return arr
    thinned: np.ndarray = arr[np.linspace(0, arr.size - 1, limit).round().astype(int)]
    return thinned


def _median_ratio(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    ratio: np.ndarray = np.median(a, axis=axis) / np.median(b, axis=axis)
    return ratio


def ratio_interval(
    numerator: Sequence[float],
    denominator: Sequence[float],
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of median(numerator) / median(denominator).

    Rounds of the two samples are resampled independently. None with fewer than 3 rounds on
    either side, where an interval means nothing.
    """
    return _bootstrap((numerator, denominator), _median_ratio, confidence, n_resamples, seed)


def _bootstrap(
    samples: Sequence[Sequence[float]], statistic: Any, confidence: float, n_resamples: int, seed: int
) -> tuple[float, float] | None:
    """Percentile interval of ``statistic`` over independently resampled, thinned samples."""
    arrays = tuple(thin(x) for x in samples)
    if any(a.size < 3 for a in arrays):
        return None
    result = sps.bootstrap(
        arrays,
        statistic,
        vectorized=True,
        paired=False,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return float(low), float(high)


def _ratio_of_ratios(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, axis: int = -1
) -> np.ndarray:
    ratio: np.ndarray = _median_ratio(a, b, axis) / _median_ratio(c, d, axis)
    return ratio


def speedup_change_interval(
    ref_now: Sequence[float],
    var_now: Sequence[float],
    ref_before: Sequence[float],
    var_before: Sequence[float],
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of (speedup now) / (speedup before), each speedup a ratio of
    medians of its own run's rounds; the four sets of rounds are resampled independently."""
    return _bootstrap(
        (ref_now, var_now, ref_before, var_before), _ratio_of_ratios, confidence, n_resamples, seed
    )


def paired_change_interval(
    ratios_now: Sequence[float],
    ratios_before: Sequence[float],
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of median(paired speedups now) / median(... before)."""
    return _bootstrap((ratios_now, ratios_before), _median_ratio, confidence, n_resamples, seed)


def slower_p_value(now: Sequence[float], before: Sequence[float]) -> float:
    """One-sided Mann-Whitney U p-value that rounds now are slower (larger) than before.

    Rank-based, so a few preempted rounds on a shared machine do not decide it; no normality
    assumption about round times, which are skewed."""
    return float(sps.mannwhitneyu(np.asarray(now), np.asarray(before), alternative="greater").pvalue)
