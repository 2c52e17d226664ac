"""Input checks shared by the PaCo-2 functions, raising ValueError with readable messages."""

from __future__ import annotations

import torch


def check_parts(name: str, z: torch.Tensor) -> None:
    """Require a (B, K, d) part tensor with at least two parts per sample."""
    if z.dim() != 3:
        raise ValueError(f"{name} must have shape (B, K, d), got {tuple(z.shape)}")
    if z.shape[1] < 2:
        raise ValueError(
            f"{name} needs at least K=2 parts per sample to form a covariance, got K={z.shape[1]}"
        )


def check_views(z1: torch.Tensor, z2: torch.Tensor) -> None:
    """Require two views of identical (B, K, d) shape."""
    check_parts("z1", z1)
    check_parts("z2", z2)
    if z1.shape != z2.shape:
        raise ValueError(
            f"the two views must have the same shape, got z1 {tuple(z1.shape)} and z2 {tuple(z2.shape)}"
        )


def check_spd_batch(name: str, s: torch.Tensor, batch: int, dim: int) -> None:
    """Require a (B, d, d) stack of square matrices matching the part features."""
    if s.dim() != 3 or s.shape[0] != batch or s.shape[1] != dim or s.shape[2] != dim:
        raise ValueError(f"{name} must have shape ({batch}, {dim}, {dim}), got {tuple(s.shape)}")


def check_perm(perm: torch.Tensor, batch: int, parts: int) -> None:
    """Require a (B, K) integer index tensor of view-2 matches."""
    if perm.shape != (batch, parts):
        raise ValueError(f"perm must have shape ({batch}, {parts}), got {tuple(perm.shape)}")
    if perm.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"perm must be an integer tensor, got {perm.dtype}")


def check_pair_inputs(anchors: torch.Tensor, candidates: torch.Tensor, sigma_plus: torch.Tensor) -> None:
    """Require anchors (B, A, d), candidates (B, N, d) and sigma_plus (B, d, d)."""
    if anchors.dim() != 3 or candidates.dim() != 3:
        raise ValueError(
            "anchors and candidates must have shape (B, A, d) and (B, N, d), got "
            f"{tuple(anchors.shape)} and {tuple(candidates.shape)}"
        )
    if anchors.shape[0] != candidates.shape[0] or anchors.shape[2] != candidates.shape[2]:
        raise ValueError(
            "anchors and candidates must share batch size and feature dim, got "
            f"{tuple(anchors.shape)} and {tuple(candidates.shape)}"
        )
    check_spd_batch("sigma_plus", sigma_plus, anchors.shape[0], anchors.shape[2])


def check_soc_inputs(
    s1: torch.Tensor, s2: torch.Tensor, labels: torch.Tensor, class_cov: torch.Tensor
) -> None:
    """Require s1, s2 (B, d, d), labels (B,) in range and class_cov (C, d, d)."""
    if s1.shape != s2.shape or s1.dim() != 3 or s1.shape[1] != s1.shape[2]:
        raise ValueError(
            f"s1 and s2 must both have shape (B, d, d), got {tuple(s1.shape)} and {tuple(s2.shape)}"
        )
    if labels.shape != (s1.shape[0],):
        raise ValueError(f"labels must have shape ({s1.shape[0]},), got {tuple(labels.shape)}")
    if class_cov.dim() != 3 or class_cov.shape[1:] != s1.shape[1:]:
        raise ValueError(
            f"class_cov must have shape (C, {s1.shape[1]}, {s1.shape[2]}), got {tuple(class_cov.shape)}"
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= class_cov.shape[0]):
        raise ValueError(f"labels must lie in [0, {class_cov.shape[0]}) to index class_cov")
