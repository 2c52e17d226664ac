"""GaussGAN's six validation metrics: the public code's definitions, and a cached, vectorised version.

What each metric (as the public code computes it on n generated points x_i) really estimates:

- ``IsPositive``: mean of +1 / -1 by the sign of x_i[0] (x = 0 counts +1), i.e. 2 P(x >= 0) - 1,
  in [-1, 1]; not a fraction.
- ``LogLikelihood``: mean_i log q(x_i) under the target mixture q: minus the cross-entropy
  H(P_gen, Q). It rewards collapsing onto one mode as much as covering both.
- ``KLDivergence``: mean_i [log q(x_i) - log p̂(x_i)] with p̂ a Gaussian KDE (Scott's rule) fitted
  on the same x_i: an estimate of **-KL(P_gen ‖ Q)** (higher is better, 0 at best), biased by
  evaluating the KDE on its own points and, more, by Scott's bandwidth (from the covariance of
  a two-mode sample) smoothing across the modes, which lowers p̂ where the points are: on the
  target's own samples it comes out above 0. Points where q underflows to 0 are dropped.
- ``WassersteinDistance``: the 1-D W1 distance per coordinate against the target samples,
  averaged over the two coordinates; it sees the marginals only.
- ``MMDDistance``: sqrt of the biased (V-statistic, diagonal included) MMD² with the kernel
  exp(-γ‖x - y‖²), γ = 1, in float32, against all target samples.
- ``MMDivergence``: the unbiased MMD² (diagonals excluded) clamped at 0, averaged over five
  "bandwidths" b = median pairwise target distance × (0.1, 0.5, 1, 2, 5), then sqrt. The kernel is
  exp(-‖x - y‖² / (2 b)): b is a distance used as a variance. Every validation recomputes the
  median over all N(N-1)/2 target pairs and the N × N target kernel for every bandwidth.

``reference_metrics`` does what the public code does each validation. ``TargetCache`` holds every
term that depends on the targets alone, computed once; ``cached_metrics`` uses it, with one
distance matrix shared by all bandwidths. ``histogram_kl`` is the cheaper stand-in for the KDE KL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.distance import pdist
from scipy.stats import gaussian_kde, wasserstein_distance

from models.gaussgan.data import Mixture

METRICS = (
    "IsPositive",
    "LogLikelihood",
    "KLDivergence",
    "WassersteinDistance",
    "MMDDistance",
    "MMDivergence",
)
BANDWIDTH_SCALES = (0.1, 0.5, 1.0, 2.0, 5.0)
MMD_GAMMA = 1.0


def _as_points(points: torch.Tensor | np.ndarray, name: str = "points") -> np.ndarray:
    array = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{name} must be (N, 2), got shape {array.shape}")
    return array


def _finite_rows(array: np.ndarray) -> np.ndarray:
    return array[~np.isnan(array).any(axis=1)]


def _check_names(names: Sequence[str]) -> tuple[str, ...]:
    names = tuple(names)
    unknown = set(names) - set(METRICS)
    if not names or unknown:
        raise ValueError(f"metric names must be a non-empty subset of {METRICS}, got {names}")
    return names


def is_positive(points: np.ndarray) -> float:
    return float(np.where(points[:, 0] < 0, -1.0, 1.0).mean())


def log_likelihood(points: np.ndarray, mixture: Mixture) -> float:
    return float(mixture.log_density(_finite_rows(points)).mean())


def kde_kl(points: np.ndarray, mixture: Mixture) -> float:
    """mean log q - log p̂_KDE over the generated points (an estimate of -KL(P_gen ‖ Q))."""
    x = _finite_rows(points)
    p_hat = gaussian_kde(x.T)(x.T)  # (n,)
    q = np.exp(mixture.log_density(x))  # (n,); exp then log, as the public code, so q may underflow
    valid = (p_hat > 0) & (q > 0)
    if not valid.any():
        return float("nan")
    return float(np.mean(np.log(q[valid]) - np.log(p_hat[valid])))


def histogram_bins(x: np.ndarray) -> list[int]:
    """Bins per axis by Scott's normal-reference rule for histograms: width 3.49 σ n^(-1/3)."""
    widths = 3.49 * np.std(x, axis=0) * len(x) ** (-1 / 3)
    spans = np.ptp(x, axis=0)
    return [
        max(1, int(np.ceil(span / width))) if width > 0 else 1
        for span, width in zip(spans, widths, strict=True)
    ]


