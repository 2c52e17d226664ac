"""The optimization guide's model-level techniques applied to QMANN: int8, pruning, TorchScript, compile.

Each function returns a new model and leaves its argument untouched. Gradient checkpointing
and autocast are options of ``QMANN.forward`` / ``train_step``; distillation is in ``train``.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn
from torch.nn.utils import prune

from models.qmann.model import QMANN


def quantize_int8(model: QMANN) -> nn.Module:
    """Dynamic int8 quantization of every Linear and LSTM (weights int8, activations quantized
    on the fly); CPU inference only, as in torch.ao."""
    source = copy.deepcopy(model).cpu().eval()
    return torch.ao.quantization.quantize_dynamic(source, {nn.Linear, nn.LSTM}, dtype=torch.qint8)


def prunable_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, parameter name) of every Linear and LSTM weight matrix (biases are left alone)."""
    found = []
    for module in model.modules():
        if isinstance(module, nn.Linear):
            found.append((module, "weight"))
        elif isinstance(module, nn.LSTM):
            found.extend(
                (module, name) for name, _ in module.named_parameters() if name.startswith("weight_")
            )
    return found


def prune_magnitude(model: QMANN, amount: float = 0.3) -> QMANN:
    """Zero the ``amount`` smallest-magnitude entries of every weight matrix (L1, unstructured),
    made permanent. The guide prunes only Linear layers; here the LSTM holds almost all the
    weights, so its matrices are pruned too. The tensors stay dense: same shapes, same kernels."""
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount must be in [0, 1), got {amount}")
    pruned = copy.deepcopy(model)
    for module, name in prunable_weights(pruned):
        prune.l1_unstructured(module, name=name, amount=amount)
        prune.remove(module, name)
    for module in pruned.modules():
        if isinstance(module, nn.LSTM):
            module.flatten_parameters()  # re-read the replaced weights into the flat buffer
    return pruned


class _Logits(nn.Module):
    """Wraps the model so tracing sees one tensor in, one tensor out."""

    def __init__(self, model: QMANN) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def script_model(model: QMANN, example: torch.Tensor) -> torch.jit.ScriptModule:
    """TorchScript by tracing on ``example`` (shapes other than the example's are not supported),
    frozen and passed through ``optimize_for_inference`` (the guide's operator fusion)."""
    wrapped = _Logits(copy.deepcopy(model)).eval()
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns that shapes become constants: intended, the example's shape is the one used.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(wrapped, example, check_trace=False)
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced))


def compile_model(model: QMANN, mode: str | None = None) -> nn.Module:
    """``torch.compile`` of a copy (compiled on the first call)."""
    compiled: nn.Module = torch.compile(copy.deepcopy(model).eval(), mode=mode)  # type: ignore[assignment]
    return compiled
