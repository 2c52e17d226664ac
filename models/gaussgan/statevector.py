"""A batched pure-torch state-vector simulator of the GaussGAN circuit (B states of 2**q amplitudes).

Wire 0 is the most significant bit of a basis index, as in PennyLane. Gate conventions match
PennyLane: RY(θ) = exp(-iθY/2), RZ(θ) = exp(-iθZ/2). Two implementations:

- ``expvals_torch``: gate by gate (RY, RZ, CNOT), the general simulator.
- ``expvals_fused``: the same circuit using its structure. The encoding plus the first RY layer
  leave a product state, built directly; CNOT(i, i+1) RZ_{i+1}(θ) CNOT(i, i+1) is the diagonal
  ZZ rotation exp(-iθ Z_i Z_{i+1} / 2), so each layer's entangling block is one phase vector; the
  last layer's phases commute with every Z_i and do not change ⟨Z_i⟩, so they are skipped.
"""

from __future__ import annotations

import functools

import torch

from models.gaussgan.circuit import CircuitSpec, check_inputs, encoding_angles


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    """complex128 for float64 inputs, complex64 otherwise."""
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def ry_matrix(theta: torch.Tensor) -> torch.Tensor:
    """RY(θ) as real (..., 2, 2) matrices."""
    c, s = torch.cos(theta / 2), torch.sin(theta / 2)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def rz_matrix(theta: torch.Tensor) -> torch.Tensor:
    """RZ(θ) as complex (..., 2, 2) diagonal matrices."""
    cdtype = complex_dtype(theta.dtype)
    phase = torch.polar(torch.ones_like(theta), -theta / 2).to(cdtype)  # e^{-iθ/2}
    zero = torch.zeros_like(phase)
    return torch.stack([torch.stack([phase, zero], -1), torch.stack([zero, phase.conj()], -1)], -2)


