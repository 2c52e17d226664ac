"""Case declarations are validated on construction with messages that say what to fix."""

from __future__ import annotations

import math

import pytest

from bench import Case, Claim, Grid, Tolerance, Variant
from bench.calls import arguments_for
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


def _prepare(inputs, params):
    return {**inputs, "y": params["n"]}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prepare": "not a function"}, r"Variant\.prepare must be a callable \(inputs, params\) -> inputs"),
        ({"prepare": lambda inputs: inputs}, r"Variant\.prepare must be a callable \(inputs, params\)"),
        ({"kwargs": [("a", 1)]}, r"Variant\.kwargs must be a mapping"),
        ({"kwargs": {"not a name": 1}}, "must be identifiers"),
    ],
)
def test_bad_prepare_and_kwargs(kwargs, message) -> None:
    with pytest.raises(CaseDefinitionError, match=message):
        Variant(_fn, **kwargs)


def test_prepare_and_kwargs_are_kept_read_only() -> None:
    variant = Variant(_fn, kwargs={"read": "batched"}, prepare=_prepare)
    assert variant.prepare is _prepare and dict(variant.kwargs) == {"read": "batched"}
    with pytest.raises(TypeError):
        variant.kwargs["read"] = "other"  # type: ignore[index]


def test_reference_may_be_a_variant_for_its_kwargs_and_prepare() -> None:
    case = _case(reference=Variant(_fn, kwargs={"k": 1}, prepare=_prepare, note="bound"))
    reference = case.implementation("reference")
    assert dict(reference.kwargs) == {"k": 1} and reference.prepare is _prepare
    assert case.implementations()[0] == ("reference", reference)
    assert _case().implementation("reference").fn is _fn  # a plain callable becomes a Variant
    with pytest.raises(CaseDefinitionError, match=r"reference=Variant\(\.\.\.\) takes fn, kwargs, prepare"):
        _case(reference=Variant(_fn, exact=False, quality=lambda r, v: {}))
    with pytest.raises(CaseDefinitionError, match="no variant 'nope'"):
        _case().implementation("nope")


def test_measures_takes_one_context() -> None:
    assert _case(measures=lambda ctx: {}).measures is not None
    with pytest.raises(CaseDefinitionError, match="measures takes one argument, a MeasureContext"):
        _case(measures=lambda inputs, output, params: {})


def test_arguments_are_prepared_inputs_plus_kwargs() -> None:
    inputs = {"x": 1}
    arguments = arguments_for(Variant(_fn, kwargs={"k": 2}, prepare=_prepare), inputs, {"n": 3}, "cpu", "v")
    assert dict(arguments.values) == {"x": 1, "y": 3, "k": 2}
    assert arguments.prepare_s is not None and arguments.prepare_s >= 0
    assert inputs == {"x": 1}  # prepare returned a new mapping
    plain = arguments_for(Variant(_fn), inputs, {}, "cpu", "v")
    assert plain.values is inputs and plain.prepare_s is None


def test_kwargs_that_collide_with_inputs_are_a_clear_error() -> None:
    message = r"Case 'f\.c', variant 'v': kwargs \['x'\] are also inputs from setup"
    with pytest.raises(CaseDefinitionError, match=message):
        arguments_for(Variant(_fn, kwargs={"x": 2}), {"x": 1}, {}, "cpu", "Case 'f.c', variant 'v'")
    with pytest.raises(CaseDefinitionError, match=r"kwargs \['y'\] are also inputs from prepare"):
        arguments_for(Variant(_fn, kwargs={"y": 2}, prepare=_prepare), {"x": 1}, {"n": 1}, "cpu", "v")


def test_prepare_sees_read_only_inputs_and_must_return_a_mapping() -> None:
    def mutate(inputs, params):
        inputs["x"] = 2
        return inputs

    with pytest.raises(TypeError):
        arguments_for(Variant(_fn, prepare=mutate), {"x": 1}, {}, "cpu", "v")
    with pytest.raises(CaseDefinitionError, match="v: prepare must return a mapping of keyword arguments"):
        arguments_for(Variant(_fn, prepare=lambda i, p: [1]), {"x": 1}, {}, "cpu", "v")
