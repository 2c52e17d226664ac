"""The shared quality measures: one zero guard for relative error, agreement of choices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench import agreement, max_abs_error, relative_error
from bench.errors import CaseDefinitionError


def test_relative_error_of_numbers_tensors_and_arrays() -> None:
    assert relative_error(2.0, 2.5) == pytest.approx(0.25)
    assert relative_error(torch.tensor(-4.0), torch.tensor(-3.0)) == pytest.approx(0.25)
    # A norm over all elements, not an elementwise maximum.
    assert relative_error(torch.tensor([3.0, 4.0]), torch.tensor([3.0, 5.0])) == pytest.approx(0.2)
    assert relative_error(np.array([1.0, 0.0]), np.array([1.0, 0.0])) == 0.0


def test_relative_error_has_one_zero_guard() -> None:
    assert relative_error(0.0, 0.0) == 0.0
    assert relative_error(torch.zeros(3), torch.zeros(3)) == 0.0
    assert relative_error(0.0, 1e-30) == math.inf  # no floor turns a wrong zero into a finite number


def test_max_abs_error_and_agreement() -> None:
    assert max_abs_error(torch.tensor([1.0, 2.0]), torch.tensor([1.5, 1.0])) == pytest.approx(1.0)
    assert max_abs_error(torch.zeros(0), torch.zeros(0)) == 0.0
    assert agreement(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 0, 3])) == pytest.approx(0.75)


def test_mismatched_or_unusable_inputs_are_errors() -> None:
    with pytest.raises(CaseDefinitionError, match="shapes differ"):
        relative_error(torch.zeros(2), torch.zeros(3))
    with pytest.raises(CaseDefinitionError, match="expected a number, array or tensor, got str"):
        max_abs_error("a", "b")
    with pytest.raises(CaseDefinitionError, match="nothing to compare"):
        agreement(torch.zeros(0), torch.zeros(0))
