"""FLOPs of one call, from FlopCounterMode's formulas without its module tracker (cheap per call)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

Inputs = Mapping[str, Any]


class MatmulFlops(TorchDispatchMode):
    """FlopCounterMode's formulas without its module tracker, whose per-module hooks cost
    milliseconds per call: ~30 s to count the per-set reference's thousands of small modules."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += int(formula(*args, **kwargs, out_val=out))
        return out


def counted_flops(
    setup: Callable[[dict[str, Any], str], Inputs],
    fn: Callable[..., Any],
    mode: str,
    *,
    prepare: Callable[[Inputs, Inputs], Inputs] | None = None,
    kwargs: Inputs | None = None,
) -> Callable[[Inputs], float]:
    """A params -> FLOPs function: one CPU call ``fn(**prepare(setup(params), params), **kwargs)``
    counted, once per distinct params (gradients on unless ``mode`` is "forward")."""
    cache: dict[tuple[Any, ...], float] = {}

    def flops(params: Inputs) -> float:
        key = tuple(sorted(params.items()))
        if key not in cache:
            inputs = setup(dict(params), "cpu")
            arguments = {**(prepare(inputs, params) if prepare is not None else inputs), **(kwargs or {})}
            counter = MatmulFlops()
            with counter, torch.set_grad_enabled(mode != "forward"):
                fn(**arguments)
            cache[key] = float(counter.total)
        return cache[key]

    return flops
