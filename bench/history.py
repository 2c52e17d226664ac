"""Trends across runs: medians and speedups per case over time, with step changes flagged."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.compare import speedup
from bench.errors import ResultsError
from bench.results import Record, Run, load_run
from bench.stats import slower_p_value, t_quantile, trial_median

STEP_THRESHOLD = 0.10  # a median moving by more than this ...
STEP_ALPHA = 0.01  # ... with a Mann-Whitney p below this, between consecutive runs, is a step
# Absolute times move with the machine between runs, by more than the trials of one run show (the
# references' times moved by a robust SD of 24 % between quick runs minutes apart on a shared
# 2-core VM, measured 2026-12-02, while speedups moved by 4 %). An absolute-time step must also
# stand out from what every reference did between the same two runs: beyond DRIFT_K robust SDs of
# their log changes around the median change, where at least DRIFT_MIN_REFERENCES are in both.
DRIFT_K = 3.0
DRIFT_MIN_REFERENCES = 5
# Speedups move less, but they move too: three quick runs of one commit, 20 minutes apart on that
# VM, moved them by a robust SD of 5 % (median |log change| 3-4 %), and three speedups whose
# trial intervals separated (a 13 % move among them) were steps of nothing. A speedup's step must
# likewise stand out from how every speedup moved between the same two runs.
# The robust SD is that of the typical point, whose trials are tight; a point whose own trials
# are looser moves more between runs for nothing. So the width a change must pass is DRIFT_K
# times the drift's spread and the point's own standard errors in both runs, added in quadrature
# (Drift.stands_out). Measured on the stored quick runs of 2026-12-04/05 (nine samples of three or
# four runs of one commit, 2-core Xeon VM): the drift's spread alone let through 6 steps of
# references and speedups with loose trials (gaussgan.train_step's reference 10 % faster at 3.3
# spreads, its run-2 interval 5.8 % wide), with their own errors none of them, while all 10 steps
# of paco2.covariance (moves of 10-34 % with tight trials: the memory-layout effect of the runs
# before a fork server per trial) and one of dcgan.ema's reference stayed steps.
REFERENCES, SPEEDUPS = "references' times", "variants' speedups"


@dataclass(frozen=True)
class Point:
    """One implementation in one run."""

    run: int
    median_s: float
    speedup: float | None
    step: str = ""  # "slower" or "faster" when this run stepped against the previous one
    previous: int | None = None  # the run this point is compared with (None: the series' first)


@dataclass(frozen=True)
class Drift:
    """How the references' times moved between one run and the next (the machine, or a change
    common to every case): what an absolute-time step must stand out from."""

    run: int  # the later run of the pair
    references: int  # how many moved (references, or variants for speedups)
    median: float  # median log change of the references' times (> 0: slower)
    spread: float  # robust SD of those log changes (1.4826 x their median absolute deviation)

    def band(self) -> tuple[float, float]:
        """The range of time changes (fractions, -0.2 = 20 % faster) that is not a step for a point
        whose own trials are tight; its own standard errors widen it (``stands_out``)."""
        width = DRIFT_K * self.spread
        return math.exp(self.median - width) - 1, math.exp(self.median + width) - 1

    kind: str = REFERENCES  # or SPEEDUPS: what moved (a speedup's log change > 0: faster)

    def stands_out(self, log_change: float, own_se: float = 0.0) -> bool:
        """Whether a log change lies beyond DRIFT_K standard deviations of the drift's median
        change: the drift's spread and ``own_se`` (the point's own standard error of its log
        change, from both runs' trials) added in quadrature."""
        return abs(log_change - self.median) > DRIFT_K * math.hypot(self.spread, own_se)


