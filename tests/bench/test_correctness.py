"""Correctness: elementwise comparison of outputs and gradients, quality metrics, call modes."""

from __future__ import annotations

import math
from typing import NamedTuple

import pytest
import torch

from bench.calls import Caller, default_objective, flat_tensors, grad_leaves, parameter_count
from bench.case import Tolerance, Variant
from bench.correctness import compare, judge
from bench.errors import CaseDefinitionError


class Result(NamedTuple):
    loss: torch.Tensor
    index: torch.Tensor


def _snap(fn, **inputs):
    return Caller(fn, inputs, "forward", "cpu").snapshot()


def test_equal_outputs_pass_and_report_errors() -> None:
    x = torch.tensor([1.0, 2.0, 3.0])
    verdict = compare(_snap(lambda x: x * 2, x=x), _snap(lambda x: x + x, x=x), Tolerance())
    assert verdict.passed and verdict.max_abs_err == 0.0


def test_small_differences_within_tolerance_pass_larger_fail() -> None:
    x = torch.tensor([1.0, 100.0], dtype=torch.float64)
    ref = _snap(lambda x: x, x=x)
    ok = compare(ref, _snap(lambda x: x * (1 + 1e-7), x=x), Tolerance(rtol=1e-6, atol=0))
    bad = compare(ref, _snap(lambda x: x * (1 + 1e-5), x=x), Tolerance(rtol=1e-6, atol=0))
    assert ok.passed
    assert not bad.passed
    assert bad.max_rel_err == pytest.approx(1e-5, rel=1e-3)
    assert bad.where == "output[0]"
    assert "max rel err" in bad.describe()


def test_integer_outputs_must_be_equal() -> None:
    x = torch.tensor([1.0])
    ref = _snap(lambda x: Result(x.sum(), torch.tensor([0, 1])), x=x)
    var = _snap(lambda x: Result(x.sum(), torch.tensor([0, 2])), x=x)
    verdict = compare(ref, var, Tolerance(rtol=1, atol=1))
    assert not verdict.passed and verdict.where == "output[1]"


def test_shape_and_count_mismatches_fail() -> None:
    x = torch.ones(3)
    assert not compare(_snap(lambda x: x, x=x), _snap(lambda x: x[:2], x=x), Tolerance()).passed
    assert not compare(_snap(lambda x: (x, x), x=x), _snap(lambda x: x, x=x), Tolerance()).passed


def test_nan_only_matches_nan() -> None:
    x = torch.tensor([math.nan, 1.0])
    assert compare(_snap(lambda x: x, x=x), _snap(lambda x: x.clone(), x=x), Tolerance()).passed
    assert not compare(_snap(lambda x: x.nan_to_num(), x=x), _snap(lambda x: x, x=x), Tolerance()).passed


def test_forward_backward_compares_gradients_of_inputs_and_parameters() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 1)
    x = torch.randn(4, 3, requires_grad=True)
    inputs = {"layer": layer, "x": x}
    ref = Caller(lambda layer, x: layer(x).sum(), inputs, "forward_backward", "cpu").snapshot()
    same = Caller(
        lambda layer, x: (x @ layer.weight.T + layer.bias).sum(), inputs, "forward_backward", "cpu"
    ).snapshot()
    # Same loss value, wrong gradient: the detach hides x from autograd.
    wrong = Caller(
        lambda layer, x: layer(x.detach()).sum() + 0 * x.sum(), inputs, "forward_backward", "cpu"
    ).snapshot()
    assert len(ref.grads) == 3  # weight, bias, x
    assert compare(ref, same, Tolerance(rtol=1e-6, atol=1e-6)).passed
    verdict = compare(ref, wrong, Tolerance(rtol=1e-6, atol=1e-6))
    assert not verdict.passed and verdict.where.startswith("grad[")


def test_forward_mode_runs_without_autograd() -> None:
    x = torch.ones(2, requires_grad=True)
    out = Caller(lambda x: x * 2, {"x": x}, "forward", "cpu").run()
    assert not out.requires_grad


def test_default_objective_needs_a_differentiable_output() -> None:
    with pytest.raises(CaseDefinitionError, match="differentiable tensor"):
        default_objective(torch.ones(2))
    assert default_objective((torch.ones(2, requires_grad=True) * 3, 1)).item() == 6


def test_outputs_of_unknown_type_are_rejected() -> None:
    with pytest.raises(CaseDefinitionError, match="cannot compare an output of type object"):
        flat_tensors(object())


def test_leaves_and_parameter_counts() -> None:
    layer = torch.nn.Linear(3, 2)
    x = torch.ones(1, requires_grad=True)
    assert len(grad_leaves({"a": [layer, x], "b": x})) == 3
    assert parameter_count({"m": layer, "again": layer}) == 8
    assert parameter_count({"x": x}) is None


def test_judge_quality_and_not_compared() -> None:
    x = torch.tensor([2.0])
    ref, var = _snap(lambda x: x, x=x), _snap(lambda x: x / 2, x=x)
    approx = judge(
        ref, var, Variant(lambda x: x, exact=False, quality=lambda r, v: {"ratio": float(v / r)}), Tolerance()
    )
    assert approx.as_dict()["quality_metric"] == "ratio" and approx.value == 0.5
    other = judge(ref, var, Variant(lambda x: x, exact=False, params={"n": 2}, note="smaller"), Tolerance())
    assert other.passed and other.as_dict()["note"] == "smaller"


def test_kept_outputs_do_not_alias_state_updated_in_place() -> None:
    state = torch.zeros(3)

    def step(state):
        return state.add_(1)  # returns the very tensor it updates

    caller = Caller(step, {"state": state}, "forward", "cpu")
    snapshot = caller.snapshot()
    caller.run()
    caller.run()
    assert snapshot.outputs[0].tolist() == [1.0, 1.0, 1.0]
    assert snapshot.output.tolist() == [1.0, 1.0, 1.0]
