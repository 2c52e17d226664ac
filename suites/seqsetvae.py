"""SeqSetVAE cases: per-set loops vs dynamic padding, precision, compile, DataLoader, accumulation,
sequence cap, collapse-monitor frequency and all techniques together (SEEDS.md 001, claims S1-S9).

Sizes. ``quick``: the 768-d embeddings are kept, the rest shrinks (reduced and latent 64, 2
Transformer layers of 4 heads, ff 128; patients of 6-16 sets of 1-50 events). ``full``: the
note's sizes (reduced and latent 256, 4 layers of 8 heads, ff 512; 20-200 sets of 1-50 events).

Percent claims ("30-50 % faster") are read as time reductions (docs/cases.md); a single figure
gets a band: +-5 points for a percentage, +-10 % for a ratio. Absolute GB figures become ratios.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from bench import Case, Claim, Grid, Tolerance, Variant, register
from models.seqsetvae import (
    LoaderSettings,
    MonitorConfig,
    PosteriorCollapseMonitor,
    StepOutput,
    Trainer,
    build_trainer,
    cohort_dir,
    cohort_preset,
    collate_padded,
    concat_parts,
    load_patients,
    loader_epochs,
    loss_padded,
    loss_reference,
    model_preset,
    train_batches,
    train_monitored,
    train_step_micro,
    train_step_padded,
    train_step_reference,
)
from models.seqsetvae.data import PatientDataset
from models.seqsetvae.recipes import OPTIMIZED, ORIGINAL, Recipe, train_epoch
from models.seqsetvae.training import train_step_amp

Params = Mapping[str, Any]
GPU_NOTE = "the note's GPU (A100/V100)"


class _MatmulFlops(TorchDispatchMode):
    """FlopCounterMode's formulas without its module tracker, whose per-module hooks cost
    milliseconds per call: ~30 s to count the per-set reference's thousands of small modules."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += int(formula(*args, **kwargs, out_val=out))
        return out


def counted_flops(setup: Any, fn: Any, mode: str) -> Any:
    """A ``flops`` callable: build the inputs and count one call of ``fn`` (cached per point)."""
    cache: dict[tuple, float] = {}

    def flops(params: Params) -> float:
        key = tuple(sorted(params.items()))
        if key not in cache:
            inputs = setup(dict(params), "cpu")
            counter = _MatmulFlops()
            with counter, torch.set_grad_enabled(mode != "forward"):
                fn(**inputs)
            cache[key] = float(counter.total)
        return cache[key]

    return flops


def _patients_for(params: Params, device: str, *, max_events: int | None = None, **cohort: int) -> list:
    spec = cohort_preset(params["size"], **cohort)
    return load_patients(spec, params["batch"], max_events=max_events, device=device)


def _batching_setup(params: Params, device: str) -> dict[str, Any]:
    patients = _patients_for(params, device)
    return {
        "trainer": build_trainer(model_preset(params["size"]), device),
        "patients": patients,
        "batch": collate_padded(patients),
        "micro": [collate_padded([p]) for p in patients],
    }


# -- forward and train step: the same B patients, one at a time with per-set loops vs padded ------


def forward_per_set(trainer: Trainer, patients: list, batch: Any, micro: list) -> Any:
    return loss_reference(trainer, patients)


def forward_padded(trainer: Trainer, patients: list, batch: Any, micro: list) -> Any:
    return loss_padded(trainer, batch)


def forward_padded_micro1(trainer: Trainer, patients: list, batch: Any, micro: list) -> Any:
    return concat_parts([loss_padded(trainer, b) for b in micro])


def step_per_set(trainer: Trainer, patients: list, batch: Any, micro: list) -> StepOutput:
    return train_step_reference(trainer, patients)


def step_padded(trainer: Trainer, patients: list, batch: Any, micro: list) -> StepOutput:
    return train_step_padded(trainer, batch)


