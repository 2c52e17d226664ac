"""GaussGAN networks: the MLP generator with a reparameterised head, the critic and the predictor."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _check_hidden(hidden: Sequence[int]) -> tuple[int, ...]:
    hidden = tuple(hidden)
    if not hidden or any(not isinstance(h, int) or h < 1 for h in hidden):
        raise ValueError(f"hidden sizes must be a non-empty list of positive ints, got {hidden!r}")
    return hidden


class MLPGenerator(nn.Module):
    """z (B, z_dim) -> [Linear, BatchNorm1d, LeakyReLU]* -> mean, log-variance -> mean + eps * std."""

    def __init__(
        self,
        z_dim: int = 4,
        hidden: Sequence[int] = (256, 256),
        *,
        std_scale: float = 1.1,
        min_std: float = 0.5,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = z_dim
        for size in _check_hidden(hidden):
            layers += [nn.Linear(width, size), nn.BatchNorm1d(size), nn.LeakyReLU()]
            width = size
        self.features = nn.Sequential(*layers)
        self.mean = nn.Linear(width, 2)
        self.log_var = nn.Linear(width, 2)
        nn.init.xavier_uniform_(self.log_var.weight, gain=2.0)
        nn.init.constant_(self.log_var.bias, 0.5)
        self.std_scale, self.min_std = std_scale, min_std

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.features(z)  # (B, H)
        std = (torch.exp(0.5 * self.log_var(h)) * self.std_scale).clamp(min=self.min_std)  # (B, 2)
        return self.mean(h) + torch.randn_like(std) * std  # (B, 2)


class MLP(nn.Module):
    """2 -> [Linear, LeakyReLU]* -> 1: the critic (WGAN) and, through a sigmoid, the predictor."""

    def __init__(self, hidden: Sequence[int] = (256, 256), in_dim: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for size in _check_hidden(hidden):
            layers += [nn.Linear(width, size), nn.LeakyReLU()]
            width = size
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, 1)


class Generator(nn.Module):
    """A noise source followed by the MLP generator: ``forward(batch)`` -> (B, 2) points."""

    def __init__(self, noise: nn.Module, mlp: MLPGenerator) -> None:
        super().__init__()
        self.noise, self.mlp = noise, mlp

    def forward(self, batch: int) -> torch.Tensor:
        if not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive int, got {batch!r}")
        return self.mlp(self.noise(batch))  # (B, 2)
