"""Original per-pair PaC and SoC losses: slow loops kept as the ground truth for optimized code."""

from __future__ import annotations

import torch

from models.paco2.covariance import SOC_DISTANCES
from models.paco2.pool import PacResult, negatives_pool
from models.paco2.validation import (
    check_pair_inputs,
    check_perm,
    check_soc_inputs,
    check_spd_batch,
    check_views,
)


def _pair_distance(u: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """||L^-1 (u - v)|| with a fresh Cholesky of sigma, exactly as the original code did."""
    chol = torch.linalg.cholesky(sigma)  # (d, d)
    diff = (u - v).unsqueeze(-1)  # (d, 1)
    white = torch.linalg.solve_triangular(chol, diff, upper=False)  # (d, 1)
    return torch.linalg.vector_norm(white)


def mahalanobis_pairs(
    anchors: torch.Tensor, candidates: torch.Tensor, sigma_plus: torch.Tensor
) -> torch.Tensor:
    """Mahalanobis distances under sigma_plus[b]: (B, A, d), (B, N, d) -> (B, A, N)."""
    check_pair_inputs(anchors, candidates, sigma_plus)
    batch, num_anchors, _ = anchors.shape
    num_candidates = candidates.shape[1]
    rows = []
    for b in range(batch):
        per_anchor = []
        for a in range(num_anchors):
            per_anchor.append(
                torch.stack(
                    [
                        _pair_distance(anchors[b, a], candidates[b, n], sigma_plus[b])
                        for n in range(num_candidates)
                    ]
                )
            )  # (N,)
        rows.append(torch.stack(per_anchor))  # (A, N)
    return torch.stack(rows)  # (B, A, N)


def pac_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    perm: torch.Tensor,
    sigma_plus: torch.Tensor,
    margin: float = 0.2,
) -> PacResult:
    """Semi-hard Mahalanobis triplet loss, one Cholesky + solve per (anchor, candidate) pair."""
    check_views(z1, z2)
    batch, parts, dim = z1.shape
    check_perm(perm, batch, parts)
    check_spd_batch("sigma_plus", sigma_plus, batch, dim)
    pool = negatives_pool(z1, z2)  # (B, N, d)
    terms = []
    chosen = torch.empty(batch, parts, dtype=torch.long, device=z1.device)
    for b in range(batch):
        for k in range(parts):
            anchor = z1[b, k]  # (d,)
            positive = z2[b, int(perm[b, k])]  # (d,)
            d_pos = _pair_distance(anchor, positive, sigma_plus[b])
            d_neg = torch.stack(
                [_pair_distance(anchor, pool[b, n], sigma_plus[b]) for n in range(pool.shape[1])]
            )  # (N,)
            with torch.no_grad():
                farther = d_neg > d_pos
                if bool(farther.any()):
                    masked = torch.where(farther, d_neg, torch.full_like(d_neg, float("inf")))
                    index = int(masked.argmin())
                else:
                    index = int(d_neg.argmin())
            chosen[b, k] = index
            terms.append(torch.relu(d_pos - d_neg[index] + margin))
    return PacResult(torch.stack(terms).mean(), chosen)


def soc_loss(
    s1: torch.Tensor,
    s2: torch.Tensor,
    labels: torch.Tensor,
    class_cov: torch.Tensor,
    distance: str = "log_euclidean",
    weight: float = 0.05,
) -> torch.Tensor:
    """Mean over b of d(S1_b, S2_b)^2 + weight * d((S1_b + S2_b)/2, C_{y_b})^2. Pure function."""
    if distance not in SOC_DISTANCES:
        raise ValueError(f"distance must be one of {sorted(SOC_DISTANCES)}, got {distance!r}")
    check_soc_inputs(s1, s2, labels, class_cov)
    dist_sq = SOC_DISTANCES[distance]
    terms = []
    for b in range(s1.shape[0]):
        view_term = dist_sq(s1[b], s2[b])
        mean_cov = 0.5 * (s1[b] + s2[b])  # (d, d)
        class_term = dist_sq(mean_cov, class_cov[int(labels[b])])
        terms.append(view_term + weight * class_term)
    return torch.stack(terms).mean()


def update_class_covariance(
    class_cov: torch.Tensor,
    s1: torch.Tensor,
    s2: torch.Tensor,
    labels: torch.Tensor,
    momentum: float = 0.9,
) -> torch.Tensor:
    """EMA step for each class present in labels with its detached batch-mean covariance."""
    check_soc_inputs(s1, s2, labels, class_cov)
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must lie in [0, 1], got {momentum}")
    mean_cov = 0.5 * (s1.detach() + s2.detach())  # (B, d, d)
    updated = class_cov.detach().clone()  # (C, d, d)
    for cls in torch.unique(labels).tolist():
        batch_mean = mean_cov[labels == cls].mean(dim=0)  # (d, d)
        updated[cls] = momentum * updated[cls] + (1.0 - momentum) * batch_mean
    return updated
