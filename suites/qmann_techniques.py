"""QMANN v2.0 (seed 003): the optimization guide's techniques on the batched model (claims Q1-Q6).

The baseline is the batched model at the default size (input 20, hidden 256, 64 slots, 8
qubits, batch 32) in both profiles. Trained weights (3 epochs of the synthetic set, per recipe)
and the distilled student are built once per process (models.qmann.fixtures); each technique's
model is made by its variant's ``prepare``, apart from the timing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from bench import Case, Claim, Grid, MeasureContext, Tolerance, Variant, agreement, max_abs_error, register
from bench import relative_error as rel_err
from models.qmann import (
    BATCH,
    accuracy,
    build_model,
    compile_model,
    config_for,
    eval_accuracy,
    eval_set,
    logits,
    make_optimizer,
    parameter_counts,
    peak_tensor_bytes,
    prune_magnitude,
    quantize_int8,
    script_model,
    state_bytes,
    train_loader,
    train_step,
    trained,
    trained_student,
)

QUICK_DEFAULT = Grid(size=["default"])
FULL_SIZES = Grid(size=["test", "default"])
AT_DEFAULT = {"size": "default"}
INFER_BATCH = 32  # sequences per timed call; accuracy is measured on all 200 held-out ones


# -- qmann.train_techniques (Q1 and Q2) ----------------------------------------------------------


def technique_step_setup(params: Mapping[str, Any], device: str) -> dict[str, Any]:
    size = params["size"]
    model = build_model(config_for(size), seed=0, device=device)
    xb, yb = next(iter(train_loader(size)))
    return {"model": model, "optimizer": make_optimizer(model), "x": xb.to(device), "y": yb.to(device)}


def loss_difference(ref: Any, var: Any) -> dict[str, float]:
    return {"loss_rel_err": rel_err(ref, var), "loss_abs_err": max_abs_error(ref, var)}


def technique_step_measures(ctx: MeasureContext) -> dict[str, float]:
    size = ctx.params["size"]
    # Checkpointing recomputes the same numbers (tested), so it trains like float32.
    recipe = "bf16" if ctx.arguments.get("autocast_dtype") is torch.bfloat16 else "fp32"
    base = eval_accuracy(trained(size, "cpu"), size)
    acc = eval_accuracy(trained(size, "cpu", recipe), size)
    return {"peak_tensor_bytes": peak_tensor_bytes(ctx.call), "accuracy_pct": 100 * acc,
            "accuracy_drop_pct": 100 * (base - acc)}


register(Case(
    name="qmann.train_techniques",
    description="a training step on the batched model: float32 vs checkpointing vs bf16 autocast",
    setup=technique_step_setup,
    reference=train_step,
    variants={
        "checkpoint": Variant(train_step, kwargs={"checkpoint": True}, note="each LSTM layer recomputed"),
        "bf16_autocast": Variant(train_step, kwargs={"autocast_dtype": torch.bfloat16}, exact=False,
                                 quality=loss_difference,
                                 note="torch.autocast(bfloat16); accuracy after 3 epochs in extras"),
    },
    mode="train_step",
    grids={"quick": QUICK_DEFAULT, "full": FULL_SIZES},
    tolerance=Tolerance(rtol=1e-5, atol=1e-6),
    work=("samples", lambda p: BATCH["default"]),
    measures=technique_step_measures,
    claims=[
        Claim("Q1", "gradient checkpointing: ~5 % slower", metric="time_increase", variant="checkpoint",
              expected=(0.0, 0.10), at=AT_DEFAULT),
        Claim("Q1.memory", "gradient checkpointing: -30-40 % memory (peak tensor bytes of a step)",
              metric="extra_ratio", extra="peak_tensor_bytes", variant="checkpoint",
              expected=(1 / 0.7, 1 / 0.6), at=AT_DEFAULT),
        Claim("Q2", "mixed precision: 1.5-2x faster", metric="speedup", variant="bf16_autocast",
              expected=(1.5, 2.0), at=AT_DEFAULT),
        Claim("Q2.memory", "mixed precision: -40-50 % memory (peak tensor bytes of a step)",
              metric="extra_ratio", extra="peak_tensor_bytes", variant="bf16_autocast",
              expected=(1 / 0.6, 1 / 0.5), at=AT_DEFAULT),
        Claim("Q2.accuracy", "mixed precision: -0.1 % accuracy (drop in points after training; at most 0.1)",
              metric="extra", extra="accuracy_drop_pct", variant="bf16_autocast",
              expected=(-100.0, 0.1), at=AT_DEFAULT),
    ],
    time_limit_s=600,
))


# -- qmann.inference (Q3 to Q6) ------------------------------------------------------------------


def infer_setup(params: Mapping[str, Any], device: str) -> dict[str, Any]:
    xev, _ = eval_set(params["size"])
    return {"model": trained(params["size"], device), "x": xev[:INFER_BATCH].to(device)}


Transform = Callable[[torch.nn.Module, torch.Tensor, str], torch.nn.Module]


def with_model(transform: Transform) -> Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]:
    """A ``prepare`` that replaces the model by ``transform(model, x, size)`` (made once, untimed)."""

    def prepare(inputs: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
        return {**inputs, "model": transform(inputs["model"], inputs["x"], params["size"])}

    prepare.__name__ = f"with_{getattr(transform, '__name__', 'model')}"
    return prepare


def student(model: torch.nn.Module, x: torch.Tensor, size: str) -> torch.nn.Module:
    """The distilled student (hidden / 2), instead of the model."""
    return trained_student(size, next(model.parameters()).device)


def prediction_quality(ref: Any, var: Any) -> dict[str, float]:
    return {"agreement": agreement(ref.argmax(-1), var.argmax(-1)),
            "max_abs_logit_err": max_abs_error(ref.float(), var.float())}


def infer_measures(ctx: MeasureContext) -> dict[str, float]:
    model, used, size = ctx.inputs["model"], ctx.arguments["model"], ctx.params["size"]
    xev, yev = eval_set(size)
    xev, yev = xev.to(ctx.inputs["x"].device), yev.to(ctx.inputs["x"].device)
    # A TorchScript model is traced for one input shape: trace it again for the held-out set.
    scored = script_model(model, xev) if isinstance(used, torch.jit.ScriptModule) else used
    with torch.no_grad():
        peak = peak_tensor_bytes(ctx.call)
        base, acc = float(accuracy(model(xev), yev)), float(accuracy(scored(xev), yev))
    values = {"model_bytes": float(state_bytes(used)), "peak_tensor_bytes": float(peak),
              "accuracy_pct": 100 * acc, "accuracy_drop_pct": 100 * (base - acc)}
    if not isinstance(used, torch.jit.ScriptModule) and any(True for _ in used.parameters()):
        _, nonzero = parameter_counts(used)
        full, _ = parameter_counts(model)
        values.update(nonzero_parameters=float(nonzero), parameter_reduction=1 - nonzero / full)
    return values


def _approx(transform: Transform, note: str) -> Variant:
    return Variant(logits, prepare=with_model(transform), exact=False, quality=prediction_quality, note=note)


register(Case(
    name="qmann.inference",
    description="the trained model on 32 held-out sequences: float32 eager vs inference techniques",
    setup=infer_setup,
    reference=logits,
    variants={
        "int8_dynamic": _approx(lambda m, x, s: quantize_int8(m), "quantize_dynamic(Linear, LSTM), qint8"),
        "pruned30": _approx(lambda m, x, s: prune_magnitude(m, 0.3), "30 % L1 unstructured, dense kernels"),
        "student": _approx(student, "distilled, hidden/2, T=4, 0.7 KD + 0.3 CE"),
        "torchscript": Variant(logits, prepare=with_model(lambda m, x, s: script_model(m, x)),
                               note="trace + freeze + optimize_for_inference"),
    },
    mode="forward",
    grids={"quick": QUICK_DEFAULT, "full": FULL_SIZES},
    tolerance=Tolerance(rtol=1e-4, atol=1e-5),
    work=("samples", lambda p: INFER_BATCH),
    measures=infer_measures,
    devices=("cpu",),
    claims=[
        Claim("Q3", "dynamic int8 quantization: 2-4x faster", metric="speedup", variant="int8_dynamic",
              expected=(2.0, 4.0), at=AT_DEFAULT),
        Claim("Q3.memory", "dynamic int8 quantization: -75 % memory (serialized model bytes)",
              metric="extra_ratio", extra="model_bytes", variant="int8_dynamic",
              expected=(1 / 0.3, 1 / 0.2), at=AT_DEFAULT),
        Claim("Q3.accuracy", "dynamic int8 quantization: -1 % accuracy (drop in points; at most 1)",
              metric="extra", extra="accuracy_drop_pct", variant="int8_dynamic",
              expected=(-100.0, 1.0), at=AT_DEFAULT),
        Claim("Q4", "30 % pruning: 1.2-1.5x faster", metric="speedup", variant="pruned30",
              expected=(1.2, 1.5), at=AT_DEFAULT),
        Claim("Q4.parameters", "30 % pruning: -30 % parameters (nonzero parameters)", metric="extra",
              extra="parameter_reduction", variant="pruned30", expected=(0.28, 0.32), at=AT_DEFAULT),
        Claim("Q4.accuracy", "30 % pruning: -0.5 % accuracy (drop in points; at most 0.5)", metric="extra",
              extra="accuracy_drop_pct", variant="pruned30", expected=(-100.0, 0.5), at=AT_DEFAULT),
        Claim("Q5", "knowledge distillation: 2-3x faster student", metric="speedup", variant="student",
              expected=(2.0, 3.0), at=AT_DEFAULT),
        Claim("Q5.memory", "knowledge distillation: -50 % memory (serialized model bytes)",
              metric="extra_ratio", extra="model_bytes", variant="student",
              expected=(1 / 0.55, 1 / 0.45), at=AT_DEFAULT),
        Claim("Q5.accuracy", "knowledge distillation: < 1 % accuracy drop (points)", metric="extra",
              extra="accuracy_drop_pct", variant="student", expected=(-100.0, 1.0), at=AT_DEFAULT),
        Claim("Q6", "TorchScript / operator fusion: 1.5-2x faster", metric="speedup", variant="torchscript",
              expected=(1.5, 2.0), at=AT_DEFAULT),
    ],
    time_limit_s=600,
))


# -- qmann.compile (Q6, compile) -----------------------------------------------------------------

register(Case(
    name="qmann.compile",
    description="the trained model on 32 held-out sequences: eager vs torch.compile (inductor)",
    setup=infer_setup,
    reference=logits,
    variants={"compiled": Variant(logits, prepare=with_model(lambda m, x, s: compile_model(m)),
                                  note="torch.compile, default mode; compile time not timed")},
    mode="forward",
    grids={"quick": QUICK_DEFAULT, "full": FULL_SIZES},
    tolerance=Tolerance(rtol=1e-4, atol=1e-5),
    work=("samples", lambda p: INFER_BATCH),
    claims=[Claim("Q6.compile", "operator fusion (torch.compile): 1.5-2x faster", metric="speedup",
                  variant="compiled", expected=(1.5, 2.0), at=AT_DEFAULT)],
    markers=("slow",),
    time_limit_s=600,
))
