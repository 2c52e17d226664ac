"""Case declarations are validated on construction with messages that say what to fix."""

from __future__ import annotations

import math

import pytest

from bench import Case, Claim, Grid, Tolerance, Variant
from bench.case import point_id
from bench.errors import CaseDefinitionError, SelectionError
from bench.registry import Registry


def _setup(params, device):
    return {}


def _fn():
    return 0


def _case(**overrides):
    fields = dict(
        name="fam.case",
        setup=_setup,
        reference=_fn,
        variants={"fast": _fn},
        grids={"quick": Grid(n=[1, 2]), "full": Grid(n=[3])},
    )
    fields.update(overrides)
    return Case(**fields)


def test_grid_points_are_the_product_in_order() -> None:
    grid = Grid(batch=[8, 16], dim=[64])
    assert grid.points() == [{"batch": 8, "dim": 64}, {"batch": 16, "dim": 64}]
    assert point_id(grid.points()[1]) == "batch16-dim64"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "at least one axis"),
        ({"batch": []}, "non-empty list"),
        ({"batch": [1, 1]}, "repeats a value"),
        ({"Batch": [1]}, "lower_snake_case"),
        ({"batch": [object()]}, "not an int, float, str or bool"),
    ],
)
def test_bad_grids(kwargs, message) -> None:
    with pytest.raises(CaseDefinitionError, match=message):
        Grid(**kwargs)


def test_missing_reference_is_a_clear_error() -> None:
    with pytest.raises(CaseDefinitionError, match=r"Case 'fam.case': has no reference implementation"):
        _case(reference=None)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "nodot"}, "family.case"),
        ({"mode": "backward"}, "unknown mode 'backward'"),
        ({"grids": {"quick": Grid(n=[1])}}, "missing full"),
        ({"variants": {"reference": _fn}}, "other than 'reference'"),
        ({"variants": {"v": Variant(_fn, params={"zz": 1})}}, "unknown parameters"),
        ({"devices": ("tpu",)}, "devices must be"),
        (
            {"claims": [Claim("C1", "x", metric="speedup", variant="nope", expected=(1, 2))]},
            "unknown variant",
        ),
        (
            {"claims": [Claim("C1", "x", metric="speedup", variant="fast", expected=(1, 2), at={"zz": 1})]},
            "pins unknown parameters",
        ),
        ({"claims": [Claim("C1", "x", metric="speedup", expected=(1, 2))] * 2}, "declared twice"),
        ({"setup": None}, "setup must be"),
        ({"work": ("rows",)}, "work must be"),
    ],
)
def test_bad_cases(overrides, message) -> None:
    with pytest.raises(CaseDefinitionError, match=message):
        _case(**overrides)


def test_plain_callables_become_exact_variants_reference_first() -> None:
    case = _case()
    names = [name for name, _ in case.implementations()]
    assert names == ["reference", "fast"]
    assert case.variants["fast"].exact
    assert case.family == "fam"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "speed"}, "unknown metric"),
        ({"metric": "speedup"}, "needs expected"),
        ({"metric": "speedup", "expected": (3, 2)}, "range"),
        ({"metric": "speedup", "expected": (math.nan, 2)}, "range"),
        ({"metric": "extra", "expected": (1, 2)}, "needs extra="),
        ({"metric": "seconds", "measurable": False}, "needs a reason"),
    ],
)
def test_bad_claims(kwargs, message) -> None:
    with pytest.raises(CaseDefinitionError, match=message):
        Claim("C1", "claim text", **kwargs)


def test_open_ended_claim_is_allowed() -> None:
    claim = Claim("C1", "faster", metric="speedup", expected=(1.0, math.inf))
    assert claim.higher_is_better


def test_variant_validation() -> None:
    with pytest.raises(CaseDefinitionError, match="must be callable"):
        Variant(fn=None)  # type: ignore[arg-type]
    with pytest.raises(CaseDefinitionError, match="exact variant has a tolerance"):
        Variant(_fn, quality=lambda r, v: {})
    with pytest.raises(CaseDefinitionError, match=r"Tolerance\.rtol"):
        Tolerance(rtol=-1)


def test_registry_rejects_a_name_from_two_modules() -> None:
    registry = Registry()
    case = _case()
    registry.add(case, "suites.a")
    registry.add(case, "suites.a")  # re-importing the same module is fine
    with pytest.raises(CaseDefinitionError, match="declared twice"):
        registry.add(case, "suites.b")
    assert registry.from_module("suites.a") == [case]
    with pytest.raises(SelectionError, match=r"no case named .fam\.other."):
        registry.get("fam.other")


def test_benchmark_options_are_checked() -> None:
    assert _case(benchmark={"min_rounds": 1}).benchmark["min_rounds"] == 1
    with pytest.raises(CaseDefinitionError, match="benchmark options \\['rounds'\\] are unknown"):
        _case(benchmark={"rounds": 3})
