"""Sizes and loss weights of SeqSetVAE and of the synthetic patient cohort, with the note's presets."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    """SeqSetVAE sizes and loss weights; the defaults are the note's sizes (SEEDS.md, 001).

    Dropout is left out on purpose: the per-set reference and the padded variants must draw the
    same randomness, and the only random draws of this model are the decoder seeds, which are
    passed in explicitly (see ``model.draw_noise``).
    """

    input_dim: int = 768  # variable embedding size
    reduced_dim: int = 256  # Linear(768 -> 256) before L2 normalisation
    latent_dim: int = 256
    levels: int = 2  # induced-set-attention levels, each with its own mean / log-variance
    set_heads: int = 2
    inducing: int = 16  # inducing points per ISAB
    seq_layers: int = 4
    seq_heads: int = 8
    ff_dim: int = 512
    time_buckets: int = 64  # log-spaced buckets of the gap to the previous set
    bucket_min_minutes: float = 0.5
    bucket_max_minutes: float = 24 * 60.0
    free_bits: float = 0.03  # per latent dimension
    max_beta: float = 0.05
    beta_warmup_steps: int = 1000
    logvar_clamp: float = 10.0
    seed_noise_std: float = 0.3  # decoder seeds are N(0, 1 + std^2), as the public code's two draws
    recon_direction: float = 1.0  # Chamfer weights of the public loss: direction, magnitude, full
    recon_magnitude: float = 1.0
    recon_full: float = 3.0
    recon_variance: float = 0.1  # rewards spread of the reconstruction (subtracted)
    cls_weight: float = 1.0
    lr: float = 1e-4
    weight_decay: float = 0.02

    def __post_init__(self) -> None:
        positive = ("input_dim", "reduced_dim", "latent_dim", "levels", "set_heads", "inducing",
                    "seq_layers", "seq_heads", "ff_dim", "time_buckets", "beta_warmup_steps")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")
        if self.latent_dim % self.set_heads or self.latent_dim % self.seq_heads:
            raise ValueError(
                f"latent_dim {self.latent_dim} must be divisible by set_heads {self.set_heads} "
                f"and seq_heads {self.seq_heads}"
            )
        if self.latent_dim % 2:
            raise ValueError(f"latent_dim must be even (sinusoidal positions), got {self.latent_dim}")
        if self.time_buckets < 2:
            raise ValueError("time_buckets must be at least 2")
        if not 0 < self.bucket_min_minutes < self.bucket_max_minutes:
            raise ValueError("need 0 < bucket_min_minutes < bucket_max_minutes")
        for name in ("free_bits", "max_beta", "seed_noise_std", "cls_weight", "lr", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"ModelConfig.{name} must be >= 0")


@dataclass(frozen=True)
class CohortSpec:
    """A seeded synthetic cohort: per patient a sequence of timestamped sets of events."""

    patients: int = 64
    min_sets: int = 20
    max_sets: int = 200  # "tens to hundreds" of sets
    min_events: int = 1
    max_events: int = 50  # events per set
    vocab: int = 512  # distinct variables, each with a fixed 768-d embedding
    embed_dim: int = 768
    positive_rate: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("patients", "min_sets", "max_sets", "min_events", "max_events", "vocab", "embed_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"CohortSpec.{name} must be a positive int, got {value!r}")
        if self.min_sets > self.max_sets:
            raise ValueError(f"min_sets {self.min_sets} > max_sets {self.max_sets}")
        if self.min_events > self.max_events:
            raise ValueError(f"min_events {self.min_events} > max_events {self.max_events}")
        if self.max_events > self.vocab:
            raise ValueError(
                f"a set draws distinct variables: max_events {self.max_events} > vocab {self.vocab}"
            )
        if not 0 < self.positive_rate < 1:
            raise ValueError(f"positive_rate must be in (0, 1), got {self.positive_rate}")


FULL_MODEL = ModelConfig()
# Quick profile: the 768-d input is kept (it dominates the first layer); the rest shrinks.
QUICK_MODEL = ModelConfig(reduced_dim=64, latent_dim=64, seq_layers=2, seq_heads=4, ff_dim=128)
# For torch.compile in the quick profile: compile time grows with the graph, so one level and one
# Transformer layer.
TINY_MODEL = ModelConfig(reduced_dim=32, latent_dim=32, levels=1, inducing=8, seq_layers=1, seq_heads=2,
                         ff_dim=64)
FULL_COHORT = CohortSpec()
QUICK_COHORT = CohortSpec(patients=32, min_sets=4, max_sets=12, vocab=256)


def model_preset(name: str) -> ModelConfig:
    """The model sizes of a profile: "full" (the note's), "quick" (reduced) or "tiny"."""
    presets = {"full": FULL_MODEL, "quick": QUICK_MODEL, "tiny": TINY_MODEL}
    if name not in presets:
        raise ValueError(f"unknown model preset {name!r}; one of {sorted(presets)}")
    return presets[name]


def cohort_preset(name: str, **changes: Any) -> CohortSpec:
    """The cohort of a profile, optionally with fields changed (e.g. ``patients=16``)."""
    presets = {"full": FULL_COHORT, "quick": QUICK_COHORT, "tiny": QUICK_COHORT}
    if name not in presets:
        raise ValueError(f"unknown cohort preset {name!r}; one of {sorted(presets)}")
    return replace(presets[name], **changes)