def histogram_kl(points: np.ndarray, mixture: Mixture, *, bins: int | None = None) -> float:
    """The same estimate with p̂ from a 2-D histogram of the points (bins per axis: Scott's rule
    unless given). Cheaper than the KDE (O(n) instead of O(n²)) but a different, coarser p̂."""
    x = _finite_rows(points).astype(np.float64)
    if bins is not None and bins < 1:
        raise ValueError(f"bins must be positive, got {bins}")
    nx, ny = histogram_bins(x) if bins is None else (bins, bins)
    counts, edges_x, edges_y = np.histogram2d(x[:, 0], x[:, 1], bins=(nx, ny))
    area = (edges_x[1] - edges_x[0]) * (edges_y[1] - edges_y[0])
    ix = np.clip(np.searchsorted(edges_x, x[:, 0], side="right") - 1, 0, nx - 1)
    iy = np.clip(np.searchsorted(edges_y, x[:, 1], side="right") - 1, 0, ny - 1)
    p_hat = counts[ix, iy] / (len(x) * area)  # (n,) every point's own bin holds it: > 0
    q = np.exp(mixture.log_density(x))
    valid = q > 0
    if not valid.any():
        return float("nan")
    return float(np.mean(np.log(q[valid]) - np.log(p_hat[valid])))


def wasserstein_mean(points: np.ndarray, targets: np.ndarray) -> float:
    x = _finite_rows(points)
    return float(np.mean([wasserstein_distance(targets[:, d], x[:, d]) for d in range(2)]))


def _torch_rbf_mean(a: torch.Tensor, b: torch.Tensor, gamma: float) -> torch.Tensor:
    return torch.exp(-gamma * torch.cdist(a, b) ** 2).mean()


def mmd_distance(points: np.ndarray, targets: np.ndarray, gamma: float = MMD_GAMMA) -> float:
    x = torch.from_numpy(_finite_rows(points)).float()
    y = torch.from_numpy(targets).float()
    mmd2 = _torch_rbf_mean(x, x, gamma) + _torch_rbf_mean(y, y, gamma) - 2 * _torch_rbf_mean(x, y, gamma)
    return float(torch.sqrt(mmd2.clamp(min=0.0)))


def _sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """‖a_i - b_j‖² by |a|² + |b|² - 2ab (the public formula, in the inputs' precision), >= 0."""
    sq = np.sum(a**2, axis=1, keepdims=True) + np.sum(b**2, axis=1, keepdims=True).T - 2 * (a @ b.T)
    return np.maximum(sq, 0.0)


def median_bandwidths(targets: np.ndarray) -> np.ndarray:
    """Median pairwise target distance × (0.1, 0.5, 1, 2, 5): (5,)."""
    median = float(np.median(pdist(targets, metric="euclidean")))
    return (median if median > 0 else 1.0) * np.asarray(BANDWIDTH_SCALES)


def _unbiased_mean(kernel: np.ndarray) -> float:
    n = kernel.shape[0]
    return float((np.sum(kernel) - np.trace(kernel)) / (n * (n - 1))) if n > 1 else 0.0


def mmd_divergence(points: np.ndarray, targets: np.ndarray) -> float:
    """The public MMDivergence: per bandwidth, three kernel matrices built from scratch."""
    x = _finite_rows(points)
    values = []
    for bandwidth in median_bandwidths(targets):
        k_tt = np.exp(-_sq_distances(targets, targets) / (2 * bandwidth))  # (N, N)
        k_xx = np.exp(-_sq_distances(x, x) / (2 * bandwidth))  # (n, n)
        k_tx = np.exp(-_sq_distances(targets, x) / (2 * bandwidth))  # (N, n)
        values.append(max(_unbiased_mean(k_tt) + _unbiased_mean(k_xx) - 2 * float(np.mean(k_tx)), 0.0))
    return float(np.sqrt(np.mean(values)))


def reference_metrics(
    points: torch.Tensor, targets: torch.Tensor, mixture: Mixture, names: Sequence[str] = METRICS
) -> dict[str, float]:
    """The metrics as the public validation step computes them, nothing reused between calls."""
    names = _check_names(names)
    x, t = _as_points(points), _as_points(targets, "targets")
    compute = {
        "IsPositive": lambda: is_positive(x),
        "LogLikelihood": lambda: log_likelihood(x, mixture),
        "KLDivergence": lambda: kde_kl(x, mixture),
        "WassersteinDistance": lambda: wasserstein_mean(x, t),
        "MMDDistance": lambda: mmd_distance(x, t),
        "MMDivergence": lambda: mmd_divergence(x, t),
    }
    return {name: compute[name]() for name in names}


