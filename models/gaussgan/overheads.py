"""End-of-epoch overheads of the public training loop: the cumulative figure and the sample artifact.

Every validation the public code redraws one figure with a subplot per epoch so far (the target's
two modes, 500 fresh samples each, and that epoch's generated points), saves it at 150 dpi, and
logs the generated points as a CSV text artifact. The note proposes drawing every 5th epoch and
writing ``.npy`` instead of CSV.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from models.gaussgan.data import TARGET, Mixture, mixture_points

ARTIFACTS = ("csv", "npy")


def epoch_figure(
    history: Sequence[np.ndarray],
    path: Path,
    *,
    dpi: int = 150,
    target_samples: int = 500,
    mixture: Mixture = TARGET,
    seed: int = 0,
) -> int:
    """Draw all epochs so far as a subplot grid, save it, return the bytes written."""
    if not history:
        raise ValueError("history must hold at least one epoch of generated points")
    epochs = len(history)
    cols = 1 if epochs == 1 else max(2, math.ceil(math.sqrt(epochs)))
    rows = math.ceil(epochs / cols)
    # A bare Figure renders straight to the file (Agg for PNG) without touching pyplot's global
    # backend or figure registry; the drawing work is the public code's plt.subplots figure.
    fig = Figure(figsize=(min(20, cols * 4), min(16, rows * 3)))
    axes = fig.subplots(rows, cols, squeeze=False)
    # Fresh target samples on every call, as the public code draws them.
    targets, labels = mixture_points(target_samples, mixture=mixture, seed=seed + epochs)
    modes = [targets[labels == k].numpy() for k in range(len(mixture.means))]
    for index in range(rows * cols):
        ax = axes[index // cols, index % cols]
        if index >= epochs:
            ax.set_visible(False)
            continue
        first = index == 0
        for k, (mode, colour) in enumerate(zip(modes, ("blue", "red"), strict=False)):
            ax.scatter(
                mode[:, 0], mode[:, 1], color=colour, alpha=0.4, s=1, label=f"Target {k}" if first else ""
            )
        points = history[index]
        if len(points):
            ax.scatter(
                points[:, 0], points[:, 1], s=1, color="black", alpha=0.6, label="Generated" if first else ""
            )
        ax.axhline(0, color="gray", linestyle="--", alpha=0.2)
        ax.axvline(0, color="gray", linestyle="--", alpha=0.2)
        ax.set_xlim(-11, 11)
        ax.set_ylim(-11, 11)
        ax.set_title(f"Epoch {index}", fontsize=8)
        ax.grid(True, alpha=0.2)
        ax.tick_params(labelsize=6)
        if index // cols == rows - 1:
            ax.set_xlabel("X", fontsize=8)
        if index % cols == 0:
            ax.set_ylabel("Y", fontsize=8)
    axes[0, 0].legend(fontsize=8, loc="upper right")
    fig.suptitle(f"Generator training progress ({epochs} epochs)", fontsize=14)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path.stat().st_size


def write_csv(points: torch.Tensor, path: Path) -> int:
    """The public artifact: "x,y" then one "x,y" line per point, Python float formatting."""
    text = "x,y\n" + "\n".join(f"{float(x)},{float(y)}" for x, y in points.tolist())
    path.write_text(text)
    return path.stat().st_size


def write_npy(points: torch.Tensor, path: Path) -> int:
    """The proposed artifact: the raw array in its own dtype."""
    np.save(path, points.detach().cpu().numpy())
    return path.stat().st_size


def epoch_overheads(
    history: Sequence[torch.Tensor],
    directory: Path,
    *,
    epochs: int = 5,
    figure_every: int | None = 1,
    artifact: str | None = "csv",
    dpi: int = 150,
) -> dict[str, float]:
    """The end-of-epoch work for the last ``epochs`` epochs of ``history``.

    ``figure_every=k`` draws the cumulative figure at epochs e with (e + 1) % k == 0 (None: never);
    ``artifact`` writes "csv", "npy" or nothing per epoch. Returns the figures drawn and the bytes
    of the last figure and of one epoch's artifact.
    """
    if epochs < 1 or epochs > len(history):
        raise ValueError(f"epochs must be between 1 and len(history) = {len(history)}, got {epochs}")
    if figure_every is not None and figure_every < 1:
        raise ValueError(f"figure_every must be positive or None, got {figure_every}")
    if artifact is not None and artifact not in ARTIFACTS:
        raise ValueError(f"artifact must be one of {ARTIFACTS} or None, got {artifact!r}")
    directory = Path(directory)
    figures, figure_bytes, artifact_bytes = 0, 0, 0
    for epoch in range(len(history) - epochs, len(history)):
        if figure_every is not None and (epoch + 1) % figure_every == 0:
            arrays = [h.detach().cpu().numpy() for h in history[: epoch + 1]]
            figure_bytes = epoch_figure(arrays, directory / "training.png", dpi=dpi)
            figures += 1
        if artifact == "csv":
            artifact_bytes = write_csv(history[epoch], directory / f"generated_epoch_{epoch:04d}.csv")
        elif artifact == "npy":
            artifact_bytes = write_npy(history[epoch], directory / f"generated_epoch_{epoch:04d}.npy")
    return {
        "figures": float(figures),
        "figure_bytes": float(figure_bytes),
        "artifact_bytes": float(artifact_bytes),
    }
