"""Exponential moving average of generator weights: a per-parameter loop and fused foreach updates."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn


def _check(ema: nn.Module, model: nn.Module, decay: float) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
    ema_params: list[torch.Tensor] = list(ema.parameters())
    params: list[torch.Tensor] = list(model.parameters())
    if len(ema_params) != len(params):
        raise ValueError(
            f"EMA model has {len(ema_params)} parameters but the model has {len(params)}: not a copy"
        )
    return ema_params, params


def _float_buffers(module: nn.Module) -> list[torch.Tensor]:
    return [b for b in module.buffers() if b.is_floating_point()]


def _other_buffers(module: nn.Module) -> list[torch.Tensor]:
    return [b for b in module.buffers() if not b.is_floating_point()]


def _copy_buffers(ema: nn.Module, model: nn.Module) -> None:
    # Float and integer buffers go in separate multi-tensor copies; an empty list is an error there.
    for pick in (_float_buffers, _other_buffers):
        dst, src = pick(ema), pick(model)
        if len(dst) != len(src):
            raise ValueError(f"EMA model has {len(dst)} such buffers but the model has {len(src)}")
        if dst:
            torch._foreach_copy_(dst, src)


def ema_copy(model: nn.Module) -> nn.Module:
    """A frozen copy of the model to hold the averaged weights."""
    ema = copy.deepcopy(model)
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def ema_update_loop(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """The usual per-parameter loop: e = e * decay + p * (1 - decay), then copy the buffers."""
    ema_params, params = _check(ema, model, decay)
    for e, p in zip(ema_params, params, strict=True):
        e.mul_(decay).add_(p, alpha=1.0 - decay)
    # BatchNorm running statistics and spectral-norm vectors are copied, not averaged.
    for eb, b in zip(ema.buffers(), model.buffers(), strict=True):
        eb.copy_(b)


@torch.no_grad()
def ema_update_loop_lerp(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """The per-parameter loop with one lerp_ per tensor: one pass over memory instead of two."""
    ema_params, params = _check(ema, model, decay)
    for e, p in zip(ema_params, params, strict=True):
        e.lerp_(p, 1.0 - decay)
    for eb, b in zip(ema.buffers(), model.buffers(), strict=True):
        eb.copy_(b)


@torch.no_grad()
def ema_update_foreach_mul_add(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """The loop's arithmetic as two multi-tensor ops (bitwise equal to the loop)."""
    ema_params, params = _check(ema, model, decay)
    torch._foreach_mul_(ema_params, decay)
    torch._foreach_add_(ema_params, params, alpha=1.0 - decay)
    _copy_buffers(ema, model)


@torch.no_grad()
def ema_update_foreach(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """The fused update: one multi-tensor lerp e += (1 - decay) * (p - e), one multi-tensor copy."""
    ema_params, params = _check(ema, model, decay)
    torch._foreach_lerp_(ema_params, params, 1.0 - decay)
    _copy_buffers(ema, model)


def flatten_parameters(module: nn.Module) -> torch.Tensor:
    """Move all parameters of ``module`` into one contiguous buffer; they become views of it.

    Training is unaffected (autograd and optimizers see the same Parameters), and an update over
    all weights becomes one kernel over one buffer. Converting the module's memory format later
    (channels_last) would replace the views, so flatten last.
    """
    params = list(module.parameters())
    if not params:
        raise ValueError("module has no parameters to flatten")
    kinds = {(p.dtype, p.device) for p in params}
    if len(kinds) != 1:
        raise ValueError(
            f"parameters must share one dtype and device to be flattened, got {sorted(map(str, kinds))}"
        )
    flat = torch.empty(sum(p.numel() for p in params), dtype=params[0].dtype, device=params[0].device)
    offset = 0
    for p in params:
        view = flat[offset : offset + p.numel()].view(p.shape)
        view.copy_(p.detach())
        p.data = view
        offset += p.numel()
    return flat


def _owns(flat: torch.Tensor, params: list[torch.Tensor]) -> bool:
    # A cheap check (this runs on every update): right size, and the first weight lives in it.
    return (
        flat.dim() == 1
        and flat.numel() == sum(p.numel() for p in params)
        and params[0].untyped_storage().data_ptr() == flat.untyped_storage().data_ptr()
    )


@torch.no_grad()
def ema_update_flat(
    ema: nn.Module, model: nn.Module, decay: float, ema_flat: torch.Tensor, model_flat: torch.Tensor
) -> None:
    """One lerp over the flattened weights (see ``flatten_parameters``), then the buffer copies."""
    ema_params, params = _check(ema, model, decay)
    if not (_owns(ema_flat, ema_params) and _owns(model_flat, params)):
        raise ValueError(
            "ema_flat / model_flat must be the buffers returned by flatten_parameters for ema / model"
        )
    ema_flat.lerp_(model_flat, 1.0 - decay)
    _copy_buffers(ema, model)


def ema_bytes(model: nn.Module) -> int:
    """Bytes an EMA update must move at least: read e and p, write e; read and write each buffer."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return 3 * params + 2 * buffers
