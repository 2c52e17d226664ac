"""Figures for the report (matplotlib, Agg): speedups with intervals, scaling curves, peak memory."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from bench.compare import Comparison
from bench.profiling import safe_name
from bench.render import format as fmt


@dataclass(frozen=True)
class Figure:
    title: str
    path: Path


@dataclass(frozen=True)
class Scaling:
    """Time against one grid parameter for one variant: a power-law fit t = c * x^exponent."""

    variant: str
    xs: tuple[float, ...]
    times_s: tuple[float, ...]
    exponent: float
    log_coefficient: float


def _label(row: Comparison) -> str:
    return f"{row.case.split('.', 1)[1]} · {row.variant} · {row.point} · {row.device}"


def speedup_figure(rows: Sequence[Comparison], family: str, directory: Path) -> Figure | None:
    bars = [r for r in rows if r.family == family and r.role != "reference" and r.speedup]
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(11, 0.8 + 0.38 * len(bars)))
    ys = np.arange(len(bars))
    values = np.array([r.speedup for r in bars], dtype=float)
    low = np.array([r.speedup_ci[0] if r.speedup_ci else r.speedup for r in bars], dtype=float)
    high = np.array([r.speedup_ci[1] if r.speedup_ci else r.speedup for r in bars], dtype=float)
    colors = ["tab:green" if v >= 1 else "tab:red" for v in values]
    # Bars grow from 1x (no change) towards the speedup, left for slowdowns, right for speedups.
    ax.barh(ys, values - 1, left=1, color=colors, alpha=0.8)
    ax.errorbar(values, ys, xerr=[values - low, high - values], fmt="none", ecolor="black", capsize=3)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    span_low, span_high = min(low.min(), 1.0), max(high.max(), 1.0)
    ax.set_xlim(span_low / 2, span_high * 8)
    ax.set_yticks(ys, [_label(r) for r in bars], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("speedup over the reference (log scale)\nblack: 95 % bootstrap interval")
    ax.set_title(f"{family}: speedup per variant")
    for y, v, h in zip(ys, values, high, strict=True):
        ax.text(float(max(h, v, 1.0)) * 1.15, float(y), f"{v:.3g}×", va="center", fontsize=8)
    return _save(fig, directory / f"{safe_name(family)}-speedup.png", f"{family}: speedup per variant")


def memory_figure(rows: Sequence[Comparison], family: str, directory: Path) -> Figure | None:
    bars = [r for r in rows if r.family == family and r.peak_bytes is not None and not r.error]
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(11, 0.8 + 0.38 * len(bars)))
    ys = np.arange(len(bars))
    mib = np.array([r.peak_bytes or 0 for r in bars], dtype=float) / 2**20
    ax.barh(ys, mib, color=["tab:gray" if r.role == "reference" else "tab:blue" for r in bars])
    ax.set_yticks(ys, [_label(r) for r in bars], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(mib.max(), 1e-3) * 1.3)
    ax.set_xlabel("peak memory growth of one call (MiB)\nCPU resident set, or the CUDA allocator")
    ax.set_title(f"{family}: peak memory (grey: reference)")
    for y, v, r in zip(ys, mib, bars, strict=True):
        ax.text(float(v), float(y), f" {fmt.nbytes(r.peak_bytes)}", va="center", fontsize=8)
    return _save(fig, directory / f"{safe_name(family)}-memory.png", f"{family}: peak memory per variant")


def scaling_fits(rows: Sequence[Comparison], case: str, axis: str) -> list[Scaling]:
    """Power-law fits of median time against ``axis`` for every variant with >= 3 points, the
    other parameters held at one value (the most common combination)."""
    mine = [r for r in rows if r.case == case and r.median_s and axis in r.params and not r.overrides]
    others = [tuple((k, v) for k, v in r.params.items() if k != axis) for r in mine]
    if not others:
        return []
    fixed = max(set(others), key=others.count)
    fits = []
    for variant in dict.fromkeys(r.variant for r in mine):
        points = sorted(
            (float(r.params[axis]), float(r.median_s or 0))
            for r, other in zip(mine, others, strict=True)
            if r.variant == variant and other == fixed
        )
        if len(points) < 3 or any(x <= 0 for x, _ in points):
            continue
        xs, ts = zip(*points, strict=True)
        slope, intercept = np.polyfit(np.log(xs), np.log(ts), 1)
        fits.append(Scaling(variant, tuple(xs), tuple(ts), float(slope), float(intercept)))
    return fits


def crossover(a: Scaling, b: Scaling) -> float | None:
    """The parameter value where two fitted power laws meet, if inside the measured range."""
    if math.isclose(a.exponent, b.exponent):
        return None
    x = math.exp((b.log_coefficient - a.log_coefficient) / (a.exponent - b.exponent))
    lo, hi = max(min(a.xs), min(b.xs)), min(max(a.xs), max(b.xs))
    return x if lo <= x <= hi else None


def scaling_figure(rows: Sequence[Comparison], case: str, axis: str, directory: Path) -> Figure | None:
    fits = scaling_fits(rows, case, axis)
    if not fits:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for fit in fits:
        (line,) = ax.plot(fit.xs, fit.times_s, "o", label=f"{fit.variant}: t ∝ {axis}^{fit.exponent:.2f}")
        grid = np.geomspace(min(fit.xs), max(fit.xs), 50)
        ax.plot(
            grid, np.exp(fit.log_coefficient) * grid**fit.exponent, "-", color=line.get_color(), alpha=0.6
        )
    for i, a in enumerate(fits):
        for b in fits[i + 1 :]:
            x = crossover(a, b)
            if x is not None:
                ax.axvline(x, color="gray", linestyle="--", linewidth=1)
                ax.text(
                    x,
                    0.03,
                    f" {a.variant} / {b.variant} cross at {axis} ≈ {x:.3g}",
                    rotation=90,
                    fontsize=8,
                    va="bottom",
                    transform=ax.get_xaxis_transform(),
                )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks(sorted({x for fit in fits for x in fit.xs}))
    ax.set_xlabel(axis)
    ax.set_ylabel("median time per call (s)")
    ax.set_title(f"{case}: time against {axis} (log-log, fitted exponents)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return _save(
        fig, directory / f"{safe_name(case)}-{safe_name(axis)}-scaling.png", f"{case}: scaling with {axis}"
    )


def _save(fig: plt.Figure, path: Path, title: str) -> Figure:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Figure(title, path)


def report_figures(rows: Sequence[Comparison], directory: Path) -> list[Figure]:
    """Every figure the rows support: per family speedups and memory, per case and numeric axis scaling."""
    figures: list[Figure] = []
    for family in dict.fromkeys(r.family for r in rows):
        for make in (speedup_figure, memory_figure):
            figure = make(rows, family, directory)
            if figure:
                figures.append(figure)
    for case in dict.fromkeys(r.case for r in rows):
        axes = {
            k
            for r in rows
            if r.case == case
            for k, v in r.params.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        for axis in sorted(axes):
            figure = scaling_figure(rows, case, axis, directory)
            if figure:
                figures.append(figure)
    return figures
