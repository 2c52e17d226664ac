"""QMANN v2.0 (seed 003): the quantum memory read, the model's forward and its training step.

Sizes: "test" is input 10, hidden 32, 16 slots, 6 qubits, batch 2 (x of 2 x 10 x 10); "default"
is input 20, hidden 256, 64 slots, 8 qubits, batch 32, on the synthetic 1000 x 10 x 20 data set.
The quick profile runs the PennyLane reference at the test size only (it takes seconds per call
at the default size). The guide's techniques (Q1-Q6) are in suites/qmann_techniques.py, data
loading, DDP and circuit depth (Q7-Q10) in suites/qmann_workloads.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from bench import Case, Grid, Tolerance, Variant, register
from models.qmann import (
    BATCH,
    SEQ_LEN,
    build_model,
    config_for,
    logits,
    make_optimizer,
    memory_read_batched,
    memory_read_pennylane,
    train_step,
)

QUICK_TEST = Grid(size=["test"])
FULL_SIZES = Grid(size=["test", "default"])
PENNYLANE = {"read": "pennylane"}
BATCHED = {"read": "batched"}


def memory_setup(params: Mapping[str, Any], device: str) -> dict[str, Any]:
    config = config_for(params["size"])
    gen = torch.Generator().manual_seed(0)
    shape = (BATCH[params["size"]], SEQ_LEN, config.hidden_size)
    hidden = torch.tanh(torch.randn(*shape, generator=gen, dtype=torch.float64))  # (B, T, H), like the LSTM's
    return {"hidden": hidden.to(device), "n_slots": config.n_slots, "n_qubits": config.n_qubits,
            "top_k": config.top_k}


register(Case(
    name="qmann.memory_read",
    description="memory reads of one call: per-step PennyLane circuits vs one batched (q~.m~)^2 product",
    setup=memory_setup,
    reference=memory_read_pennylane,
    variants={"batched": Variant(memory_read_batched, note="banded (N, S+L) fidelity products; same slots")},
    mode="forward",
    grids={"quick": QUICK_TEST, "full": FULL_SIZES},
    tolerance=Tolerance(rtol=1e-9, atol=1e-12),
    work=("steps", lambda p: BATCH[p["size"]] * SEQ_LEN),
    markers=("quantum",),
    time_limit_s=600,
))


def forward_setup(params: Mapping[str, Any], device: str) -> dict[str, Any]:
    config = config_for(params["size"])
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH[params["size"]], SEQ_LEN, config.input_size, generator=gen)  # (B, T, F)
    return {"model": build_model(config, seed=0, device=device).eval(), "x": x.to(device)}


register(Case(
    name="qmann.forward",
    description="QMANN forward (LSTM, memory, fusion, head): PennyLane memory vs batched memory",
    setup=forward_setup,
    reference=Variant(logits, kwargs=PENNYLANE),
    variants={"batched_memory": Variant(logits, kwargs=BATCHED)},
    mode="forward",
    grids={"quick": QUICK_TEST, "full": FULL_SIZES},
    tolerance=Tolerance(rtol=1e-5, atol=1e-6),
    work=("samples", lambda p: BATCH[p["size"]]),
    markers=("quantum",),
    time_limit_s=600,
))


def step_setup(params: Mapping[str, Any], device: str) -> dict[str, Any]:
    config = config_for(params["size"])
    gen = torch.Generator().manual_seed(2)
    batch = BATCH[params["size"]]
    model = build_model(config, seed=0, device=device)
    return {
        "model": model,
        "optimizer": make_optimizer(model),
        "x": torch.randn(batch, SEQ_LEN, config.input_size, generator=gen).to(device),  # (B, T, F)
        "y": torch.randint(0, config.n_classes, (batch,), generator=gen).to(device),  # (B,)
    }


register(Case(
    name="qmann.train_step",
    description="one training step (forward, cross-entropy, backward, Adam): PennyLane vs batched memory",
    setup=step_setup,
    reference=Variant(train_step, kwargs=PENNYLANE),
    variants={"batched_memory": Variant(train_step, kwargs=BATCHED)},
    mode="train_step",
    grids={"quick": QUICK_TEST, "full": FULL_SIZES},
    tolerance=Tolerance(rtol=1e-5, atol=1e-6),
    work=("samples", lambda p: BATCH[p["size"]]),
    markers=("quantum",),
    time_limit_s=900,
))
