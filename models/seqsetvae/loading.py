"""DataLoader passes over the Parquet cohort with the note's settings (workers, pinning,
persistent workers, prefetch), tearing the workers down at the end of every pass."""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil
import torch
from torch.utils.data import DataLoader

from models.seqsetvae.data import PaddedBatch, PatientDataset, collate_padded
from models.seqsetvae.training import Trainer, train_step_padded


@dataclass(frozen=True)
class LoaderSettings:
    """DataLoader knobs the note tunes. ``prefetch`` is batches per worker (None: the default 2)."""

    batch: int = 4
    workers: int = 0
    pin_memory: bool = False
    persistent: bool = False
    prefetch: int | None = None

    def __post_init__(self) -> None:
        if self.batch < 1 or self.workers < 0:
            raise ValueError(f"need batch >= 1 and workers >= 0, got {self.batch}, {self.workers}")
        if self.workers == 0 and (self.persistent or self.prefetch is not None):
            raise ValueError("persistent workers and prefetch need workers > 0")
        if self.prefetch is not None and self.prefetch < 1:
            raise ValueError(f"prefetch must be >= 1, got {self.prefetch}")


def loader_settings(batch: int, spec: str) -> LoaderSettings:
    """"w2-pin-persistent-prefetch4" -> LoaderSettings (workers, then optional flags)."""
    head, *flags = spec.split("-")
    if not head.startswith("w") or not head[1:].isdigit():
        raise ValueError(f"loader spec {spec!r} must start with w<workers>")
    prefetch = next((int(f[len("prefetch"):]) for f in flags if f.startswith("prefetch")), None)
    unknown = [f for f in flags if f not in ("pin", "persistent") and not f.startswith("prefetch")]
    if unknown:
        raise ValueError(f"loader spec {spec!r}: unknown flags {unknown}")
    return LoaderSettings(batch=batch, workers=int(head[1:]), pin_memory="pin" in flags,
                          persistent="persistent" in flags, prefetch=prefetch)


def make_loader(dataset: PatientDataset, settings: LoaderSettings) -> DataLoader:
    # pin_memory without an accelerator is a no-op (torch warns and skips it); keep the request
    # visible but do not ask for it where it cannot act.
    pin = settings.pin_memory and torch.cuda.is_available()
    return DataLoader(
        dataset,
        batch_size=settings.batch,
        shuffle=False,
        num_workers=settings.workers,
        collate_fn=collate_padded,
        pin_memory=pin,
        persistent_workers=settings.persistent,
        prefetch_factor=settings.prefetch if settings.workers > 0 else None,
    )


def process_tree_pss_bytes() -> int:
    """Memory of this process and its children (DataLoader workers) as the sum of their PSS:
    a page shared by k processes counts 1/k in each, so the sum counts it once. RSS would count
    the pages a forked worker shares with its parent again; USS would count them nowhere."""
    me = psutil.Process(os.getpid())
    total = 0
    for proc in [me, *me.children(recursive=True)]:
        try:
            total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # a worker that exited between listing and reading holds no memory
    return total


def _checksum(batch: PaddedBatch) -> torch.Tensor:
    return torch.stack([
        torch.tensor(float(batch.n_events), dtype=torch.float64),
        batch.val.double().sum().cpu(),
        batch.var.double().sum().cpu(),
        batch.labels.double().sum().cpu(),
    ])


def loader_epochs(dataset: PatientDataset, settings: LoaderSettings, epochs: int, *,
                  device: torch.device | str = "cpu", trainer: Trainer | None = None,
                  memory: list[int] | None = None) -> torch.Tensor:
    """``epochs`` passes over the dataset; each batch is moved to ``device`` and, with a
    ``trainer``, trained on. Returns per-epoch checksums of the data seen, (epochs, 4): events,
    sum of values, sum of embeddings, sum of labels, so every setting can be checked to deliver
    the same data. With ``memory`` given, the process tree's PSS is appended mid-epoch."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    loader = make_loader(dataset, settings)
    non_blocking = settings.pin_memory and torch.cuda.is_available()
    sums = []
    try:
        middle = max(0, len(loader) // 2)
        for _ in range(epochs):
            total = torch.zeros(4, dtype=torch.float64)
            for i, batch in enumerate(loader):
                batch = batch.to(device, non_blocking=non_blocking)
                total += _checksum(batch)
                if trainer is not None:
                    train_step_padded(trainer, batch)
                if memory is not None and i == middle:
                    memory.append(process_tree_pss_bytes())
            sums.append(total)
    finally:
        # Persistent workers live as long as the loader's iterator: drop both so the workers are
        # shut down here, not whenever the garbage collector gets to them.
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        del loader
    return torch.stack(sums)
