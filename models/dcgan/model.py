"""DCGAN generator and discriminator for 64x64 grayscale images, with SAGAN self-attention."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

IMAGE_SIZE = 64
WIDTHS = (64, 80, 96, 128)  # the note's ngf = ndf choices


@dataclass(frozen=True)
class DCGANConfig:
    """Architecture of one width: G is latent -> 8w -> 4w -> 2w -> w -> channels, D mirrors it.

    ``attention`` puts SAGAN self-attention blocks after the 16x16 and 32x32 generator stages and
    after the 8x8 and 4x4 discriminator stages. Spectral normalisation covers every convolution
    of D and, as in SAGAN, of G; it adds buffers, not parameters, so weightless models built to
    count parameters can leave it out (it costs seconds of power iterations at construction).
    """

    width: int = 64
    latent_dim: int = 128
    channels: int = 1
    attention: bool = True
    sn_generator: bool = True
    sn_discriminator: bool = True
    attention_ratio: int = 8  # query/key channels = C // attention_ratio

    def __post_init__(self) -> None:
        for name in ("width", "latent_dim", "channels", "attention_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DCGANConfig.{name} must be a positive int, got {value!r}")
        if self.attention and self.width % self.attention_ratio:
            raise ValueError(
                f"width {self.width} must be divisible by attention_ratio {self.attention_ratio} "
                "so that query/key have C // ratio channels at every attention position"
            )


def _init_conv(conv: nn.Module) -> None:
    # DCGAN initialisation: N(0, 0.02) weights, zero bias.
    nn.init.normal_(conv.weight, 0.0, 0.02)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _maybe_sn(module: nn.Module, enabled: bool) -> nn.Module:
    # Spectral norm goes on after initialisation so its power-iteration vectors match the weights.
    return spectral_norm(module) if enabled else module


class SelfAttention(nn.Module):
    """SAGAN self-attention: query/key 1x1 convs C -> C/r, value C -> C, gamma starts at 0."""

    def __init__(self, channels: int, ratio: int = 8, sn: bool = True) -> None:
        super().__init__()
        if channels % ratio:
            raise ValueError(f"channels {channels} must be divisible by ratio {ratio}")
        convs = [nn.Conv2d(channels, channels // ratio, 1), nn.Conv2d(channels, channels // ratio, 1)]
        convs.append(nn.Conv2d(channels, channels, 1))
        for conv in convs:
            _init_conv(conv)
        self.query, self.key, self.value = (_maybe_sn(conv, sn) for conv in convs)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).reshape(b, -1, h * w)  # (B, C/r, N)
        k = self.key(x).reshape(b, -1, h * w)  # (B, C/r, N)
        v = self.value(x).reshape(b, c, h * w)  # (B, C, N)
        energy = q.transpose(1, 2) @ k  # (B, N, N): row i scores every position j
        # Softmax in float32 under autocast too: compiled bfloat16 softmax backward gave NaN gradients.
        attn = F.softmax(energy.float(), dim=-1).to(v.dtype)  # (B, N, N)
        out = (v @ attn.transpose(1, 2)).reshape(b, c, h, w)  # (B, C, H, W)
        return x + self.gamma * out


class Generator(nn.Module):
    """z (B, latent, 1, 1) -> image (B, channels, 64, 64) in [-1, 1]."""

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__()
        self.config = config
        w, sn = config.width, config.sn_generator
        widths = [config.latent_dim, 8 * w, 4 * w, 2 * w, w]
        stages: list[nn.Module] = []
        for i, (cin, cout) in enumerate(itertools.pairwise(widths)):
            # The first layer grows 1x1 to 4x4; the others double the resolution.
            conv = (
                nn.ConvTranspose2d(cin, cout, 4, 1, 0, bias=False)
                if i == 0
                else (nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False))
            )
            _init_conv(conv)
            bn = nn.BatchNorm2d(cout)
            nn.init.normal_(bn.weight, 1.0, 0.02)
            nn.init.zeros_(bn.bias)
            stages.append(nn.Sequential(_maybe_sn(conv, sn), bn, nn.ReLU(inplace=True)))
            # SAGAN positions at 64x64: after the 16x16 (2w) and 32x32 (w) feature maps.
            if config.attention and i >= 2:
                stages.append(SelfAttention(cout, config.attention_ratio, sn))
        out = nn.ConvTranspose2d(w, config.channels, 4, 2, 1, bias=False)
        _init_conv(out)
        stages.append(nn.Sequential(_maybe_sn(out, sn), nn.Tanh()))
        self.net = nn.Sequential(*stages)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:
            z = z[:, :, None, None]  # (B, latent, 1, 1)
        if z.dim() != 4 or z.shape[1:] != (self.config.latent_dim, 1, 1):
            raise ValueError(
                f"Generator expects z of shape (B, {self.config.latent_dim}) or "
                f"(B, {self.config.latent_dim}, 1, 1), got {tuple(z.shape)}"
            )
        return self.net(z)  # (B, channels, 64, 64)


class Discriminator(nn.Module):
    """image (B, channels, 64, 64) -> one unbounded score per image (B,)."""

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__()
        self.config = config
        w, sn = config.width, config.sn_discriminator
        widths = [config.channels, w, 2 * w, 4 * w, 8 * w]
        stages: list[nn.Module] = []
        for i, (cin, cout) in enumerate(itertools.pairwise(widths)):
            conv = nn.Conv2d(cin, cout, 4, 2, 1, bias=False)
            _init_conv(conv)
            stages.append(nn.Sequential(_maybe_sn(conv, sn), nn.LeakyReLU(0.1, inplace=True)))
            # SAGAN positions: after the 8x8 (4w) and 4x4 (8w) feature maps.
            if config.attention and i >= 2:
                stages.append(SelfAttention(cout, config.attention_ratio, sn))
        out = nn.Conv2d(8 * w, 1, 4, 1, 0, bias=False)
        _init_conv(out)
        stages.append(_maybe_sn(out, sn))
        self.net = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1:] != (self.config.channels, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(
                f"Discriminator expects images (B, {self.config.channels}, {IMAGE_SIZE}, {IMAGE_SIZE}), "
                f"got {tuple(x.shape)}"
            )
        return self.net(x).flatten()  # (B,)


def build_models(
    config: DCGANConfig, seed: int = 0, device: torch.device | str = "cpu"
) -> tuple[Generator, Discriminator]:
    """Seeded G and D; equal arguments give identical weights and spectral-norm vectors."""
    # fork_rng keeps the caller's global RNG stream unchanged by initialisation.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = Generator(config)
        discriminator = Discriminator(config)
    return generator.to(device), discriminator.to(device)


def build_generator(config: DCGANConfig, seed: int = 0, device: torch.device | str = "cpu") -> Generator:
    """The generator ``build_models`` gives for the same arguments (G is drawn first from the
    seed), without building the discriminator, where G alone is needed (width 128, one thread on
    a quiet 2-core Xeon VM: 0.38 s against 0.62 s for the pair; a setup per implementation and
    worker of ``dcgan.ema``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = Generator(config)
    return generator.to(device)


def parameter_count(module: nn.Module) -> int:
    """Trainable numbers of a module, counted from its tensors."""
    return sum(p.numel() for p in module.parameters())


def gan_parameter_counts(generator: nn.Module, discriminator: nn.Module) -> dict[str, int]:
    """G's and D's parameter counts, summed over their tensors (not from a formula)."""
    return {"g_params": parameter_count(generator), "d_params": parameter_count(discriminator)}