def step_padded_micro1(trainer: Trainer, patients: list, batch: Any, micro: list) -> StepOutput:
    return train_step_micro(trainer, micro)


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
    setup=_batching_setup,
    reference=forward_per_set,
    variants={
        "padded": Variant(forward_padded, flops=counted_flops(_batching_setup, forward_padded, "forward")),
        "padded_micro1": Variant(forward_padded_micro1,
                                 flops=counted_flops(_batching_setup, forward_padded_micro1, "forward")),
    },
    flops=counted_flops(_batching_setup, forward_per_set, "forward"),
    mode="forward",
    grids={"quick": Grid(size=["quick"], batch=[8]), "full": FULL_BATCHES},
    tolerance=Tolerance(rtol=1e-4, atol=1e-4),
    work=("patients", lambda p: p["batch"]),
    warmup_calls=0,
    benchmark={"min_rounds": 3},
    time_limit_s=600,
))

register(Case(
    name="seqsetvae.train_step",
    description="SeqSetVAE training step (forward, backward, AdamW) over B patients. " + BATCH_NOTE,
    setup=_batching_setup,
    reference=step_per_set,
    variants={
        "padded": Variant(step_padded, flops=counted_flops(_batching_setup, step_padded, "train")),
        "padded_micro1": Variant(step_padded_micro1,
                                 flops=counted_flops(_batching_setup, step_padded_micro1, "train")),
    },
    flops=counted_flops(_batching_setup, step_per_set, "train"),
    mode="train_step",
    grids={"quick": Grid(size=["quick"], batch=[4, 16]), "full": FULL_BATCHES},
    tolerance=Tolerance(rtol=1e-3, atol=1e-4),
    work=("patients", lambda p: p["batch"]),
    warmup_calls=0,
    benchmark={"min_rounds": 3},
    time_limit_s=600,
    claims=[
        Claim("S1", "Batch size 1 -> 4: 30-50 % faster", metric="time_reduction", variant="padded",
              baseline="padded_micro1", expected=(0.30, 0.50), at={"batch": 4}),
        Claim("S1.mem", "Batch size 1 -> 4: +50 % memory", metric="memory_increase", variant="padded",
              baseline="padded_micro1", expected=(0.45, 0.55), at={"batch": 4}),
        Claim("S9.b4", "Relative speed at batch 4 vs 1: 2.5x", metric="speedup", variant="padded",
              baseline="padded_micro1", expected=(2.25, 2.75), at={"batch": 4}),
        Claim("S9.b8", "Relative speed at batch 8 vs 1: 4.0x", metric="speedup", variant="padded",
              baseline="padded_micro1", expected=(3.6, 4.4), at={"batch": 8}),
        Claim("S9.b16", "Relative speed at batch 16 vs 1: 6.0x", metric="speedup", variant="padded",
              baseline="padded_micro1", expected=(5.4, 6.6), at={"batch": 16}),
        Claim("S9.mem4", "Memory 2.5 GB (batch 1) -> 6.0 GB (batch 4) on the note's GPU: checked as the "
              "ratio, +140 %", metric="memory_increase", variant="padded", baseline="padded_micro1",
              expected=(1.26, 1.54), at={"batch": 4}),
        Claim("S9.mem8", "Memory 2.5 GB (batch 1) -> 12.0 GB (batch 8) on the note's GPU: checked as the "
              "ratio, +380 %", metric="memory_increase", variant="padded", baseline="padded_micro1",
              expected=(3.42, 4.18), at={"batch": 8}),
        Claim("issue5", "Issue 5 target: padded batch 16 at least 5x faster per patient than the per-set "
              "reference, same loss", metric="speedup", variant="padded", expected=(5.0, math.inf),
              at={"batch": 16}),
    ],
))


# -- precision ---------------------------------------------------------------------------------


def _padded_setup(params: Params, device: str) -> dict[str, Any]:
    patients = _patients_for(params, device)
    return {"trainer": build_trainer(model_preset(params["size"]), device), "batch": collate_padded(patients)}


def step_fp32(trainer: Trainer, batch: Any) -> StepOutput:
    return train_step_padded(trainer, batch)


def step_amp(trainer: Trainer, batch: Any) -> StepOutput:
    return train_step_amp(trainer, batch)


