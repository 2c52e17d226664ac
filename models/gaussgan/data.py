"""The two-Gaussian target of GaussGAN, its seeded dataset and split, and stand-in generated points."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import logsumexp


@dataclass(frozen=True)
class Mixture:
    """A 2-D Gaussian mixture: means (K, 2), covariances (K, 2, 2) and weights (K,), as tuples."""

    means: tuple[tuple[float, float], ...] = ((-5.0, 5.0), (5.0, 5.0))
    covariances: tuple[tuple[tuple[float, float], tuple[float, float]], ...] = (
        ((1.0, 0.0), (0.0, 1.0)),
        ((1.0, 0.0), (0.0, 1.0)),
    )
    # The public code hands sklearn weights=[0.5] for two components; sklearn broadcasts it,
    # so both components get log-weight log(0.5): equal weights, summing to one.
    weights: tuple[float, ...] = (0.5, 0.5)

    def __post_init__(self) -> None:
        k = len(self.means)
        if k < 1 or len(self.covariances) != k or len(self.weights) != k:
            raise ValueError("means, covariances and weights must have the same positive length")
        if any(len(m) != 2 for m in self.means):
            raise ValueError("means must be 2-D points")
        if not np.isclose(sum(self.weights), 1.0) or min(self.weights) <= 0:
            raise ValueError(f"weights must be positive and sum to 1, got {self.weights}")
        for cov in self.covariances:
            if np.any(np.linalg.eigvalsh(np.asarray(cov, dtype=np.float64)) <= 0):
                raise ValueError(f"covariance {cov} is not positive definite")

    def log_density(self, points: np.ndarray) -> np.ndarray:
        """log q(x) for (N, 2) points: (N,)."""
        x = np.asarray(points, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != 2:
            raise ValueError(f"points must be (N, 2), got shape {x.shape}")
        parts = []
        for mean, cov, weight in zip(self.means, self.covariances, self.weights, strict=True):
            cov_arr = np.asarray(cov, dtype=np.float64)
            chol = np.linalg.cholesky(cov_arr)
            diff = np.linalg.solve(chol, (x - np.asarray(mean)).T)  # (2, N)
            maha = np.sum(diff**2, axis=0)  # (N,)
            log_det = 2.0 * np.sum(np.log(np.diag(chol)))
            parts.append(np.log(weight) - 0.5 * (maha + log_det + 2 * np.log(2 * np.pi)))
        return logsumexp(np.stack(parts), axis=0)


TARGET = Mixture()


@dataclass(frozen=True)
class Split:
    """Train / validation / test points (N, 2) and component labels (N,)."""

    train: torch.Tensor
    train_labels: torch.Tensor
    val: torch.Tensor
    val_labels: torch.Tensor
    test: torch.Tensor
    test_labels: torch.Tensor


def mixture_points(
    per_component: int = 10_000,
    *,
    mixture: Mixture = TARGET,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_component`` points from each component, concatenated: (K * n, 2) and labels (K * n,)."""
    if per_component < 1:
        raise ValueError(f"per_component must be positive, got {per_component}")
    gen = torch.Generator().manual_seed(seed)
    blocks, labels = [], []
    for k, (mean, cov) in enumerate(zip(mixture.means, mixture.covariances, strict=True)):
        chol = torch.linalg.cholesky(torch.tensor(cov, dtype=torch.float64))  # (2, 2)
        noise = torch.randn(per_component, 2, generator=gen, dtype=torch.float64)  # (n, 2)
        blocks.append(torch.tensor(mean, dtype=torch.float64) + noise @ chol.T)
        labels.append(torch.full((per_component,), k, dtype=torch.long))
    return torch.cat(blocks).to(dtype), torch.cat(labels)


def split_dataset(
    points: torch.Tensor,
    labels: torch.Tensor,
    *,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> Split:
    """A seeded shuffle split 80/10/10 (by default)."""
    if points.shape[0] != labels.shape[0]:
        raise ValueError("points and labels must have the same length")
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    n = points.shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_train, n_val = int(fractions[0] * n), int(fractions[1] * n)
    parts = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]
    return Split(*(t for idx in parts for t in (points[idx], labels[idx])))


def generated_points(n: int, *, seed: int = 1, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Stand-in generator output for the validation metrics: a slightly wrong two-mode fit, (n, 2).

    Modes shifted and rescaled against the target, unequal weights, and a few points in between,
    so every metric has a non-trivial value.
    """
    if n < 2:
        raise ValueError(f"n must be at least 2 (the KDE needs two points), got {n}")
    gen = torch.Generator().manual_seed(seed)
    means = torch.tensor([[-4.6, 5.3], [5.2, 4.7], [0.0, 3.0]], dtype=torch.float64)
    scales = torch.tensor([1.2, 0.9, 2.0], dtype=torch.float64)
    which = torch.multinomial(torch.tensor([0.4, 0.55, 0.05]), n, replacement=True, generator=gen)  # (n,)
    noise = torch.randn(n, 2, generator=gen, dtype=torch.float64)  # (n, 2)
    return (means[which] + scales[which, None] * noise).to(dtype)
