"""Classical-shadow noise: PennyLane's per-sample ``shadow_expval`` and a batched torch sampler.

Both estimate ⟨P⟩ for a few Pauli words P with the standard random-Pauli shadow protocol. Per
shot, every qubit is measured in a uniformly random basis (X, Y or Z) with outcome b_j = ±1; the
shot's estimate of P is  Π_{j in supp P} 3 · b_j · [basis_j == P_j]  and the result is the mean
over the shots (PennyLane's ``shadow_expval`` with k = 1). It is unbiased with per-shot variance
3^|supp P| - ⟨P⟩². The public code's words have identity on wire 0 and a random X/Y/Z on every
other wire, so with 6 qubits |supp P| = 5: each shot matches all five bases with probability
3^-5, and 100 shots give an estimate with a standard deviation of about 1.6 around a value in
[-1, 1] that is usually exactly 0 — the "quantum shadow" noise is mostly shot noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pennylane as qml
import torch

from models.gaussgan.circuit import CircuitSpec, apply_circuit, check_inputs, encoding_angles
from models.gaussgan.statevector import apply_1q, fused_state

PAULIS = "XYZ"  # the recipe codes 0, 1, 2 of PennyLane's classical_shadow


def random_pauli_words(qubits: int, count: int = 3, *, seed: int = 0) -> tuple[str, ...]:
    """``count`` words like "IXZZYX": identity on wire 0, X/Y/Z on the others (public code)."""
    if qubits < 2 or count < 1:
        raise ValueError(f"need qubits >= 2 and count >= 1, got {qubits}, {count}")
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 3, (count, qubits - 1), generator=gen)  # (count, q-1)
    return tuple("I" + "".join(PAULIS[int(c)] for c in row) for row in codes)


def check_words(words: Sequence[str], qubits: int) -> tuple[str, ...]:
    if isinstance(words, str) or not words:
        raise ValueError("words must be a non-empty sequence of Pauli strings such as ('IXYZ',)")
    for word in words:
        if not isinstance(word, str) or len(word) != qubits or set(word) - set("IXYZ"):
            raise ValueError(f"Pauli word {word!r} must be {qubits} characters from 'IXYZ'")
    return tuple(words)


def _check_shots(shots: int) -> None:
    if not isinstance(shots, int) or shots < 1:
        raise ValueError(f"shots must be a positive int, got {shots!r}")


def shadow_qnode(spec: CircuitSpec, words: tuple[str, ...], shots: int, seed: int) -> Callable[..., Any]:
    """A QNode (weights, angle_y, angle_z, recipe_seed) -> shadow estimates of ``words``.

    The device is seeded (outcome bits) and each call gets its own recipe seed (bases), so a run is
    reproducible; the public code leaves both unseeded.
    """
    device = qml.device("default.qubit", wires=spec.qubits, seed=seed)
    observables = [qml.pauli.string_to_pauli_word(word) for word in words]

    @qml.qnode(device, interface="torch", shots=shots)
    def circuit(weights: torch.Tensor, angle_y: torch.Tensor, angle_z: torch.Tensor, recipe_seed: int) -> Any:
        apply_circuit(spec, weights, angle_y, angle_z)
        return qml.shadow_expval(observables, seed=recipe_seed)

    return circuit


def shadow_expvals_per_sample(
    weights: torch.Tensor, z: torch.Tensor, words: Sequence[str], shots: int = 100, seed: int = 0
) -> torch.Tensor:
    """The public code's loop: one shadow QNode call of ``shots`` shots per sample, (B, W)."""
    spec = check_inputs(weights, z)
    words = check_words(words, spec.qubits)
    _check_shots(shots)
    circuit = shadow_qnode(spec, words, shots, seed)
    recipe_seeds = np.random.default_rng(seed).integers(1, 2**30, size=z.shape[0])
    angle_y, angle_z = encoding_angles(z)
    rows = []
    for b in range(z.shape[0]):
        out = circuit(weights, angle_y[b], angle_z[b], int(recipe_seeds[b]))
        rows.append(torch.as_tensor(out, dtype=weights.dtype).reshape(len(words)))
    return torch.stack(rows)  # (B, W)


def _basis_changes(dtype: torch.dtype) -> torch.Tensor:
    """Unitaries taking the X, Y, Z eigenbases to the computational basis: (3, 2, 2)."""
    h = torch.tensor([[1, 1], [1, -1]], dtype=dtype) / np.sqrt(2)
    s_dag = torch.tensor([[1, 0], [0, -1j]], dtype=dtype)
    return torch.stack([h, h @ s_dag, torch.eye(2, dtype=dtype)])


