"""Quality measures for approximate variants: relative and absolute error, agreement of choices."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from bench.errors import CaseDefinitionError

if TYPE_CHECKING:
    import torch

# torch and numpy are imported inside the functions: `import bench` (and so the pytest plugin)
# must stay cheap for projects that never declare a case.


def _tensor(value: Any, what: str) -> torch.Tensor:
    """A float64 (or complex128) CPU copy of a number, array or tensor."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
    elif isinstance(value, (np.ndarray, np.number, bool, int, float, complex)):
        tensor = torch.as_tensor(np.asarray(value))
    else:
        raise CaseDefinitionError(f"{what}: expected a number, array or tensor, got {type(value).__name__}")
    return tensor.to(torch.complex128 if tensor.is_complex() else torch.float64)


def _pair(reference: Any, value: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    ref, var = _tensor(reference, what), _tensor(value, what)
    if ref.shape != var.shape:
        raise CaseDefinitionError(f"{what}: shapes differ ({tuple(var.shape)} vs {tuple(ref.shape)})")
    return ref, var


def relative_error(reference: Any, value: Any) -> float:
    """||value - reference|| / ||reference||, the Euclidean norm over all elements (|.| for numbers).

    The one zero guard: 0.0 when both are zero, inf when only the reference is (no floor that
    would turn a wrong zero into a large finite number).
    """
    import torch

    ref, var = _pair(reference, value, "relative_error")
    diff = float(torch.linalg.vector_norm(var - ref))
    scale = float(torch.linalg.vector_norm(ref))
    if scale == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return diff / scale


def max_abs_error(reference: Any, value: Any) -> float:
    """The largest elementwise |value - reference| (0.0 for empty inputs)."""
    ref, var = _pair(reference, value, "max_abs_error")
    return float((var - ref).abs().max()) if ref.numel() else 0.0


def agreement(reference: Any, value: Any) -> float:
    """The fraction of elements that are equal: how often an approximate choice (a selected index,
    a predicted class) is the reference's."""
    ref, var = _pair(reference, value, "agreement")
    if ref.numel() == 0:
        raise CaseDefinitionError("agreement: nothing to compare (empty inputs)")
    return float((ref == var).double().mean())
