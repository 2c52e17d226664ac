"""Statistics of rounds: medians, spreads and the bootstrap interval of a ratio of medians."""

from __future__ import annotations

import numpy as np

from bench.stats import iqr, median, ratio_interval, thin


def test_median_and_iqr() -> None:
    assert median([3, 1, 2]) == 2
    assert iqr([1, 2, 3, 4, 5]) == 2


def test_interval_covers_the_true_ratio() -> None:
    rng = np.random.default_rng(3)
    slow, fast = rng.normal(2.0, 0.05, 400), rng.normal(1.0, 0.025, 300)
    low, high = ratio_interval(slow, fast)
    assert low < 2.0 < high
    assert high - low < 0.05


def test_interval_is_deterministic_and_needs_rounds() -> None:
    data = [1.0, 1.1, 0.9, 1.05]
    assert ratio_interval(data, data) == ratio_interval(data, data)
    assert ratio_interval([1.0, 2.0], data) is None


def test_thin_keeps_order_and_ends() -> None:
    values = np.arange(10_000, dtype=float)
    thinned = thin(values, 100)
    assert thinned.size == 100 and thinned[0] == 0 and thinned[-1] == 9_999
    assert np.all(np.diff(thinned) > 0)
