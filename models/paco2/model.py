"""Small CNN with a part sampler trained with CE + PaC + SoC, plus seeded training helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from models.paco2.covariance import SOC_DISTANCES, part_covariance, pooled_covariance
from models.paco2.data import image_batch
from models.paco2.matching import match_parts
from models.paco2.optimized import pac_loss_two_stage, pac_loss_whitened, soc_loss_frobenius
from models.paco2.reference import pac_loss, soc_loss, update_class_covariance

PAC_MODES = ("reference", "whitened", "two_stage")


@dataclass(frozen=True)
class PaCoConfig:
    """Hyper-parameters of the PaCo-2 model and loss."""

    parts: int = 6
    dim: int = 128
    margin: float = 0.2
    lam: float = 1.0
    soc_weight: float = 0.1
    soc_distance: str = "log_euclidean"
    pac: str = "reference"
    top_m: int = 32
    num_classes: int = 4
    warmup_epochs: int = 3
    class_weight: float = 0.05  # weight of the class-prototype term inside SoC
    ema_momentum: float = 0.9
    eps: float = 1e-5
    tau: float = 1e-5
    width: int = 32  # channels of the first conv block; later blocks double it

    def __post_init__(self) -> None:
        if self.parts < 2:
            raise ValueError(f"parts must be at least 2 to form a covariance, got {self.parts}")
        if self.dim < 1 or self.num_classes < 1 or self.width < 1:
            raise ValueError("dim, num_classes and width must be positive")
        if self.pac not in PAC_MODES:
            raise ValueError(f"pac must be one of {PAC_MODES}, got {self.pac!r}")
        if self.soc_distance not in SOC_DISTANCES:
            raise ValueError(
                f"soc_distance must be one of {sorted(SOC_DISTANCES)}, got {self.soc_distance!r}"
            )
        if self.top_m < 1:
            raise ValueError(f"top_m must be at least 1, got {self.top_m}")


class LossesWithCovariances(NamedTuple):
    """Loss dict plus the per-view covariances needed for the class EMA after the step."""

    losses: dict[str, torch.Tensor]
    s1: torch.Tensor  # (B, d, d)
    s2: torch.Tensor  # (B, d, d)


def _conv_block(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class PartSampler(nn.Module):
    """K spatial attention maps pooling a feature map into K part features of size d."""

    def __init__(self, channels: int, parts: int, dim: int) -> None:
        super().__init__()
        self.attention = nn.Conv2d(channels, parts, kernel_size=1)
        self.project = nn.Linear(channels, dim)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, K, d)."""
        weights = self.attention(fmap).flatten(2).softmax(dim=-1)  # (B, K, HW)
        pooled = weights @ fmap.flatten(2).transpose(1, 2)  # (B, K, C)
        return self.project(pooled)  # (B, K, d)


