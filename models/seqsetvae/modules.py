"""SeqSetVAE building blocks: induced set attention, set encoder/decoder, time-aware Transformer.

Every block takes an optional mask so one implementation serves both the per-set reference
(one unpadded set at a time, mask None) and the padded variants (all sets at once).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.seqsetvae.config import ModelConfig


def key_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """(N, L) bool, True for real elements -> an SDPA mask over keys, (N, 1, 1, L)."""
    return None if mask is None else mask[:, None, None, :]


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    """Mean over ``dim`` counting only real elements; ``mask`` has x's shape up to ``dim``."""
    if mask is None:
        return x.mean(dim)
    weights = mask.to(x.dtype)
    while weights.dim() < x.dim():
        weights = weights.unsqueeze(-1)
    return (x * weights).sum(dim) / weights.sum(dim).clamp_min(1.0)


class Attention(nn.Module):
    """Multi-head attention through scaled_dot_product_attention (boolean or additive masks)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """query (N, Lq, d), or (Lq, d) shared by all N (inducing points); context (N, Lk, d)."""
        n, lk, d = context.shape
        lq = query.shape[-2]
        q = self.q(query).expand(n, lq, d)  # a shared query is projected once
        q = q.reshape(n, lq, self.heads, d // self.heads).transpose(1, 2)  # (N, H, Lq, d/H)
        kv = self.kv(context).view(n, lk, 2, self.heads, d // self.heads)
        k, v = kv.permute(2, 0, 3, 1, 4)  # (N, H, Lk, d/H) each
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (N, H, Lq, d/H)
        return self.out(attn.transpose(1, 2).reshape(n, lq, d))  # (N, Lq, d)


class MAB(nn.Module):
    """Multihead attention block (Lee et al. 2019), post-norm as in the public code."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attn = Attention(dim, heads)
        self.ln1 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.ln2 = nn.LayerNorm(dim)

    def forward(self, query: torch.Tensor, context: torch.Tensor,
                context_mask: torch.Tensor | None) -> torch.Tensor:
        h = self.ln1(query + self.attn(query, context, key_mask(context_mask)))  # (N, Lq, d)
        return self.ln2(h + self.ff(h))


class ISAB(nn.Module):
    """Induced set attention: m inducing points read the set, then the set reads them back."""

    def __init__(self, dim: int, heads: int, inducing: int) -> None:
        super().__init__()
        self.inducing = nn.Parameter(torch.randn(inducing, dim) / math.sqrt(dim))
        self.read = MAB(dim, heads)
        self.write = MAB(dim, heads)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        # The (m, d) parameter goes in unexpanded: MAB broadcasts it over the N sets.
        induced = self.read(self.inducing, x, mask)  # (N, m, d)
        return self.write(x, induced, None)  # (N, n, d); padded rows are garbage, masked later


