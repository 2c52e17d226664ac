"""Number formatting shared by the console and markdown renderers."""

from __future__ import annotations

import math

from bench.claims import ClaimResult

DASH = "—"


def seconds(value: float | None) -> str:
    if value is None or math.isnan(value):
        return DASH
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def nbytes(value: float | None) -> str:
    if value is None:
        return DASH
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{int(value)} B"


def ratio(value: float | None, interval: tuple[float, float] | None = None) -> str:
    if value is None:
        return DASH
    text = f"{value:.3g}×"
    if interval is not None:
        text += f" [{interval[0]:.3g}, {interval[1]:.3g}]"
    return text


def number(value: float | None, digits: int = 3) -> str:
    return DASH if value is None else f"{value:.{digits}g}"


def count(value: float | None) -> str:
    if value is None:
        return DASH
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g}"


def params(values: dict[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


_PERCENT_METRICS = (
    "time_reduction",
    "time_increase",
    "memory_reduction",
    "memory_increase",
    "flops_reduction",
)


def claim_value(result: ClaimResult) -> str:
    """A measured claim quantity in the unit the claim speaks in, with its interval."""
    value, interval, metric = result.value, result.interval, result.metric
    if value is None:
        return DASH
    if metric in _PERCENT_METRICS:
        text = f"{100 * value:.1f} %"
        return text + (f" [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]" if interval else "")
    if metric in ("speedup", "extra_ratio"):
        return ratio(value, interval)
    if metric == "throughput":
        return f"{value:.3g}/s"
    return _one(metric, value, digits=4)


def claim_expected(result: ClaimResult) -> str:
    if result.expected is None:
        return DASH
    low, high = result.expected
    if math.isinf(high):
        return "≥ " + _one(result.metric, low)
    if low == high:
        return _one(result.metric, low)
    return f"{_one(result.metric, low)} – {_one(result.metric, high)}"


def _one(metric: str, value: float, digits: int = 3) -> str:
    """One claimed or measured number in the claim's unit."""
    if metric in _PERCENT_METRICS:
        return f"{100 * value:.0f} %"
    if metric in ("speedup", "extra_ratio"):
        return f"{value:g}×"
    if metric == "seconds":
        return seconds(value)
    if metric == "parameters":
        return count(value)
    return f"{value:.{digits}g}"