class PaCoModel(nn.Module):
    """Backbone, part sampler and classifier with a per-class EMA covariance buffer."""

    def __init__(self, config: PaCoConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        # Two pooled blocks leave an 8x8 map for 32x32 input: enough positions for K parts.
        self.backbone = nn.Sequential(
            _conv_block(3, w, pool=True),
            _conv_block(w, 2 * w, pool=True),
            _conv_block(2 * w, 4 * w, pool=False),
        )
        self.sampler = PartSampler(4 * w, config.parts, config.dim)
        self.classifier = nn.Linear(4 * w, config.num_classes)
        eye = torch.eye(config.dim)  # (d, d)
        self.register_buffer("class_cov", eye.expand(config.num_classes, -1, -1).clone())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 3, H, W) -> logits (B, num_classes) and parts (B, K, d)."""
        fmap = self.backbone(x)  # (B, C, h, w)
        logits = self.classifier(fmap.mean(dim=(-2, -1)))  # (B, num_classes)
        return logits, self.sampler(fmap)

    def _pac(
        self, z1: torch.Tensor, z2: torch.Tensor, perm: torch.Tensor, sigma_plus: torch.Tensor
    ) -> torch.Tensor:
        cfg = self.config
        if cfg.pac == "reference":
            return pac_loss(z1, z2, perm, sigma_plus, cfg.margin).loss
        if cfg.pac == "whitened":
            return pac_loss_whitened(z1, z2, perm, sigma_plus, cfg.margin).loss
        return pac_loss_two_stage(z1, z2, perm, sigma_plus, cfg.margin, cfg.top_m).loss

    def _soc(self, s1: torch.Tensor, s2: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        class_cov = self.class_cov.detach()  # (C, d, d)
        if cfg.soc_distance == "frobenius" and cfg.pac != "reference":
            return soc_loss_frobenius(s1, s2, labels, class_cov, cfg.class_weight)
        return soc_loss(s1, s2, labels, class_cov, cfg.soc_distance, cfg.class_weight)

    def losses_and_covariances(
        self, x1: torch.Tensor, x2: torch.Tensor, labels: torch.Tensor, epoch: int = 0
    ) -> LossesWithCovariances:
        """Compute total/ce/pac/soc and return the view covariances for the EMA update."""
        if x1.shape != x2.shape:
            raise ValueError(
                f"the two views must have the same shape, got {tuple(x1.shape)} and {tuple(x2.shape)}"
            )
        cfg = self.config
        logits1, z1 = self(x1)  # (B, C), (B, K, d)
        logits2, z2 = self(x2)  # (B, C), (B, K, d)
        ce = 0.5 * (F.cross_entropy(logits1, labels) + F.cross_entropy(logits2, labels))
        s1 = part_covariance(z1, cfg.eps)  # (B, d, d)
        s2 = part_covariance(z2, cfg.eps)  # (B, d, d)
        sigma_plus = pooled_covariance(s1, s2, cfg.tau)  # (B, d, d)
        perm = match_parts(z1, z2, sigma_plus, epoch, cfg.warmup_epochs)  # (B, K)
        pac = self._pac(z1, z2, perm, sigma_plus)
        soc = self._soc(s1, s2, labels)
        total = ce + cfg.lam * pac + cfg.soc_weight * soc
        return LossesWithCovariances({"total": total, "ce": ce, "pac": pac, "soc": soc}, s1, s2)

    def losses(
        self, x1: torch.Tensor, x2: torch.Tensor, labels: torch.Tensor, epoch: int = 0
    ) -> dict[str, torch.Tensor]:
        """Scalar losses {total, ce, pac, soc} for two views of a batch."""
        return self.losses_and_covariances(x1, x2, labels, epoch).losses

    @torch.no_grad()
    def update_class_covariance(self, s1: torch.Tensor, s2: torch.Tensor, labels: torch.Tensor) -> None:
        """Fold the batch's detached covariances into the per-class EMA buffer."""
        updated = update_class_covariance(
            self.class_cov, s1, s2, labels, self.config.ema_momentum
        )  # (C, d, d)
        self.class_cov.copy_(updated)


def train_step(
    model: PaCoModel,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, torch.Tensor],
    epoch: int = 0,
) -> torch.Tensor:
    """One optimisation step; the EMA update follows the loss so SoC sees last step's buffer."""
    optimizer.zero_grad(set_to_none=True)
    out = model.losses_and_covariances(batch["x1"], batch["x2"], batch["labels"], epoch)
    total = out.losses["total"]
    total.backward()
    optimizer.step()
    model.update_class_covariance(out.s1, out.s2, batch["labels"])
    return total.detach()


def build_training(
    config: PaCoConfig,
    batch: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    lr: float = 0.01,
) -> dict[str, Any]:
    """Seeded model, SGD optimizer and image batch; equal arguments give identical results."""
    # fork_rng keeps the caller's global RNG stream unchanged by model initialisation.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = PaCoModel(config)
    model = model.to(device=device, dtype=dtype)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    data = image_batch(batch, seed=seed, num_classes=config.num_classes, device=device, dtype=dtype)
    return {"model": model, "optimizer": optimizer, "batch": data}
