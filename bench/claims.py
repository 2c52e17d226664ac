"""Verdicts for the source notes' claims: holds, understated, refuted, inconclusive, not run, ..."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.case import CLAIM_METRICS, MEMORY_METRICS, Case, Claim, point_id
from bench.compare import peak_bytes, peak_samples, speedup
from bench.results import Record, Run
from bench.stats import Speedup, paired_ratio, t_quantile

HOLDS = "holds"
UNDERSTATED = "understated"
REFUTED = "refuted"
INCONCLUSIVE = "inconclusive"
OTHER_HARDWARE = "other hardware"
NOT_MEASURABLE = "not measurable here"
NOT_RUN = "not run"
VERDICTS = (HOLDS, UNDERSTATED, REFUTED, INCONCLUSIVE, OTHER_HARDWARE, NOT_MEASURABLE, NOT_RUN)
# Metrics where a value outside the claimed range is simply wrong in either direction.
_TWO_SIDED = {"parameters", "extra"}
# Metrics measured as fractions (0.25 = 25 %): precision is in percentage points, since the
# estimate itself may be near zero; the others are positive quantities, judged relative to it.
_FRACTIONS = {"time_reduction", "time_increase", "memory_reduction", "memory_increase", "flops_reduction"}


@dataclass(frozen=True)
class ClaimResult:
    """A claim with what was measured for it and the verdict."""

    case: str
    id: str
    text: str
    metric: str
    expected: tuple[float, float] | None
    value: float | None
    interval: tuple[float, float] | None
    verdict: str
    where: str
    note: str
    command: str = ""  # for a claim not run: the command that runs its case


def _matches(params: Mapping[str, Any], at: Mapping[str, Any]) -> bool:
    return all(params.get(k) == v for k, v in at.items())


def claim_point(points: Mapping[str, Mapping[str, Any]], at: Mapping[str, Any]) -> tuple[str, str]:
    """The point (of a case's ``points`` in a run, id: params, smallest first) a claim is judged at:
    the last one matching its ``at``, else the largest; and a note where it is not at ``at``."""
    wanted = [p for p, params in points.items() if _matches(params, at)]
    if wanted:
        return wanted[-1], ""
    return list(points)[-1], (
        f"this run has no point at {point_id(at)}; measured at the largest point instead (run --profile full)"
    )


def _claim_device(devices: Sequence[str]) -> str:
    """The device a claim is judged on, of those its point was measured on: CUDA where it ran."""
    return "cuda" if "cuda" in devices else devices[0]


def claims_at(
    case: Case, profile: str, groups: Sequence[tuple[str, str, str]], group: tuple[str, str, str]
) -> list[Claim]:
    """The claims of ``case`` that the audit will judge on ``group`` (case, point id, device), of
    a run whose groups are ``groups``: the same point and device as ``_pick`` chooses."""
    mine = [g for g in groups if g[0] == case.name]
    present = {g[1] for g in mine}
    points = {pid: params for params in case.points(profile) if (pid := point_id(params)) in present}
    if not points:
        return []
    found = []
    for claim in case.claims:
        if not claim.measurable or claim.expected is None:
            continue
        chosen, _ = claim_point(points, claim.at)
        if (case.name, chosen, _claim_device([g[2] for g in mine if g[1] == chosen])) == tuple(group):
            found.append(claim)
    return found


def _pick(records: list[Record], claim: Mapping[str, Any]) -> tuple[Record | None, Record | None, str]:
    """The (baseline, variant) records the claim is judged on, and a note on where."""
    points: dict[str, Mapping[str, Any]] = {}
    for rec in records:
        points.setdefault(rec.point, rec.params)
    if not points:
        return None, None, ""
    chosen, note = claim_point(points, claim.get("at") or {})
    device = _claim_device([r.device for r in records if r.point == chosen])

    def find(name: str) -> Record | None:
        return next(
            (r for r in records if r.point == chosen and r.device == device and r.variant == name), None
        )

    return (
        find(claim["baseline"]),
        find(claim["variant"]),
        f"{chosen} on {device}" + (f"; {note}" if note else ""),
    )


_FROM_SPEEDUP: dict[str, Callable[[float], float]] = {
    "speedup": lambda r: r,
    "time_reduction": lambda r: 1 - 1 / r,
    "time_increase": lambda r: 1 / r - 1,
}


def _from_speedup(
    metric: str, estimate: float, interval: tuple[float, float]
) -> tuple[float, tuple[float, float] | None]:
    """A time metric (speedup, time reduction or increase) and its interval, from a speedup's."""
    transform = _FROM_SPEEDUP[metric]
    if not interval[0] < interval[1]:
        return transform(estimate), None
    low, high = sorted((transform(interval[0]), transform(interval[1])))
    return transform(estimate), (low, high)


def _measure(
    metric: str, base: Record | None, var: Record, extra: str | None
) -> tuple[float | None, tuple[float, float] | None, str]:
    """The claimed quantity, its interval (when rounds give one), and why not (no value, or no
    interval)."""
    needs_base = metric not in ("seconds", "throughput", "parameters", "extra")
    if needs_base and (base is None or not base.timed):
        return None, None, "the baseline was not measured"
    if metric in ("speedup", "time_reduction", "time_increase"):
        if base is None or not base.median_s or not var.median_s:
            return None, None, "no timing for the baseline or the variant"
        found = speedup(base, var)
        if found is None:
            return None, None, "no timing for the baseline or the variant"
        value, interval = _from_speedup(metric, found.estimate, (found.low, found.high))
        return value, interval, "" if interval else found.method
    if metric in MEMORY_METRICS:
        b, v = (peak_bytes(base) if base else None), peak_bytes(var)
        if not b or v is None:
            return None, None, "peak memory was not recorded (probes off, or zero growth in the baseline)"
        change = memory_change(metric, peak_samples(base) if base else [], peak_samples(var))
        if change is None:
            how = "the exact allocator peak" if var.device.startswith("cuda") else "one probe call each"
            return _memory_metric(metric, v / b), None, how
        return change[0], change[1], ""
    if metric == "flops_reduction":
        if not (base and base.flops_per_call and var.flops_per_call):
            return None, None, "FLOPs were not recorded for both"
        return (
            1 - var.flops_per_call / base.flops_per_call,
            None,
            "FLOPs are counted or declared, not sampled",
        )
    if metric == "seconds":
        return var.median_s, None, "a median without an interval"
    if metric == "throughput":
        if not var.work_per_call or not var.median_s:
            return None, None, "the case declares no work units"
        return var.work_per_call / var.median_s, None, "a median without an interval"
    if metric == "parameters":
        if var.parameters is None:
            return None, None, "no parameter count"
        return float(var.parameters), None, "an exact count"
    if metric in ("extra", "extra_ratio"):
        mine = var.extra.get(extra or "")
        if mine is None:
            return None, None, f"the case did not measure {extra!r}"
        if metric == "extra":
            return mine, None, "one measurement"
        theirs = base.extra.get(extra or "") if base else None
        if not theirs or not mine:
            return None, None, f"{extra!r} missing or zero for the baseline"
        return theirs / mine, None, "one measurement each"
    raise ValueError(f"unknown claim metric {metric!r}")


def _beyond(metric: str, below: bool) -> str:
    """The verdict for a value wholly below (or above) the claimed range."""
    if metric in _TWO_SIDED:
        return REFUTED
    return REFUTED if below == CLAIM_METRICS[metric] else UNDERSTATED


def _amount(metric: str, value: float) -> str:
    return f"{100 * value:.3g} %" if metric in _FRACTIONS else f"{value:.3g}"


def judge(
    metric: str,
    expected: tuple[float, float],
    value: float,
    interval: tuple[float, float] | None,
    no_interval: str = "",
) -> tuple[str, str]:
    """The verdict and a note on what decided it.

    Holds only when the estimate lies inside the claimed range; understated or refuted only when
    the whole interval lies beyond it; otherwise inconclusive, with the precision that would
    have decided it. Without an interval the estimate alone decides, and the note says so.
    """
    lo_claim, hi_claim = expected
    alone = "no interval" + (f" ({no_interval})" if no_interval else "") + ": judged on the estimate alone"
    if lo_claim <= value <= hi_claim:
        return HOLDS, "" if interval else alone
    below = value < lo_claim
    verdict = _beyond(metric, below)
    if interval is None:
        return verdict, alone
    low, high = interval
    if (high < lo_claim) if below else (low > hi_claim):
        return verdict, ""
    # The interval reaches the range: it would decide if it ended short of the edge, i.e. if its
    # half-width towards the range were below the estimate's distance from that edge.
    edge = lo_claim if below else hi_claim
    gap, now = abs(edge - value), (high - value) if below else (value - low)
    if metric in _FRACTIONS:
        need = f"{100 * gap:.2g} points (now {100 * max(now, 0.0):.2g})"
    else:
        need = (
            f"{100 * gap / abs(value):.2g} % of the estimate (now {100 * max(now, 0.0) / abs(value):.2g} %)"
        )
    return INCONCLUSIVE, (
        f"interval [{_amount(metric, low)}, {_amount(metric, high)}] reaches the claimed range (edge "
        f"{_amount(metric, edge)}); a half-width of at most {need} would decide"
    )


def _half_width_factor(trials: int, confidence: float = 0.95) -> float:
    """How an interval over ``trials`` trials scales with their number (bench.stats.trial_speedup:
    Student's t with n-1 degrees of freedom times a bootstrap standard error of the mean of n
    trials, about sd * sqrt(n - 1) / n)."""
    return t_quantile(trials, confidence) * math.sqrt(trials - 1) / trials


def trials_to_decide(claim: Claim, found: Speedup, cap: int) -> int:
    """How many trials in all would, on the present estimate and spread, decide a time claim
    that ``found`` (a speedup over ``found.trials`` trials) leaves inconclusive: the fewest, up
    to ``cap``, whose projected interval no longer reaches the claimed range. 0 where the claim
    is decided already, is not about time, or ``cap`` trials would not decide it either.

    The projection keeps the estimate and the spread between trials and narrows the interval as
    Student's t and the square root of the trials do: an expectation, not a promise, so the
    caller asks again after the trials it got.
    """
    if claim.metric not in _FROM_SPEEDUP or claim.expected is None or claim.hardware or found.trials < 2:
        return 0
    expected = (float(claim.expected[0]), float(claim.expected[1]))
    value, interval = _from_speedup(claim.metric, found.estimate, (found.low, found.high))
    if interval is None or judge(claim.metric, expected, value, interval)[0] != INCONCLUSIVE:
        return 0
    centre = math.log(found.estimate)
    half = (math.log(found.high) - math.log(found.low)) / 2
    for trials in range(found.trials + 1, cap + 1):
        projected = half * _half_width_factor(trials) / _half_width_factor(found.trials)
        ends = (math.exp(centre - projected), math.exp(centre + projected))
        _, narrower = _from_speedup(claim.metric, found.estimate, ends)
        if narrower is not None and judge(claim.metric, expected, value, narrower)[0] != INCONCLUSIVE:
            return trials
    return 0


def _memory_metric(metric: str, ratio: float) -> float:
    """A memory claim's quantity from the ratio of the variant's peak growth to the baseline's."""
    return 1 - ratio if metric == "memory_reduction" else ratio - 1


def _pass_ratio(base: Sequence[float], var: Sequence[float]) -> tuple[float, float, float] | None:
    """The pass-by-pass ratio of the variant's growth to the baseline's and its interval
    (bench.stats.paired_ratio), over the passes both have (an implementation given more passes
    than another keeps its pairs in pass order). None with fewer than two pairs."""
    pairs = min(len(base), len(var))
    return paired_ratio(var[:pairs], base[:pairs]) if pairs >= 2 else None


def memory_change(
    metric: str, base: Sequence[float], var: Sequence[float]
) -> tuple[float, tuple[float, float]] | None:
    """A memory claim's quantity and interval from the passes of the memory probe (``_pass_ratio``);
    None with fewer than two pairs."""
    paired = _pass_ratio(base, var)
    if paired is None:
        return None
    estimate, low, high = paired
    ends = sorted((_memory_metric(metric, low), _memory_metric(metric, high)))
    return _memory_metric(metric, estimate), (ends[0], ends[1])


def _t_factor(n: int, confidence: float = 0.95) -> float:
    """How a Student-t interval of the mean of ``n`` values scales with ``n``: t(n-1) / sqrt(n)."""
    return t_quantile(n, confidence) / math.sqrt(n)


def passes_to_decide(claim: Claim, base: Sequence[float], var: Sequence[float], cap: int) -> int:
    """How many passes of the memory probe in all would, on the present pairs' mean and spread,
    decide a memory claim that ``base`` and ``var`` (each pass's growth of the baseline and the
    variant) leave inconclusive: the fewest, up to ``cap``, whose projected interval no longer
    reaches the claimed range. 0 where it is decided already, is not about memory, or ``cap``
    passes would not decide it either. An expectation, like ``trials_to_decide``'s: the caller
    asks again after each pass."""
    if claim.metric not in MEMORY_METRICS or claim.expected is None or claim.hardware:
        return 0
    paired = _pass_ratio(base, var)
    if paired is None:
        return 0
    pairs = min(len(base), len(var))
    expected = (float(claim.expected[0]), float(claim.expected[1]))
    estimate, low, high = paired
    value, centre = _memory_metric(claim.metric, estimate), math.log(estimate)

    def interval(half: float) -> tuple[float, float]:  # paired_ratio's: symmetric in log space
        ends = sorted(_memory_metric(claim.metric, math.exp(centre + d)) for d in (-half, half))
        return ends[0], ends[1]

    half = (math.log(high) - math.log(low)) / 2
    if judge(claim.metric, expected, value, interval(half))[0] != INCONCLUSIVE:
        return 0
    for passes in range(pairs + 1, cap + 1):
        projected = half * _t_factor(passes) / _t_factor(pairs)
        if judge(claim.metric, expected, value, interval(projected))[0] != INCONCLUSIVE:
            return passes
    return 0


def run_command(case: str, markers: list[str], profile: str) -> str:
    """The command that runs a case which the run's marker expression left out."""
    if not markers:
        expression = "''"
    elif len(markers) == 1:
        expression = markers[0]
    else:
        expression = "'" + " and ".join(markers) + "'"
    options = "" if profile in ("quick", "?") else f" --profile {profile}"
    return f"bench run -m {expression} -k {case}{options}"


def evaluate(
    claim: Mapping[str, Any],
    records: list[Record],
    left_out: Mapping[str, list[str]] | None = None,
    profile: str = "quick",
    not_reached: Mapping[str, str] | None = None,
) -> ClaimResult:
    """The verdict on one claim from a run's records; ``left_out``: the cases (with their
    markers) that the run's marker expression left out, whose claims are "not run";
    ``not_reached``: the cases an interrupted run did not finish, with the command that does."""
    expected = None
    if claim.get("expected"):
        low, high = claim["expected"]
        expected = (float(low), math.inf if high is None else float(high))

    def result(
        verdict: str,
        where: str,
        note: str = "",
        value: float | None = None,
        interval: tuple[float, float] | None = None,
        command: str = "",
    ) -> ClaimResult:
        return ClaimResult(
            case=claim["case"],
            id=claim["id"],
            text=claim["text"],
            metric=claim["metric"],
            expected=expected,
            value=value,
            interval=interval,
            verdict=verdict,
            where=where,
            note=note,
            command=command,
        )

    if not claim.get("measurable", True):
        return result(NOT_MEASURABLE, "", claim.get("reason", ""))
    if left_out is not None and claim["case"] in left_out:
        markers = list(left_out[claim["case"]])
        command = run_command(claim["case"], markers, profile)
        marked = f" (marked {', '.join(markers)})" if markers else ""
        return result(
            NOT_RUN,
            "",
            f"the run's marker expression left {claim['case']}{marked} out; run: `{command}`",
            command=command,
        )
    if not_reached and claim["case"] in not_reached:
        # Not judged on the points it did finish: the point a claim is judged at is chosen from
        # those measured, and a whole run could choose another.
        command = not_reached[claim["case"]]
        note = f"the run was interrupted before it finished {claim['case']}; run: `{command}`"
        return result(NOT_RUN, "", note, command=command)
    base, var, where = _pick([r for r in records if r.case == claim["case"]], claim)
    if var is None:
        return result(NOT_MEASURABLE, where, f"{claim['variant']!r} of {claim['case']} is not in this run")
    if not var.timed:
        reason = (var.error or {}).get("message", "not timed")
        return result(NOT_MEASURABLE, where, f"{claim['variant']!r} failed: {reason}")
    value, interval, why = _measure(claim["metric"], base, var, claim.get("extra"))
    if value is None or math.isnan(value):
        return result(NOT_MEASURABLE, where, why)
    if claim.get("hardware"):
        return result(
            OTHER_HARDWARE, where, f"the claimed figure is for {claim['hardware']}", value, interval
        )
    if expected is None:
        return result(NOT_MEASURABLE, where, "the claim declares no range to check against", value, interval)
    verdict, note = judge(claim["metric"], expected, value, interval, why)
    return result(verdict, where, note, value, interval)


def audit(run: Run) -> list[ClaimResult]:
    """Every claim the run's cases declared, judged on that run's records; the claims of cases the
    marker expression left out, or an interrupted run did not reach, are listed as not run."""
    records = [*run.records, *run.failures]
    selection = run.info.get("selection") or {}
    left_out = selection.get("left_out") or {}
    journal = (run.info.get("trials") or {}).get("journal")
    not_reached = {
        case: f"bench run --resume {journal}" if journal else f"bench run -k {case}"
        for case in _not_reached(run, records)
    }
    return [evaluate(claim, records, left_out, run.profile, not_reached) for claim in run.claims]


def _not_reached(run: Run, records: list[Record]) -> list[str]:
    """The cases an interrupted run did not finish, as it recorded them; a run recorded before
    that (harness 0.1 of 2026-12-04 and earlier) tells them as far as its JSON can: a case with a
    group whose trials are short of the run's, or with no record at all (a case with one group
    finished and another not begun looks finished)."""
    selection = run.info.get("selection") or {}
    if "not_reached" in selection or not run.info.get("interrupted"):
        return list(selection.get("not_reached") or [])
    trials = run.info.get("trials") or {}
    groups = (trials.get("workers") or {}).get("groups") or {}
    wanted = trials.get("per_item", 0)
    short = {name.split("[", 1)[0] for name, g in groups.items() if g.get("trials", 0) < wanted}
    recorded = {r.case for r in records}
    return sorted(short | {c["case"] for c in run.claims if c["case"] not in recorded})
