"""Posterior-collapse monitor: KL, latent variance, two active-unit statistics, reconstruction.

Two "active units" figures are kept apart on purpose:

- ``active_units_public``: the public code's statistic, the share of latent dimensions whose
  *posterior variance* exp(logvar) exceeds 0.01, on the first set of the batch only (averaged
  over levels). It measures how uncertain the posterior is, not whether a unit is used.
- ``active_units_burda``: the standard statistic (Burda et al. 2016): the share of dimensions u
  with Var_x(E_q[z_u | x]) > 0.01, the variance across data points (here: all sets of the step's
  batch) of the posterior mean. A collapsed unit has a mean that ignores the input.
"""

from __future__ import annotations

import tempfile
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from models.seqsetvae.data import PaddedBatch
from models.seqsetvae.model import LossParts
from models.seqsetvae.training import Trainer, loss_padded


@dataclass(frozen=True)
class MonitorConfig:
    """How often the monitor updates and plots, and its thresholds (the note's defaults)."""

    update_every: int = 50
    plot_every: int = 500
    window: int = 100
    variance_threshold: float = 0.01  # public statistic: posterior variance above this
    activity_threshold: float = 0.01  # Burda et al.: variance of the posterior mean above this
    kl_warning: float = 0.01
    mean_variance_warning: float = 0.1
    active_warning: float = 0.1

    def __post_init__(self) -> None:
        for name in ("update_every", "plot_every", "window"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"MonitorConfig.{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class CollapseStats:
    """One monitor update."""

    step: int
    kl: float  # raw KL per set (no free bits), averaged over levels and sets
    mean_variance: float  # mean posterior variance exp(logvar)
    active_units_public: float
    active_units_burda: float
    recon: float
    warnings: tuple[str, ...]


def collapse_stats(parts: LossParts, step: int, cfg: MonitorConfig) -> CollapseStats:
    """The monitor's statistics from one forward pass's latents, mu and logvar (levels, N, L)."""
    mu, logvar = parts.mu.detach().float(), parts.logvar.detach().float()
    kl = (0.5 * (logvar.exp() + mu.square() - 1 - logvar)).sum(-1).mean().item()
    variance = logvar.exp()  # (levels, N, L)
    public = (variance[:, 0] > cfg.variance_threshold).float().mean().item()
    if mu.shape[1] > 1:
        burda = (mu.var(dim=1) > cfg.activity_threshold).float().mean().item()
    else:
        burda = 0.0  # one data point has no spread: no unit is measurably active
    stats = {"kl": kl, "mean_variance": variance.mean().item(), "public": public, "burda": burda}
    warnings = []
    if stats["kl"] < cfg.kl_warning:
        warnings.append(f"KL {kl:.4g} < {cfg.kl_warning}")
    if stats["mean_variance"] < cfg.mean_variance_warning:
        warnings.append(f"mean posterior variance {stats['mean_variance']:.4g} < {cfg.mean_variance_warning}")
    if burda < cfg.active_warning:
        warnings.append(f"active units (Burda) {burda:.3f} < {cfg.active_warning}")
    return CollapseStats(step=step, kl=kl, mean_variance=stats["mean_variance"], active_units_public=public,
                         active_units_burda=burda, recon=parts.recon.detach().float().mean().item(),
                         warnings=tuple(warnings))


class PosteriorCollapseMonitor:
    """Updates every ``update_every`` steps (a window of recent updates) and saves a 2 x 2 plot
    every ``plot_every`` steps into ``out_dir`` (a private temporary folder if None)."""

    def __init__(self, cfg: MonitorConfig, out_dir: Path | None = None) -> None:
        self.cfg = cfg
        self._tmp = None if out_dir is not None else tempfile.TemporaryDirectory(prefix="seqsetvae-monitor-")
        self.out_dir = Path(out_dir) if out_dir is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.history: deque[CollapseStats] = deque(maxlen=cfg.window)
        self.updates = 0
        self.plots = 0

    def on_step(self, step: int, parts: LossParts) -> CollapseStats | None:
        """Call after every training step with that step's forward result."""
        stats = None
        if step % self.cfg.update_every == 0:
            stats = collapse_stats(parts, step, self.cfg)
            self.history.append(stats)
            self.updates += 1
        if step % self.cfg.plot_every == 0 and self.history:
            self.plot(step)
        return stats

    def plot(self, step: int) -> Path:
        """Save the history (KL, variance, active units, reconstruction) as a PNG."""
        # The object-oriented API leaves pyplot's global state (and other users of it) alone.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        steps = [s.step for s in self.history]
        fig = Figure(figsize=(10, 7))
        FigureCanvasAgg(fig)
        axes = fig.subplots(2, 2)
        series = [
            ("KL per set", [s.kl for s in self.history], self.cfg.kl_warning),
            ("mean posterior variance", [s.mean_variance for s in self.history],
             self.cfg.mean_variance_warning),
            ("active units (Burda; public dashed)", [s.active_units_burda for s in self.history],
             self.cfg.active_warning),
            ("reconstruction loss", [s.recon for s in self.history], None),
        ]
        for ax, (title, values, threshold) in zip(axes.flat, series, strict=True):
            ax.plot(steps, values)
            if threshold is not None:
                ax.axhline(threshold, color="r", linestyle="--", alpha=0.6)
            ax.set_title(title)
            ax.grid(alpha=0.3)
        axes[1, 0].plot(steps, [s.active_units_public for s in self.history], linestyle="--")
        fig.suptitle(f"posterior collapse monitor, step {step}")
        path = self.out_dir / f"monitor_step{step:07d}.png"
        fig.savefig(path, dpi=80)
        self.plots += 1
        return path

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def train_monitored(trainer: Trainer, batches: Sequence[PaddedBatch], steps: int,
                    monitor: PosteriorCollapseMonitor | None) -> torch.Tensor:
    """``steps`` training steps cycling over ``batches``, the monitor (if any) after each step;
    returns the mean loss. The monitor's schedule counts steps from the start of this call, so
    every call does the same monitoring work."""
    if steps < 1 or not batches:
        raise ValueError("need steps >= 1 and at least one batch")
    losses = []
    for i in range(steps):
        trainer.optimizer.zero_grad(set_to_none=True)
        parts = loss_padded(trainer, batches[i % len(batches)])
        parts.loss.backward()
        trainer.optimizer.step()
        trainer.step += 1
        losses.append(parts.loss.detach())
        if monitor is not None:
            monitor.on_step(i + 1, parts)
    return torch.stack(losses).mean()
