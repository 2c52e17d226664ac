"""The reference quantum memory: PennyLane circuits one (batch, time) step at a time.

Each step prepares the query state with ``AmplitudeEmbedding`` and reads it back with
``qml.state()``, computes its fidelity with every stored state (``qml.math.fidelity_statevector``),
keeps the top-k, then stores the state in the ring buffer. The semantics are those of
``models.qmann.memory`` (see its docstring); ``memory_read_batched`` computes the same reads.
PennyLane is imported when a memory is built, so code that never runs circuits (the DDP
workers) does not pay for the import.
"""

from __future__ import annotations

from typing import Any

import torch

from models.qmann.memory import MemoryRead, check_memory_args, content_vectors


class PennyLaneMemory:
    """A bounded memory of S amplitude-encoded states on ``n_qubits`` wires, FIFO when full."""

    def __init__(
        self, n_slots: int, n_qubits: int, top_k: int = 3, device_name: str = "default.qubit"
    ) -> None:
        import pennylane as qml

        self.n_slots = n_slots
        self.n_qubits = n_qubits
        self.top_k = top_k
        self._qml = qml
        wires = list(range(n_qubits))

        @qml.qnode(qml.device(device_name, wires=n_qubits), interface="torch")
        def encode(features: torch.Tensor) -> Any:
            qml.AmplitudeEmbedding(features, wires=wires, pad_with=0.0, normalize=True)
            return qml.state()

        self._encode = encode
        self.states: list[torch.Tensor | None] = [None] * n_slots  # (D,) complex each
        self.written_at: list[int] = [-1] * n_slots
        self.n_writes = 0

    def encode(self, h: torch.Tensor) -> torch.Tensor:
        """(H,) hidden state -> (2**q,) complex state vector from the circuit."""
        dim = 2**self.n_qubits
        features = h.detach().to(torch.float64).cpu()[:dim]
        if not bool(features.any()):  # nothing to normalise: the encoding's |0...0>
            features = torch.zeros(dim, dtype=torch.float64)
            features[0] = 1.0
        return self._encode(features)

    def read(self, state: torch.Tensor, hidden_size: int) -> tuple[torch.Tensor, list[int], list[float]]:
        """Top-k fidelity-weighted content (H,), the slots read and their weights."""
        kept = [(s, state) for s, state in enumerate(self.states) if state is not None]
        if not kept:
            return torch.zeros(hidden_size, dtype=torch.float64), [], []
        filled = [s for s, _ in kept]
        stored = torch.stack([state for _, state in kept])  # (m, D)
        fidelity = self._qml.math.fidelity_statevector(state, stored)  # (m,)
        ranked = sorted(range(len(filled)), key=lambda i: (-float(fidelity[i]), self.written_at[filled[i]]))
        chosen = ranked[: self.top_k]
        fids = [float(fidelity[i]) for i in chosen]
        total = sum(fids)
        weights = [f / total for f in fids] if total > 0 else [0.0] * len(fids)
        mixed = torch.zeros(stored.shape[1], dtype=torch.float64)  # (D,)
        for w, i in zip(weights, chosen, strict=True):
            mixed = mixed + w * stored[i].real
        return content_vectors(mixed, hidden_size), [filled[i] for i in chosen], weights

    def write(self, state: torch.Tensor) -> int:
        """Store a state; returns its slot (write n goes to slot n mod S, overwriting the oldest)."""
        slot = self.n_writes % self.n_slots
        self.states[slot] = state
        self.written_at[slot] = self.n_writes
        self.n_writes += 1
        return slot


def memory_read_pennylane(
    hidden: torch.Tensor, n_slots: int, n_qubits: int, top_k: int = 3, device_name: str = "default.qubit"
) -> MemoryRead:
    """The reads of one call, step by step through PennyLane circuits (the reference)."""
    check_memory_args(hidden, n_slots, n_qubits, top_k)
    batch, steps, size = hidden.shape
    memory = PennyLaneMemory(n_slots, n_qubits, top_k, device_name)
    values = torch.zeros(batch, steps, size, dtype=torch.float64)  # (B, T, H)
    slots = torch.full((batch, steps, top_k), -1, dtype=torch.int64)  # (B, T, k)
    weights = torch.zeros(batch, steps, top_k, dtype=torch.float64)  # (B, T, k)
    for b in range(batch):
        for t in range(steps):
            state = memory.encode(hidden[b, t])
            content, read_slots, read_weights = memory.read(state, size)
            values[b, t] = content
            slots[b, t, : len(read_slots)] = torch.tensor(read_slots, dtype=torch.int64)
            weights[b, t, : len(read_weights)] = torch.tensor(read_weights, dtype=torch.float64)
            memory.write(state)
    device = hidden.device
    return MemoryRead(values.to(device), slots.to(device), weights.to(device))
