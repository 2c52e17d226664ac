"""A seeded synthetic sequence-classification set, its per-sample preprocessing, cache and loaders."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, Dataset

N_SAMPLES, SEQ_LEN, N_FEATURES, N_CLASSES = 1000, 10, 20, 3
TRAIN_FRACTION = 0.8


def make_sequences(
    n_samples: int = N_SAMPLES,
    seq_len: int = SEQ_LEN,
    n_features: int = N_FEATURES,
    n_classes: int = N_CLASSES,
    seed: int = 0,
    noise: float = 1.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """x (N, T, F) float32 and labels (N,) int64, balanced classes in random order.

    Class c is a sinusoid of its own frequency, with its own per-feature loadings and a random
    phase per sample, buried in Gaussian noise: an LSTM separates the classes well but not
    perfectly, so accuracy changes from the techniques are visible.
    """
    for name, value in (("n_samples", n_samples), ("seq_len", seq_len), ("n_features", n_features)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
    if not (noise >= 0 and math.isfinite(noise)):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_samples) % n_classes  # (N,)
    labels = labels[torch.randperm(n_samples, generator=gen)]
    freq = 0.5 + 0.35 * torch.arange(n_classes, dtype=torch.float64)  # (C,) radians per step
    loadings = torch.randn(n_classes, n_features, generator=gen, dtype=torch.float64)  # (C, F)
    phase = 2 * math.pi * torch.rand(n_samples, 1, generator=gen, dtype=torch.float64)  # (N, 1)
    t = torch.arange(seq_len, dtype=torch.float64)  # (T,)
    wave = torch.sin(freq[labels][:, None] * t[None, :] + phase)  # (N, T)
    x = wave[:, :, None] * loadings[labels][:, None, :]  # (N, T, F)
    x = x + noise * torch.randn(n_samples, seq_len, n_features, generator=gen, dtype=torch.float64)
    return x.to(torch.float32), labels.to(torch.int64)


def preprocess(x: torch.Tensor) -> torch.Tensor:
    """One sequence (T, F): standardise each feature over time, clip at 3, causal 3-step mean."""
    mean = x.mean(dim=0, keepdim=True)  # (1, F)
    std = x.std(dim=0, keepdim=True, unbiased=False).clamp_min(1e-6)  # (1, F)
    z = ((x - mean) / std).clamp(-3.0, 3.0)  # (T, F)
    padded = torch.cat([z[:1], z[:1], z], dim=0)  # (T + 2, F) repeat the first step
    return (padded[:-2] + padded[1:-1] + padded[2:]) / 3.0  # (T, F)


class SequenceDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Raw sequences with an optional per-sample transform applied on every access."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if x.dim() != 3 or y.dim() != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(f"need x (N, T, F) and y (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.x[index]  # (T, F)
        if self.transform is not None:
            sample = self.transform(sample)
        return sample, self.y[index]


class CachedDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Keeps each preprocessed item after its first access (the guide's cache for repeated data).

    The cache lives in this process: use it with ``num_workers=0`` (worker processes would each
    fill a copy of their own).
    """

    def __init__(self, base: Dataset[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.base = base
        self.cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]  # Dataset declares no __len__

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = self.cache.get(index)
        if item is None:
            item = self.base[index]
            self.cache[index] = item
        return item


def split(
    x: torch.Tensor, y: torch.Tensor
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """The first 80 % for training, the rest for evaluation (the data is already shuffled)."""
    cut = round(TRAIN_FRACTION * x.shape[0])
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def preprocess_all(x: torch.Tensor) -> torch.Tensor:
    """(N, T, F) -> (N, T, F): ``preprocess`` applied to every sequence."""
    return torch.stack([preprocess(sample) for sample in x])


def make_loader(
    dataset: Dataset[tuple[torch.Tensor, torch.Tensor]],
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
    prefetch_factor: int | None = None,
    persistent_workers: bool = False,
    drop_last: bool = False,
) -> DataLoader[tuple[torch.Tensor, torch.Tensor]]:
    """A DataLoader whose shuffling order is fixed by ``seed``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    if num_workers == 0 and (prefetch_factor is not None or persistent_workers):
        raise ValueError("prefetch_factor and persistent_workers need num_workers > 0")
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(seed) if shuffle else None,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=prefetch_factor,
        persistent_workers=persistent_workers,
        drop_last=drop_last,
    )


def epoch_checksum(loader: DataLoader[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Iterate one epoch; (sum of every value, sum of labels, samples seen) in float64."""
    total = torch.zeros(3, dtype=torch.float64)
    for xb, yb in loader:
        total[0] += xb.to(torch.float64).sum()
        total[1] += yb.to(torch.float64).sum()
        total[2] += yb.shape[0]
    return total