@dataclass(frozen=True)
class Series:
    case: str
    point: str
    device: str
    variant: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class History:
    runs: tuple[Run, ...]
    series: tuple[Series, ...]
    skipped: tuple[str, ...]  # files in the folder that are not harness results, and why
    drifts: tuple[Drift, ...] = ()  # per consecutive pair of runs, where enough references are in both

    def steps(self) -> list[tuple[Series, Point]]:
        return [(s, p) for s in self.series for p in s.points if p.step]

    def same_code_steps(self) -> list[tuple[Series, Point]]:
        """Steps between two runs of the same code (``same_code``): false alarms of the code's
        doing, which say how far this machine's runs move on their own."""
        return [
            (s, p)
            for s, p in self.steps()
            if p.previous is not None and same_code(self.runs[p.previous], self.runs[p.run])
        ]


def _commit(run: Run) -> str:
    return ((run.environment.get("git") or {}).get("id") or "")[:10]


# What must match for two runs to have run the same code: beside one clean commit, the libraries
# the cases run on.
_SOFTWARE = ("python", "torch", "pennylane", "pennylane_lightning", "numpy")


def same_code(first: Run, second: Run) -> bool:
    """Whether two runs ran the same code: one commit, clean at both ends of both runs, and the same
    Python, torch, PennyLane and numpy. A step between such runs is none of the code's doing: the
    machine moved, or the detector cried wolf."""
    a, b = first.environment.get("git") or {}, second.environment.get("git") or {}
    if not a.get("id") or a.get("id") != b.get("id") or a.get("dirty") or b.get("dirty"):
        return False
    if a.get("at_end") or b.get("at_end"):  # the tree moved while a run went on
        return False
    return all(first.environment.get(k) == second.environment.get(k) for k in _SOFTWARE)


def load_history(folder: Path) -> History:
    """Every harness results file in ``folder`` (not recursive), oldest first."""
    if not folder.is_dir():
        raise ResultsError(f"{folder} is not a folder of results files")
    runs, skipped = [], []
    for path in sorted(folder.glob("*.json")):
        try:
            runs.append(load_run(path))
        except ResultsError as exc:
            skipped.append(str(exc))
    if not runs:
        raise ResultsError(
            f"no harness results files in {folder}"
            + (f" ({len(skipped)} other JSON files)" if skipped else "")
        )
    runs.sort(key=lambda r: (r.datetime, _commit(r), r.path))
    drifts = {
        (d.run, d.kind): d
        for d in (_drift(runs, i, kind) for i in range(1, len(runs)) for kind in (REFERENCES, SPEEDUPS))
        if d is not None
    }
    return History(tuple(runs), tuple(_series(runs, drifts)), tuple(skipped), tuple(drifts.values()))


def _time(rec: Record) -> float | None:
    timed = trial_median(rec.trials)
    return timed[0] if timed is not None else rec.median_s


def _values(run: Run, kind: str) -> dict[tuple[str, str, str, str], float]:
    """What drifts, by record key: the references' times, or the variants' speedup estimates."""
    refs = {r.key[:3]: r for r in run.records if r.role == "reference" and r.timed}
    found: dict[tuple[str, str, str, str], float] = {}
    for rec in run.records:
        if not rec.timed or (rec.role == "reference") != (kind == REFERENCES):
            continue
        if kind == REFERENCES:
            value = _time(rec)
        else:
            ref = refs.get(rec.key[:3])
            ratio = speedup(ref, rec) if ref is not None else None
            value = ratio.estimate if ratio is not None and ratio.trials > 1 else None
        if value:
            found[rec.key] = value
    return found


def _drift(runs: Sequence[Run], index: int, kind: str = REFERENCES) -> Drift | None:
    """How ``kind`` (REFERENCES or SPEEDUPS) moved from run ``index - 1`` to run ``index``."""
    before, after = _values(runs[index - 1], kind), _values(runs[index], kind)
    changes = []
    for key, now in after.items():
        then = before.get(key)
        if then and now:
            changes.append(math.log(now / then))
    if len(changes) < DRIFT_MIN_REFERENCES:
        return None
    middle = statistics.median(changes)
    spread = 1.4826 * statistics.median(abs(c - middle) for c in changes)
    return Drift(index, len(changes), middle, spread, kind)


