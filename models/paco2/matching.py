"""Part matching between the two views: cost matrices and exact assignment solvers."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from models.paco2.optimized import mahalanobis_whitened
from models.paco2.validation import check_spd_batch, check_views

# K! permutations are enumerated at once; 8! = 40320 rows is the largest table we allow.
MAX_BRUTE_FORCE_PARTS = 8

Solver = Callable[[torch.Tensor], torch.Tensor]


def cosine_cost(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """1 - cos(z1[b, i], z2[b, j]): (B, K, d), (B, K, d) -> (B, K, K)."""
    check_views(z1, z2)
    return 1.0 - F.normalize(z1, dim=-1) @ F.normalize(z2, dim=-1).transpose(1, 2)


def mahalanobis_cost(z1: torch.Tensor, z2: torch.Tensor, sigma_plus: torch.Tensor) -> torch.Tensor:
    """d_M(z1[b, i], z2[b, j]) under sigma_plus[b]: -> (B, K, K)."""
    check_views(z1, z2)
    check_spd_batch("sigma_plus", sigma_plus, z1.shape[0], z1.shape[2])
    return mahalanobis_whitened(z1, z2, sigma_plus)


def _check_cost(cost: torch.Tensor) -> None:
    if cost.dim() != 3 or cost.shape[1] != cost.shape[2]:
        raise ValueError(f"cost must have shape (B, K, K), got {tuple(cost.shape)}")


def hungarian(cost: torch.Tensor) -> torch.Tensor:
    """Per-sample scipy linear_sum_assignment: (B, K, K) -> perm (B, K) long on cost.device."""
    _check_cost(cost)
    host = cost.detach().to("cpu", torch.float64).numpy()  # (B, K, K)
    perm = np.empty(host.shape[:2], dtype=np.int64)  # (B, K)
    for b, matrix in enumerate(host):
        rows, cols = linear_sum_assignment(matrix)
        perm[b, rows] = cols
    return torch.from_numpy(perm).to(cost.device)


def all_permutations(parts: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Every permutation of range(parts) in lexicographic order: (K!, K) long."""
    return torch.tensor(list(itertools.permutations(range(parts))), dtype=torch.long, device=device)


def brute_force_assignment(cost: torch.Tensor) -> torch.Tensor:
    """Exact assignment by scoring all K! permutations in one batched gather: -> (B, K)."""
    _check_cost(cost)
    parts = cost.shape[1]
    if parts > MAX_BRUTE_FORCE_PARTS:
        raise ValueError(
            f"brute_force_assignment enumerates K! permutations and supports "
            f"K <= {MAX_BRUTE_FORCE_PARTS}, got K={parts}; use hungarian instead"
        )
    cost = cost.detach()
    perms = all_permutations(parts, cost.device)  # (P, K)
    rows = torch.arange(parts, device=cost.device)  # (K,)
    totals = cost[:, rows, perms].sum(dim=-1)  # (B, P)
    return perms[totals.argmin(dim=-1)]  # (B, K)


def match_parts(
    z1: torch.Tensor,
    z2: torch.Tensor,
    sigma_plus: torch.Tensor,
    epoch: int,
    warmup_epochs: int = 3,
    solver: Solver = hungarian,
) -> torch.Tensor:
    """View-2 index matched to each view-1 part: cosine cost in warm-up, Mahalanobis after."""
    with torch.no_grad():
        z1, z2, sigma_plus = z1.detach(), z2.detach(), sigma_plus.detach()
        if epoch < warmup_epochs:
            cost = cosine_cost(z1, z2)  # (B, K, K)
        else:
            cost = mahalanobis_cost(z1, z2, sigma_plus)  # (B, K, K)
        return solver(cost)