def zero_state(
    batch: int, qubits: int, dtype: torch.dtype, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """|0...0⟩ for every sample: (B, 2**q) complex."""
    state = torch.zeros(batch, 2**qubits, dtype=complex_dtype(dtype), device=device)
    state[:, 0] = 1
    return state


def apply_1q(state: torch.Tensor, gate: torch.Tensor, wire: int, qubits: int) -> torch.Tensor:
    """Apply a one-qubit gate, shared (2, 2) or per sample (B, 2, 2), to ``wire``: (B, 2**q)."""
    batch = state.shape[0]
    view = state.reshape(batch, 2**wire, 2, 2 ** (qubits - wire - 1))  # (B, left, 2, right)
    gate = gate.to(state.dtype)
    # Broadcast matmul; einsum with a shared 2x2 operand takes a path ~100x slower on CPU.
    out = gate @ view if gate.dim() == 2 else gate.unsqueeze(1) @ view  # (B, left, 2, right)
    return out.reshape(batch, 2**qubits)


@functools.lru_cache(maxsize=128)
def _cnot_permutation(qubits: int, control: int, target: int) -> torch.Tensor:
    index = torch.arange(2**qubits)
    control_bit = (index >> (qubits - 1 - control)) & 1
    return index ^ (control_bit << (qubits - 1 - target))  # (2**q,)


def apply_cnot(state: torch.Tensor, control: int, target: int, qubits: int) -> torch.Tensor:
    """CNOT as a permutation of basis amplitudes: (B, 2**q)."""
    if control == target:
        raise ValueError("CNOT needs two different wires")
    perm = _cnot_permutation(qubits, control, target).to(state.device)
    return state.index_select(1, perm)  # several times faster than state[:, perm] for complex


@functools.lru_cache(maxsize=64)
def _z_signs(qubits: int, dtype: torch.dtype) -> torch.Tensor:
    index = torch.arange(2**qubits).unsqueeze(1)  # (2**q, 1)
    shifts = torch.arange(qubits - 1, -1, -1)  # wire i is bit q-1-i
    bits = (index >> shifts) & 1  # (2**q, q)
    return (1 - 2 * bits).to(dtype)  # +1 for |0⟩, -1 for |1⟩


def z_signs(qubits: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    """Eigenvalue of Z_i on each basis state: (2**q, q) of ±1."""
    return _z_signs(qubits, dtype).to(device)


def z_expvals(state: torch.Tensor, qubits: int) -> torch.Tensor:
    """⟨Z_i⟩ for every sample and wire: (B, 2**q) -> (B, q) real."""
    probs = state.real**2 + state.imag**2  # (B, 2**q)
    return probs @ z_signs(qubits, probs.dtype, probs.device)  # (B, q)


def simulate(weights: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Final states of the circuit, gate by gate: (B, 2**q) complex."""
    spec = check_inputs(weights, z)
    q = spec.qubits
    angle_y, angle_z = encoding_angles(z.to(weights.dtype))
    state = zero_state(z.shape[0], q, weights.dtype, weights.device)
    enc_y, enc_z = ry_matrix(angle_y), rz_matrix(angle_z)  # (B, 2, 2) each
    for i in range(q):
        state = apply_1q(state, enc_y, i, q)
        state = apply_1q(state, enc_z, i, q)
    for layer in range(spec.layers):
        for i in range(q):
            state = apply_1q(state, ry_matrix(weights[layer, i]), i, q)
        for i in range(q - 1):
            state = apply_cnot(state, i, i + 1, q)
            state = apply_1q(state, rz_matrix(weights[layer, q + i]), i + 1, q)
            state = apply_cnot(state, i, i + 1, q)
    return state


def expvals_torch(weights: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """⟨Z_i⟩ from the gate-by-gate torch simulation: (B, 2) -> (B, q)."""
    spec = CircuitSpec.from_weights(weights)
    return z_expvals(simulate(weights, z), spec.qubits)


def _kron_rows(factors: torch.Tensor) -> torch.Tensor:
    """Per-sample Kronecker product of q one-qubit states: (B, q, 2) -> (B, 2**q), wire 0 first."""
    state = factors[:, 0]  # (B, 2)
    for i in range(1, factors.shape[1]):
        state = (state.unsqueeze(-1) * factors[:, i].unsqueeze(1)).reshape(state.shape[0], -1)
    return state


def zz_phases(weights_row: torch.Tensor, qubits: int) -> torch.Tensor:
    """exp(-i/2 Σ_i θ_i Z_i Z_{i+1}) on every basis state: (q-1,) -> (2**q,) complex."""
    signs = z_signs(qubits, weights_row.dtype, weights_row.device)  # (2**q, q)
    zz = signs[:, :-1] * signs[:, 1:]  # (2**q, q-1)
    angle = zz @ weights_row  # (2**q,)
    return torch.polar(torch.ones_like(angle), -angle / 2)


def fused_state(weights: torch.Tensor, z: torch.Tensor, *, final_phases: bool = False) -> torch.Tensor:
    """The circuit's state built from its structure: (B, 2**q) complex.

    Without ``final_phases`` the last layer's ZZ phases are left out: the state then differs from
    ``simulate`` by a diagonal unitary, which leaves every ⟨Z_i⟩ (and every Z-basis probability)
    unchanged.
    """
    spec = check_inputs(weights, z)
    q = spec.qubits
    cdtype = complex_dtype(weights.dtype)
    angle_y, angle_z = encoding_angles(z.to(weights.dtype))
    # RZ(b) RY(a) |0⟩ = (cos(a/2) e^{-ib/2}, sin(a/2) e^{ib/2}), the same on every wire.
    amp0 = torch.polar(torch.cos(angle_y / 2), -angle_z / 2)  # (B,)
    amp1 = torch.polar(torch.sin(angle_y / 2), angle_z / 2)  # (B,)
    encoded = torch.stack([amp0, amp1], dim=-1).to(cdtype)  # (B, 2)
    first = ry_matrix(weights[0, :q]).to(cdtype)  # (q, 2, 2)
    factors = torch.einsum("qij,bj->bqi", first, encoded)  # (B, q, 2)
    state = _kron_rows(factors)  # (B, 2**q)
    for layer in range(spec.layers):
        if layer > 0:
            for i in range(q):
                state = apply_1q(state, ry_matrix(weights[layer, i]), i, q)
        if layer < spec.layers - 1 or final_phases:
            state = state * zz_phases(weights[layer, q:], q).to(cdtype)  # (B, 2**q)
    return state


def expvals_fused(weights: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """⟨Z_i⟩ from the structure-aware torch simulation: (B, 2) -> (B, q)."""
    spec = CircuitSpec.from_weights(weights)
    return z_expvals(fused_state(weights, z), spec.qubits)


def statevector_flops(spec: CircuitSpec, batch: int) -> float:
    """Real FLOPs of a gate-by-gate simulation: 2x2 complex matvec (14 FLOPs) per amplitude and
    one-qubit gate, |ψ|² and the Z contraction; CNOTs are permutations (no FLOPs)."""
    one_qubit_gates = 2 * spec.qubits + spec.layers * (spec.qubits + spec.qubits - 1)
    amplitudes = batch * 2**spec.qubits
    return float(amplitudes * (14 * one_qubit_gates + 3 + 2 * spec.qubits))
