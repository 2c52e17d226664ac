"""The losses as a training step computes them from the two views' parts: covariances inside."""

from __future__ import annotations

from typing import Any

import torch

from models.paco2.covariance import part_covariance, pooled_covariance
from models.paco2.optimized import pac_loss_two_stage, pac_loss_whitened, soc_loss_frobenius
from models.paco2.pool import PacResult
from models.paco2.reference import pac_loss, soc_loss

PAC_METHODS = {"reference": pac_loss, "whitened": pac_loss_whitened, "two_stage": pac_loss_two_stage}


def view_sigma_plus(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Sigma+ of each sample: the pooled part covariances of both views, (B, d, d)."""
    return pooled_covariance(part_covariance(z1), part_covariance(z2))  # (B, d, d)


def pac_loss_of_views(
    z1: torch.Tensor, z2: torch.Tensor, perm: torch.Tensor, method: str = "reference", **options: Any
) -> PacResult:
    """Sigma+ from the views, then the PaC loss by ``method`` ("reference", "whitened",
    "two_stage"); ``options`` go to that loss (e.g. ``top_m`` of the two-stage search)."""
    if method not in PAC_METHODS:
        raise ValueError(f"method must be one of {sorted(PAC_METHODS)}, got {method!r}")
    sigma_plus = view_sigma_plus(z1, z2)  # (B, d, d)
    loss: PacResult = PAC_METHODS[method](z1, z2, perm, sigma_plus, **options)
    return loss


def soc_loss_of_views(
    z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor, class_cov: torch.Tensor,
    distance: str = "log_euclidean",
) -> torch.Tensor:
    """The SoC loss of the views' part covariances; ``distance="frobenius_fast"`` is the vectorised
    Frobenius form (the other names go to ``soc_loss``)."""
    s1, s2 = part_covariance(z1), part_covariance(z2)  # (B, d, d)
    if distance == "frobenius_fast":
        return soc_loss_frobenius(s1, s2, labels, class_cov)
    return soc_loss(s1, s2, labels, class_cov, distance=distance)
