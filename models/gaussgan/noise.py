"""Latent noise sources feeding the GaussGAN generator: classical normal/uniform and quantum circuits.

Every source is an ``nn.Module`` whose ``forward(batch)`` returns (B, z_dim) noise and draws its
randomness from its own seeded generator.

Finding in the public code: the quantum sources evaluate the circuit under ``torch.no_grad()``
with ``weights.detach()``, so the circuit weights never receive a gradient and never train; only
the ``Linear`` projection after the circuit trains. ``QuantumNoise(trainable_circuit=False)``
reproduces that (the default, used by the generator and training-step cases); with
``trainable_circuit=True`` and a differentiable backend the circuit weights get gradients, which is
what the ``quantum_noise_grad`` case times.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from models.gaussgan.circuit import CircuitSpec, expvals_broadcast, expvals_per_sample, init_weights
from models.gaussgan.shadows import random_pauli_words, shadow_expvals_batched, shadow_expvals_per_sample
from models.gaussgan.statevector import expvals_fused, expvals_torch

ExpvalFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# Ways to evaluate ⟨Z_i⟩ for a batch; "per_sample" is the public code's loop.
EXPVAL_BACKENDS: dict[str, ExpvalFn] = {
    "per_sample": expvals_per_sample,
    "broadcast": expvals_broadcast,
    "lightning": functools.partial(expvals_broadcast, device_name="lightning.qubit", diff_method="adjoint"),
    "torch": expvals_torch,
    "fused": expvals_fused,
}
SHADOW_BACKENDS = {"per_sample": shadow_expvals_per_sample, "batched": shadow_expvals_batched}
CLASSICAL_KINDS = ("normal", "uniform")


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class ClassicalNoise(nn.Module):
    """N(0, I) or U(-1, 1) noise of size z_dim."""

    def __init__(self, kind: str = "normal", z_dim: int = 4, *, seed: int = 0) -> None:
        super().__init__()
        if kind not in CLASSICAL_KINDS:
            raise ValueError(f"kind must be one of {CLASSICAL_KINDS}, got {kind!r}")
        if z_dim < 1:
            raise ValueError(f"z_dim must be positive, got {z_dim}")
        self.kind, self.z_dim = kind, z_dim
        self.rng = _generator(seed)

    def forward(self, batch: int) -> torch.Tensor:
        if self.kind == "normal":
            return torch.randn(batch, self.z_dim, generator=self.rng)  # (B, z)
        return torch.rand(batch, self.z_dim, generator=self.rng) * 2 - 1  # (B, z)


class QuantumNoise(nn.Module):
    """⟨Z_i⟩ of the circuit on per-sample (z1, z2) ~ U(-1, 1), projected by Linear(q -> z_dim)."""

    def __init__(
        self,
        spec: CircuitSpec | None = None,
        z_dim: int = 4,
        *,
        backend: str = "per_sample",
        trainable_circuit: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if backend not in EXPVAL_BACKENDS:
            raise ValueError(f"backend must be one of {sorted(EXPVAL_BACKENDS)}, got {backend!r}")
        if z_dim < 1:
            raise ValueError(f"z_dim must be positive, got {z_dim}")
        spec = spec or CircuitSpec()
        self.spec, self.backend, self.trainable_circuit = spec, backend, trainable_circuit
        self.weights = nn.Parameter(init_weights(spec, seed=seed, dtype=torch.float32))
        self.projection = nn.Linear(spec.qubits, z_dim)
        self.rng = _generator(seed + 1)

    def latents(self, batch: int) -> torch.Tensor:
        return torch.rand(batch, 2, generator=self.rng, dtype=torch.float64) * 2 - 1  # (B, 2)

    def forward(self, batch: int) -> torch.Tensor:
        z = self.latents(batch)  # (B, 2)
        run = EXPVAL_BACKENDS[self.backend]
        if self.trainable_circuit:
            expvals = run(self.weights.double(), z)  # (B, q)
        else:
            with torch.no_grad():
                expvals = run(self.weights.detach().double(), z)  # (B, q)
        return self.projection(expvals.float())  # (B, z)


class QuantumShadowNoise(nn.Module):
    """Shadow estimates of fixed random Pauli words, projected by Linear(words -> z_dim)."""

    def __init__(
        self,
        spec: CircuitSpec | None = None,
        z_dim: int = 4,
        *,
        words: int = 3,
        shots: int = 100,
        backend: str = "per_sample",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if backend not in SHADOW_BACKENDS:
            raise ValueError(f"backend must be one of {sorted(SHADOW_BACKENDS)}, got {backend!r}")
        if z_dim < 1 or shots < 1:
            raise ValueError(f"z_dim and shots must be positive, got {z_dim}, {shots}")
        spec = spec or CircuitSpec()
        self.spec, self.backend, self.shots = spec, backend, shots
        self.words = random_pauli_words(spec.qubits, words, seed=seed)
        self.weights = nn.Parameter(init_weights(spec, seed=seed, dtype=torch.float32))
        self.projection = nn.Linear(words, z_dim)
        self.rng = _generator(seed + 1)

    def forward(self, batch: int) -> torch.Tensor:
        z = torch.rand(batch, 2, generator=self.rng, dtype=torch.float64) * 2 - 1  # (B, 2)
        seed = int(torch.randint(0, 2**31 - 1, (), generator=self.rng))
        with torch.no_grad():  # sampled estimates carry no gradient, as in the public code
            estimates = SHADOW_BACKENDS[self.backend](
                self.weights.detach().double(), z, self.words, self.shots, seed
            )
        return self.projection(estimates.float())  # (B, z)


# Noise sources by name: the public code's four, and the batched simulations of the quantum two.
SOURCES = (
    "classical_normal",
    "classical_uniform",
    "quantum_basic",
    "quantum_shadow",
    "quantum_basic_fused",
    "quantum_shadow_batched",
)


def make_noise(source: str, z_dim: int = 4, *, spec: CircuitSpec | None = None, seed: int = 0) -> nn.Module:
    """A noise module by name (see ``SOURCES``)."""
    if source == "classical_normal":
        return ClassicalNoise("normal", z_dim, seed=seed)
    if source == "classical_uniform":
        return ClassicalNoise("uniform", z_dim, seed=seed)
    if source == "quantum_basic":
        return QuantumNoise(spec, z_dim, backend="per_sample", seed=seed)
    if source == "quantum_basic_fused":
        return QuantumNoise(spec, z_dim, backend="fused", seed=seed)
    if source == "quantum_shadow":
        return QuantumShadowNoise(spec, z_dim, backend="per_sample", seed=seed)
    if source == "quantum_shadow_batched":
        return QuantumShadowNoise(spec, z_dim, backend="batched", seed=seed)
    raise ValueError(f"unknown noise source {source!r}; one of {', '.join(SOURCES)}")
