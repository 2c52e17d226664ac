"""Training and evaluation steps of SeqSetVAE: the per-set reference and the faster variants.

Every step returns a ``StepOutput`` holding the mean per-patient loss and the gradients it
produced (taken before the optimizer step), so two ways of batching can be checked to compute
the same thing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from models.seqsetvae.config import ModelConfig
from models.seqsetvae.data import PaddedBatch, PatientRecord
from models.seqsetvae.metrics import auprc, auroc
from models.seqsetvae.model import LossParts, SeqSetVAE, beta_at, concat_parts, draw_seeds, pad_seeds


class StepOutput(NamedTuple):
    """A training step's mean per-patient loss and its gradients (None for unused parameters)."""

    loss: torch.Tensor
    grads: tuple[torch.Tensor, ...]


@dataclass
class Trainer:
    """A model, its AdamW optimizer and the global step (which drives beta and the noise)."""

    model: SeqSetVAE
    optimizer: torch.optim.Optimizer
    step: int = 0
    compiled: Callable[..., LossParts] | None = None
    scaler: torch.amp.GradScaler | None = None
    first_compiled_call_s: float | None = None  # the step that compiled: compile time plus one step

    @property
    def cfg(self) -> ModelConfig:
        return self.model.cfg

    def beta(self, device: torch.device) -> torch.Tensor:
        # A tensor, not a float: a compiled graph would otherwise specialise on every new value.
        return torch.tensor(beta_at(self.step, self.cfg), device=device)

    def grads(self) -> tuple[torch.Tensor, ...]:
        return tuple(p.grad if p.grad is not None else torch.zeros_like(p) for p in self.model.parameters())