def _interval(rec: Record, ref: Record | None) -> tuple[float, float, float, int] | None:
    """What a step is judged on, as (estimate, low, high, trials) with "slower" meaning smaller: a
    variant's speedup over its reference, the reference's calls per second, over the trials."""
    if ref is not None and rec is not ref:
        found = speedup(ref, rec)
        if found is None or found.trials < 2:
            return None
        return found.estimate, found.low, found.high, found.trials
    timed = trial_median(rec.trials)
    return (1 / timed[0], 1 / timed[2], 1 / timed[1], len(rec.trials)) if timed is not None else None


def _log_se(interval: tuple[float, float, float, int] | None) -> float:
    """The standard error of an interval's log estimate: its log half-width over the Student t
    quantile it was drawn with (95 %, trials - 1 degrees of freedom); 0 without one."""
    if interval is None or interval[3] < 2 or interval[1] <= 0:
        return 0.0
    return math.log(interval[2] / interval[1]) / 2 / t_quantile(interval[3])


def _step(
    previous: Record,
    current: Record,
    previous_ref: Record | None,
    current_ref: Record | None,
    drifts: Mapping[str, Drift] | None = None,
) -> str:
    found = _raw_step(previous, current, previous_ref, current_ref)
    if not found or not drifts:
        return found
    before, after = _interval(previous, previous_ref), _interval(current, current_ref)
    own_se = math.hypot(_log_se(before), _log_se(after))
    if current_ref is None or current_ref is current:
        drift, then, now = drifts.get(REFERENCES), _time(previous), _time(current)
    else:
        drift = drifts.get(SPEEDUPS)
        then, now = (before[0] if before else None), (after[0] if after else None)
    if drift is not None and then and now and not drift.stands_out(math.log(now / then), own_se):
        return ""  # everything moved about as much, given how precise this point is: the machine
    return found


def _raw_step(
    previous: Record, current: Record, previous_ref: Record | None, current_ref: Record | None
) -> str:
    before, now = _interval(previous, previous_ref), _interval(current, current_ref)
    if before is not None and now is not None:
        # Runs measured in trials: a step needs their intervals to separate, and a real change.
        change = now[0] / before[0] - 1
        if change < -STEP_THRESHOLD and now[2] < before[1]:
            return "slower"
        if change > STEP_THRESHOLD and now[1] > before[2]:
            return "faster"
        return ""
    if not (previous.median_s and current.median_s and previous.rounds_s and current.rounds_s):
        return ""
    change = current.median_s / previous.median_s - 1
    if change > STEP_THRESHOLD and slower_p_value(current.rounds_s, previous.rounds_s) < STEP_ALPHA:
        return "slower"
    if change < -STEP_THRESHOLD and slower_p_value(previous.rounds_s, current.rounds_s) < STEP_ALPHA:
        return "faster"
    return ""


def _series(runs: Sequence[Run], drifts: Mapping[tuple[int, str], Drift]) -> list[Series]:
    by_key: dict[tuple[str, str, str, str], list[tuple[int, Record, Record | None]]] = {}
    for index, run in enumerate(runs):
        refs = {(r.case, r.point, r.device): r for r in run.records if r.role == "reference" and r.timed}
        for rec in run.records:
            if not rec.timed or rec.median_s is None:
                continue
            by_key.setdefault(rec.key, []).append((index, rec, refs.get((rec.case, rec.point, rec.device))))
    series = []
    for key, entries in by_key.items():
        points = []
        for i, (index, rec, ref) in enumerate(entries):
            moved = {kind: d for (run, kind), d in drifts.items() if run == index}
            step = _step(entries[i - 1][1], rec, entries[i - 1][2], ref, moved) if i else ""
            found = speedup(ref, rec) if ref is not None and ref is not rec else None
            value = 1.0 if ref is rec else (found.estimate if found else None)
            before = entries[i - 1][0] if i else None
            points.append(Point(index, float(rec.median_s or 0.0), value, step, before))
        series.append(Series(*key, points=tuple(points)))
    return series
