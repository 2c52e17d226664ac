"""Does a variant match its reference: elementwise error against a tolerance, or a quality metric."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from bench.calls import Snapshot
from bench.case import Tolerance, Variant


@dataclass(frozen=True)
class Verdict:
    """The correctness part of a record (see the schema in the README)."""

    exact: bool
    passed: bool
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    tolerance: dict[str, float] | None = None
    where: str | None = None
    quality_metric: str | None = None
    value: float | None = None
    details: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        if self.exact:
            return {
                "exact": True,
                "passed": self.passed,
                "max_abs_err": self.max_abs_err,
                "max_rel_err": self.max_rel_err,
                "tolerance": self.tolerance,
                "where": self.where,
            }
        return {
            "exact": False,
            "passed": self.passed,
            "quality_metric": self.quality_metric,
            "value": self.value,
            "details": dict(self.details),
            "note": self.note,
        }

    def describe(self) -> str:
        if self.exact:
            return (
                f"max abs err {self.max_abs_err:.3g}, max rel err {self.max_rel_err:.3g} at {self.where} "
                f"(tolerance rtol={self.tolerance['rtol'] if self.tolerance else '?'}, "
                f"atol={self.tolerance['atol'] if self.tolerance else '?'})"
            )
        return f"{self.quality_metric} = {self.value}"


def _errors(ref: torch.Tensor, var: torch.Tensor, tol: Tolerance) -> tuple[float, float, bool]:
    if ref.shape != var.shape:
        return math.inf, math.inf, False
    if not (ref.is_floating_point() or ref.is_complex()) and not (
        var.is_floating_point() or var.is_complex()
    ):
        equal = bool(torch.equal(ref, var))
        diff = (ref.to(torch.float64) - var.to(torch.float64)).abs()
        return float(diff.max()) if diff.numel() else 0.0, 0.0 if equal else math.inf, equal
    a = var.to(torch.complex128 if var.is_complex() else torch.float64)
    b = ref.to(a.dtype)
    if a.numel() == 0:
        return 0.0, 0.0, True
    both_nan = torch.isnan(a) & torch.isnan(b)
    diff = torch.where(both_nan, torch.zeros_like(a.real if a.is_complex() else a), (a - b).abs())
    diff = torch.nan_to_num(diff, nan=math.inf)
    scale = b.abs()
    rel = torch.where(scale > 0, diff / torch.where(scale > 0, scale, torch.ones_like(scale)), diff)
    ok = bool(((diff <= tol.atol + tol.rtol * scale) | both_nan).all())
    return float(diff.max()), float(rel.max()), ok


def compare(reference: Snapshot, variant: Snapshot, tolerance: Tolerance) -> Verdict:
    """Outputs (and, for forward_backward, every leaf's gradient) within tolerance."""
    tol = {"rtol": tolerance.rtol, "atol": tolerance.atol}
    pairs: list[tuple[str, torch.Tensor, torch.Tensor]] = []

    def structural(where: str) -> Verdict:
        return Verdict(True, False, math.inf, math.inf, tol, where)

    if len(reference.outputs) != len(variant.outputs):
        return structural(
            f"output count ({len(variant.outputs)} vs {len(reference.outputs)} in the reference)"
        )
    pairs += [
        (f"output[{i}]", r, v)
        for i, (r, v) in enumerate(zip(reference.outputs, variant.outputs, strict=True))
    ]
    pairs += [
        (f"grad[{i}]", r, v) for i, (r, v) in enumerate(zip(reference.grads, variant.grads, strict=True))
    ]
    worst_abs, worst_rel, worst_name, first_failure = 0.0, 0.0, "output[0]", None
    for name, ref, var in pairs:
        if ref.shape != var.shape:
            return structural(f"{name} (shape {tuple(var.shape)} vs {tuple(ref.shape)} in the reference)")
        abs_err, rel_err, ok = _errors(ref, var, tolerance)
        if not ok and first_failure is None:
            first_failure = name
        if abs_err > worst_abs:
            worst_abs, worst_name = abs_err, name
        worst_rel = max(worst_rel, rel_err)
    return Verdict(True, first_failure is None, worst_abs, worst_rel, tol, first_failure or worst_name)


def judge(reference: Snapshot | None, variant: Snapshot, spec: Variant, case_tol: Tolerance) -> Verdict:
    """The verdict for one variant: exact comparison, quality metric, or not comparable.

    A quality function also runs for variants with changed parameters: it knows the two outputs
    come from different workloads (e.g. a metric computed on fewer samples)."""
    if spec.exact:
        if reference is None:
            raise ValueError("an exact variant is compared with a reference snapshot")
        return compare(reference, variant, spec.tolerance or case_tol)
    if spec.quality is not None and reference is not None:
        values: Mapping[str, float] = spec.quality(reference.output, variant.output)
        if not values:
            return Verdict(False, True, note="quality function returned no metric")
        name, value = next(iter(values.items()))
        return Verdict(
            False,
            True,
            quality_metric=name,
            value=float(value),
            details={k: float(v) for k, v in values.items()},
            note=spec.note,
        )
    return Verdict(False, True, note=spec.note or "different workload: not compared with the reference")