def build_trainer(cfg: ModelConfig, device: torch.device | str = "cpu", *, seed: int = 0,
                  compile_model: bool = False, compile_mode: str | None = None) -> Trainer:
    """A freshly initialised model (seeded) with AdamW; optionally a torch.compile'd forward."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = SeqSetVAE(cfg).to(device)
    finally:
        torch.random.set_rng_state(gen_state)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    compiled = torch.compile(model, mode=compile_mode, dynamic=False) if compile_model else None
    return Trainer(model=model, optimizer=optimizer, compiled=compiled)


# ---------------------------------------------------------------------------------------------
# forward passes


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def loss_reference(trainer: Trainer, patients: Sequence[PatientRecord]) -> LossParts:
    """Forward of the reference: one patient at a time, sets in Python loops."""
    model, cfg = trainer.model, trainer.cfg
    device = patients[0].var.device
    beta = trainer.beta(device)
    parts = []
    for patient in patients:
        seeds = draw_seeds([patient.patient_id], [patient.n_events], trainer.step, cfg, device)[0]
        parts.append(model.forward_patient(patient, seeds, beta))
    return concat_parts(parts)


def loss_padded(trainer: Trainer, batch: PaddedBatch, *, use_compiled: bool = False,
                autocast: torch.dtype | None = None) -> LossParts:
    """Forward of the padded variant: all sets of all patients at once."""
    cfg, device = trainer.cfg, batch.var.device
    seeds = pad_seeds(draw_seeds(batch.patient_ids, batch.events_per_patient, trainer.step, cfg, device),
                      batch.event_mask)
    fn = trainer.compiled if use_compiled and trainer.compiled is not None else trainer.model
    with _autocast(device, autocast):
        return fn(batch, seeds, trainer.beta(device))


# ---------------------------------------------------------------------------------------------
# training steps


def _finish(trainer: Trainer, loss: torch.Tensor) -> StepOutput:
    if trainer.scaler is not None:
        trainer.scaler.unscale_(trainer.optimizer)  # report true gradients, not scaled ones
        grads = trainer.grads()
        trainer.scaler.step(trainer.optimizer)
        trainer.scaler.update()
    else:
        grads = trainer.grads()
        trainer.optimizer.step()
    trainer.step += 1
    return StepOutput(loss.detach(), grads)


def loss_micro(trainer: Trainer, batches: Sequence[PaddedBatch]) -> LossParts:
    """The padded forward one micro-batch at a time, parts concatenated in patient order."""
    return concat_parts([loss_padded(trainer, batch) for batch in batches])


def train_step_reference(trainer: Trainer, patients: Sequence[PatientRecord]) -> StepOutput:
    """The public code's batch of one: per patient a forward with per-set loops and a backward;
    gradients accumulate over the patients (each weighted 1/B), then one optimizer step."""
    if not patients:
        raise ValueError("a training step needs at least one patient")
    trainer.optimizer.zero_grad(set_to_none=True)
    device = patients[0].var.device
    beta = trainer.beta(device)
    total = torch.zeros((), device=device)
    for patient in patients:
        seeds = draw_seeds([patient.patient_id], [patient.n_events], trainer.step, trainer.cfg, device)[0]
        loss = trainer.model.forward_patient(patient, seeds, beta).loss
        (loss / len(patients)).backward()
        total = total + loss.detach()
    return _finish(trainer, total / len(patients))


def train_step_padded(trainer: Trainer, batch: PaddedBatch, *, use_compiled: bool = False,
                      autocast: torch.dtype | None = None) -> StepOutput:
    """One padded forward and backward over the whole batch, then one optimizer step."""
    timing = use_compiled and trainer.compiled is not None and trainer.first_compiled_call_s is None
    started = time.perf_counter()
    trainer.optimizer.zero_grad(set_to_none=True)
    loss = loss_padded(trainer, batch, use_compiled=use_compiled, autocast=autocast).loss
    (trainer.scaler.scale(loss) if trainer.scaler is not None else loss).backward()
    out = _finish(trainer, loss)
    if timing:
        trainer.first_compiled_call_s = time.perf_counter() - started
    return out


def amp_dtype(device: torch.device) -> torch.dtype:
    """The autocast type mixed precision uses on a device: bfloat16 on CPU, float16 on CUDA."""
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def train_step_amp(trainer: Trainer, batch: PaddedBatch) -> StepOutput:
    """The padded step under autocast (the note's "16-mixed"); float16 on CUDA adds a GradScaler."""
    dtype = amp_dtype(batch.var.device)
    if dtype == torch.float16 and trainer.scaler is None:
        trainer.scaler = torch.amp.GradScaler("cuda")
    return train_step_padded(trainer, batch, autocast=dtype)


def train_step_micro(trainer: Trainer, batches: Sequence[PaddedBatch]) -> StepOutput:
    """Padded micro-batches with gradient accumulation, then one optimizer step: the same
    gradients as one batch of all their patients."""
    if not batches:
        raise ValueError("a training step needs at least one micro-batch")
    trainer.optimizer.zero_grad(set_to_none=True)
    patients = sum(b.n_patients for b in batches)
    total = torch.zeros((), device=batches[0].var.device)
    for batch in batches:
        loss = loss_padded(trainer, batch).loss
        (loss * (batch.n_patients / patients)).backward()
        total = total + loss.detach() * batch.n_patients
    return _finish(trainer, total / patients)


def train_batches(trainer: Trainer, batches: Sequence[PaddedBatch], accumulate: int = 1) -> torch.Tensor:
    """Train over ``batches`` with an optimizer step every ``accumulate`` batches (Lightning's
    accumulate_grad_batches); returns the mean of the batches' losses."""
    if accumulate < 1:
        raise ValueError(f"accumulate must be >= 1, got {accumulate}")
    if not batches:
        raise ValueError("need at least one batch")
    losses = []
    trainer.optimizer.zero_grad(set_to_none=True)
    for i, batch in enumerate(batches, start=1):
        loss = loss_padded(trainer, batch).loss
        (loss / accumulate).backward()
        losses.append(loss.detach())
        if i % accumulate == 0 or i == len(batches):
            trainer.optimizer.step()
            trainer.optimizer.zero_grad(set_to_none=True)
            trainer.step += 1
    return torch.stack(losses).mean()


# ---------------------------------------------------------------------------------------------
# evaluation


Batches = Iterator[PaddedBatch] | Sequence[PaddedBatch]


def predict(trainer: Trainer, batches: Batches) -> tuple[torch.Tensor, torch.Tensor]:
    """Outcome probabilities and labels over batches, without gradients."""
    probs, labels = [], []
    with torch.no_grad():
        for batch in batches:
            probs.append(torch.sigmoid(loss_padded(trainer, batch).logits.float()).cpu())
            labels.append(batch.labels.cpu())
    return torch.cat(probs), torch.cat(labels)


def evaluate(trainer: Trainer, batches: Batches) -> dict[str, float]:
    """AUROC and AUPRC of the outcome head."""
    probs, labels = predict(trainer, batches)
    return {"auroc": auroc(probs, labels), "auprc": auprc(probs, labels)}
