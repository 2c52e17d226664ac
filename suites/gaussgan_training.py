"""GaussGAN cases (SEEDS.md 000): the generator per noise source, the training step, validation metrics
and end-of-epoch overheads (claims G1-G9, G11, G12; the circuits are in suites/gaussgan.py).

Quick grids keep these cases to minutes on 2 CPU cores; the note's sizes (batch 256, 20,000
validation targets, 30-epoch figures) are in the full profile, and claims pin them with ``at=``.
"""

from __future__ import annotations

import functools
import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from bench import Case, Claim, Grid, MeasureContext, Tolerance, Variant, register
from models.gaussgan import (
    METRICS,
    SMALL_NETS,
    TARGET,
    Generator,
    MLPGenerator,
    build_target_cache,
    build_training,
    cached_metrics,
    epoch_overheads,
    generated_points,
    make_noise,
    mixture_points,
    note_variant,
    reference_metrics,
    split_dataset,
    step_flops,
    train_samples,
)

NOTE_HARDWARE = "the note's machine (one CUDA GPU; quantum circuits simulated on its CPU)"
CPU_ONLY = ("cpu",)  # PennyLane's CPU simulators, numpy/scipy metrics and matplotlib
AT_256 = {"batch": 256}


# -- gaussgan.generator ------------------------------------------------------------------------


def generator_setup(params: Mapping[str, Any], device: str) -> dict[str, Any]:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        noise = make_noise(params["source"], 4, seed=0)
        mlp = MLPGenerator(4, (256, 256))
    return {"generator": Generator(noise, mlp), "batch": params["batch"]}


def generate(generator: Generator, batch: int) -> torch.Tensor:
    return generator(batch)


def _source(name: str, note: str) -> Variant:
    return Variant(generate, exact=False, params={"source": name}, note=note)


def _per_batch(cid: str, text: str, variant: str, expected: tuple[float, float]) -> Claim:
    return Claim(cid, f"Per batch of 256, {text}", metric="seconds", variant=variant, expected=expected,
                 at=AT_256, hardware=NOTE_HARDWARE)


def _slower(cid: str, source: str, name: str) -> Claim:
    return Claim(cid, f"Quantum {name} noise is 200–400× slower than classical normal", metric="speedup",
                 variant="reference", baseline=source, expected=(200.0, 400.0), at=AT_256)


def _memory(cid: str, source: str, text: str, expected: tuple[float, float]) -> Claim:
    return Claim(cid, f"Memory per batch: {text}; GPU allocator on the note's machine, CPU resident-set "
                 "growth here)", metric="memory_increase", variant=source, expected=expected, at=AT_256,
                 hardware=NOTE_HARDWARE)


register(Case(
    name="gaussgan.generator",
    description=(
        "One generator forward pass for a batch: noise source, then the [256, 256] MLP with the "
        "reparameterised head. The four sources of the public code, each against classical normal "
        "noise (different noise: not compared), plus the batched simulations of the two quantum "
        "ones. Quantum sources run their circuit under no_grad, as the public code."
    ),
    setup=generator_setup,
    reference=generate,
    variants={
        "classical_uniform": _source("classical_uniform", "U(-1, 1)^4 noise"),
        "quantum_basic": _source("quantum_basic", "6-qubit circuit, one default.qubit call per sample"),
        "quantum_shadow": _source("quantum_shadow",
                                  "shadow_expval of 3 Pauli words, 100 shots, one call per sample"),
        "quantum_basic_fused": _source("quantum_basic_fused", "same circuit, structure-aware torch batch"),
        "quantum_shadow_batched": _source("quantum_shadow_batched", "same shadows, batched torch sampler"),
    },
    grids={"quick": Grid(batch=[32], source=["classical_normal"]),
           "full": Grid(batch=[256], source=["classical_normal"])},
    mode="forward",
    work=("samples", lambda p: p["batch"]),
    devices=CPU_ONLY,
    markers=("quantum",),
    warmup_calls=0,
    time_limit_s=900,
    claims=[
        _per_batch("G9a", "classical normal noise + generator takes ~0.01 s", "reference", (0.005, 0.015)),
        _per_batch("G9b", "classical uniform noise + generator takes ~0.01 s", "classical_uniform",
                   (0.005, 0.015)),
        _per_batch("G9c", "quantum basic noise + generator takes ~2.3 s (the note's estimate, not a "
                   "measurement)", "quantum_basic", (2.0, 2.6)),
        _per_batch("G9d", "quantum shadow noise + generator takes ~4.1 s (the note's estimate, not a "
                   "measurement)", "quantum_shadow", (3.6, 4.6)),
        _slower("G9e", "quantum_basic", "basic"),
        _slower("G9f", "quantum_shadow", "shadow"),
        _memory("G9g", "quantum_basic", "quantum basic 15 MB vs classical 2 MB (+650 %", (5.5, 7.5)),
        _memory("G9h", "quantum_shadow", "quantum shadow 25 MB vs classical 2 MB (+1150 %", (10.5, 12.5)),
        Claim("G9i", "GPU utilization 85 / 85 / 25 / 20 % for normal / uniform / basic / shadow",
              metric="seconds", measurable=False,
              reason="no GPU here and no claim metric reads GPU utilization; on CUDA runs each record's gpu "
              "field holds NVML's utilization for the item"),
    ],
))