def word_codes(words: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per word and wire: recipe code 0/1/2 for X/Y/Z (0 where identity) and the support mask."""
    codes = torch.tensor([[max(PAULIS.find(c), 0) for c in w] for w in words])  # (W, q)
    support = torch.tensor([[c != "I" for c in w] for w in words])  # (W, q)
    return codes, support


def shadow_estimates(recipes: torch.Tensor, eigenvalues: torch.Tensor, words: Sequence[str]) -> torch.Tensor:
    """Mean over shots of the per-shot shadow estimate: recipes, eigenvalues (B, T, q) -> (B, W)."""
    codes, support = word_codes(words)  # (W, q)
    match = recipes.unsqueeze(2) == codes  # (B, T, W, q)
    factor = torch.where(match, 3.0 * eigenvalues.unsqueeze(2), torch.zeros((), dtype=eigenvalues.dtype))
    factor = torch.where(support, factor, torch.ones((), dtype=eigenvalues.dtype))  # identity wires: 1
    return factor.prod(dim=-1).mean(dim=1)  # (B, W)


def shadow_expvals_batched(
    weights: torch.Tensor, z: torch.Tensor, words: Sequence[str], shots: int = 100, seed: int = 0
) -> torch.Tensor:
    """The same estimator for the whole batch at once in torch: (B, W).

    One state per sample, copied per shot; per shot and wire the basis change of a random recipe;
    a full bitstring sampled from |amplitude|² (the joint outcome distribution, equal in law to
    PennyLane's qubit-by-qubit collapse); then the shadow estimate.
    """
    spec = check_inputs(weights, z)
    words = check_words(words, spec.qubits)
    _check_shots(shots)
    q, batch = spec.qubits, z.shape[0]
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        state = fused_state(weights, z, final_phases=True)  # (B, 2**q)
        recipes = torch.randint(0, 3, (batch, shots, q), generator=gen)  # (B, T, q)
        # Sampling needs no more than single precision; it halves the traffic of B*T state copies.
        state = state.to(torch.complex64)
        rotated = state.unsqueeze(1).expand(batch, shots, -1).reshape(batch * shots, -1)  # (B*T, 2**q)
        changes = _basis_changes(torch.complex64)  # (3, 2, 2)
        flat_recipes = recipes.reshape(batch * shots, q)  # (B*T, q)
        for i in range(q):
            rotated = apply_1q(rotated, changes[flat_recipes[:, i]], i, q)
        probs = (rotated.real**2 + rotated.imag**2).to(torch.float64)  # (B*T, 2**q)
        outcome = torch.multinomial(probs, 1, generator=gen).squeeze(1)  # (B*T,)
        shifts = torch.arange(q - 1, -1, -1)
        bits = (outcome.unsqueeze(1) >> shifts) & 1  # (B*T, q)
        eigenvalues = (1 - 2 * bits).to(weights.dtype).reshape(batch, shots, q)  # (B, T, q)
        return shadow_estimates(recipes, eigenvalues, words)


_PAULI_MATRICES = {
    "X": ((0, 1), (1, 0)),
    "Y": ((0, -1j), (1j, 0)),
    "Z": ((1, 0), (0, -1)),
}


def pauli_expvals_exact(weights: torch.Tensor, z: torch.Tensor, words: Sequence[str]) -> torch.Tensor:
    """Exact ⟨P⟩ per sample and word from the state vector: (B, W)."""
    spec = check_inputs(weights, z)
    words = check_words(words, spec.qubits)
    q = spec.qubits
    with torch.no_grad():
        state = fused_state(weights, z, final_phases=True)  # (B, 2**q)
        out = []
        for word in words:
            applied = state
            for i, c in enumerate(word):
                if c != "I":
                    applied = apply_1q(applied, torch.tensor(_PAULI_MATRICES[c], dtype=state.dtype), i, q)
            out.append((state.conj() * applied).sum(dim=1).real)  # (B,)
        return torch.stack(out, dim=1)  # (B, W)


def shadow_variance(exact: torch.Tensor, words: Sequence[str], shots: int) -> torch.Tensor:
    """Variance of the ``shots``-shot estimator: (3^|supp P| - ⟨P⟩²) / shots, shaped like exact."""
    _, support = word_codes(words)
    weight = support.sum(dim=1).to(exact.dtype)  # (W,)
    return (3.0**weight - exact**2) / shots
