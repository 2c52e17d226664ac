"""The bounded memory's semantics, and its read for all (batch, time) steps at once.

The memory is a stream over the flattened steps n = b * T + t of one forward call (batch-major,
as the public code loops): at step n the hidden state h_n is amplitude-encoded into q qubits,
read against the stored slots, then written. Reads come before the write, so a step never sees
itself.

Encoding: h (H values) is truncated to its first 2**q values when H > 2**q (the rest is not
stored), else zero-padded to 2**q, then normalised; an all-zero vector encodes as |0...0>.
The states are real, so the fidelity |<q|m>|^2 equals (q~ . m~)^2 of the unit vectors.

Read: the top-k slots by fidelity (ties go to the older write), averaged with weights
fidelity / sum(fidelities); a slot's content is its stored amplitudes mapped back to H values
(the first H amplitudes, zero-padded when 2**q < H). An empty memory, or top fidelities that
are all zero, reads as zeros. Unused top-k positions have slot -1 and weight 0.

Full memory: the S slots are a ring buffer. Write number n goes to slot n mod S, so once S
writes have happened each write overwrites the oldest entry (FIFO) and step n sees exactly the
writes n - S .. n - 1. (The public code raises "memory is full" on the 65th write, catches it
and silently drops to classical-only output; here the behaviour is defined and tested.)

The memory starts empty at every forward call: outputs depend only on the call's inputs.
Memory contents are not differentiated (the public code detaches them too).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class MemoryRead(NamedTuple):
    """What the memory returned at every step."""

    values: torch.Tensor  # (B, T, H) fidelity-weighted retrieved content
    slots: torch.Tensor  # (B, T, k) int64 ring-buffer slots read, best first; -1 when unused
    weights: torch.Tensor  # (B, T, k) normalised fidelity weights; 0 when unused


def check_memory_args(hidden: torch.Tensor, n_slots: int, n_qubits: int, top_k: int) -> None:
    """Raise a clear error for inputs the memory cannot take."""
    if not isinstance(hidden, torch.Tensor):
        raise TypeError(f"hidden must be a torch.Tensor, got {type(hidden).__name__}")
    if hidden.dim() != 3 or not hidden.is_floating_point():
        raise ValueError(
            f"hidden must be a floating (batch, time, hidden) tensor, got shape {tuple(hidden.shape)} "
            f"and dtype {hidden.dtype}"
        )
    if hidden.shape[0] == 0 or hidden.shape[1] == 0 or hidden.shape[2] == 0:
        raise ValueError(f"hidden must not be empty, got shape {tuple(hidden.shape)}")
    for name, value in (("n_slots", n_slots), ("n_qubits", n_qubits), ("top_k", top_k)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if n_qubits > 20:
        raise ValueError(f"n_qubits={n_qubits} gives 2**{n_qubits} amplitudes per state; use at most 20")


def amplitude_vectors(hidden: torch.Tensor, n_qubits: int) -> torch.Tensor:
    """(..., H) -> (..., 2**q) float64 unit vectors: the real amplitudes the encoding prepares."""
    dim = 2**n_qubits
    h = hidden.detach().to(torch.float64)
    v = h[..., :dim] if h.shape[-1] >= dim else F.pad(h, (0, dim - h.shape[-1]))  # (..., D)
    norm = torch.linalg.vector_norm(v, dim=-1, keepdim=True)  # (..., 1)
    empty = norm == 0  # (..., 1) nothing to normalise: encode |0...0>
    basis = torch.zeros(dim, dtype=v.dtype, device=v.device)
    basis[0] = 1.0
    # Branch-free, so torch.compile traces it without a graph break.
    return (v + empty * basis) / torch.where(empty, torch.ones_like(norm), norm)


def content_vectors(amplitudes: torch.Tensor, hidden_size: int) -> torch.Tensor:
    """(..., 2**q) stored amplitudes -> (..., H) content handed back to the controller."""
    dim = amplitudes.shape[-1]
    if dim >= hidden_size:
        return amplitudes[..., :hidden_size]
    return F.pad(amplitudes, (0, hidden_size - dim))


def memory_read_batched(hidden: torch.Tensor, n_slots: int, n_qubits: int, top_k: int = 3) -> MemoryRead:
    """All reads of one call with batched products: fidelity = (q~ . m~)^2 of the unit vectors.

    Step n only sees the S writes before it, so the steps are cut into blocks of L = min(S, N)
    queries; block b is compared with the S + L writes that can be visible to it (a strided view
    of the zero-padded stream), which costs O(N (S + L) D) rather than O(N^2 D).
    """
    check_memory_args(hidden, n_slots, n_qubits, top_k)
    batch, steps, size = hidden.shape
    n = batch * steps
    amps = amplitude_vectors(hidden.reshape(n, size), n_qubits)  # (N, D)
    dim = amps.shape[1]
    block = min(n_slots, n)
    n_blocks = -(-n // block)
    width = n_slots + block  # writes a block can see
    # n_slots zero rows in front, so block b's window starts at write b * block - n_slots.
    stream = F.pad(amps, (0, 0, n_slots, n_blocks * block - n))  # (S + nb * L, D)
    queries = stream[n_slots:].reshape(n_blocks, block, dim)  # (nb, L, D)
    keys = stream.unfold(0, width, block).transpose(1, 2)  # (nb, S + L, D)
    fidelity = (queries @ keys.transpose(1, 2)).square()  # (nb, L, S + L)
    dev = hidden.device
    starts = torch.arange(n_blocks, device=dev)[:, None] * block  # (nb, 1) first step of each block
    query_step = (starts + torch.arange(block, device=dev))[:, :, None]  # (nb, L, 1)
    write_step = (starts - n_slots + torch.arange(width, device=dev))[:, None, :]  # (nb, 1, S + L)
    # Ring buffer: step n sees the writes n - S .. n - 1 (and none before the first).
    visible = (write_step < query_step) & (write_step >= query_step - n_slots) & (write_step >= 0)
    scores = torch.where(visible, fidelity, -1.0)  # (nb, L, S + L)
    k = min(top_k, width)
    # A stable descending sort keeps ties in write order (older first), as the reference does.
    top, order = torch.sort(scores, dim=-1, descending=True, stable=True)
    top, order = top[..., :k], order[..., :k]  # (nb, L, k)
    used = top >= 0  # (nb, L, k)
    fid = torch.where(used, top, 0.0)  # (nb, L, k)
    total = fid.sum(dim=-1, keepdim=True)  # (nb, L, 1)
    weights = torch.where(total > 0, fid / torch.where(total > 0, total, 1.0), 0.0)  # (nb, L, k)
    # Scatter the k weights into the window: one more product mixes the retrieved contents.
    mixing = torch.zeros_like(fidelity).scatter_(-1, order, weights)  # (nb, L, S + L)
    mixed = (mixing @ keys).reshape(n_blocks * block, dim)[:n]  # (N, D)
    values = content_vectors(mixed, size)  # (N, H)
    written = write_step.expand_as(scores).gather(-1, order)  # (nb, L, k)
    slots = torch.where(used, written % n_slots, -1).reshape(n_blocks * block, k)[:n]  # (N, k)
    weights = weights.reshape(n_blocks * block, k)[:n]  # (N, k)
    if k < top_k:  # fewer candidates than k: pad so every call returns k columns
        slots = F.pad(slots, (0, top_k - k), value=-1)
        weights = F.pad(weights, (0, top_k - k))
    return MemoryRead(
        values=values.reshape(batch, steps, size),
        slots=slots.reshape(batch, steps, top_k),
        weights=weights.reshape(batch, steps, top_k),
    )
