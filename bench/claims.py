"""Verdicts for the source notes' claims: holds, understated, refuted, other hardware, not measurable."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.case import CLAIM_METRICS, point_id
from bench.compare import peak_bytes
from bench.results import Record, Run
from bench.stats import ratio_interval

HOLDS = "holds"
UNDERSTATED = "understated"
REFUTED = "refuted"
OTHER_HARDWARE = "other hardware"
NOT_MEASURABLE = "not measurable here"
VERDICTS = (HOLDS, UNDERSTATED, REFUTED, OTHER_HARDWARE, NOT_MEASURABLE)
# Metrics where a value outside the claimed range is simply wrong in either direction.
_TWO_SIDED = {"parameters", "extra"}


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


def _matches(params: Mapping[str, Any], at: Mapping[str, Any]) -> bool:
    return all(params.get(k) == v for k, v in at.items())


def _pick(records: list[Record], claim: Mapping[str, Any]) -> tuple[Record | None, Record | None, str]:
    """The (baseline, variant) records the claim is judged on, and a note on where."""
    at = claim.get("at") or {}
    points: dict[str, Mapping[str, Any]] = {}
    for rec in records:
        points.setdefault(rec.point, rec.params)
    if not points:
        return None, None, ""
    wanted = [p for p, params in points.items() if _matches(params, at)]
    note = ""
    if wanted:
        chosen = wanted[-1]
    else:
        chosen = list(points)[-1]
        note = (
            f"this run has no point at {point_id(at)}; measured at the largest point instead "
            "(run --profile full)"
        )
    devices = [r.device for r in records if r.point == chosen]
    device = "cuda" if "cuda" in devices else devices[0]

    def find(name: str) -> Record | None:
        return next(
            (r for r in records if r.point == chosen and r.device == device and r.variant == name), None
        )

    return (
        find(claim["baseline"]),
        find(claim["variant"]),
        f"{chosen} on {device}" + (f"; {note}" if note else ""),
    )


def _measure(
    metric: str, base: Record | None, var: Record, extra: str | None
) -> tuple[float | None, tuple[float, float] | None, str]:
    """The claimed quantity and its interval (when rounds give one)."""
    needs_base = metric not in ("seconds", "throughput", "parameters", "extra")
    if needs_base and (base is None or not base.timed):
        return None, None, "the baseline was not measured"
    if metric in ("speedup", "time_reduction", "time_increase"):
        if base is None or not base.median_s or not var.median_s:
            return None, None, "no timing for the baseline or the variant"
        ratio = base.median_s / var.median_s
        ci = ratio_interval(base.rounds_s, var.rounds_s)
        transform = {
            "speedup": lambda r: r,
            "time_reduction": lambda r: 1 - 1 / r,
            "time_increase": lambda r: 1 / r - 1,
        }[metric]
        interval = tuple(sorted((transform(ci[0]), transform(ci[1])))) if ci else None
        return transform(ratio), interval, ""
    if metric in ("memory_reduction", "memory_increase"):
        b, v = (peak_bytes(base) if base else None), peak_bytes(var)
        if not b or v is None:
            return None, None, "peak memory was not recorded (probes off, or zero growth in the baseline)"
        return (1 - v / b if metric == "memory_reduction" else v / b - 1), None, ""
    if metric == "flops_reduction":
        if not (base and base.flops_per_call and var.flops_per_call):
            return None, None, "FLOPs were not recorded for both"
        return 1 - var.flops_per_call / base.flops_per_call, None, ""
    if metric == "seconds":
        return var.median_s, None, ""
    if metric == "throughput":
        if not var.work_per_call or not var.median_s:
            return None, None, "the case declares no work units"
        return var.work_per_call / var.median_s, None, ""
    if metric == "parameters":
        return (float(var.parameters) if var.parameters is not None else None), None, "no parameter count"
    if metric in ("extra", "extra_ratio"):
        mine = var.extra.get(extra or "")
        if mine is None:
            return None, None, f"the case did not measure {extra!r}"
        if metric == "extra":
            return mine, None, ""
        theirs = base.extra.get(extra or "") if base else None
        if not theirs or not mine:
            return None, None, f"{extra!r} missing or zero for the baseline"
        return theirs / mine, None, ""
    raise ValueError(f"unknown claim metric {metric!r}")


def _verdict(
    metric: str, expected: tuple[float, float], value: float, interval: tuple[float, float] | None
) -> str:
    low, high = interval or (value, value)
    lo_claim, hi_claim = expected
    if high < lo_claim:
        below = True
    elif low > hi_claim:
        below = False
    else:
        return HOLDS
    if metric in _TWO_SIDED:
        return REFUTED
    better_is_higher = CLAIM_METRICS[metric]
    return REFUTED if below == better_is_higher else UNDERSTATED


def evaluate(claim: Mapping[str, Any], records: list[Record]) -> ClaimResult:
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
        )

    if not claim.get("measurable", True):
        return result(NOT_MEASURABLE, "", claim.get("reason", ""))
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
    return result(_verdict(claim["metric"], expected, value, interval), where, "", value, interval)


def audit(run: Run) -> list[ClaimResult]:
    """Every claim the run's cases declared, judged on that run's records."""
    records = [*run.records, *run.failures]
    return [evaluate(claim, records) for claim in run.claims]
