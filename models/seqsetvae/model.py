"""SeqSetVAE: per-set reference (Python loops over sets) and the padded, masked forward.

Both paths compute, per patient, recon + beta * KL + w * BCE, and the batch loss is the mean of
the per-patient losses, so the loss and its gradients do not depend on how patients are batched.
The decoder's random seeds are drawn per (patient, step) from a seeded generator, so every path
uses the same noise for the same patient.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from models.seqsetvae.config import ModelConfig
from models.seqsetvae.data import PaddedBatch, PatientRecord
from models.seqsetvae.modules import Classifier, SetDecoder, SetEncoder, TimeAwareTransformer, masked_mean

_INF = float("inf")


class LossParts(NamedTuple):
    """What a forward pass returns; per-patient parts are (B,), per-set latents (levels, N, L)."""

    loss: torch.Tensor  # () mean over patients of recon + beta * kl + w * bce
    recon: torch.Tensor  # (B,)
    kl: torch.Tensor  # (B,)
    bce: torch.Tensor  # (B,)
    logits: torch.Tensor  # (B,)
    mu: torch.Tensor  # (levels, N, L), sets in patient order
    logvar: torch.Tensor  # (levels, N, L)


# ---------------------------------------------------------------------------------------------
# losses


def _two_way_min(dist: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(N, n, n) distances recon x target -> (N,) mean of both directions' nearest distances."""
    if mask is None:
        return (dist.min(2).values.mean(1) + dist.min(1).values.mean(1)) / 2
    pair = mask.unsqueeze(2) & mask.unsqueeze(1)  # (N, n, n)
    dist = dist.masked_fill(~pair, _INF)
    rows = torch.where(mask, dist.min(2).values, 0.0)  # (N, n)
    cols = torch.where(mask, dist.min(1).values, 0.0)
    count = mask.sum(1).to(dist.dtype)
    return (rows.sum(1) + cols.sum(1)) / (2 * count)


def chamfer_loss(recon: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None,
                 cfg: ModelConfig) -> torch.Tensor:
    """Per-set reconstruction loss of the public code: Chamfer on directions, magnitudes and full
    vectors, minus a reward for spread. recon, target (N, n, R) -> (N,)."""
    recon_norm = recon.norm(dim=-1)  # (N, n)
    target_norm = target.norm(dim=-1)
    recon_unit = recon / (recon_norm.unsqueeze(-1) + 1e-8)
    target_unit = target / (target_norm.unsqueeze(-1) + 1e-8)
    direction = 1 - recon_unit @ target_unit.transpose(1, 2)  # (N, n, n)
    magnitude = (recon_norm.unsqueeze(2) - target_norm.unsqueeze(1)).abs()  # (N, n, n)
    # |r - t|^2 expanded: the direct (N, n, n, R) difference does not fit for thousands of sets.
    full = (recon_norm.square().unsqueeze(2) + target_norm.square().unsqueeze(1)
            - 2 * recon @ target.transpose(1, 2)).clamp_min(0.0)  # (N, n, n)
    centred = recon - masked_mean(recon, mask, 1).unsqueeze(1)  # (N, n, R)
    spread = masked_mean(centred.square(), mask, 1).mean(-1)  # (N,)
    return (cfg.recon_direction * _two_way_min(direction, mask)
            + cfg.recon_magnitude * _two_way_min(magnitude, mask)
            + cfg.recon_full * _two_way_min(full, mask)
            - cfg.recon_variance * spread)


def kl_free_bits(mu: torch.Tensor, logvar: torch.Tensor, free_bits: float) -> torch.Tensor:
    """KL(q || N(0, I)) per set with free bits per dimension, averaged over levels.
    mu, logvar (levels, N, L) -> (N,)."""
    per_dim = 0.5 * (logvar.exp() + mu.square() - 1 - logvar)  # (levels, N, L)
    return per_dim.clamp_min(free_bits).sum(-1).mean(0)


def beta_at(step: int, cfg: ModelConfig) -> float:
    """Linear beta warm-up to max_beta; step 0 already gets a non-zero beta."""
    return cfg.max_beta * min(1.0, (step + 1) / cfg.beta_warmup_steps)


# ---------------------------------------------------------------------------------------------
# noise


def _seed(patient_id: int, step: int, base: int) -> int:
    return (0x9E3779B97F4A7C15 * (patient_id + 1) + 0xBF58476D1CE4E5B9 * (step + 1) + base) % (2**63 - 1)


def draw_seeds(patient_ids: Sequence[int], events: Sequence[int], step: int, cfg: ModelConfig,
               device: torch.device | str, base: int = 0) -> list[torch.Tensor]:
    """Decoder seeds per patient, (levels, E_p, L): the same numbers whichever way patients are
    batched, because each patient's draw has its own generator."""
    std = (1.0 + cfg.seed_noise_std**2) ** 0.5
    out = []
    for pid, n in zip(patient_ids, events, strict=True):
        gen = torch.Generator(device=device)
        gen.manual_seed(_seed(pid, step, base))
        out.append(std * torch.randn(cfg.levels, n, cfg.latent_dim, generator=gen, device=device))
    return out


