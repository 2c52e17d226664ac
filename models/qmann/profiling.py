"""Machine-independent measures the techniques are judged by: peak tensor bytes, model bytes, nonzeros."""

from __future__ import annotations

import io
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class _LiveTensors(TorchDispatchMode):
    """Counts the bytes of storages created inside the mode while they are alive."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def _freed(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if not isinstance(value, torch.Tensor) or value.device.type == "meta":
                continue
            storage = value.untyped_storage()
            key, size = storage.data_ptr(), storage.nbytes()
            if size == 0 or key in self.live:
                continue
            self.live[key] = size
            self.current += size
            self.peak = max(self.peak, self.current)
            # The storage object lives as long as the memory: its finalizer marks the free.
            weakref.finalize(storage, self._freed, key)
        return out


def peak_tensor_bytes(call: Callable[[], Any]) -> int:
    """Peak bytes of tensors allocated during ``call()`` and alive at the same time (forward and
    backward; parameters and inputs that existed before are not counted). Unlike the process's
    resident set it does not depend on the allocator or on other threads, so ratios between
    techniques (checkpointing, autocast) are exact."""
    mode = _LiveTensors()
    with mode:
        call()
    return mode.peak


def state_bytes(model: nn.Module) -> int:
    """Bytes of the model's serialized state (``torch.jit.save`` for TorchScript modules)."""
    buffer = io.BytesIO()
    if isinstance(model, torch.jit.ScriptModule):
        torch.jit.save(model, buffer)
    else:
        torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(all parameters, nonzero parameters)."""
    total = nonzero = 0
    for param in model.parameters():
        total += param.numel()
        nonzero += int(torch.count_nonzero(param.detach()))
    return total, nonzero
