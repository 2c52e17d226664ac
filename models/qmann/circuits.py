"""The memory's circuits as PennyLane tapes, their depth, and PennyLane's compilation transforms on them.

Two circuits: ``encode`` (AmplitudeEmbedding of a hidden state, read back with ``qml.state()``:
what the reference memory runs for every step) and ``overlap`` (encode the query, then the
inverse of a stored slot's encoding, read the probabilities: P(|0...0>) = |<m|q>|^2, the
fidelity as hardware would measure it). Depths are counted on the gates the embedding
decomposes to (RY, RZ, CNOT; the global phase is not a gate on hardware).
"""

from __future__ import annotations

from typing import Any

import torch

CIRCUITS = ("encode", "overlap")
PIPELINES = ("none", "cancel_inverses", "merge_rotations", "commute_controlled", "compile")
GATE_SET = ("RY", "RZ", "CNOT", "GlobalPhase")


def _features(hidden: torch.Tensor, n_qubits: int) -> torch.Tensor:
    features = hidden.detach().to(torch.float64).cpu()[: 2**n_qubits]
    if not bool(features.any()):
        raise ValueError("cannot amplitude-encode an all-zero vector")
    return features


def memory_tape(circuit: str, query: torch.Tensor, stored: torch.Tensor, n_qubits: int) -> Any:
    """The named circuit as a tape, decomposed to RY / RZ / CNOT (and a global phase)."""
    import pennylane as qml

    if circuit not in CIRCUITS:
        raise ValueError(f"unknown circuit {circuit!r}; one of {', '.join(CIRCUITS)}")
    wires = list(range(n_qubits))
    ops = [qml.AmplitudeEmbedding(_features(query, n_qubits), wires=wires, pad_with=0.0, normalize=True)]
    if circuit == "encode":
        measurement = qml.state()
    else:
        ops.append(
            qml.adjoint(
                qml.AmplitudeEmbedding(_features(stored, n_qubits), wires=wires, pad_with=0.0, normalize=True)
            )
        )
        measurement = qml.probs(wires=wires)
    tape = qml.tape.QuantumScript(ops, [measurement])
    (decomposed,), _ = qml.transforms.decompose(tape, gate_set=set(GATE_SET))
    return decomposed


def compile_tape(tape: Any, pipeline: str) -> Any:
    """Apply one of PennyLane's compilation transforms (``compile`` = its default pipeline:
    commute_controlled, cancel_inverses, merge_rotations)."""
    import pennylane as qml

    transforms = {
        "none": None,
        "cancel_inverses": qml.transforms.cancel_inverses,
        "merge_rotations": qml.transforms.merge_rotations,
        "commute_controlled": qml.transforms.commute_controlled,
        "compile": qml.compile,
    }
    if pipeline not in transforms:
        raise ValueError(f"unknown pipeline {pipeline!r}; one of {', '.join(PIPELINES)}")
    transform = transforms[pipeline]
    if transform is None:
        return tape
    # A fresh operation list: in PennyLane 0.45 merge_rotations (and so compile) empties the
    # operation list of the tape it is given.
    fresh = qml.tape.QuantumScript(list(tape.operations), list(tape.measurements))
    (compiled,), _ = transform(fresh)
    return compiled


def tape_counts(tape: Any) -> dict[str, int]:
    """Depth, gate count and CNOT count, not counting the global phase."""
    import pennylane as qml

    gates = [op for op in tape.operations if op.name != "GlobalPhase"]
    layered = qml.tape.QuantumScript(gates, tape.measurements)
    resources = layered.specs["resources"]
    return {
        "depth": int(resources.depth),
        "gates": len(gates),
        "cnots": sum(op.name == "CNOT" for op in gates),
    }


def run_tape(tape: Any, device: Any) -> torch.Tensor:
    """Simulate the tape; the state (encode) or the probabilities (overlap) as a torch tensor."""
    import pennylane as qml

    (result,) = qml.execute([tape], device)
    return torch.as_tensor(result)


def simulator(n_qubits: int) -> Any:
    import pennylane as qml

    return qml.device("default.qubit", wires=n_qubits)