def step_quality(ref: StepOutput, var: StepOutput) -> dict[str, float]:
    """Loss difference and how far the gradients moved (relative norm, cosine)."""
    ref_g = torch.cat([g.flatten().double() for g in ref.grads])
    var_g = torch.cat([g.flatten().double() for g in var.grads])
    return {
        "loss_rel_diff": float((var.loss.double() - ref.loss.double()).abs() / ref.loss.double().abs()),
        "grad_rel_err": float((var_g - ref_g).norm() / ref_g.norm()),
        "grad_cosine": float(torch.nn.functional.cosine_similarity(var_g, ref_g, dim=0)),
    }


register(Case(
    name="seqsetvae.precision",
    description="Padded training step in float32 vs autocast (bfloat16 on CPU, float16 + GradScaler on "
                "CUDA).",
    setup=_padded_setup,
    reference=step_fp32,
    flops=counted_flops(_padded_setup, step_fp32, "train"),
    variants={"autocast": Variant(step_amp, exact=False, quality=step_quality,
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
    patients = _patients_for(params, device)
    trainer = build_trainer(model_preset(params["size"]), device, compile_model=True)
    return {"trainer": trainer, "batch": collate_padded(patients)}


def step_compiled(trainer: Trainer, batch: Any) -> StepOutput:
    return train_step_padded(trainer, batch, use_compiled=True)


def _compile_measures(inputs: Mapping[str, Any], output: Any, params: Params) -> dict[str, float]:
    trainer: Trainer = inputs["trainer"]
    return {"compile_first_call_s": trainer.first_compiled_call_s or 0.0}


register(Case(
    name="seqsetvae.compile",
    description="Padded training step, eager vs torch.compile (inductor, static shapes). The first call "
                "compiles: it is recorded as first_call_s and as the extra compile_first_call_s. Quick uses "
                "the tiny model (one level, one Transformer layer, latent 32): compile time grows with the "
                "graph, and a cold inductor cache costs minutes on 2 cores.",
    setup=_compile_setup,
    reference=step_fp32,
    flops=counted_flops(_compile_setup, step_fp32, "train"),  # the same arithmetic compiled or not
    variants={"compiled": Variant(step_compiled, tolerance=Tolerance(rtol=2e-3, atol=1e-3))},
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


# -- DataLoader ------------------------------------------------------------------------------


def loader_settings(batch: int, spec: str) -> LoaderSettings:
    """"w2-pin-persistent-prefetch4" -> LoaderSettings (workers, then optional flags)."""
    head, *flags = spec.split("-")
    if not head.startswith("w") or not head[1:].isdigit():
        raise ValueError(f"loader spec {spec!r} must start with w<workers>")
    prefetch = next((int(f[len("prefetch"):]) for f in flags if f.startswith("prefetch")), None)
    unknown = [f for f in flags if f not in ("pin", "persistent") and not f.startswith("prefetch")]
    if unknown:
        raise ValueError(f"loader spec {spec!r}: unknown flags {unknown}")
    return LoaderSettings(batch=batch, workers=int(head[1:]), pin_memory="pin" in flags,
                          persistent="persistent" in flags, prefetch=prefetch)


def _loader_setup(params: Params, device: str) -> dict[str, Any]:
    spec = cohort_preset(params["size"], patients=params["patients"])
    return {"dataset": PatientDataset(cohort_dir(spec)),
            "settings": loader_settings(params["batch"], params["loader"]),
            "epochs": params["epochs"], "device": device}


def load_epochs(dataset: PatientDataset, settings: LoaderSettings, epochs: int, device: str) -> torch.Tensor:
    return loader_epochs(dataset, settings, epochs, device=device)


def _loader_measures(inputs: Mapping[str, Any], output: Any, params: Params) -> dict[str, float]:
    # Worker processes are invisible to the harness's RSS probe of this process: one more pass
    # samples the memory (PSS) of the whole process tree mid-epoch.
    samples: list[int] = []
    loader_epochs(inputs["dataset"], inputs["settings"], 1, device=inputs["device"], memory=samples)
    return {"process_tree_pss_mb": max(samples) / 2**20}


def _loader_variant(spec: str, note: str) -> Variant:
    # Only the loader changes: the data delivered must be identical, so the variant is exact.
    return Variant(load_epochs, params={"loader": spec}, note=note)


register(Case(
    name="seqsetvae.dataloader",
    description="Epochs over the Parquet cohort through a DataLoader (read, decode, embed, z-score, pad; "
                "no model: seqsetvae.combined trains behind the loaders). "
                "This machine has 2 cores: 8 workers oversubscribe it. pin_memory acts only with CUDA "
                "(it is skipped on a CPU-only machine).",
    setup=_loader_setup,
    reference=load_epochs,
    flops=counted_flops(_loader_setup, load_epochs, "train"),
    variants={
        "workers2": _loader_variant("w2", "2 workers"),
        "workers8": _loader_variant("w8", "8 workers"),
        "workers2_pin": _loader_variant("w2-pin", "2 workers, pin_memory"),
        "workers2_persistent": _loader_variant("w2-persistent", "2 persistent workers"),
        "workers2_prefetch4": _loader_variant("w2-prefetch4", "2 workers, prefetch 4"),
        "workers8_all": _loader_variant("w8-pin-persistent-prefetch4",
                                        "8 persistent workers, pin_memory, prefetch 4"),
    },
    mode="forward",
    grids={
        "quick": Grid(size=["quick"], patients=[16], batch=[4], epochs=[2], loader=["w0"]),
        "full": Grid(size=["full"], patients=[64], batch=[4], epochs=[2], loader=["w0"]),
    },
    work=("patients", lambda p: p["patients"] * p["epochs"]),
    measures=_loader_measures,
    warmup_calls=0,
    benchmark={"min_rounds": 3},
    claims=[
        Claim("S2", "DataLoader workers 2 -> 8: 20-30 % faster", metric="time_reduction", variant="workers8",
              baseline="workers2", expected=(0.20, 0.30)),
        Claim("S2.mem", "DataLoader workers 2 -> 8: +10 % memory (checked as workers2 / workers8 memory "
              "(PSS) of the process tree: +10 % is 0.91)", metric="extra_ratio", extra="process_tree_pss_mb",
              variant="workers8", baseline="workers2", expected=(0.87, 0.95)),
    ],
))


# -- gradient accumulation -------------------------------------------------------------------


def _accum_setup(params: Params, device: str) -> dict[str, Any]:
    n = params["batch"] * params["batches"]
    patients = _patients_for({**params, "batch": n}, device)
    b = params["batch"]
    return {
        "trainer": build_trainer(model_preset(params["size"]), device),
        "batches": [collate_padded(patients[i:i + b]) for i in range(0, n, b)],
        "whole": collate_padded(patients),
    }


def steps_each_batch(trainer: Trainer, batches: list, whole: Any) -> torch.Tensor:
    return train_batches(trainer, batches, accumulate=1)


def steps_accumulate2(trainer: Trainer, batches: list, whole: Any) -> torch.Tensor:
    return train_batches(trainer, batches, accumulate=2)


def step_one_big_batch(trainer: Trainer, batches: list, whole: Any) -> torch.Tensor:
    return train_step_padded(trainer, whole).loss


def loss_quality(ref: torch.Tensor, var: torch.Tensor) -> dict[str, float]:
    return {"loss_rel_diff": float((var.double() - ref.double()).abs() / ref.double().abs())}


register(Case(
    name="seqsetvae.grad_accumulation",
    description="Training over `batches` padded batches of `batch` patients: an optimizer step per batch "
                "(reference) vs accumulate_grad_batches=2 vs one batch of all of them.",
    setup=_accum_setup,
    reference=steps_each_batch,
    flops=counted_flops(_accum_setup, steps_each_batch, "train"),
    variants={
        "accumulate2": Variant(steps_accumulate2, exact=False, quality=loss_quality,
                               note="one optimizer step per 2 batches"),
        "one_batch": Variant(step_one_big_batch, exact=False, quality=loss_quality,
                             note="one padded batch of all patients"),
    },
    mode="train_step",
    grids={"quick": Grid(size=["quick"], batch=[4], batches=[2]),
           "full": Grid(size=["full"], batch=[4], batches=[2])},
    work=("patients", lambda p: p["batch"] * p["batches"]),
    warmup_calls=0,
    claims=[Claim("S4", "Gradient accumulation: 10-20 % faster", metric="time_reduction",
                  variant="accumulate2", expected=(0.10, 0.20))],
))


# -- sequence-length cap ---------------------------------------------------------------------

# Long patients, so that the caps act: 40-80 sets (quick) or the full 20-200, ~25 events per set.
LONG_COHORT = {"quick": {"min_sets": 40, "max_sets": 80}, "full": {}}


def _cap_setup(params: Params, device: str) -> dict[str, Any]:
    cap = params["max_events"] or None
    patients = _patients_for(params, device, max_events=cap, **LONG_COHORT[params["size"]])
    return {"trainer": build_trainer(model_preset(params["size"]), device), "batch": collate_padded(patients)}


def step_with_events(trainer: Trainer, batch: Any) -> dict[str, torch.Tensor]:
    out = train_step_padded(trainer, batch)
    return {"loss": out.loss, "events": torch.tensor(float(batch.n_events))}


def cap_quality(ref: Mapping[str, torch.Tensor], var: Mapping[str, torch.Tensor]) -> dict[str, float]:
    return {"events_kept": float(var["events"] / ref["events"]),
            "loss_rel_diff": float((var["loss"] - ref["loss"]).abs() / ref["loss"].abs())}


register(Case(
    name="seqsetvae.seq_cap",
    description="Padded training step on long patients, uncapped vs the note's max sequence length "
                "(1000 / 500 events; the newest whole sets are kept).",
    setup=_cap_setup,
    reference=step_with_events,
    flops=counted_flops(_cap_setup, step_with_events, "train"),
    variants={
        "cap1000": Variant(step_with_events, exact=False, params={"max_events": 1000}, quality=cap_quality,
                           note="at most 1000 events per patient"),
        "cap500": Variant(step_with_events, exact=False, params={"max_events": 500}, quality=cap_quality,
                          note="at most 500 events per patient"),
    },
    mode="train_step",
    grids={"quick": Grid(size=["quick"], batch=[2], max_events=[0]),
           "full": Grid(size=["full"], batch=[4], max_events=[0])},
    work=("patients", lambda p: p["batch"]),
    warmup_calls=0,
    claims=[
        Claim("S7", "Sequence-length cap (1000): 20-40 % faster", metric="time_reduction", variant="cap1000",
              expected=(0.20, 0.40)),
        Claim("S7.mem", "Sequence-length cap (1000): -40 % memory", metric="memory_reduction",
              variant="cap1000", expected=(0.35, 0.45)),
    ],
))


# -- collapse monitor frequency --------------------------------------------------------------


def _monitor_setup(params: Params, device: str) -> dict[str, Any]:
    patients = _patients_for(params, device)
    return {"trainer": build_trainer(model_preset(params["size"]), device),
            "batches": [collate_padded([p]) for p in patients], "steps": params["steps"],
            "scale": params["scale"], "monitors": {}}


def _monitored(every: int | None) -> Any:
    def run(trainer: Trainer, batches: list, steps: int, scale: int, monitors: dict) -> torch.Tensor:
        monitor = None
        if every is not None:
            if every not in monitors:
                # The note pairs each update frequency with plots ten times rarer.
                cfg = MonitorConfig(update_every=max(1, every // scale),
                                    plot_every=max(1, 10 * every // scale))
                monitors[every] = PosteriorCollapseMonitor(cfg)
            monitor = monitors[every]
        return train_monitored(trainer, batches, steps, monitor)

    run.__name__ = f"monitor_every{every}" if every else "monitor_off"
    return run


def _monitor_measures(inputs: Mapping[str, Any], output: Any, params: Params) -> dict[str, float]:
    steps, monitors = params["steps"], list(inputs["monitors"].values())
    return {"updates_per_call": float(sum(steps // m.cfg.update_every for m in monitors)),
            "plots_per_call": float(sum(steps // m.cfg.plot_every for m in monitors))}


register(Case(
    name="seqsetvae.monitor",
    description="`steps` padded training steps (batch 1) with the posterior-collapse monitor updating every "
                "50 (reference; plots every 500) vs 100/1000 vs 200/2000 steps vs off. Frequencies are "
                "divided by `scale` so a call holds several updates: quick (10 steps, scale 20: 5 / 2 / 1 "
                "updates, no plot) overstates the updates' share and leaves plotting out; full (200 steps, "
                "scale 4) includes one plot for the reference.",
    setup=_monitor_setup,
    reference=_monitored(50),
    flops=counted_flops(_monitor_setup, _monitored(50), "train"),
    variants={"every100": _monitored(100), "every200": _monitored(200), "off": _monitored(None)},
    mode="train_step",
    grids={"quick": Grid(size=["quick"], batch=[2], steps=[10], scale=[20]),
           "full": Grid(size=["full"], batch=[4], steps=[200], scale=[4])},
    tolerance=Tolerance(rtol=1e-5, atol=1e-5),
    work=("steps", lambda p: p["steps"]),
    measures=_monitor_measures,
    warmup_calls=0,
    claims=[
        Claim("S6", "Lower monitoring frequency (50 -> 100 steps): 5-15 % faster", metric="time_reduction",
              variant="every100", expected=(0.05, 0.15)),
        Claim("S6.mem", "Lower monitoring frequency: -10 % memory", metric="memory_reduction",
              variant="every100", expected=(0.05, 0.15)),
    ],
))


# -- all together ----------------------------------------------------------------------------


def _combined_setup(params: Params, device: str) -> dict[str, Any]:
    spec = cohort_preset(params["size"], patients=params["patients"])
    return {"trainer": build_trainer(model_preset(params["size"]), device), "root": cohort_dir(spec),
            "device": device, "scale": params["scale"]}


def _scaled(recipe: Recipe, scale: int) -> Recipe:
    if recipe.monitor_every is None:
        return recipe
    return replace(recipe, monitor_every=max(1, recipe.monitor_every // scale),
                   plot_every=max(1, recipe.plot_every // scale))


def epoch_original(trainer: Trainer, root: Any, device: str, scale: int) -> torch.Tensor:
    return train_epoch(trainer, root, _scaled(ORIGINAL, scale), device=device)


def epoch_optimized(trainer: Trainer, root: Any, device: str, scale: int) -> torch.Tensor:
    return train_epoch(trainer, root, _scaled(OPTIMIZED, scale), device=device)


def epoch_optimized_fp32(trainer: Trainer, root: Any, device: str, scale: int) -> torch.Tensor:
    recipe = _scaled(replace(OPTIMIZED, mixed_precision=False), scale)
    return train_epoch(trainer, root, recipe, device=device)


register(Case(
    name="seqsetvae.combined",
    description="One training epoch: the note's starting point (batch 1 with per-set loops, 2 workers, fp32, "
                "no cap, monitor every 50) vs its recommended command line (batch 4 padded, 8 workers, "
                "pinning, "
                "accumulation 2, cap 1000, mixed precision, monitor every 100). Different training runs: "
                "the epoch losses are compared, not matched.",
    setup=_combined_setup,
    reference=epoch_original,
    flops=counted_flops(_combined_setup, epoch_original, "train"),
    variants={
        "optimized": Variant(epoch_optimized, exact=False, quality=loss_quality, note="all techniques",
                             flops=counted_flops(_combined_setup, epoch_optimized, "train")),
        "optimized_fp32": Variant(epoch_optimized_fp32, exact=False, quality=loss_quality,
                                  flops=counted_flops(_combined_setup, epoch_optimized_fp32, "train"),
                                  note="all but mixed precision"),
    },
    mode="train_step",
    grids={"quick": Grid(size=["quick"], patients=[8], scale=[10]),
           "full": Grid(size=["full"], patients=[64], scale=[1])},
    work=("patients", lambda p: p["patients"]),
    warmup_calls=0,
    benchmark={"min_rounds": 3},
    time_limit_s=600,
    claims=[Claim("S8", "All together: 2-3x faster training", metric="speedup", variant="optimized",
                  expected=(2.0, 3.0))],
))
