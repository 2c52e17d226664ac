"""The history report: a trend table and a plot per case, step changes flagged."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.history import DRIFT_K, History, Series
from bench.profiling import safe_name
from bench.render import format as fmt
from bench.render.markdown import table


def _run_label(history: History, index: int) -> str:
    run = history.runs[index]
    commit = ((run.environment.get("git") or {}).get("id") or "?")[:8]
    return f"{run.datetime[:16].replace('T', ' ')} {commit}"


def _cell(series: Series, index: int) -> str:
    point = next((p for p in series.points if p.run == index), None)
    if point is None:
        return fmt.DASH
    text = fmt.seconds(point.median_s)
    if point.speedup is not None and series.variant != "reference":
        text += f" ({point.speedup:.3g}×)"
    if point.step:
        text += " ▲ slower" if point.step == "slower" else " ▼ faster"
    return text


def plot_case(history: History, case: str, directory: Path) -> Path | None:
    mine = [s for s in history.series if s.case == case]
    if not mine or all(len(s.points) < 2 for s in mine):
        return None
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for s in mine:
        xs = [p.run for p in s.points]
        ax.plot(xs, [p.median_s for p in s.points], "o-", label=f"{s.variant} · {s.point} · {s.device}")
        for p in s.points:
            if p.step:
                ax.plot(p.run, p.median_s, "v" if p.step == "faster" else "^", color="red", markersize=12)
    ax.set_yscale("log")
    ax.set_xticks(
        range(len(history.runs)),
        [_run_label(history, i) for i in range(len(history.runs))],
        rotation=30,
        ha="right",
        fontsize=7,
    )
    ax.set_ylabel("median time per call (s)")
    ax.set_title(f"{case}: median over runs (red triangles: step changes)")
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path = directory / f"{safe_name(case)}-history.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render_history(history: History, output: Path) -> str:
    """Markdown for the history, with one figure per case written beside ``output``."""
    figures_dir = output.parent / f"{output.stem}-figures"
    steps = history.steps()
    same = {id(p) for _, p in history.same_code_steps()}
    out = [
        "# Benchmark history",
        "",
        f"{len(history.runs)} runs, oldest first. A step is a change by more than 10 % between "
        "consecutive runs that the runs' own spread cannot explain: for runs measured in trials, the "
        "two trial intervals (of a variant's speedup, or of a reference's time) must separate; "
        "otherwise a one-sided Mann-Whitney U test on the rounds must find it significant "
        "(p < 0.01). It must also stand out from how everything of its kind moved between the same "
        f"two runs: beyond {DRIFT_K:g} SDs of the median change, the SD being their changes' robust SD "
        "and the point's own standard error from both runs' trials added in quadrature (see below; a "
        "point with loose trials moves more for nothing): a reference's time from every reference's, "
        "a speedup from every speedup's. Absolute "
        "times move with the machine; speedups much less, but by more than one run's trials show. "
        "Cells: median per call (speedup over that run's reference).",
        "",
    ]
    if history.drifts:
        drift_rows = []
        for d in history.drifts:
            low, high = d.band()
            drift_rows.append(
                (
                    _run_label(history, d.run),
                    d.kind,
                    str(d.references),
                    f"{100 * (math.exp(d.median) - 1):+.1f} %",
                    f"{100 * d.spread:.1f} %",
                    f"{100 * low:+.0f} % to {100 * high:+.0f} %",
                )
            )
        out += [
            "## How times and speedups moved between runs",
            "",
            table(
                ("Run (against the one before)", "What", "How many", "Median change", "Robust SD",
                 "Not a step (for tight trials)"),
                drift_rows,
            ),
            "",
        ]
    if steps:
        step_rows = [
            (
                f"`{s.case}`",
                s.point,
                s.device,
                f"`{s.variant}`",
                _run_label(history, p.run),
                p.step,
                "same" if id(p) in same else "changed",
            )
            for s, p in steps
        ]
        out += ["## Step changes", ""]
        if same:
            out += [
                f"{len(same)} of these {len(steps)} are between two runs of the same code (one commit, "
                "clean in both runs, and the same Python, torch, PennyLane and numpy): none of them is "
                "the code's doing. The machine moved between those runs by more than their trials and "
                "the other cases show; expect that much from this machine between runs of different code "
                "too.",
                "",
            ]
        out += [
            table(("Case", "Point", "Device", "Variant", "Run", "Direction", "Code since the run before"),
                  step_rows),
            "",
        ]
    for case in dict.fromkeys(s.case for s in history.series):
        mine = [s for s in history.series if s.case == case]
        out += [f"## `{case}`", ""]
        headers = ["Run", *[f"{s.variant} · {s.point} · {s.device}" for s in mine]]
        rows = [[_run_label(history, i), *[_cell(s, i) for s in mine]] for i in range(len(history.runs))]
        out += [table(headers, rows), ""]
        figure = plot_case(history, case, figures_dir)
        if figure is not None:
            out += [f"![{case} over runs]({figure.relative_to(output.parent).as_posix()})", ""]
    if history.skipped:
        out += ["## Files skipped", "", *[f"- {reason}" for reason in history.skipped], ""]
    return "\n".join(out)