class SetEncoder(nn.Module):
    """Linear(768 -> R), L2-normalise, times the value, Linear + LayerNorm + GELU, then per level
    an ISAB, a mean pool and a mean / log-variance head."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.reducer = nn.Linear(cfg.input_dim, cfg.reduced_dim)
        self.embed = nn.Linear(cfg.reduced_dim, cfg.latent_dim)
        self.embed_norm = nn.LayerNorm(cfg.latent_dim)
        self.blocks = nn.ModuleList(
            [ISAB(cfg.latent_dim, cfg.set_heads, cfg.inducing) for _ in range(cfg.levels)]
        )
        self.heads = nn.ModuleList([nn.Linear(cfg.latent_dim, 2 * cfg.latent_dim) for _ in range(cfg.levels)])
        self.logvar_clamp = cfg.logvar_clamp

    def forward(
        self, var: torch.Tensor, val: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """var (N, n, D), val (N, n) -> target x0 (N, n, R), mu and logvar (levels, N, L)."""
        reduced = self.reducer(var)  # (N, n, R)
        x0 = reduced / (reduced.norm(dim=-1, keepdim=True) + 1e-8) * val.unsqueeze(-1)  # (N, n, R)
        h = F.gelu(self.embed_norm(self.embed(x0)))  # (N, n, L)
        mus, logvars = [], []
        for block, head in zip(self.blocks, self.heads, strict=True):
            h = h + block(h, mask)  # (N, n, L)
            mu, logvar = head(masked_mean(h, mask, 1)).chunk(2, dim=-1)  # (N, L) each
            mus.append(mu)
            logvars.append(logvar.clamp(-self.logvar_clamp, self.logvar_clamp))
        return x0, torch.stack(mus), torch.stack(logvars)


class DecoderLevel(nn.Module):
    """Induced attention over the current elements, then pooling into n random seeds (PMA)."""

    def __init__(self, dim: int, heads: int, inducing: int) -> None:
        super().__init__()
        self.isab = ISAB(dim, heads, inducing)
        self.ff = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.pool = MAB(dim, heads)

    def forward(self, current: torch.Tensor, mask: torch.Tensor | None, seeds: torch.Tensor) -> torch.Tensor:
        """current (N, m, L) with mask (N, m) or None; seeds (N, n, L) -> (N, n, L)."""
        z = self.isab(current, mask)  # (N, m, L)
        return self.pool(seeds, self.norm(F.gelu(self.ff(z))), mask) + seeds  # (N, n, L)


class SetDecoder(nn.Module):
    """From a set's history-aware state h_t back to n reconstructed events (top level first)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.levels = nn.ModuleList(
            [DecoderLevel(cfg.latent_dim, cfg.set_heads, cfg.inducing) for _ in range(cfg.levels)]
        )
        self.out = nn.Linear(cfg.latent_dim, cfg.reduced_dim)

    def forward(self, h: torch.Tensor, seeds: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """h (N, L), seeds (levels, N, n, L), mask (N, n) or None -> recon (N, n, R)."""
        current = h.unsqueeze(1)  # (N, 1, L)
        current_mask = None  # the single top element is always real
        for level in reversed(range(len(self.levels))):
            current = self.levels[level](current, current_mask, seeds[level]) + current  # (N, n, L)
            current_mask = mask
        return self.out(current)


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """(S, L) absolute position encoding by set index."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)  # (S, 1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq)
    return pe


class SeqLayer(nn.Module):
    """Pre-norm Transformer layer with an additive attention bias."""

    def __init__(self, dim: int, heads: int, ff_dim: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.ln2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), nn.GELU(), nn.Linear(ff_dim, dim))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, bias)  # (B, S, L)
        return x + self.ff(self.ln2(x))


class TimeAwareTransformer(nn.Module):
    """Causal Transformer over the sets' latent means: sinusoidal positions, log-bucketed time-gap
    embeddings, and a learned time-decay bias -slope * log1p((t_i - t_j) / tau) on past sets.

    The public code builds dt with the sign reversed (t_j - t_i, clamped at 0), which is non-zero
    only on future positions that the causal mask removes: its decay bias is always zero. Here dt
    is the elapsed time to each earlier set, so the bias acts.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        edges = torch.logspace(math.log10(cfg.bucket_min_minutes), math.log10(cfg.bucket_max_minutes),
                               cfg.time_buckets - 1)
        self.bucket_edges: torch.Tensor
        self.register_buffer("bucket_edges", edges, persistent=False)
        self.buckets = nn.Embedding(cfg.time_buckets, cfg.latent_dim)
        self.slope_raw = nn.Parameter(torch.tensor(math.log(math.e - 1.0)))  # softplus -> 1.0
        self.log_tau = nn.Parameter(torch.tensor(math.log(60.0)))  # minutes
        self.layers = nn.ModuleList(
            [SeqLayer(cfg.latent_dim, cfg.seq_heads, cfg.ff_dim) for _ in range(cfg.seq_layers)]
        )
        self.norm = nn.LayerNorm(cfg.latent_dim)

    def time_bias(self, minutes: torch.Tensor, set_mask: torch.Tensor | None) -> torch.Tensor:
        """(B, S) timestamps -> (B, 1, S, S) additive bias, -inf on future and padded keys."""
        s = minutes.shape[1]
        elapsed = (minutes.unsqueeze(2) - minutes.unsqueeze(1)).clamp_min(0.0)  # (B, S, S): t_i - t_j
        bias = -F.softplus(self.slope_raw) * torch.log1p(elapsed / self.log_tau.exp())  # (B, S, S)
        blocked = torch.ones(s, s, dtype=torch.bool, device=minutes.device).triu(1)  # (S, S)
        if set_mask is not None:
            blocked = blocked | ~set_mask.unsqueeze(1)  # (B, S, S)
        return bias.masked_fill(blocked, float("-inf")).unsqueeze(1)

    def forward(self, z: torch.Tensor, minutes: torch.Tensor, set_mask: torch.Tensor | None) -> torch.Tensor:
        """z (B, S, L) latent means, minutes (B, S) -> h (B, S, L)."""
        gaps = minutes.diff(dim=1, prepend=minutes[:, :1]).clamp_min(0.0)  # (B, S), 0 for the first set
        x = z + sinusoidal_positions(z.shape[1], z.shape[2], z.device) + self.buckets(
            torch.bucketize(gaps, self.bucket_edges))  # (B, S, L)
        x = F.layer_norm(x, x.shape[-1:])
        bias = self.time_bias(minutes, set_mask).to(x.dtype)
        for layer in self.layers:
            x = layer(x, bias)
        return self.norm(x)


class Classifier(nn.Module):
    """Outcome logit from the mean state over the sequence and the state at the last set."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * cfg.latent_dim, cfg.latent_dim), nn.GELU(),
                                 nn.Linear(cfg.latent_dim, 1))

    def forward(self, h: torch.Tensor, set_mask: torch.Tensor | None) -> torch.Tensor:
        """h (B, S, L) -> logits (B,)."""
        if set_mask is None:
            last = h[:, -1]  # (B, L)
        else:
            last_index = set_mask.sum(1) - 1  # (B,)
            last = h[torch.arange(h.shape[0], device=h.device), last_index]  # (B, L)
        return self.net(torch.cat([masked_mean(h, set_mask, 1), last], dim=-1)).squeeze(-1)
