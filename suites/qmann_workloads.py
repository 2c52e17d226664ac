"""QMANN v2.0 (seed 003): data loading, DistributedDataParallel and circuit depth (claims Q7-Q10)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from bench import Case, Claim, Grid, MeasureContext, Tolerance, Variant, register
from models.qmann import (
    BATCH,
    CIRCUITS,
    SEQ_LEN,
    CachedDataset,
    QMANNConfig,
    SequenceDataset,
    compile_tape,
    config_for,
    epoch_checksum,
    launch_ddp,
    make_loader,
    memory_tape,
    preprocess,
    run_tape,
    simulator,
    tape_counts,
    train_set,
)

# -- qmann.data_loading (Q7, Q8) -----------------------------------------------------------------


def data_setup(params: Mapping[str, Any], device: str) -> dict[str, Any]:
    xtr, ytr = train_set("default")
    return {"dataset": SequenceDataset(xtr, ytr, transform=preprocess), "batch_size": params["batch"]}


def with_loader(cached: bool = False, **options: Any) -> Callable[..., dict[str, Any]]:
    """A ``prepare`` that builds the epoch's DataLoader (workers start in the checked call)."""

    def prepare(inputs: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
        dataset = CachedDataset(inputs["dataset"]) if cached else inputs["dataset"]
        return {"loader": make_loader(dataset, inputs["batch_size"], seed=0, **options)}

    return prepare


register(Case(
    name="qmann.data_loading",
    description="one epoch of the 800 training sequences, preprocessed per sample, through a DataLoader",
    setup=data_setup,
    # One epoch, preprocessing every sample on access in this process (num_workers=0).
    reference=Variant(epoch_checksum, prepare=with_loader()),
    variants={
        "workers": Variant(epoch_checksum,
                           note="num_workers=2, prefetch_factor=2, persistent, pin_memory if CUDA",
                           prepare=with_loader(num_workers=2, pin_memory=torch.cuda.is_available(),
                                               prefetch_factor=2, persistent_workers=True)),
        "cached": Variant(epoch_checksum, prepare=with_loader(cached=True),
                          note="in-memory cache of preprocessed items, num_workers=0"),
    },
    mode="forward",
    grids={"quick": Grid(batch=[32]), "full": Grid(batch=[32])},
    tolerance=Tolerance(rtol=1e-9, atol=1e-6),
    work=("samples", lambda p: 800),
    devices=("cpu",),
    claims=[
        Claim("Q7", "DataLoader workers + pin_memory + prefetch + persistent workers: 2-3x faster",
              metric="speedup", variant="workers", expected=(2.0, 3.0)),
        Claim("Q8", "preprocessing cache: 5-10x faster for repeated data", metric="speedup",
              variant="cached", expected=(5.0, 10.0)),
    ],
    time_limit_s=300,
))


# -- qmann.ddp (Q9) ------------------------------------------------------------------------------

DDP_WARMUP = 3
DDP = {"warmup": DDP_WARMUP, "batch_per_rank": BATCH["default"], "timeout_s": 240.0}


def ddp_setup(params: Mapping[str, Any], device: str) -> dict[str, Any]:
    return {"nproc": params["nproc"], "size": params["size"], "steps": params["steps"]}


def scaling(ref: Any, var: Any) -> dict[str, float]:
    speedup = var["samples_per_s"] / ref["samples_per_s"]
    return {"scaling_efficiency": speedup / var["world_size"], "throughput_speedup": speedup,
            "replica_max_abs_diff": var["replica_max_abs_diff"]}


def ddp_measures(ctx: MeasureContext) -> dict[str, float]:
    out = ctx.output
    return {"samples_per_s": out["samples_per_s"], "s_per_sample": 1.0 / out["samples_per_s"],
            "step_ms_median": out["step_ms_median"], "comm_ms_median": out["comm_ms_median"],
            "comm_share": out["comm_share"]}


def training_flops(config: QMANNConfig, samples: int) -> float:
    """Forward + backward (3x forward) FLOPs of the dense layers for ``samples`` sequences."""
    h, t = config.hidden_size, SEQ_LEN
    sizes = [config.input_size] + [h] * (config.num_layers - 1)
    macs = sum(t * 4 * h * (size + h) for size in sizes) + t * 2 * h * h + h * config.n_classes
    return 3.0 * 2.0 * macs * samples


def ddp_samples(p: Mapping[str, Any]) -> int:
    return p["nproc"] * BATCH["default"] * (p["steps"] + DDP_WARMUP)


register(Case(
    name="qmann.ddp",
    description="DistributedDataParallel training (gloo, torchrun) on this machine: 1 vs 2 processes",
    setup=ddp_setup,
    # torchrun with nproc gloo processes (1 thread each); the workers' figures.
    reference=Variant(launch_ddp, kwargs=DDP),
    variants={"ddp2": Variant(launch_ddp, kwargs=DDP, exact=False, params={"nproc": 2}, quality=scaling,
                              note="2 processes x 1 thread, per-rank batch 32 (global 64)")},
    mode="forward",
    grids={"quick": Grid(nproc=[1], size=["default"], steps=[10]),
           "full": Grid(nproc=[1], size=["default"], steps=[50])},
    work=("samples", ddp_samples),
    # Declared, so the probe pass does not launch torchrun once more just to count nothing.
    flops=lambda p: training_flops(config_for(p["size"]), ddp_samples(p)),
    measures=ddp_measures,
    devices=("cpu",),
    # Every call launches processes (seconds of start-up): one timed round is enough, the
    # throughput measured inside the workers is the figure.
    markers=("slow",),
    benchmark={"min_rounds": 1, "max_time": 0.0},
    warmup_calls=0,
    claims=[
        Claim("Q9", "DDP over 4 GPUs: 3.5-4x (here: 2 CPU processes; throughput ratio measured in the "
              "workers)", metric="extra_ratio", extra="s_per_sample", variant="ddp2", expected=(3.5, 4.0),
              hardware="4 GPUs"),
        Claim("Q9.dataparallel", "DataParallel over 4 GPUs: 3-4x", metric="speedup", variant="ddp2",
              expected=(3.0, 4.0), measurable=False,
              reason="DataParallel replicates over CUDA devices in one process; this machine has no GPU"),
    ],
    time_limit_s=600,
))


# -- qmann.circuit_depth (Q10) -------------------------------------------------------------------

SINGLE_TRANSFORMS = ("cancel_inverses", "merge_rotations", "commute_controlled")


def circuit_setup(params: Mapping[str, Any], device: str) -> dict[str, Any]:
    config = config_for(params["size"])
    gen = torch.Generator().manual_seed(3)
    query, stored = torch.tanh(torch.randn(2, config.hidden_size, generator=gen, dtype=torch.float64))
    tape = memory_tape(params["circuit"], query, stored, config.n_qubits)
    return {"tape": compile_tape(tape, params["pipeline"]), "device": simulator(config.n_qubits)}


def same_state(ref: Any, var: Any) -> dict[str, float]:
    if ref.is_complex():
        fidelity = float(torch.vdot(ref, var).abs() ** 2)
        phase = torch.vdot(var, ref) / max(float(torch.vdot(var, ref).abs()), 1e-300)
        return {"fidelity": fidelity, "max_abs_err": float((ref - phase * var).abs().max())}
    overlap = float(torch.sqrt(ref.clamp_min(0) * var.clamp_min(0)).sum() ** 2)
    return {"fidelity": overlap, "max_abs_err": float((ref - var).abs().max())}


def circuit_measures(ctx: MeasureContext) -> dict[str, float]:
    tape = ctx.inputs["tape"]
    values = {k: float(v) for k, v in tape_counts(tape).items()}
    if ctx.params["pipeline"] == "none":  # each transform of the pipeline alone, counted without timing
        for name in SINGLE_TRANSFORMS:
            values[f"depth_after_{name}"] = float(tape_counts(compile_tape(tape, name))["depth"])
    return values


DEPTH = "circuit optimization: -30-50 % depth"

register(Case(
    name="qmann.circuit_depth",
    description="the memory's circuits (RY/RZ/CNOT) before and after PennyLane's compile transforms",
    setup=circuit_setup,
    reference=run_tape,  # simulate the (compiled) circuit on default.qubit
    variants={"compile": Variant(
        run_tape, exact=False, params={"pipeline": "compile"}, quality=same_state,
        note="qml.compile (commute, cancel, merge); each transform alone in extras")},
    mode="forward",
    grids={"quick": Grid(size=["test"], circuit=list(CIRCUITS), pipeline=["none"]),
           "full": Grid(size=["test", "default"], circuit=list(CIRCUITS), pipeline=["none"])},
    work=("circuits", lambda p: 1),
    measures=circuit_measures,
    markers=("quantum",),
    devices=("cpu",),
    claims=[
        Claim("Q10", f"{DEPTH} (the encoding circuit)", metric="extra_ratio", extra="depth",
              variant="compile", expected=(1 / 0.7, 1 / 0.5), at={"circuit": "encode"}),
        Claim("Q10.overlap", f"{DEPTH} (the fidelity/overlap circuit)", metric="extra_ratio", extra="depth",
              variant="compile", expected=(1 / 0.7, 1 / 0.5), at={"circuit": "overlap"}),
    ],
    time_limit_s=300,
))
