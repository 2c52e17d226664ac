"""Negatives pool and semi-hard negative selection shared by every PaC implementation."""

from __future__ import annotations

from typing import NamedTuple

import torch

from models.paco2.validation import check_views


class PacResult(NamedTuple):
    """PaC loss value and, per anchor, the index of the chosen negative in its sample's pool."""

    loss: torch.Tensor  # scalar
    negative_index: torch.Tensor  # (B, K) long, index into negatives_pool(z1, z2)[b]


def other_sample_index(batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Row b lists every sample index except b, in increasing order: (B, B - 1)."""
    full = torch.arange(batch, device=device).expand(batch, batch)  # (B, B)
    keep = ~torch.eye(batch, dtype=torch.bool, device=device)  # (B, B)
    return full[keep].reshape(batch, batch - 1)


def negatives_pool(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """All 2K parts (view 1 then view 2) of every other sample: (B, K, d) -> (B, 2K(B-1), d).

    Candidate order for sample b: for each b' != b in increasing order, z1[b', 0..K-1]
    followed by z2[b', 0..K-1].
    """
    check_views(z1, z2)
    batch, parts, dim = z1.shape
    if batch < 2:
        raise ValueError(f"the negatives pool needs at least 2 samples in the batch, got B={batch}")
    both = torch.cat([z1, z2], dim=1)  # (B, 2K, d)
    others = other_sample_index(batch, z1.device)  # (B, B-1)
    return both[others].reshape(batch, 2 * parts * (batch - 1), dim)


def select_semi_hard(d_pos: torch.Tensor, d_neg: torch.Tensor) -> torch.Tensor:
    """Index of the closest negative strictly farther than the positive, else the closest.

    d_pos (...,), d_neg (..., N) -> (...) long. Pure index choice: no gradient.
    """
    d_pos = d_pos.detach()
    d_neg = d_neg.detach()
    farther = d_neg > d_pos.unsqueeze(-1)  # (..., N)
    inf = torch.full_like(d_neg, float("inf"))
    semi_hard = torch.where(farther, d_neg, inf).argmin(dim=-1)  # (...)
    hardest = d_neg.argmin(dim=-1)  # (...)
    return torch.where(farther.any(dim=-1), semi_hard, hardest)
