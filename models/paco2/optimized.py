"""Batched PaC/SoC losses: one Cholesky per sample and whitening instead of per-pair solves."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.paco2.covariance import frobenius_sq
from models.paco2.pool import PacResult, negatives_pool, select_semi_hard
from models.paco2.validation import (
    check_pair_inputs,
    check_perm,
    check_soc_inputs,
    check_spd_batch,
    check_views,
)

# cdist's matmul shortcut (|a|^2 + |b|^2 - 2ab) cancels badly for nearby points and would
# let semi-hard choices drift from the per-pair reference; the difference form does not.
_EXACT_CDIST = "donot_use_mm_for_euclid_dist"


def whiten(x: torch.Tensor, chol: torch.Tensor) -> torch.Tensor:
    """Rows of x mapped to L^-1 x for the per-sample lower Cholesky factor: (B, n, d)."""
    return torch.linalg.solve_triangular(chol, x.transpose(1, 2), upper=False).transpose(1, 2)


def mahalanobis_whitened(
    anchors: torch.Tensor, candidates: torch.Tensor, sigma_plus: torch.Tensor
) -> torch.Tensor:
    """Mahalanobis distances under sigma_plus[b]: (B, A, d), (B, N, d) -> (B, A, N)."""
    check_pair_inputs(anchors, candidates, sigma_plus)
    chol = torch.linalg.cholesky(sigma_plus)  # (B, d, d)
    white = whiten(torch.cat([anchors, candidates], dim=1), chol)  # (B, A + N, d)
    white_a, white_c = white.split([anchors.shape[1], candidates.shape[1]], dim=1)
    # cdist's backward returns zero gradient at coincident points instead of sqrt's nan.
    return torch.cdist(white_a, white_c, compute_mode=_EXACT_CDIST)  # (B, A, N)


def _check_pac_inputs(
    z1: torch.Tensor, z2: torch.Tensor, perm: torch.Tensor, sigma_plus: torch.Tensor
) -> None:
    check_views(z1, z2)
    batch, parts, dim = z1.shape
    check_perm(perm, batch, parts)
    check_spd_batch("sigma_plus", sigma_plus, batch, dim)


def _whitened_triplets(
    z1: torch.Tensor, z2: torch.Tensor, perm: torch.Tensor, sigma_plus: torch.Tensor, pool: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Whitened anchors (B, K, d), positives (B, K, d) and pool (B, N, d) from one solve."""
    parts, dim = z1.shape[1], z1.shape[2]
    positives = z2.gather(1, perm.long().unsqueeze(-1).expand(-1, -1, dim))  # (B, K, d)
    chol = torch.linalg.cholesky(sigma_plus)  # (B, d, d)
    white = whiten(torch.cat([z1, positives, pool], dim=1), chol)  # (B, 2K + N, d)
    return tuple(white.split([parts, parts, pool.shape[1]], dim=1))  # type: ignore[return-value]


def _triplet_loss(
    white_a: torch.Tensor,
    white_p: torch.Tensor,
    white_n: torch.Tensor,
    negative_index: torch.Tensor,
    margin: float,
) -> torch.Tensor:
    """Hinge over anchors given the chosen pool index; only chosen pairs enter the graph."""
    batch = white_a.shape[0]
    rows = torch.arange(batch, device=white_a.device).unsqueeze(-1)  # (B, 1)
    chosen = white_n[rows, negative_index]  # (B, K, d)
    d_pos = torch.linalg.vector_norm(white_a - white_p, dim=-1)  # (B, K)
    d_neg = torch.linalg.vector_norm(white_a - chosen, dim=-1)  # (B, K)
    return torch.relu(d_pos - d_neg + margin).mean()


def pac_loss_whitened(
    z1: torch.Tensor,
    z2: torch.Tensor,
    perm: torch.Tensor,
    sigma_plus: torch.Tensor,
    margin: float = 0.2,
) -> PacResult:
    """Semi-hard Mahalanobis triplet loss equal to reference.pac_loss, whitened in one solve."""
    _check_pac_inputs(z1, z2, perm, sigma_plus)
    pool = negatives_pool(z1, z2)  # (B, N, d)
    white_a, white_p, white_n = _whitened_triplets(z1, z2, perm, sigma_plus, pool)
    # Selection is an index choice, so the full (B, K, N) distance table needs no graph.
    with torch.no_grad():
        d_pos = torch.linalg.vector_norm(white_a - white_p, dim=-1)  # (B, K)
        d_neg = torch.cdist(white_a, white_n, compute_mode=_EXACT_CDIST)  # (B, K, N)
        negative_index = select_semi_hard(d_pos, d_neg)  # (B, K)
    loss = _triplet_loss(white_a, white_p, white_n, negative_index, margin)
    return PacResult(loss, negative_index)


def pac_loss_two_stage(
    z1: torch.Tensor,
    z2: torch.Tensor,
    perm: torch.Tensor,
    sigma_plus: torch.Tensor,
    margin: float = 0.2,
    top_m: int = 32,
) -> PacResult:
    """PaC loss with a cosine prefilter: Mahalanobis semi-hard search among top_m candidates.

    negative_index still indexes the full negatives pool of each sample.
    """
    if top_m < 1:
        raise ValueError(f"top_m must be at least 1, got {top_m}")
    _check_pac_inputs(z1, z2, perm, sigma_plus)
    batch, parts, _ = z1.shape
    if top_m >= 2 * parts * (batch - 1):
        # Nothing to prune: the exact path is both cheaper and identical by construction.
        return pac_loss_whitened(z1, z2, perm, sigma_plus, margin)
    pool = negatives_pool(z1, z2)  # (B, N, d)
    white_a, white_p, white_n = _whitened_triplets(z1, z2, perm, sigma_plus, pool)
    with torch.no_grad():
        # Cosine ignores sigma+, so it is a cheap proxy that needs no whitening.
        pool_dirs = F.normalize(pool.detach(), dim=-1)  # (B, N, d)
        cosine = F.normalize(z1.detach(), dim=-1) @ pool_dirs.transpose(1, 2)  # (B, K, N)
        shortlist = (1.0 - cosine).topk(top_m, dim=-1, largest=False).indices  # (B, K, M)
        # Keep pool order inside the shortlist so argmin ties break as in the full search.
        shortlist = shortlist.sort(dim=-1).values  # (B, K, M)
        rows = torch.arange(batch, device=z1.device).view(batch, 1, 1)  # (B, 1, 1)
        short_white = white_n[rows, shortlist]  # (B, K, M, d)
        d_pos = torch.linalg.vector_norm(white_a - white_p, dim=-1)  # (B, K)
        d_short = torch.linalg.vector_norm(white_a.unsqueeze(2) - short_white, dim=-1)  # (B, K, M)
        local = select_semi_hard(d_pos, d_short)  # (B, K)
        negative_index = shortlist.gather(-1, local.unsqueeze(-1)).squeeze(-1)  # (B, K)
    loss = _triplet_loss(white_a, white_p, white_n, negative_index, margin)
    return PacResult(loss, negative_index)


def soc_loss_frobenius(
    s1: torch.Tensor,
    s2: torch.Tensor,
    labels: torch.Tensor,
    class_cov: torch.Tensor,
    weight: float = 0.05,
) -> torch.Tensor:
    """Vectorised SoC loss with the Frobenius distance, equal to reference.soc_loss."""
    check_soc_inputs(s1, s2, labels, class_cov)
    view_term = frobenius_sq(s1, s2)  # (B,)
    class_term = frobenius_sq(0.5 * (s1 + s2), class_cov[labels])  # (B,)
    return (view_term + weight * class_term).mean()