# -- gaussgan.train_step -----------------------------------------------------------------------

EPOCH_SLICE = 512  # training points per call: one step at batch 512, two at 256
_NETS = {"large": {}, "small": SMALL_NETS}
CLASSICAL = {"source": "classical_normal"}


@functools.lru_cache(maxsize=1)
def _train_split() -> torch.Tensor:
    points, labels = mixture_points(10_000, seed=0)
    return split_dataset(points, labels, seed=0).train  # (16000, 2)


def train_setup(params: Mapping[str, Any], device: str) -> dict[str, Any]:
    training = build_training(_train_config(params), params["source"], _train_split(), seed=0)
    return {"training": training, "samples": EPOCH_SLICE}


def _train_config(params: Mapping[str, Any]) -> Any:
    if params["nets"] not in _NETS:
        raise ValueError(f"nets must be one of {sorted(_NETS)}, got {params['nets']!r}")
    # The note changes n_critic and n_predictor together.
    return note_variant(**_NETS[params["nets"]], n_critic=params["n_critic"], n_predictor=params["n_critic"],
                        batch=params["batch"])


def train_flops(params: Mapping[str, Any]) -> float:
    config = _train_config(params)
    return (EPOCH_SLICE // config.batch) * step_flops(config)


def _config(note: str, **overrides: Any) -> Variant:
    return Variant(train_samples, exact=False, params=overrides, note=note)


register(Case(
    name="gaussgan.train_step",
    description=(
        "Training over a fixed 512-point slice of an epoch (two steps at batch 256, one at 512), "
        "so batch sizes compare per epoch: n_critic WGAN-GP critic updates (penalty 0.2), "
        "n_predictor killer/predictor updates, one generator update with the killer term (weight "
        "100, ×5 for x < 0), Adam 1e-3. Reference: the note's config ([256, 256] nets, n_critic = "
        "n_predictor = 5, batch 256); each proposed change alone and all together. Sources: "
        "classical normal and the quantum circuit (quick: the batched torch simulation; full adds "
        "the public per-sample default.qubit loop: 1,536 circuit runs per step)."
    ),
    setup=train_setup,
    reference=train_samples,
    variants={
        "small_nets": _config("generator [64, 64], critic [64, 128]", nets="small"),
        "fewer_updates": _config("n_critic = n_predictor = 3", n_critic=3),
        "batch512": _config("batch 512", batch=512),
        "all": _config("all three changes", nets="small", n_critic=3, batch=512),
    },
    grids={
        "quick": Grid(source=["classical_normal", "quantum_basic_fused"], nets=["large"], n_critic=[5],
                      batch=[256]),
        "full": Grid(source=["classical_normal", "quantum_basic_fused", "quantum_basic"], nets=["large"],
                     n_critic=[5], batch=[256]),
    },
    mode="train_step",
    work=("samples", lambda p: EPOCH_SLICE),
    # FlopCounterMode's module tracker cannot follow torch.autograd.grad (the gradient penalty),
    # so the networks' FLOPs are declared: an estimate, see models.gaussgan.training.step_flops.
    flops=train_flops,
    devices=CPU_ONLY,
    warmup_calls=0,
    time_limit_s=1800,
    claims=[
        Claim("G1", "Generator [256,256] → [64,64] and critic [256,256] → [64,128] cut training-step time by "
              "60–70 %", metric="time_reduction", variant="small_nets", expected=(0.6, 0.7), at=CLASSICAL),
        Claim("G2", "n_critic 5 → 3 (and n_predictor 5 → 3) cuts training time by ~40 %",
              metric="time_reduction", variant="fewer_updates", expected=(0.35, 0.45), at=CLASSICAL),
        Claim("G5", "Batch 256 → 512 cuts total (epoch) time by 20–30 % for classical generators",
              metric="time_reduction", variant="batch512", expected=(0.2, 0.3), at=CLASSICAL),
        Claim("G12", "All optimizations together: training 3–5× faster (here: the three training-step "
              "changes; validation and logging changes are in their own cases)", metric="speedup",
              variant="all", expected=(3.0, 5.0), at=CLASSICAL),
        Claim("G12b", "30 classical epochs go from 15–20 min to 2–4 min", metric="seconds", measurable=False,
              reason="end-to-end minutes of 30 epochs on the note's GPU machine, including data loading, "
              "validation, figures and MLflow logging; the step ratio is G12 and the end-of-epoch parts "
              "are G3, G4, G6, G7 and G8"),
    ],
))


# -- gaussgan.validation -----------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _targets(count: int) -> torch.Tensor:
    """The first ``count`` points of a seeded shuffle of the 20,000-point dataset: (count, 2)."""
    points, _ = mixture_points(10_000, seed=0)
    if not 2 <= count <= len(points):
        raise ValueError(f"targets must be between 2 and {len(points)}, got {count}")
    order = torch.randperm(len(points), generator=torch.Generator().manual_seed(3))
    return points[order[:count]]


def validation_setup(params: Mapping[str, Any], device: str) -> dict[str, Any]:
    return {"points": generated_points(params["samples"], seed=1), "targets": _targets(params["targets"])}


def with_target_cache(inputs: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The target-only terms, computed once (the cached implementations' one-time cost)."""
    return {"points": inputs["points"], "cache": build_target_cache(inputs["targets"])}


def metric_differences(ref: Mapping[str, float], var: Mapping[str, float]) -> dict[str, float]:
    """Largest absolute difference over the metrics both return, then each metric's difference."""
    shared = [k for k in METRICS if k in ref and k in var]
    diffs = {f"{k}_diff": float(var[k]) - float(ref[k]) for k in shared}
    worst = max((abs(v) for v in diffs.values()), default=0.0)
    return {"max_abs_diff": worst, **diffs}


def kl_difference(ref: Mapping[str, float], var: Mapping[str, float]) -> dict[str, float]:
    """The histogram KL's value against the KDE KL's on the same points."""
    return {"kl_abs_diff": abs(float(var["KLDivergence"]) - float(ref["KLDivergence"])),
            "kl_histogram": float(var["KLDivergence"]), "kl_kde": float(ref["KLDivergence"])}


def _cached(quality: Any = metric_differences, note: str = "", **kwargs: Any) -> Variant:
    """An approximate variant of the cached metrics."""
    return Variant(cached_metrics, prepare=with_target_cache, kwargs={"mixture": TARGET, **kwargs},
                   exact=False, quality=quality, note=note)


TARGETS = {"mixture": TARGET}
KL = ("KLDivergence",)
_TARGET_NOTE = {"targets": 20_000}

register(Case(
    name="gaussgan.validation",
    description=(
        "One validation's metrics on generated points (a fixed, slightly wrong two-mode sample) "
        "against the target mixture and the target sample. Reference: the six metrics as the "
        "public code computes them, rebuilding every target-only term each time (median heuristic "
        "over all target pairs, N × N kernels per bandwidth). Quick uses 1,000 targets; the note's "
        "20,000 (full) need ~10 GB of RAM and minutes per call in the reference."
    ),
    setup=validation_setup,
    reference=Variant(reference_metrics, kwargs=TARGETS),
    variants={
        "two_metrics": Variant(reference_metrics, kwargs={**TARGETS, "names": ("IsPositive", "KLDivergence")},
                               exact=False, quality=metric_differences,
                               note="IsPositive and KLDivergence only (the note's change)"),
        "samples200": Variant(reference_metrics, kwargs=TARGETS, exact=False, params={"samples": 200},
                              quality=metric_differences,
                              note="the six metrics on 200 generated points instead of 500"),
        "cached": Variant(cached_metrics, prepare=with_target_cache, kwargs=TARGETS,
                          tolerance=Tolerance(rtol=1e-4, atol=1e-6),
                          note="target-only terms computed once; one distance matrix for all bandwidths"),
        "cached_hist_kl": _cached(kl="histogram", note="cached, with the histogram KL instead of the KDE"),
        "kl_kde": _cached(names=KL, note="KDE KL alone"),
        "kl_histogram": _cached(kl_difference, names=KL, kl="histogram",
                                note="histogram KL alone (2-D, Scott's bin rule)"),
    },
    grids={"quick": Grid(samples=[500], targets=[1000]), "full": Grid(samples=[500], targets=[20_000])},
    mode="forward",
    # At 20,000 targets a reference call takes minutes: three timed rounds.
    benchmark={"min_rounds": 3},
    work=("validations", lambda p: 1),
    flops=lambda p: 0.0,  # numpy/scipy: FlopCounterMode sees none of it; spare the counting call
    devices=CPU_ONLY,
    warmup_calls=0,
    time_limit_s=3600,
    claims=[
        Claim("G3", "Metrics reduced from the six to [IsPositive, KLDivergence] cut validation time by "
              "50–80 %", metric="time_reduction", variant="two_metrics", expected=(0.5, 0.8),
              at=_TARGET_NOTE),
        Claim("G4", "Validation samples 500 → 200 cut validation time by ~60 %", metric="time_reduction",
              variant="samples200", expected=(0.55, 0.65), at=_TARGET_NOTE),
        Claim("G7", "The six metrics add 1–3 s per validation", metric="seconds", expected=(1.0, 3.0),
              at=_TARGET_NOTE, hardware=NOTE_HARDWARE),
        Claim("G11", "Histogram KL is a cheaper replacement for KDE KL (its value difference is in the "
              "kl_histogram row's quality)", metric="speedup", variant="kl_histogram", baseline="kl_kde",
              expected=(1.0, math.inf), at=_TARGET_NOTE),
    ],
))


# -- gaussgan.epoch_overheads ------------------------------------------------------------------

BLOCK = 5  # epochs per call: the unit of "every 5th epoch"


def overheads_setup(params: Mapping[str, Any], device: str) -> dict[str, Any]:
    history = [generated_points(500, seed=100 + e) for e in range(params["history"])]
    # Deleted when the inputs are dropped (TemporaryDirectory cleans up on finalisation).
    return {"history": history, "workdir": tempfile.TemporaryDirectory(prefix="gaussgan-")}


def block_overheads(
    history: list[torch.Tensor], workdir: tempfile.TemporaryDirectory[str], figure_every: int | None,
    artifact: str | None,
) -> dict[str, float]:
    """The end-of-epoch work of the last BLOCK epochs, files written under ``workdir``."""
    return epoch_overheads(history, Path(workdir.name), epochs=BLOCK, figure_every=figure_every,
                           artifact=artifact)


def _overheads(figure_every: int | None, artifact: str, note: str) -> Variant:
    return Variant(block_overheads, kwargs={"figure_every": figure_every, "artifact": artifact}, exact=False,
                   note=note)


def overhead_measures(ctx: MeasureContext) -> dict[str, float]:
    return dict(ctx.output)


AT_30 = {"history": 30}

register(Case(
    name="gaussgan.epoch_overheads",
    description=(
        "End-of-epoch work for the last 5 epochs of a history of 500-point samples: the public "
        "code redraws a figure of all epochs so far at 150 dpi every epoch and writes a CSV of the "
        "points; the note draws every 5th epoch and writes .npy. Files go to a temporary folder "
        "(the public code's local fallback for its MLflow text artifact)."
    ),
    setup=overheads_setup,
    reference=Variant(block_overheads, kwargs={"figure_every": 1, "artifact": "csv"}),
    variants={"figure_every5": _overheads(BLOCK, "csv", "figure every 5th epoch, CSV"),
              "csv": _overheads(None, "csv", "CSV only, no figure"),
              "npy": _overheads(None, "npy", ".npy only, no figure")},
    grids={"quick": Grid(history=[5]), "full": Grid(history=[30])},
    mode="forward",
    # Calls take seconds (a minute per block at 30 epochs): three timed rounds are plenty.
    benchmark={"min_rounds": 3},
    work=("epochs", lambda p: BLOCK),
    measures=overhead_measures,
    flops=lambda p: 0.0,  # matplotlib and file I/O: no tensor arithmetic to count
    devices=CPU_ONLY,
    warmup_calls=0,
    time_limit_s=3600,
    claims=[
        Claim("G6", "Per-epoch visualization costs 2–5 s (here per 5-epoch block: 10–25 s)", metric="seconds",
              expected=(10.0, 25.0), at=AT_30, hardware=NOTE_HARDWARE),
        Claim("G6b", "Drawing every 5th epoch cuts the visualization overhead by ~80 %",
              metric="time_reduction", variant="figure_every5", expected=(0.75, 0.85), at=AT_30),
        Claim("G8", "Per-epoch CSV logging of 500 samples costs 0.1–0.5 s (here per 5-epoch block: "
              "0.5–2.5 s)", metric="seconds", variant="csv", expected=(0.5, 2.5), at=AT_30,
              hardware=NOTE_HARDWARE),
        Claim("G8b", ".npy is ~3× smaller than CSV", metric="extra_ratio", variant="npy", baseline="csv",
              extra="artifact_bytes", expected=(2.5, 3.5), at=AT_30),
    ],
))
