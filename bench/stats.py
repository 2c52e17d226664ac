"""Medians, spreads and intervals of timing rounds (pure functions)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_BOOTSTRAP_SAMPLES = 1000
# scipy.stats is imported where it is used, not here: it takes 1.3 s on a 2-core VM (about 20 s
# under valgrind), which processes that only collect (the counting process, `bench list`) never
# need.


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
    from scipy import stats as sps

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
    from scipy import stats as sps

    return float(sps.mannwhitneyu(np.asarray(now), np.asarray(before), alternative="greater").pvalue)


# Pairs per trial that the hierarchical bootstrap resamples (evenly thinned beyond this).
MAX_PAIRS_PER_TRIAL = 200


@dataclass(frozen=True)
class Speedup:
    """A speedup (reference time / implementation time) and its interval over independent trials."""

    estimate: float
    low: float
    high: float
    trials: int
    method: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "trials": self.trials,
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Speedup:
        return cls(
            float(doc["estimate"]),
            float(doc["low"]),
            float(doc["high"]),
            int(doc["trials"]),
            str(doc["method"]),
        )

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def half_width(self) -> float:
        """Half the interval's width relative to the estimate."""
        return (self.high - self.low) / 2 / self.estimate


def t_quantile(n: int, confidence: float = 0.95) -> float:
    """Student's two-sided t quantile for the mean of ``n`` values (n - 1 degrees of freedom): the
    factor every interval over trials or passes is drawn with."""
    from scipy import stats as sps

    return float(sps.t.ppf(0.5 + confidence / 2, n - 1))


def trial_speedup(
    reference: Sequence[Sequence[float]],
    variant: Sequence[Sequence[float]],
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Speedup | None:
    """The speedup of ``variant`` over ``reference`` from trials of interleaved rounds.

    ``reference[t][j]`` and ``variant[t][j]`` are seconds per call of round j of trial t, measured
    in the same cycle of the same worker process (so each pair saw the same machine speed). A
    trial's speedup is the median of its pairs' ratios; the estimate is the geometric mean over
    trials. The interval is a hierarchical bootstrap (trials resampled, then pairs within each),
    whose spread is widened for the small number of trials: its standard error is scaled by
    Student's t with n-1 degrees of freedom, so that variation between processes, which is most
    of it on a shared machine, is not under-counted. No further small-sample correction: resampling
    the pairs within each resampled trial counts their noise a second time (it is in the spread
    of the trials' medians already), which makes up for the bootstrap's n-1 versus n. Measured
    on two quick runs (2026-12-02, a 2-core Xeon VM): with sqrt(n/(n-1)) on top, the second
    run's estimate lay inside the first run's interval for 91 % of 114 speedups, where a
    calibrated 95 % interval gives about 83 %; without it 87 % (median half-width 16.2 -> 14.0 %,
    A/A 94 of 94 either way). A trial of one pair (a slow call, one cycle) counts with that
    pair's ratio. None with no pairs at all.
    """
    logs = []
    for ref, var in zip(reference, variant, strict=True):
        m = min(len(ref), len(var))
        if m >= 1:
            pairs = np.log(np.asarray(ref[:m], dtype=float)) - np.log(np.asarray(var[:m], dtype=float))
            logs.append(thin(pairs, MAX_PAIRS_PER_TRIAL))
    n = len(logs)
    if n == 0:
        return None
    centre = float(np.mean([np.median(x) for x in logs]))
    rng = np.random.default_rng(seed)
    # medians[t][b, k]: trial t's median over one resample of its pairs, for slot k of replicate b.
    medians = [np.median(x[rng.integers(0, x.size, size=(n_resamples, n, x.size))], axis=-1) for x in logs]
    chosen = rng.integers(0, n, size=(n_resamples, n)) if n > 1 else np.zeros((n_resamples, 1), dtype=int)
    stacked = np.stack(medians)  # (trials, resamples, slots)
    from scipy import stats as sps

    replicates = stacked[chosen, np.arange(n_resamples)[:, None], np.arange(n)[None, :]].mean(axis=1)
    if n > 1:
        se = float(np.std(replicates, ddof=1))
        quantile = t_quantile(n, confidence)
        method = f"hierarchical bootstrap over {n} trials, t-scaled"
    else:
        se = float(np.std(replicates, ddof=1))
        quantile = float(sps.norm.ppf(0.5 + confidence / 2))
        method = "bootstrap of the pairs of 1 trial (no variation between processes seen)"
    return Speedup(
        estimate=math.exp(centre),
        low=math.exp(centre - quantile * se),
        high=math.exp(centre + quantile * se),
        trials=n,
        method=method,
    )


def trial_median(
    trials: Sequence[Sequence[float]], confidence: float = 0.95
) -> tuple[float, float, float] | None:
    """Seconds per call over trials: the geometric mean of the trials' medians and its Student-t
    interval (estimate, low, high); None with fewer than 2 trials."""
    logs = [math.log(float(np.median(t))) for t in trials if len(t)]
    return _t_interval(logs, confidence) if len(logs) >= 2 else None


def _t_interval(logs: Sequence[float], confidence: float) -> tuple[float, float, float]:
    """exp of the mean of ``logs`` (two or more) and of its Student-t interval's ends."""
    n = len(logs)
    centre, sd = float(np.mean(logs)), float(np.std(logs, ddof=1))
    half = t_quantile(n, confidence) * sd / math.sqrt(n)
    return math.exp(centre), math.exp(centre - half), math.exp(centre + half)


def paired_ratio(
    numerator: Sequence[float], denominator: Sequence[float], confidence: float = 0.95
) -> tuple[float, float, float] | None:
    """The geometric mean of the paired ratios numerator[i] / denominator[i] and its Student-t
    interval (estimate, low, high); None with fewer than 2 pairs, or a value that is not positive."""
    pairs = list(zip(numerator, denominator, strict=True))
    if len(pairs) < 2 or any(not (a > 0 and b > 0) for a, b in pairs):
        return None
    return _t_interval([math.log(a / b) for a, b in pairs], confidence)