def pad_seeds(seeds: Sequence[torch.Tensor], event_mask: torch.Tensor) -> torch.Tensor:
    """Per-patient seeds (levels, E_p, L) -> (levels, N, n, L) in the padded layout."""
    flat = torch.cat(list(seeds), dim=1)  # (levels, E, L)
    padded = flat.new_zeros(flat.shape[0], *event_mask.shape, flat.shape[2])  # (levels, N, n, L)
    padded[:, event_mask] = flat
    return padded


# ---------------------------------------------------------------------------------------------
# the model


class SeqSetVAE(nn.Module):
    """Set encoder -> causal time-aware Transformer over set means -> set decoder + classifier."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = SetEncoder(cfg)
        self.sequence = TimeAwareTransformer(cfg)
        self.decoder = SetDecoder(cfg)
        self.classifier = Classifier(cfg)

    def forward(self, batch: PaddedBatch, seeds: torch.Tensor, beta: torch.Tensor) -> LossParts:
        """Padded path: every set of every patient in one tensor. seeds (levels, N, n, L)."""
        cfg = self.cfg
        b, s = batch.set_mask.shape
        x0, mu, logvar = self.encoder(batch.var, batch.val, batch.event_mask)  # (N, n, R), (levels, N, L)
        where = (batch.set_patient, batch.set_pos)
        z = mu.new_zeros(b, s, cfg.latent_dim).index_put(where, mu[-1])  # (B, S, L)
        h = self.sequence(z, batch.minutes, batch.set_mask)  # (B, S, L)
        recon = self.decoder(h[where], seeds, batch.event_mask)  # (N, n, R)
        per_set_recon = chamfer_loss(recon, x0, batch.event_mask, cfg)  # (N,)
        per_set_kl = kl_free_bits(mu, logvar, cfg.free_bits)  # (N,)
        count = batch.set_mask.sum(1).to(per_set_recon.dtype)  # (B,)
        recon_p = per_set_recon.new_zeros(b).index_add(0, batch.set_patient, per_set_recon) / count
        kl_p = per_set_kl.new_zeros(b).index_add(0, batch.set_patient, per_set_kl) / count
        logits = self.classifier(h, batch.set_mask)  # (B,)
        bce = F.binary_cross_entropy_with_logits(logits.float(), batch.labels.float(), reduction="none")
        loss = (recon_p + beta * kl_p + cfg.cls_weight * bce).mean()
        return LossParts(loss, recon_p, kl_p, bce, logits, mu, logvar)

    def forward_patient(self, patient: PatientRecord, seeds: torch.Tensor, beta: torch.Tensor) -> LossParts:
        """Reference path, as the public code: one patient, each set encoded and decoded in a
        Python loop. seeds (levels, E, L)."""
        cfg = self.cfg
        sets = patient.sets()
        targets, mus, logvars = [], [], []
        for var, val in sets:
            # x0 (1, n, R); mu, logvar (levels, 1, L)
            x0, mu, logvar = self.encoder(var.unsqueeze(0), val.unsqueeze(0), None)
            targets.append(x0)
            mus.append(mu)
            logvars.append(logvar)
        mu = torch.cat(mus, dim=1)  # (levels, S, L)
        logvar = torch.cat(logvars, dim=1)
        h = self.sequence(mu[-1].unsqueeze(0), patient.minutes.unsqueeze(0), None)  # (1, S, L)
        recon_total = h.new_zeros(())
        offset = 0
        for index, target in enumerate(targets):
            n = target.shape[1]
            set_seeds = seeds[:, offset:offset + n].unsqueeze(1)  # (levels, 1, n, L)
            offset += n
            recon = self.decoder(h[:, index], set_seeds, None)  # (1, n, R)
            recon_total = recon_total + chamfer_loss(recon, target, None, cfg)[0]
        recon_p = (recon_total / len(sets)).reshape(1)
        kl_p = kl_free_bits(mu, logvar, cfg.free_bits).mean().reshape(1)
        logits = self.classifier(h, None)  # (1,)
        label = patient.label.reshape(1).float()
        bce = F.binary_cross_entropy_with_logits(logits.float(), label, reduction="none")
        loss = (recon_p + beta * kl_p + cfg.cls_weight * bce).mean()
        return LossParts(loss, recon_p, kl_p, bce, logits, mu, logvar)


def concat_parts(parts: Sequence[LossParts]) -> LossParts:
    """Per-patient results of the reference, joined as if they were one batch."""
    return LossParts(
        loss=torch.stack([p.loss for p in parts]).mean(),
        recon=torch.cat([p.recon for p in parts]),
        kl=torch.cat([p.kl for p in parts]),
        bce=torch.cat([p.bce for p in parts]),
        logits=torch.cat([p.logits for p in parts]),
        mu=torch.cat([p.mu for p in parts], dim=1),
        logvar=torch.cat([p.logvar for p in parts], dim=1),
    )
