"""Figures for the report (matplotlib, Agg): speedups with intervals, scaling fits, peak memory."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.figure
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import scipy.optimize

from bench.compare import Comparison
from bench.profiling import safe_name
from bench.render import format as fmt


@dataclass(frozen=True)
class Figure:
    title: str
    path: Path


POWER = "power law"
EXPONENTIAL = "exponential"
MODELS = (POWER, EXPONENTIAL)


@dataclass(frozen=True)
class Scaling:
    """Time against one grid parameter for one variant, fitted by least squares on log t.

    A power law, log t = intercept + slope * log x (t ∝ x^slope: batch, width, sequence length),
    or an exponential, log t = intercept + slope * x (×e^slope per unit of x: a state vector has
    2^n amplitudes, so time against qubits). ``r2`` is the chosen model's R² of log t and
    ``rival_r2`` the other's; both explain the same log t, so they compare directly.
    """

    variant: str
    xs: tuple[float, ...]
    times_s: tuple[float, ...]
    model: str
    slope: float
    intercept: float
    r2: float
    rival_r2: float
    declared: bool = False  # the model was declared, not chosen by the fit's quality

    @property
    def growth(self) -> float:
        """The exponent of a power law; the factor per unit of x of an exponential."""
        return self.slope if self.model == POWER else math.exp(self.slope)

    def log_time(self, x: float) -> float:
        return self.intercept + self.slope * (math.log(x) if self.model == POWER else x)

    def describe(self, axis: str) -> str:
        """ "power law: t ∝ batch^0.98" or "exponential: ×1.9 per qubit"."""
        if self.model == POWER:
            return f"{POWER}: t ∝ {axis}^{self.slope:.2f}"
        unit = axis[:-1] if len(axis) > 1 and axis.endswith("s") else axis
        return f"{EXPONENTIAL}: ×{self.growth:.3g} per {unit}"


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


def _fit(xs: np.ndarray, log_t: np.ndarray) -> tuple[float, float, float]:
    """Least-squares line log_t = intercept + slope * xs: (slope, intercept, R²)."""
    slope, intercept = np.polyfit(xs, log_t, 1)
    residual = float(np.sum((log_t - (intercept + slope * xs)) ** 2))
    total = float(np.sum((log_t - log_t.mean()) ** 2))
    return float(slope), float(intercept), 1.0 - residual / total if total > 0 else 1.0


def fit_scaling(
    variant: str, xs: Sequence[float], times_s: Sequence[float], model: str | None = None
) -> Scaling:
    """Both models fitted to the points; ``model`` (one of ``MODELS``) if declared, else the one
    with the smaller residual of log t (the larger R²)."""
    if model is not None and model not in MODELS:
        raise ValueError(f"unknown scaling model {model!r}; one of {', '.join(MODELS)}")
    x, log_t = np.asarray(xs, dtype=float), np.log(np.asarray(times_s, dtype=float))
    fits = {POWER: _fit(np.log(x), log_t), EXPONENTIAL: _fit(x, log_t)}
    chosen = model or max(MODELS, key=lambda m: fits[m][2])
    (rival,) = (m for m in MODELS if m != chosen)
    slope, intercept, r2 = fits[chosen]
    return Scaling(
        variant, tuple(xs), tuple(times_s), chosen, slope, intercept, r2, fits[rival][2], model is not None
    )


def scaling_fits(rows: Sequence[Comparison], case: str, axis: str, model: str | None = None) -> list[Scaling]:
    """Fits of median time against ``axis`` for every variant with >= 3 points, the other
    parameters held at one value (the most common combination); ``model`` as in ``fit_scaling``."""
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
        fits.append(fit_scaling(variant, xs, ts, model))
    return fits


def crossover(a: Scaling, b: Scaling) -> float | None:
    """The parameter value where two fitted curves meet, if inside both measured ranges."""
    lo, hi = max(min(a.xs), min(b.xs)), min(max(a.xs), max(b.xs))
    if not lo < hi:
        return None

    def gap(x: float) -> float:
        return a.log_time(x) - b.log_time(x)

    # Two lines in (log) x meet at most once; a power law against an exponential at most twice:
    # scan for the first sign change, then solve inside it.
    grid = np.geomspace(lo, hi, 257) if a.model == b.model == POWER else np.linspace(lo, hi, 257)
    for left, right in itertools.pairwise(float(x) for x in grid):
        if gap(left) == 0:
            return left
        if gap(left) * gap(right) < 0:
            return float(scipy.optimize.brentq(gap, left, right))
    return None


def scaling_figure(
    rows: Sequence[Comparison], case: str, axis: str, directory: Path, model: str | None = None
) -> Figure | None:
    fits = scaling_fits(rows, case, axis, model)
    if not fits:
        return None
    exponential = any(fit.model == EXPONENTIAL for fit in fits)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for fit in fits:
        how = "declared" if fit.declared else f"R² {fit.r2:.3f} vs {fit.rival_r2:.3f}"
        (line,) = ax.plot(fit.xs, fit.times_s, "o", label=f"{fit.variant} — {fit.describe(axis)} ({how})")
        grid = np.linspace(min(fit.xs), max(fit.xs), 50)
        ax.plot(
            grid, [math.exp(fit.log_time(float(x))) for x in grid], "-", color=line.get_color(), alpha=0.6
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
    # A straight line for the chosen model: semi-log for an exponential, log-log for power laws.
    if not exponential:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks(sorted({x for fit in fits for x in fit.xs}))
    ax.set_xlabel(axis)
    ax.set_ylabel("median time per call (s)")
    models = " and ".join(dict.fromkeys(fit.model for fit in fits))
    scales = "semi-log" if exponential else "log-log"
    ax.set_title(f"{case}: time against {axis} ({scales}; fits: {models})", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return _save(
        fig, directory / f"{safe_name(case)}-{safe_name(axis)}-scaling.png", f"{case}: scaling with {axis}"
    )


def _save(fig: matplotlib.figure.Figure, path: Path, title: str) -> Figure:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Figure(title, path)


def report_figures(
    rows: Sequence[Comparison],
    directory: Path,
    models: Mapping[str, Mapping[str, str]] | None = None,
) -> list[Figure]:
    """Every figure the rows support: per family speedups and memory, per case and numeric axis
    scaling; ``models`` declares a case's scaling model per axis ({case: {axis: model}}), where
    it is not to be chosen by the fit's quality."""
    models = models or {}
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
            figure = scaling_figure(rows, case, axis, directory, models.get(case, {}).get(axis))
            if figure:
                figures.append(figure)
    return figures
