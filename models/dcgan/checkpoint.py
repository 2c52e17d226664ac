"""Saving and restoring DCGAN training checkpoints, and scratch files that delete themselves."""

from __future__ import annotations

import os
import tempfile
import weakref
from pathlib import Path
from typing import Any

import torch

from models.dcgan.train import GANTraining


class ScratchFile:
    """A temporary file path removed when this object is garbage-collected (or on exit)."""

    def __init__(self, suffix: str = ".pt", directory: str | None = None) -> None:
        handle, name = tempfile.mkstemp(suffix=suffix, prefix="dcgan-", dir=directory)
        os.close(handle)
        self.path = Path(name)
        self._cleanup = weakref.finalize(self, _unlink, self.path)

    def __fspath__(self) -> str:
        # A path-like object: savers and loaders take the scratch file itself, which keeps it alive.
        return str(self.path)

    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def remove(self) -> None:
        self._cleanup()


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def materialize_optimizer_state(training: GANTraining) -> None:
    """Create Adam's moment buffers without a training step, so a checkpoint has its real size.

    A zero-gradient step allocates exp_avg / exp_avg_sq exactly as a real step would; the weight
    decay term moves the weights by lr * wd-scaled amounts, irrelevant to size and timing.
    """
    for optimizer in (training.opt_g, training.opt_d):
        for group in optimizer.param_groups:
            for param in group["params"]:
                param.grad = torch.zeros_like(param)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def save_checkpoint(training: GANTraining, path: str | os.PathLike[str]) -> int:
    """Write the resumable state (G, D, EMA-G, both Adams, step) to ``path``; returns its size in bytes."""
    torch.save(training.state_dict(), path)
    return os.path.getsize(path)


def load_checkpoint(training: GANTraining, path: str | os.PathLike[str]) -> None:
    """Restore a run from ``path`` (tensors only: weights_only loading)."""
    state: dict[str, Any] = torch.load(path, map_location=training.device, weights_only=True)
    training.load_state_dict(state)


def checkpoint_roundtrip(training: GANTraining, path: str | os.PathLike[str]) -> int:
    """Save then restore the full training state; returns the file's size in bytes."""
    size = save_checkpoint(training, path)
    load_checkpoint(training, path)
    return size


def ema_roundtrip(training: GANTraining, path: str | os.PathLike[str]) -> int:
    """Save then restore only the EMA generator (what sampling and FID need); returns bytes."""
    torch.save(training.ema.state_dict(), path)
    size = os.path.getsize(path)
    training.ema.load_state_dict(torch.load(path, map_location=training.device, weights_only=True))
    return size