@dataclass(frozen=True)
class TargetCache:
    """Every metric term that depends on the targets alone, computed once per training run."""

    targets: np.ndarray  # (N, 2), as given
    bandwidths: np.ndarray  # (5,) the median heuristic
    mmdiv_target_terms: np.ndarray  # (5,) unbiased mean target-target kernel per bandwidth
    mmd_target_term: float  # biased mean exp(-γ d²) over target pairs (float32, as MMDDistance)
    gamma: float = MMD_GAMMA


def build_target_cache(targets: torch.Tensor, *, chunk: int = 2048, gamma: float = MMD_GAMMA) -> TargetCache:
    """The target-only terms, in row chunks so memory stays at chunk × N instead of N × N."""
    t = _as_points(targets, "targets")
    if len(t) < 2:
        raise ValueError("need at least two target points")
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    bandwidths = median_bandwidths(t)
    n = len(t)
    kernel_sums = np.zeros(len(bandwidths))
    mmd_sum = 0.0
    t32 = torch.from_numpy(t).float()
    for start in range(0, n, chunk):
        rows = t[start : start + chunk]
        sq = _sq_distances(rows, t)  # (c, N)
        diag = sq[np.arange(len(rows)), np.arange(start, start + len(rows))]  # (c,) ~0, not exactly
        for k, bandwidth in enumerate(bandwidths):
            kernel_sums[k] += np.sum(np.exp(-sq / (2 * bandwidth))) - np.sum(np.exp(-diag / (2 * bandwidth)))
        block = t32[start : start + chunk]
        mmd_sum += float(torch.exp(-gamma * torch.cdist(block, t32) ** 2).double().sum())
    return TargetCache(
        targets=t,
        bandwidths=bandwidths,
        mmdiv_target_terms=kernel_sums / (n * (n - 1)),
        mmd_target_term=mmd_sum / (n * n),
        gamma=gamma,
    )


def _cached_mmd_distance(x: np.ndarray, cache: TargetCache) -> float:
    xt = torch.from_numpy(x).float()
    yt = torch.from_numpy(cache.targets).float()
    mmd2 = (
        _torch_rbf_mean(xt, xt, cache.gamma).double()
        + cache.mmd_target_term
        - 2 * _torch_rbf_mean(xt, yt, cache.gamma).double()
    )
    return float(torch.sqrt(mmd2.clamp(min=0.0)))


def _cached_mmd_divergence(x: np.ndarray, cache: TargetCache) -> float:
    """All bandwidths from one generated-generated and one target-generated distance matrix."""
    scales = 1.0 / (2 * cache.bandwidths)  # (5,)
    sq_xx = _sq_distances(x, x)  # (n, n)
    sq_tx = _sq_distances(cache.targets, x)  # (N, n)
    n = len(x)
    k_xx = np.exp(-sq_xx[None] * scales[:, None, None])  # (5, n, n)
    diag = np.trace(k_xx, axis1=1, axis2=2)  # (5,)
    xx = (k_xx.sum(axis=(1, 2)) - diag) / (n * (n - 1)) if n > 1 else np.zeros(len(scales))
    tx = np.array([np.mean(np.exp(-sq_tx * s)) for s in scales])  # (5,)
    values = np.maximum(cache.mmdiv_target_terms + xx - 2 * tx, 0.0)
    return float(np.sqrt(np.mean(values)))


def cached_metrics(
    points: torch.Tensor,
    cache: TargetCache,
    mixture: Mixture,
    names: Sequence[str] = METRICS,
    *,
    kl: str = "kde",
    bins: int | None = None,
) -> dict[str, float]:
    """The same metrics with the target-only terms from ``cache``; ``kl="histogram"`` swaps the
    KDE for a 2-D histogram (an approximation: report its difference from the KDE value)."""
    names = _check_names(names)
    if kl not in ("kde", "histogram"):
        raise ValueError(f"kl must be 'kde' or 'histogram', got {kl!r}")
    x = _as_points(points)
    clean = _finite_rows(x)
    compute = {
        "IsPositive": lambda: is_positive(x),
        "LogLikelihood": lambda: log_likelihood(x, mixture),
        "KLDivergence": lambda: kde_kl(x, mixture) if kl == "kde" else histogram_kl(x, mixture, bins=bins),
        "WassersteinDistance": lambda: wasserstein_mean(x, cache.targets),
        "MMDDistance": lambda: _cached_mmd_distance(clean, cache),
        "MMDivergence": lambda: _cached_mmd_divergence(clean, cache),
    }
    return {name: compute[name]() for name in names}
