"""SeqSetVAE cases: per-set loops vs dynamic padding, precision and compile (SEEDS.md 001, claims S1,
S3, S5, S9). The loader, accumulation, sequence cap, monitor and combined cases (S2, S4, S6-S8) are
in suites/seqsetvae_training.py.

Sizes. ``quick``: the 768-d embeddings are kept, the rest shrinks (reduced and latent 64, 2
Transformer layers of 4 heads, ff 128; patients of 6-16 sets of 1-50 events). ``full``: the
note's sizes (reduced and latent 256, 4 layers of 8 heads, ff 512; 20-200 sets of 1-50 events).

Percent claims ("30-50 % faster") are read as time reductions (docs/cases.md); a single figure
gets a band: +-5 points for a percentage, +-10 % for a ratio. Absolute GB figures become ratios.
FLOPs are counted once per grid point (models.seqsetvae.flops) and declared.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from bench import Case, Claim, Grid, MeasureContext, Tolerance, Variant, register, relative_error
from models.seqsetvae import (
    StepOutput,
    Trainer,
    build_trainer,
    cohort_preset,
    collate_padded,
    counted_flops,
    load_patients,
    loss_micro,
    loss_padded,
    loss_reference,
    model_preset,
    train_step_amp,
    train_step_micro,
    train_step_padded,
    train_step_reference,
)

Params = Mapping[str, Any]


def _patients_setup(params: Params, device: str) -> dict[str, Any]:
    patients = load_patients(cohort_preset(params["size"]), params["batch"], device=device)
    return {"trainer": build_trainer(model_preset(params["size"]), device), "patients": patients}


def padded(inputs: Mapping[str, Any], params: Params) -> dict[str, Any]:
    """All sets of all B patients in one masked batch."""
    return {"trainer": inputs["trainer"], "batch": collate_padded(inputs["patients"])}


def micro1(inputs: Mapping[str, Any], params: Params) -> dict[str, Any]:
    """One padded micro-batch per patient."""
    return {"trainer": inputs["trainer"], "batches": [collate_padded([p]) for p in inputs["patients"]]}


def _batching(fn: Any, mode: str, prepare: Any = None) -> Variant:
    return Variant(fn, prepare=prepare, flops=counted_flops(_patients_setup, fn, mode, prepare=prepare))


# -- forward and train step: the same B patients, one at a time with per-set loops vs padded ------

# The per-set reference is what costs: cases whose calls take seconds run min_rounds=3 (not 5).
# Quick keeps batch 4 and 16 for the train step (batch 1 is there anyway as padded_micro1, the
# padded step one patient at a time; S9's batch-8 figure is then measured at batch 16, and the
# report says so) and batch 8 for the forward.
FULL_BATCHES = Grid(size=["full"], batch=[1, 4, 8, 16])
BATCH_NOTE = ("reference: the B patients one at a time, each set encoded and decoded in Python loops; "
              "padded: all sets of all B patients in one masked tensor; padded_micro1: one patient per "
              "padded micro-batch (batch 1), gradients accumulated. All three give the same loss and "
              "gradients.")

register(Case(
    name="seqsetvae.forward",
    description="SeqSetVAE loss forward over B patients. " + BATCH_NOTE,
    setup=_patients_setup,
    reference=_batching(loss_reference, "forward"),
    variants={"padded": _batching(loss_padded, "forward", padded),
              "padded_micro1": _batching(loss_micro, "forward", micro1)},
    mode="forward",
    grids={"quick": Grid(size=["quick"], batch=[8]), "full": FULL_BATCHES},
    tolerance=Tolerance(rtol=1e-4, atol=1e-4),
    work=("patients", lambda p: p["batch"]),
    warmup_calls=0,
    benchmark={"min_rounds": 3},
    time_limit_s=600,
))

SPEED = "Relative speed at batch"
MEMORY = "on the note's GPU: checked as the ratio,"
MICRO = {"variant": "padded", "baseline": "padded_micro1"}

register(Case(
    name="seqsetvae.train_step",
    description="SeqSetVAE training step (forward, backward, AdamW) over B patients. " + BATCH_NOTE,
    setup=_patients_setup,
    reference=_batching(train_step_reference, "train"),
    variants={"padded": _batching(train_step_padded, "train", padded),
              "padded_micro1": _batching(train_step_micro, "train", micro1)},
    mode="train_step",
    grids={"quick": Grid(size=["quick"], batch=[4, 16]), "full": FULL_BATCHES},
    tolerance=Tolerance(rtol=1e-3, atol=1e-4),
    work=("patients", lambda p: p["batch"]),
    warmup_calls=0,
    benchmark={"min_rounds": 3},
    time_limit_s=600,
    claims=[
        Claim("S1", "Batch size 1 -> 4: 30-50 % faster", metric="time_reduction", **MICRO,
              expected=(0.30, 0.50), at={"batch": 4}),
        Claim("S1.mem", "Batch size 1 -> 4: +50 % memory", metric="memory_increase", **MICRO,
              expected=(0.45, 0.55), at={"batch": 4}),
        Claim("S9.b4", f"{SPEED} 4 vs 1: 2.5x", metric="speedup", **MICRO, expected=(2.25, 2.75),
              at={"batch": 4}),
        Claim("S9.b8", f"{SPEED} 8 vs 1: 4.0x", metric="speedup", **MICRO, expected=(3.6, 4.4),
              at={"batch": 8}),
        Claim("S9.b16", f"{SPEED} 16 vs 1: 6.0x", metric="speedup", **MICRO, expected=(5.4, 6.6),
              at={"batch": 16}),
        Claim("S9.mem4", f"Memory 2.5 GB (batch 1) -> 6.0 GB (batch 4) {MEMORY} +140 %",
              metric="memory_increase", **MICRO, expected=(1.26, 1.54), at={"batch": 4}),
        Claim("S9.mem8", f"Memory 2.5 GB (batch 1) -> 12.0 GB (batch 8) {MEMORY} +380 %",
              metric="memory_increase", **MICRO, expected=(3.42, 4.18), at={"batch": 8}),
        Claim("issue5", "Issue 5 target: padded batch 16 at least 5x faster per patient than the per-set "
              "reference, same loss", metric="speedup", variant="padded", expected=(5.0, math.inf),
              at={"batch": 16}),
    ],
))


# -- precision ---------------------------------------------------------------------------------


def _padded_setup(params: Params, device: str) -> dict[str, Any]:
    return padded(_patients_setup(params, device), params)


def step_quality(ref: StepOutput, var: StepOutput) -> dict[str, float]:
    """Loss difference and how far the gradients moved (relative norm, cosine)."""
    ref_g = torch.cat([g.flatten().double() for g in ref.grads])
    var_g = torch.cat([g.flatten().double() for g in var.grads])
    return {"loss_rel_diff": relative_error(ref.loss, var.loss), "grad_rel_err": relative_error(ref_g, var_g),
            "grad_cosine": float(torch.nn.functional.cosine_similarity(var_g, ref_g, dim=0))}


register(Case(
    name="seqsetvae.precision",
    description="Padded training step in float32 vs autocast (bfloat16 on CPU, float16 + GradScaler on "
                "CUDA).",
    setup=_padded_setup,
    reference=train_step_padded,
    flops=counted_flops(_padded_setup, train_step_padded, "train"),
    variants={"autocast": Variant(train_step_amp, exact=False, quality=step_quality,
                                  note="bfloat16 on CPU / float16 on CUDA")},
    mode="train_step",
    grids={"quick": Grid(size=["quick"], batch=[4]), "full": Grid(size=["full"], batch=[4, 16])},
    work=("patients", lambda p: p["batch"]),
    warmup_calls=0,
    claims=[
        Claim("S3", "Mixed precision: 20-40 % faster", metric="time_reduction", variant="autocast",
              expected=(0.20, 0.40), at={"batch": 4}),
        Claim("S3.mem", "Mixed precision: -30 % memory", metric="memory_reduction", variant="autocast",
              expected=(0.25, 0.35), at={"batch": 4}),
    ],
))


# -- torch.compile -----------------------------------------------------------------------------


def _compile_setup(params: Params, device: str) -> dict[str, Any]:
    patients = load_patients(cohort_preset(params["size"]), params["batch"], device=device)
    trainer = build_trainer(model_preset(params["size"]), device, compile_model=True)
    return {"trainer": trainer, "batch": collate_padded(patients)}


def _compile_measures(ctx: MeasureContext) -> dict[str, float]:
    trainer: Trainer = ctx.inputs["trainer"]
    return {"compile_first_call_s": trainer.first_compiled_call_s or 0.0}


register(Case(
    name="seqsetvae.compile",
    description="Padded training step, eager vs torch.compile (inductor, static shapes). The first call "
                "compiles: it is recorded as first_call_s and as the extra compile_first_call_s. Quick uses "
                "the tiny model (one level, one Transformer layer, latent 32): compile time grows with the "
                "graph, and a cold inductor cache costs minutes on 2 cores.",
    setup=_compile_setup,
    reference=train_step_padded,
    flops=counted_flops(_compile_setup, train_step_padded, "train"),  # the same arithmetic compiled or not
    variants={"compiled": Variant(train_step_padded, kwargs={"use_compiled": True},
                                  tolerance=Tolerance(rtol=2e-3, atol=1e-3))},
    mode="train_step",
    grids={"quick": Grid(size=["tiny"], batch=[4]), "full": Grid(size=["full"], batch=[4])},
    tolerance=Tolerance(rtol=1e-3, atol=1e-4),
    work=("patients", lambda p: p["batch"]),
    measures=_compile_measures,
    markers=("slow",),
    warmup_calls=0,
    time_limit_s=600,
    claims=[Claim("S5", "torch.compile: 10-25 % faster", metric="time_reduction", variant="compiled",
                  expected=(0.10, 0.25), at={"batch": 4})],
))
