"""Training and evaluation: one optimizer step, epochs over a loader, accuracy, distillation."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from models.qmann.model import QMANN


def _autocast(device_type: str, dtype: torch.dtype | None) -> torch.autocast:
    return torch.autocast(device_type=device_type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def train_step(
    model: QMANN,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    read: str | None = None,
    checkpoint: bool = False,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """zero_grad, forward, cross-entropy, backward, step; returns the loss (detached).

    ``autocast_dtype`` (e.g. ``torch.bfloat16``) runs the forward under ``torch.autocast``;
    bfloat16 keeps float32's range, so no gradient scaler is needed.
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    with _autocast(x.device.type, autocast_dtype):
        logits = model(x, read=read, checkpoint=checkpoint)  # (B, C)
    loss = F.cross_entropy(logits.float(), y)
    loss.backward()
    optimizer.step()
    return loss.detach()


def make_optimizer(model: nn.Module, lr: float = 1e-3) -> torch.optim.Optimizer:
    # foreach=False: the same arithmetic on every device and build, so steps compare exactly.
    return torch.optim.Adam(model.parameters(), lr=lr, foreach=False)


def fit(
    model: QMANN,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    epochs: int,
    lr: float = 1e-3,
    autocast_dtype: torch.dtype | None = None,
    checkpoint: bool = False,
) -> list[float]:
    """Train for ``epochs`` passes over ``batches`` (a re-iterable loader); mean loss per epoch."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    optimizer = make_optimizer(model, lr)
    history = []
    for _ in range(epochs):
        losses = [
            float(train_step(model, optimizer, xb, yb, checkpoint=checkpoint, autocast_dtype=autocast_dtype))
            for xb, yb in batches
        ]
        history.append(sum(losses) / max(1, len(losses)))
    return history


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Logits (N, C) in eval mode, in fixed-size chunks.

    The memory is shared by the sequences of one call, so predictions depend on the chunking:
    evaluation always uses the same ``batch_size``.
    """
    model.eval()
    return torch.cat([model(x[i : i + batch_size]).float() for i in range(0, x.shape[0], batch_size)])


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Share of correct predictions, as a 0-d float64 tensor."""
    return (logits.argmax(dim=-1) == y).to(torch.float64).mean()


class DistillationLoss(nn.Module):
    """The guide's loss: 0.7 * KL(softmax(teacher / T) || softmax(student / T)) + 0.3 * cross-entropy,
    T = 4, without the T^2 factor (as the guide writes it)."""

    def __init__(self, temperature: float = 4.0, soft_weight: float = 0.7) -> None:
        super().__init__()
        if temperature <= 0 or not 0 <= soft_weight <= 1:
            raise ValueError(
                f"need temperature > 0 and 0 <= soft_weight <= 1, got {temperature}, {soft_weight}"
            )
        self.temperature = temperature
        self.soft_weight = soft_weight

    def forward(
        self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        soft_target = F.softmax(teacher_logits / self.temperature, dim=-1)  # (B, C)
        soft_pred = F.log_softmax(student_logits / self.temperature, dim=-1)  # (B, C)
        soft = F.kl_div(soft_pred, soft_target, reduction="batchmean")
        hard = F.cross_entropy(student_logits, target)
        return self.soft_weight * soft + (1 - self.soft_weight) * hard


def distill(
    teacher: nn.Module,
    student: QMANN,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    epochs: int,
    lr: float = 1e-3,
    temperature: float = 4.0,
) -> list[float]:
    """Train ``student`` on the teacher's softened outputs plus the labels; mean loss per epoch."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    loss_fn = DistillationLoss(temperature)
    optimizer = make_optimizer(student, lr)
    teacher.eval()
    history = []
    for _ in range(epochs):
        losses = []
        for xb, yb in batches:
            with torch.no_grad():
                teacher_logits = teacher(xb)  # (B, C)
            student.train()
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(student(xb), teacher_logits, yb)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        history.append(sum(losses) / max(1, len(losses)))
    return history
