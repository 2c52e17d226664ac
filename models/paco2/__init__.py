"""PaCo-2: part-aware contrast with second-order consistency for fine-grained classification."""

from __future__ import annotations

from models.paco2.covariance import (
    frobenius_sq,
    log_euclidean_sq,
    part_covariance,
    pooled_covariance,
    spd_log,
    stein_divergence,
)
from models.paco2.data import image_batch, part_features
from models.paco2.matching import (
    brute_force_assignment,
    cosine_cost,
    hungarian,
    mahalanobis_cost,
    match_parts,
)
from models.paco2.model import PaCoConfig, PaCoModel, build_training, train_step
from models.paco2.optimized import (
    mahalanobis_whitened,
    pac_loss_two_stage,
    pac_loss_whitened,
    soc_loss_frobenius,
)
from models.paco2.pool import PacResult, negatives_pool, select_semi_hard
from models.paco2.reference import (
    mahalanobis_pairs,
    pac_loss,
    soc_loss,
    update_class_covariance,
)
from models.paco2.views import PAC_METHODS, pac_loss_of_views, soc_loss_of_views, view_sigma_plus

__all__ = [
    "PAC_METHODS",
    "PaCoConfig",
    "PaCoModel",
    "PacResult",
    "brute_force_assignment",
    "build_training",
    "cosine_cost",
    "frobenius_sq",
    "hungarian",
    "image_batch",
    "log_euclidean_sq",
    "mahalanobis_cost",
    "mahalanobis_pairs",
    "mahalanobis_whitened",
    "match_parts",
    "negatives_pool",
    "pac_loss",
    "pac_loss_of_views",
    "pac_loss_two_stage",
    "pac_loss_whitened",
    "part_covariance",
    "part_features",
    "pooled_covariance",
    "select_semi_hard",
    "soc_loss",
    "soc_loss_frobenius",
    "soc_loss_of_views",
    "spd_log",
    "stein_divergence",
    "train_step",
    "update_class_covariance",
    "view_sigma_plus",
]
