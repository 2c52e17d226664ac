"""FLOPs of one call, counted by torch's FlopCounterMode (matmul/conv family only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.flop_counter import FlopCounterMode


def count_flops(call: Callable[[], Any]) -> int:
    """Counted FLOPs of one call. Linear algebra (cholesky, solve, eigh) is not counted: cases
    where it dominates declare their FLOPs instead."""
    counter = FlopCounterMode(display=False)
    with counter:
        call()
    return int(counter.get_total_flops())
