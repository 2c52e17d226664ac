"""SeqSetVAE training-pipeline cases: DataLoader, gradient accumulation, sequence cap, collapse-monitor
frequency and all techniques together (SEEDS.md 001, claims S2, S4, S6-S8; sizes and claim bands as
in suites/seqsetvae.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch

from bench import Case, Claim, Grid, MeasureContext, Tolerance, Variant, register, relative_error
from models.seqsetvae import (
    OPTIMIZED,
    ORIGINAL,
    MonitorConfig,
    PatientDataset,
    PosteriorCollapseMonitor,
    Recipe,
    build_trainer,
    cohort_dir,
    cohort_preset,
    collate_padded,
    counted_flops,
    load_patients,
    loader_epochs,
    loader_settings,
    model_preset,
    train_batches,
    train_epoch,
    train_monitored,
    train_step_padded,
)

Params = Mapping[str, Any]


def _trainer_and_patients(
    params: Params, device: str, count: int, max_events: int | None = None, **cohort: int
) -> dict[str, Any]:
    spec = cohort_preset(params["size"], **cohort)
    patients = load_patients(spec, count, max_events=max_events, device=device)
    return {"trainer": build_trainer(model_preset(params["size"]), device), "patients": patients}


def loss_quality(ref: torch.Tensor, var: torch.Tensor) -> dict[str, float]:
    return {"loss_rel_diff": relative_error(ref, var)}


# -- DataLoader ------------------------------------------------------------------------------


def _loader_setup(params: Params, device: str) -> dict[str, Any]:
    spec = cohort_preset(params["size"], patients=params["patients"])
    settings = loader_settings(params["batch"], params["loader"])
    return {"dataset": PatientDataset(cohort_dir(spec)), "settings": settings, "epochs": params["epochs"],
            "device": device}


def _loader_measures(ctx: MeasureContext) -> dict[str, float]:
    # Worker processes are invisible to the harness's RSS probe of this process: one more pass
    # samples the memory (PSS) of the whole process tree mid-epoch.
    samples: list[int] = []
    inputs = ctx.inputs
    loader_epochs(inputs["dataset"], inputs["settings"], 1, device=inputs["device"], memory=samples)
    return {"process_tree_pss_mb": max(samples) / 2**20}


def _loader(spec: str, note: str) -> Variant:
    # Only the loader changes: the data delivered must be identical, so the variant is exact.
    return Variant(loader_epochs, params={"loader": spec}, note=note)


register(Case(
    name="seqsetvae.dataloader",
    description="Epochs over the Parquet cohort through a DataLoader (read, decode, embed, z-score, pad; "
                "no model: seqsetvae.combined trains behind the loaders). "
                "This machine has 2 cores: 8 workers oversubscribe it. pin_memory acts only with CUDA "
                "(it is skipped on a CPU-only machine).",
    setup=_loader_setup,
    reference=loader_epochs,
    flops=counted_flops(_loader_setup, loader_epochs, "train"),
    variants={
        "workers2": _loader("w2", "2 workers"),
        "workers8": _loader("w8", "8 workers"),
        "workers2_pin": _loader("w2-pin", "2 workers, pin_memory"),
        "workers2_persistent": _loader("w2-persistent", "2 persistent workers"),
        "workers2_prefetch4": _loader("w2-prefetch4", "2 workers, prefetch 4"),
        "workers8_all": _loader("w8-pin-persistent-prefetch4",
                                "8 persistent workers, pin_memory, prefetch 4"),
    },
    mode="forward",
    grids={"quick": Grid(size=["quick"], patients=[16], batch=[4], epochs=[2], loader=["w0"]),
           "full": Grid(size=["full"], patients=[64], batch=[4], epochs=[2], loader=["w0"])},
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
    return _trainer_and_patients(params, device, params["batch"] * params["batches"])


def batches_of(inputs: Mapping[str, Any], params: Params) -> dict[str, Any]:
    """The patients as padded batches of ``batch``."""
    patients, b = inputs["patients"], params["batch"]
    return {"trainer": inputs["trainer"],
            "batches": [collate_padded(patients[i:i + b]) for i in range(0, len(patients), b)]}


def one_batch(inputs: Mapping[str, Any], params: Params) -> dict[str, Any]:
    """All the patients as one padded batch."""
    return {"trainer": inputs["trainer"], "batch": collate_padded(inputs["patients"])}


def step_loss(trainer: Any, batch: Any) -> torch.Tensor:
    """One padded step on the batch; its loss."""
    return train_step_padded(trainer, batch).loss


register(Case(
    name="seqsetvae.grad_accumulation",
    description="Training over `batches` padded batches of `batch` patients: an optimizer step per batch "
                "(reference) vs accumulate_grad_batches=2 vs one batch of all of them.",
    setup=_accum_setup,
    reference=Variant(train_batches, prepare=batches_of),
    # The reference's count is declared for every implementation: the same training work.
    flops=counted_flops(_accum_setup, train_batches, "train", prepare=batches_of),
    variants={
        "accumulate2": Variant(train_batches, prepare=batches_of, kwargs={"accumulate": 2}, exact=False,
                               quality=loss_quality, note="one optimizer step per 2 batches"),
        "one_batch": Variant(step_loss, prepare=one_batch, exact=False, quality=loss_quality,
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
    inputs = _trainer_and_patients(params, device, params["batch"], cap, **LONG_COHORT[params["size"]])
    return one_batch(inputs, params)


def step_with_events(trainer: Any, batch: Any) -> dict[str, torch.Tensor]:
    out = train_step_padded(trainer, batch)
    return {"loss": out.loss, "events": torch.tensor(float(batch.n_events))}


def cap_quality(ref: Mapping[str, torch.Tensor], var: Mapping[str, torch.Tensor]) -> dict[str, float]:
    return {"events_kept": float(var["events"] / ref["events"]),
            "loss_rel_diff": relative_error(ref["loss"], var["loss"])}


def _cap(events: int) -> Variant:
    return Variant(step_with_events, exact=False, params={"max_events": events}, quality=cap_quality,
                   note=f"at most {events} events per patient")


register(Case(
    name="seqsetvae.seq_cap",
    description="Padded training step on long patients, uncapped vs the note's max sequence length "
                "(1000 / 500 events; the newest whole sets are kept).",
    setup=_cap_setup,
    reference=step_with_events,
    flops=counted_flops(_cap_setup, step_with_events, "train"),
    variants={"cap1000": _cap(1000), "cap500": _cap(500)},
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
    inputs = _trainer_and_patients(params, device, params["batch"])
    return {"trainer": inputs["trainer"], "batches": [collate_padded([p]) for p in inputs["patients"]],
            "steps": params["steps"]}


def monitor_every(every: int) -> Any:
    """A ``prepare`` adding a monitor updating every ``every // scale`` steps (the note pairs each
    update frequency with plots ten times rarer)."""

    def prepare(inputs: Mapping[str, Any], params: Params) -> dict[str, Any]:
        scale = params["scale"]
        config = MonitorConfig(update_every=max(1, every // scale), plot_every=max(1, 10 * every // scale))
        return {**inputs, "monitor": PosteriorCollapseMonitor(config)}

    return prepare


def _monitor_measures(ctx: MeasureContext) -> dict[str, float]:
    steps, monitor = ctx.params["steps"], ctx.arguments["monitor"]
    monitors = [monitor] if monitor is not None else []
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
    reference=Variant(train_monitored, prepare=monitor_every(50)),
    # The reference's count stands for every implementation: the monitor adds no matrix products.
    flops=counted_flops(_monitor_setup, train_monitored, "train", prepare=monitor_every(50)),
    variants={"every100": Variant(train_monitored, prepare=monitor_every(100)),
              "every200": Variant(train_monitored, prepare=monitor_every(200)),
              "off": Variant(train_monitored, kwargs={"monitor": None})},
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
            "device": device}


def recipe(base: Recipe) -> Any:
    """A ``prepare`` adding the recipe, its monitor and plot frequencies divided by ``scale``."""

    def prepare(inputs: Mapping[str, Any], params: Params) -> dict[str, Any]:
        scaled, scale = base, params["scale"]
        if base.monitor_every is not None:
            scaled = replace(base, monitor_every=max(1, base.monitor_every // scale),
                             plot_every=max(1, base.plot_every // scale))
        return {**inputs, "recipe": scaled}

    return prepare


def _epoch(base: Recipe, **fields: Any) -> Variant:
    flops = counted_flops(_combined_setup, train_epoch, "train", prepare=recipe(base))
    return Variant(train_epoch, prepare=recipe(base), flops=flops, **fields)


register(Case(
    name="seqsetvae.combined",
    description="One training epoch: the note's starting point (batch 1 with per-set loops, 2 workers, fp32, "
                "no cap, monitor every 50) vs its recommended command line (batch 4 padded, 8 workers, "
                "pinning, "
                "accumulation 2, cap 1000, mixed precision, monitor every 100). Different training runs: "
                "the epoch losses are compared, not matched.",
    setup=_combined_setup,
    reference=_epoch(ORIGINAL),
    variants={
        "optimized": _epoch(OPTIMIZED, exact=False, quality=loss_quality, note="all techniques"),
        "optimized_fp32": _epoch(replace(OPTIMIZED, mixed_precision=False), exact=False, quality=loss_quality,
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
