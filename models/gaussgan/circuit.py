"""The GaussGAN noise circuit as PennyLane QNodes: per-sample and broadcast ⟨Z_i⟩ evaluation.

Circuit (SEEDS.md 000): every qubit gets RY(arcsin z1) then RZ(arcsin z2); each layer applies
RY(w[l, i]) on every qubit, then for i = 0..q-2: CNOT(i, i+1), RZ(w[l, q + i]) on wire i+1,
CNOT(i, i+1). Weights have shape (layers, 2q - 1). The measured quantities are ⟨Z_i⟩ per qubit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pennylane as qml
import torch

DEVICES = ("default.qubit", "lightning.qubit")
DIFF_METHODS = ("backprop", "adjoint", "parameter-shift", "best")


@dataclass(frozen=True)
class CircuitSpec:
    """Size of the circuit: qubits and layers."""

    qubits: int = 6
    layers: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.qubits, int) or self.qubits < 2:
            raise ValueError(f"qubits must be an int >= 2, got {self.qubits!r}")
        if not isinstance(self.layers, int) or self.layers < 1:
            raise ValueError(f"layers must be an int >= 1, got {self.layers!r}")

    @property
    def weight_shape(self) -> tuple[int, int]:
        return (self.layers, 2 * self.qubits - 1)

    @classmethod
    def from_weights(cls, weights: torch.Tensor) -> CircuitSpec:
        """The spec a (layers, 2q - 1) weight tensor belongs to."""
        if not isinstance(weights, torch.Tensor) or weights.dim() != 2:
            raise ValueError(
                f"weights must be a (layers, 2*qubits - 1) tensor, got {getattr(weights, 'shape', weights)!r}"
            )
        layers, width = weights.shape
        if width < 3 or width % 2 == 0:
            raise ValueError(
                f"weights must have an odd width 2*qubits - 1 >= 3, got shape {tuple(weights.shape)}"
            )
        return cls(qubits=(width + 1) // 2, layers=layers)


def init_weights(
    spec: CircuitSpec, *, seed: int = 0, dtype: torch.dtype = torch.float64, requires_grad: bool = False
) -> torch.Tensor:
    """Uniform weights in [-π, π), as the public code initialises them: (layers, 2q - 1)."""
    gen = torch.Generator().manual_seed(seed)
    weights = (torch.rand(spec.weight_shape, generator=gen, dtype=torch.float64) * 2 - 1) * torch.pi
    return weights.to(dtype).requires_grad_(requires_grad)


def uniform_latents(batch: int, *, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The per-sample (z1, z2) ~ U(-1, 1) the circuit encodes: (B, 2)."""
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 2, generator=gen, dtype=torch.float64) * 2 - 1).to(dtype)


def check_inputs(weights: torch.Tensor, z: torch.Tensor) -> CircuitSpec:
    """Validate (weights, z) and return the circuit spec they describe."""
    spec = CircuitSpec.from_weights(weights)
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != 2:
        raise ValueError(f"z must be a (B, 2) tensor of values in [-1, 1], got {getattr(z, 'shape', z)!r}")
    if z.shape[0] < 1:
        raise ValueError("z must hold at least one sample")
    if bool((z.abs() > 1).any()):
        raise ValueError("z must lie in [-1, 1]: the circuit encodes arcsin(z)")
    return spec


def encoding_angles(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """RY and RZ encoding angles arcsin(z1), arcsin(z2): two (B,) tensors."""
    angles = torch.asin(z)  # (B, 2)
    return angles[:, 0], angles[:, 1]


def apply_circuit(spec: CircuitSpec, weights: Any, angle_y: Any, angle_z: Any) -> None:
    """Queue the circuit's gates inside a QNode (angles may be scalars or (B,) for broadcasting)."""
    q = spec.qubits
    for i in range(q):
        qml.RY(angle_y, wires=i)
        qml.RZ(angle_z, wires=i)
    for layer in range(spec.layers):
        for i in range(q):
            qml.RY(weights[layer, i], wires=i)
        for i in range(q - 1):
            qml.CNOT(wires=[i, i + 1])
            qml.RZ(weights[layer, q + i], wires=i + 1)
            qml.CNOT(wires=[i, i + 1])


def _check_device(device_name: str, diff_method: str) -> None:
    if device_name not in DEVICES:
        raise ValueError(f"device_name must be one of {DEVICES}, got {device_name!r}")
    if diff_method not in DIFF_METHODS:
        raise ValueError(f"diff_method must be one of {DIFF_METHODS}, got {diff_method!r}")
    if device_name == "lightning.qubit" and diff_method == "backprop":
        raise ValueError("lightning.qubit does not support diff_method='backprop'; use 'adjoint'")


@functools.lru_cache(maxsize=64)
def expval_qnode(
    spec: CircuitSpec, device_name: str = "default.qubit", diff_method: str = "backprop"
) -> Callable[..., Sequence[torch.Tensor]]:
    """A QNode (weights, angle_y, angle_z) -> q tensors ⟨Z_i⟩, built once per configuration.

    Built once and reused, as the public code builds its QNode in the module constructor.
    """
    _check_device(device_name, diff_method)
    device = qml.device(device_name, wires=spec.qubits)

    @qml.qnode(device, interface="torch", diff_method=diff_method)
    def circuit(weights: Any, angle_y: Any, angle_z: Any) -> list[Any]:
        apply_circuit(spec, weights, angle_y, angle_z)
        return [qml.expval(qml.PauliZ(i)) for i in range(spec.qubits)]

    return circuit


def _as_real(expvals: Sequence[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    # lightning.qubit hands results back in torch's default dtype (float32) under PennyLane 0.45;
    # cast to the weights' dtype so every simulator returns the same dtype.
    return torch.stack([e.to(like.dtype) for e in expvals], dim=-1)


def expvals_per_sample(
    weights: torch.Tensor,
    z: torch.Tensor,
    *,
    device_name: str = "default.qubit",
    diff_method: str = "backprop",
) -> torch.Tensor:
    """One QNode call per sample, as the public code runs it: (B, 2) -> (B, q)."""
    spec = check_inputs(weights, z)
    circuit = expval_qnode(spec, device_name, diff_method)
    angle_y, angle_z = encoding_angles(z)
    rows = [_as_real(circuit(weights, angle_y[b], angle_z[b]), weights) for b in range(z.shape[0])]
    return torch.stack(rows)  # (B, q)


def expvals_broadcast(
    weights: torch.Tensor,
    z: torch.Tensor,
    *,
    device_name: str = "default.qubit",
    diff_method: str = "backprop",
) -> torch.Tensor:
    """One broadcast QNode call for the whole batch: (B, 2) -> (B, q).

    default.qubit simulates the batch as one vectorised state; lightning.qubit splits a broadcast
    tape into B tapes internally, so it saves Python dispatch but not simulator calls.
    """
    spec = check_inputs(weights, z)
    circuit = expval_qnode(spec, device_name, diff_method)
    angle_y, angle_z = encoding_angles(z)
    out = _as_real(circuit(weights, angle_y, angle_z), weights)  # (B, q), or (q,) when B == 1
    return out.reshape(z.shape[0], spec.qubits)
