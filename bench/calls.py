"""How a case's callable is invoked in each mode, once for checking or repeatedly for timing."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from bench.case import Variant
from bench.device import synchronize
from bench.errors import CaseDefinitionError

Inputs = Mapping[str, Any]


def check_inputs(inputs: Any, case: str, source: str = "setup") -> Inputs:
    if not isinstance(inputs, Mapping):
        raise CaseDefinitionError(
            f"Case {case!r}: {source} must return a mapping of keyword arguments, got {type(inputs).__name__}"
        )
    return inputs


@dataclass(frozen=True)
class Arguments:
    """What one implementation is called with, and how long its preparation took."""

    values: Inputs
    prepare_s: float | None  # None: the implementation declares no prepare


def arguments_for(
    impl: Variant, inputs: Inputs, params: Mapping[str, Any], device: str, where: str
) -> Arguments:
    """``prepare(inputs, params)`` when the implementation declares it, then its bound kwargs.

    ``where`` names the implementation in errors (``"Case 'f.c', variant 'v'"``).
    """
    values, prepare_s = inputs, None
    if impl.prepare is not None:
        started = time.perf_counter()
        # Read-only views: the reference's inputs are shared with the variants.
        prepared = impl.prepare(MappingProxyType(dict(inputs)), MappingProxyType(dict(params)))
        synchronize(device)
        prepare_s = time.perf_counter() - started
        if not isinstance(prepared, Mapping):
            raise CaseDefinitionError(
                f"{where}: prepare must return a mapping of keyword arguments, got {type(prepared).__name__}"
            )
        values = prepared
    clash = sorted(set(impl.kwargs) & set(values))
    if clash:
        source = "prepare" if impl.prepare is not None else "setup"
        raise CaseDefinitionError(
            f"{where}: kwargs {clash} are also inputs from {source}; an argument comes from one place "
            "(rename the kwarg or leave it out of the inputs)"
        )
    return Arguments({**values, **impl.kwargs} if impl.kwargs else values, prepare_s)


def _walk(obj: Any) -> Iterator[Any]:
    """Tensors and modules inside nested mappings, lists and tuples, depth first."""
    if isinstance(obj, (torch.Tensor, torch.nn.Module)):
        yield obj
    elif isinstance(obj, Mapping):
        for item in obj.values():
            yield from _walk(item)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _walk(item)


def grad_leaves(obj: Any) -> list[torch.Tensor]:
    """Leaf tensors that receive gradients: requires_grad tensors and module parameters."""
    found: dict[int, torch.Tensor] = {}
    for value in _walk(obj):
        candidates = value.parameters() if isinstance(value, torch.nn.Module) else [value]
        for tensor in candidates:
            if tensor.requires_grad and tensor.is_leaf:
                found.setdefault(id(tensor), tensor)
    return list(found.values())


def modules_of(obj: Any) -> list[torch.nn.Module]:
    found = {id(v): v for v in _walk(obj) if isinstance(v, torch.nn.Module)}
    return list(found.values())


def parameter_count(inputs: Inputs) -> int | None:
    """Unique parameters of every module among the inputs; None when there is no module."""
    modules = modules_of(inputs)
    if not modules:
        return None
    unique = {id(p): p.numel() for m in modules for p in m.parameters()}
    return int(sum(unique.values()))


def detached(obj: Any) -> Any:
    """The same structure with tensors detached and copied (a kept output holds no graph and does
    not change when later calls update their inputs in place)."""
    if isinstance(obj, torch.Tensor):
        # A copy: an output may alias state that later (timed) calls update in place.
        return obj.detach().clone()
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(detached(v) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(detached(v) for v in obj)
    if isinstance(obj, Mapping):
        return {k: detached(v) for k, v in obj.items()}
    return obj


def flat_tensors(obj: Any) -> list[torch.Tensor]:
    """Every number in an output as CPU tensors, in a stable order, for comparison."""
    if obj is None:
        return []
    if isinstance(obj, torch.Tensor):
        return [obj.detach().cpu()]
    if isinstance(obj, np.ndarray):
        return [torch.from_numpy(obj.copy())]
    if isinstance(obj, (bool, int, float, np.number)):
        return [torch.tensor(obj)]
    if isinstance(obj, Mapping):
        return [t for key in obj for t in flat_tensors(obj[key])]
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in flat_tensors(item)]
    raise CaseDefinitionError(
        f"cannot compare an output of type {type(obj).__name__}; return tensors, arrays, numbers, "
        "or tuples/dicts of them"
    )


def default_objective(output: Any) -> torch.Tensor:
    """The scalar a forward_backward call backpropagates: the output, or its first element."""
    value = output
    while isinstance(value, (list, tuple)) and value:
        value = value[0]
    if isinstance(value, Mapping) and value:
        value = next(iter(value.values()))
    if not isinstance(value, torch.Tensor) or not value.requires_grad:
        raise CaseDefinitionError(
            "forward_backward needs a differentiable tensor output (or declare objective=...)"
        )
    return value if value.numel() == 1 else value.sum()


@dataclass(frozen=True)
class Snapshot:
    """What one checked call produced: its output (detached) and the gradients of its leaves."""

    output: Any
    outputs: list[torch.Tensor]
    grads: list[torch.Tensor]


class Caller:
    """A zero-argument callable running one mode of one implementation on fixed inputs."""

    def __init__(
        self,
        fn: Callable[..., Any],
        inputs: Inputs,
        mode: str,
        device: str,
        objective: Callable[[Any], Any] | None = None,
    ) -> None:
        self.fn = fn
        self.inputs = inputs
        self.mode = mode
        self.device = device
        self.objective = objective or default_objective
        self.leaves = grad_leaves(inputs) if mode == "forward_backward" else []

    def run(self) -> Any:
        if self.mode == "forward":
            with torch.no_grad():
                out = self.fn(**self.inputs)
        elif self.mode == "forward_backward":
            for leaf in self.leaves:
                leaf.grad = None
            out = self.fn(**self.inputs)
            self.objective(out).backward()
        else:
            out = self.fn(**self.inputs)
        synchronize(self.device)
        return out

    __call__ = run

    def timed(self) -> tuple[Callable[[], Any], contextlib.AbstractContextManager[Any]]:
        """The cheapest callable for timing, and the context to time it in.

        For a fast function the wrapper's own cost shows up in the median, so forward and
        train_step calls are a bare ``partial`` (plus a synchronise on CUDA); no_grad is entered
        once around all the rounds instead of once per call.
        """
        if self.mode == "forward_backward":
            return self.run, contextlib.nullcontext()
        bare: Callable[[], Any] = functools.partial(self.fn, **self.inputs)
        device = self.device

        def synced() -> Any:
            out = bare()
            synchronize(device)
            return out

        call = bare if device == "cpu" else synced
        context = torch.no_grad() if self.mode == "forward" else contextlib.nullcontext()
        return call, context

    def snapshot(self) -> Snapshot:
        out = self.run()
        grads = []
        for leaf in self.leaves:
            grad = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
            grads.append(grad.detach().cpu().clone())
        kept = detached(out)
        return Snapshot(output=kept, outputs=flat_tensors(kept), grads=grads)
