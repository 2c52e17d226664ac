"""Part covariances and the SPD-matrix distances used by the second-order consistency loss."""

from __future__ import annotations

from collections.abc import Callable

import torch

from models.paco2.validation import check_parts

# Below this relative eigenvalue gap the divided difference of log is replaced by its limit,
# because log1p(r) / delta loses all precision once r is at rounding level.
_DEGENERATE_GAP = 1e-6


def part_covariance(z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Covariance over the K parts of each sample: (B, K, d) -> (B, d, d), plus eps * I."""
    check_parts("z", z)
    parts, dim = z.shape[1], z.shape[2]
    centred = z - z.mean(dim=1, keepdim=True)  # (B, K, d)
    cov = centred.transpose(1, 2) @ centred / (parts - 1)  # (B, d, d)
    eye = torch.eye(dim, dtype=z.dtype, device=z.device)  # (d, d)
    return cov + eps * eye


def pooled_covariance(s1: torch.Tensor, s2: torch.Tensor, tau: float = 1e-5) -> torch.Tensor:
    """Sigma+ = (s1 + s2) / 2 + tau * I for the two views' covariances (..., d, d)."""
    if s1.shape != s2.shape:
        raise ValueError(
            f"covariances of the two views must match, got {tuple(s1.shape)} and {tuple(s2.shape)}"
        )
    if s1.dim() < 2 or s1.shape[-1] != s1.shape[-2]:
        raise ValueError(f"covariances must be square (..., d, d), got {tuple(s1.shape)}")
    eye = torch.eye(s1.shape[-1], dtype=s1.dtype, device=s1.device)  # (d, d)
    return 0.5 * (s1 + s2) + tau * eye


def _log_divided_differences(lam: torch.Tensor) -> torch.Tensor:
    """Matrix F_ij = (log l_i - log l_j) / (l_i - l_j), with 1 / l on (near-)ties."""
    li = lam.unsqueeze(-1)  # (..., d, 1)
    lj = lam.unsqueeze(-2)  # (..., 1, d)
    delta = li - lj  # (..., d, d)
    ratio = delta / lj  # (..., d, d)
    near = ratio.abs() < _DEGENERATE_GAP
    safe_delta = torch.where(near, torch.ones_like(delta), delta)
    exact = torch.log1p(torch.where(near, torch.zeros_like(ratio), ratio)) / safe_delta
    # Two-term series of log1p(r) / (r * l_j) keeps the tie case smooth.
    series = (1.0 - 0.5 * ratio) / lj
    return torch.where(near, series, exact)


class _SpdLog(torch.autograd.Function):
    """Matrix logarithm of SPD matrices with a Daleckii-Krein backward.

    eigh's own backward divides by eigenvalue gaps and returns inf/nan for repeated
    eigenvalues, which is the normal case here: a covariance of K < d parts has a
    (d - K + 1)-fold eigenvalue eps. The divided-difference form is finite there.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, a: torch.Tensor) -> torch.Tensor:
        lam, vec = torch.linalg.eigh(a)  # (..., d), (..., d, d)
        # Rounding can push eps-sized eigenvalues of an SPD input to <= 0; log would give nan.
        lam = lam.clamp_min(torch.finfo(a.dtype).tiny)
        ctx.save_for_backward(lam, vec)
        return (vec * lam.log().unsqueeze(-2)) @ vec.transpose(-2, -1)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        lam, vec = ctx.saved_tensors
        grad_sym = 0.5 * (grad + grad.transpose(-2, -1))  # (..., d, d)
        inner = vec.transpose(-2, -1) @ grad_sym @ vec  # (..., d, d)
        return vec @ (_log_divided_differences(lam) * inner) @ vec.transpose(-2, -1)


def spd_log(a: torch.Tensor) -> torch.Tensor:
    """Matrix logarithm V diag(log lambda) V^T of symmetric positive definite (..., d, d)."""
    if a.dim() < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"spd_log expects square matrices (..., d, d), got {tuple(a.shape)}")
    # eigh reads one triangle only; symmetrising makes the result (and its gradient) a
    # function of the whole matrix, which the symmetric backward above assumes.
    return _SpdLog.apply(0.5 * (a + a.transpose(-2, -1)))


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.dim() < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(
            f"expected two stacks of square matrices of equal shape, got {tuple(a.shape)} "
            f"and {tuple(b.shape)}"
        )


def frobenius_sq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Frobenius distance ||A - B||_F^2 over the last two dims: (..., d, d) -> (...)."""
    _check_pair(a, b)
    return (a - b).pow(2).sum(dim=(-2, -1))


def log_euclidean_sq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared log-Euclidean distance ||log A - log B||_F^2: (..., d, d) -> (...)."""
    _check_pair(a, b)
    return (spd_log(a) - spd_log(b)).pow(2).sum(dim=(-2, -1))


def _spd_logdet(a: torch.Tensor) -> torch.Tensor:
    # Cholesky gives a stable logdet for SPD input and fails loudly if the input is not SPD.
    chol = torch.linalg.cholesky(a)  # (..., d, d)
    return 2.0 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)


def stein_divergence(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Jensen-Bregman LogDet divergence logdet((A+B)/2) - (logdet A + logdet B)/2: (...)."""
    _check_pair(a, b)
    return _spd_logdet(0.5 * (a + b)) - 0.5 * _spd_logdet(a) - 0.5 * _spd_logdet(b)


# Squared distance (Stein: the divergence itself) between stacks of SPD matrices, by name.
SOC_DISTANCES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "frobenius": frobenius_sq,
    "log_euclidean": log_euclidean_sq,
    "stein": stein_divergence,
}
