"""Running one implementation of a registered case as the harness does, for the suites' tests."""

from __future__ import annotations

from typing import Any

from bench.calls import Caller, arguments_for
from bench.case import Case, MeasureContext
from bench.registry import REGISTRY


def family(name: str) -> dict[str, Case]:
    """The registered cases of a family (its suite modules imported by the test)."""
    return {case.name: case for case in REGISTRY if case.family == name}


def measured(case: Case, variant: str, inputs: dict[str, Any], params: dict[str, Any]) -> MeasureContext:
    """One call of an implementation (prepared, with its kwargs) and what its measures are told."""
    impl = case.implementation(variant)
    arguments = arguments_for(impl, inputs, params, "cpu", variant).values
    caller = Caller(impl.fn, arguments, case.mode, "cpu", case.objective)
    return MeasureContext(variant, params, inputs, arguments, caller(), caller)
