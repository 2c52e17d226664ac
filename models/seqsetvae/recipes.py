"""Whole training epochs under the note's "before" and "after" settings, all techniques at once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from models.seqsetvae.data import PaddedBatch, PatientDataset, PatientRecord, collate_list, collate_padded
from models.seqsetvae.model import LossParts
from models.seqsetvae.monitor import MonitorConfig, PosteriorCollapseMonitor
from models.seqsetvae.training import Trainer, amp_dtype, loss_padded, loss_reference


@dataclass(frozen=True)
class Recipe:
    """Training settings the note tunes; the defaults are its starting point."""

    batch: int = 1
    padded: bool = False  # False: the public batch-of-one path with per-set loops
    workers: int = 2
    pin_memory: bool = False
    persistent: bool = False
    prefetch: int | None = None
    accumulate: int = 1
    max_events: int | None = None
    mixed_precision: bool = False  # bfloat16 autocast on CPU, float16 + GradScaler on CUDA
    monitor_every: int | None = 50  # None: no collapse monitor
    plot_every: int = 500

    def __post_init__(self) -> None:
        if self.batch < 1 or self.accumulate < 1 or self.workers < 0:
            raise ValueError("need batch >= 1, accumulate >= 1, workers >= 0")
        if not self.padded and self.batch != 1:
            raise ValueError("the per-set reference path trains one patient per batch (batch=1)")


ORIGINAL = Recipe()
# The note's recommended command line: batch 4, 8 workers, pinning, accumulation 2, cap 1000,
# 16-bit mixed precision, monitor every 100 steps (plots every 1000).
OPTIMIZED = Recipe(batch=4, padded=True, workers=8, pin_memory=True, persistent=True, prefetch=4,
                   accumulate=2, max_events=1000, mixed_precision=True, monitor_every=100, plot_every=1000)


def train_epoch(trainer: Trainer, root: Path | str, recipe: Recipe, *, device: torch.device | str = "cpu",
                monitor: PosteriorCollapseMonitor | None = None) -> torch.Tensor:
    """One epoch over the cohort at ``root`` under ``recipe``: loading, steps, monitoring.
    Returns the mean loss of the epoch's batches."""
    device = torch.device(device)
    dataset = PatientDataset(root, max_events=recipe.max_events)
    pin = recipe.pin_memory and torch.cuda.is_available()
    loader = DataLoader(dataset, batch_size=recipe.batch, shuffle=False, num_workers=recipe.workers,
                        collate_fn=collate_padded if recipe.padded else collate_list, pin_memory=pin,
                        persistent_workers=recipe.persistent and recipe.workers > 0,
                        prefetch_factor=recipe.prefetch if recipe.workers > 0 else None)
    if recipe.monitor_every is not None and monitor is None:
        monitor = PosteriorCollapseMonitor(MonitorConfig(update_every=recipe.monitor_every,
                                                         plot_every=recipe.plot_every))
    dtype = amp_dtype(device) if recipe.mixed_precision else None
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    losses = []
    steps = 0  # the monitor's schedule counts this epoch's steps, so every epoch monitors alike
    trainer.optimizer.zero_grad(set_to_none=True)
    try:
        for i, batch in enumerate(loader, start=1):
            parts = _forward(trainer, batch, device, dtype, pin)
            loss = parts.loss / recipe.accumulate
            (scaler.scale(loss) if scaler is not None else loss).backward()
            losses.append(parts.loss.detach())
            if i % recipe.accumulate == 0 or i == len(loader):
                if scaler is not None:
                    scaler.step(trainer.optimizer)
                    scaler.update()
                else:
                    trainer.optimizer.step()
                trainer.optimizer.zero_grad(set_to_none=True)
                trainer.step += 1
                steps += 1
                if monitor is not None and recipe.monitor_every is not None:
                    monitor.on_step(steps, parts)
    finally:
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        del loader
    return torch.stack(losses).mean()


def _forward(trainer: Trainer, batch: PaddedBatch | list[PatientRecord], device: torch.device,
             dtype: torch.dtype | None, non_blocking: bool) -> LossParts:
    if isinstance(batch, PaddedBatch):
        return loss_padded(trainer, batch.to(device, non_blocking=non_blocking), autocast=dtype)
    patients = [p.to(device) for p in batch]
    if dtype is None:
        return loss_reference(trainer, patients)
    with torch.autocast(device_type=device.type, dtype=dtype):
        return loss_reference(trainer, patients)
