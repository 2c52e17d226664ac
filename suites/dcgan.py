"""DCGAN channel-width cases: parameter counts, training steps per width, fast steps, EMA, checkpoints."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import torch

from bench import Case, Claim, Grid, MeasureContext, Tolerance, Variant, max_abs_error, register
from models.dcgan import (
    AUTOCAST,
    CHANNELS_LAST,
    COMPILED,
    WIDTHS,
    DCGANConfig,
    Discriminator,
    GANTraining,
    Generator,
    ScratchFile,
    StepLosses,
    StepOptions,
    TrainConfig,
    build_generator,
    build_training,
    checkpoint_roundtrip,
    ema_bytes,
    ema_copy,
    ema_roundtrip,
    ema_update_flat,
    ema_update_foreach,
    ema_update_foreach_mul_add,
    ema_update_loop,
    ema_update_loop_lerp,
    flatten_parameters,
    gan_parameter_counts,
    materialize_optimizer_state,
    parameter_count,
    train_step,
)

MB = 1e6


def about(value: float, rel: float = 0.05) -> tuple[float, float]:
    """The range a "~value" figure stands for: value +- rel (5 %: the note gives two digits)."""
    return (value * (1 - rel), value * (1 + rel))


def _counts(generator: torch.nn.Module, discriminator: torch.nn.Module) -> dict[str, float]:
    counts = gan_parameter_counts(generator, discriminator)
    return {**counts, "total_params": counts["g_params"] + counts["d_params"]}


# -- dcgan.params ------------------------------------------------------------------------------


def params_setup(params: Mapping[str, Any], device: str) -> dict[str, Any]:
    # Counting needs shapes, not numbers: weightless (meta) modules build in milliseconds. Spectral
    # norm is left out here: its power iterations are slow on meta tensors and it adds no parameter
    # (tests/models/test_dcgan.py checks that the counts are equal with and without it).
    config = DCGANConfig(
        width=params["width"], attention=params["attention"], sn_generator=False, sn_discriminator=False
    )
    with torch.device("meta"):
        return {"generator": Generator(config), "discriminator": Discriminator(config)}


def params_measures(ctx: MeasureContext) -> dict[str, float]:
    return _counts(ctx.inputs["generator"], ctx.inputs["discriminator"])


def _count_claim(cid: str, text: str, extra: str, width: int, value: float) -> Claim:
    at = {"width": width, "attention": True}
    return Claim(cid, text, metric="extra", extra=extra, expected=about(value), at=at)


register(Case(
    name="dcgan.params",
    description=(
        "Parameter counts of G and D per width, counted from the tensors (sum of numel) of weightless "
        "(meta) models, with SAGAN self-attention (reference) and without (variant no_attention). "
        "Extras g_params / d_params / total_params; the claims judge the model with attention (the "
        "note's model) against the note's figures (+-5 %). The timing is of the count itself."
    ),
    setup=params_setup,
    reference=gan_parameter_counts,
    variants={"no_attention": Variant(gan_parameter_counts, exact=False, params={"attention": False},
                                      note="plain DCGAN: no self-attention blocks")},
    grids={profile: Grid(width=list(WIDTHS), attention=[True]) for profile in ("quick", "full")},
    mode="forward",
    measures=params_measures,
    devices=("cpu",),  # counts do not depend on the device
    claims=[
        _count_claim("D1", "Total parameters at width 64 ~5.1 M", "total_params", 64, 5.1e6),
        _count_claim("D1-G", "Generator parameters at width 64 ~2.4 M", "g_params", 64, 2.4e6),
        _count_claim("D1-D", "Discriminator parameters at width 64 ~2.7 M", "d_params", 64, 2.7e6),
        _count_claim("D2", "Total parameters at width 96 ~11.5 M (+125 %)", "total_params", 96, 11.5e6),
        _count_claim("D2-G", "Generator parameters at width 96 ~5.4 M", "g_params", 96, 5.4e6),
        _count_claim("D2-D", "Discriminator parameters at width 96 ~6.1 M", "d_params", 96, 6.1e6),
        _count_claim("D3", "Total parameters at width 128 ~20.4 M", "total_params", 128, 20.4e6),
        _count_claim("D3-80", "Total parameters at width 80 ~7.2 M", "total_params", 80, 7.2e6),
    ],
    time_limit_s=120,
))


# -- dcgan.train_step --------------------------------------------------------------------------


def training_setup(params: Mapping[str, Any], device: str) -> dict[str, GANTraining]:
    config = TrainConfig(model=DCGANConfig(width=params["width"]), batch_size=params["batch"])
    return {"training": build_training(config, device)}


def training_measures(ctx: MeasureContext) -> dict[str, float]:
    training: GANTraining = ctx.inputs["training"]
    return _counts(training.generator, training.discriminator)


def _memory_range(low_gb: tuple[float, float], high_gb: tuple[float, float]) -> tuple[float, float]:
    """The note's GPU-memory figures as a growth range over width 64: (min/max - 1, max/min - 1)."""
    return (high_gb[0] / low_gb[1] - 1, high_gb[1] / low_gb[0] - 1)


MEMORY_AT_32 = "GPU memory at batch 32: 5-6 GB (64) ->"
GROWTH = "checked as the growth of one step's peak memory over width 64"

register(Case(
    name="dcgan.train_step",
    description=(
        "One training step: a D step (hinge loss on a real batch from the DataLoader and a detached "
        "fake), a G step (hinge), and the multi-tensor EMA update (decay 0.9999); Adam lr 1e-4, betas "
        "(0, 0.9), weight decay 1e-5. Reference width 64; variants are the other widths, so the "
        "speedup column is the cost ratio per width. Quick runs batch 2 (batch 32 at width 128 "
        "takes seconds per step on 2 cores); full runs the note's batch 32."
    ),
    setup=training_setup,
    reference=train_step,
    variants={f"w{w}": Variant(train_step, exact=False, params={"width": w}, note=f"ngf = ndf = {w}")
              for w in WIDTHS[1:]},
    grids={"quick": Grid(width=[64], batch=[2]), "full": Grid(width=[64], batch=[32])},
    mode="train_step",
    work=("images", lambda p: p["batch"]),
    warmup_calls=0,  # the checked first call already warmed up (and compiled) the step
    measures=training_measures,
    claims=[
        Claim("D4", "Width 96 trains ~40 % slower than width 64 (2.5 -> 3.5 min/epoch on a T4)",
              metric="time_increase", variant="w96", expected=(0.3, 0.5), at={"batch": 32}),
        Claim("D5", f"{MEMORY_AT_32} 7-9 GB (96); {GROWTH}", metric="memory_increase", variant="w96",
              expected=_memory_range((5, 6), (7, 9)), at={"batch": 32}),
        Claim("D5-128", f"{MEMORY_AT_32} 11-13 GB (128); {GROWTH}", metric="memory_increase",
              variant="w128", expected=_memory_range((5, 6), (11, 13)), at={"batch": 32}),
        Claim("D7", "FID 70-80 (64), 60-70 (96), 55-65 (128)", metric="extra", extra="fid", measurable=False,
              reason="FID needs Inception-v3 weights, which cannot be fetched here, and thousands of epochs "
              "on the real 300 images (the data set is synthetic)"),
    ],
    time_limit_s=900,
))


# -- dcgan.train_step_fast / dcgan.train_step_compiled -----------------------------------------


def loss_error(ref: StepLosses, var: StepLosses) -> dict[str, float]:
    """How far a reduced-precision step's losses are from the float32 step's."""
    d_err, g_err = max_abs_error(ref.d_loss, var.d_loss), max_abs_error(ref.g_loss, var.g_loss)
    return {"loss_abs_err": max(d_err, g_err), "d_loss_abs_err": d_err, "g_loss_abs_err": g_err}


def _options(options: StepOptions, note: str, exact: bool = True) -> Variant:
    quality = None if exact else loss_error
    return Variant(train_step, kwargs={"options": options}, exact=exact, quality=quality, note=note)


_AMP_NOTE = "bfloat16 autocast on CPU, float16 + GradScaler on CUDA"
_FAST_GRIDS = {"quick": Grid(width=[96], batch=[2]), "full": Grid(width=[96], batch=[32])}
# Channels-last convolutions take other kernels: the losses agree to float32 rounding, not bits.
_FAST_TOL = Tolerance(rtol=1e-4, atol=1e-5)

register(Case(
    name="dcgan.train_step_fast",
    description=(
        "The width-96 training step (as in dcgan.train_step): eager float32 NCHW (reference), then "
        "channels_last, then channels_last + autocast. Outputs are the two losses of the step; the "
        "autocast variant reports their absolute error. torch.compile is in dcgan.train_step_compiled "
        "(minutes of compilation on CPU, so it is marked slow)."
    ),
    setup=training_setup,
    reference=train_step,
    variants={"channels_last": _options(CHANNELS_LAST, "channels_last G, D, EMA and inputs"),
              "autocast": _options(AUTOCAST, "channels_last + " + _AMP_NOTE, exact=False)},
    grids=_FAST_GRIDS,
    mode="train_step",
    tolerance=_FAST_TOL,
    work=("images", lambda p: p["batch"]),
    warmup_calls=0,  # the checked first call already warmed up (and compiled) the step
    time_limit_s=900,
))

register(Case(
    name="dcgan.train_step_compiled",
    description=(
        "The width-96 training step with G and D wrapped in torch.compile (inductor), on top of "
        "channels_last, in float32 and with autocast. first_call_s includes compilation. The "
        "attention softmax runs in float32 because inductor's bfloat16 softmax backward gave NaN."
    ),
    setup=training_setup,
    reference=train_step,
    variants={
        "compiled": _options(StepOptions(channels_last=True, compile=True),
                             "channels_last + torch.compile, float32"),
        "compiled_autocast": _options(COMPILED, "channels_last + torch.compile + " + _AMP_NOTE, exact=False),
    },
    grids=_FAST_GRIDS,
    mode="train_step",
    tolerance=_FAST_TOL,
    work=("images", lambda p: p["batch"]),
    warmup_calls=0,  # the checked first call already warmed up (and compiled) the step
    markers=("slow",),
    time_limit_s=1800,
))


# -- dcgan.ema ---------------------------------------------------------------------------------


def ema_setup(params: Mapping[str, Any], device: str) -> dict[str, Any]:
    config = DCGANConfig(width=params["width"])
    generator = build_generator(config, seed=0, device=device)  # build_models' G, without D
    ema = ema_copy(generator)
    # A trained EMA lags the weights; start it off them so every update changes every number.
    noise = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in ema.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=noise).to(device))
    # Every implementation gets flattened weights (each parameter a view of one buffer); the
    # per-tensor ones touch the same bytes as on separate tensors, flat_lerp uses the buffers.
    return {"ema": ema, "model": generator, "decay": 0.9999, "ema_flat": flatten_parameters(ema),
            "model_flat": flatten_parameters(generator)}


def ema_step(
    ema: torch.nn.Module, model: torch.nn.Module, decay: float, ema_flat: torch.Tensor,
    model_flat: torch.Tensor, update: Callable[..., None],
) -> list[Any]:
    """One EMA update by ``update``, then the EMA's tensors in a form the harness copies when it
    keeps an output: numpy arrays on the CPU (the returned parameters change under later in-place
    updates), the tensors themselves on CUDA (copied to the host anyway). A few microseconds."""
    if update is ema_update_flat:
        update(ema, model, decay, ema_flat, model_flat)
    else:
        update(ema, model, decay)
    tensors = [*ema.parameters(), *ema.buffers()]
    return [t.numpy() for t in tensors] if tensors[0].device.type == "cpu" else tensors


@cache
def ema_gigabytes(width: int) -> float:
    """GB one EMA update of the width's generator must move (built once per width and process)."""
    with torch.random.fork_rng(devices=[]):  # leave the caller's random stream alone
        generator = Generator(DCGANConfig(width=width))
    return ema_bytes(generator) / 1e9


def ema_measures(ctx: MeasureContext) -> dict[str, float]:
    return {"bytes_moved": ema_bytes(ctx.inputs["model"]), "g_params": parameter_count(ctx.inputs["model"])}


def _update(update: Callable[..., None]) -> Variant:
    return Variant(ema_step, kwargs={"update": update})


register(Case(
    name="dcgan.ema",
    description=(
        "EMA of the generator's weights (decay 0.9999) with buffers copied. Memory-bound: extra "
        "bytes_moved = 3 x 4 bytes per parameter (read EMA and weight, write EMA) + 2 x buffer bytes; "
        "achieved GB/s = bytes_moved / median (the Throughput column: work is declared in GB), "
        "against the run's measured copy bandwidth. The "
        "reference is the usual loop e.mul_(d).add_(p, 1 - d) (two passes); loop_lerp is one lerp_ "
        "per tensor; foreach_mul_add and foreach_lerp are multi-tensor versions (on CPU still one "
        "kernel per tensor); flat_lerp is one lerp_ over all weights held in one buffer."
    ),
    setup=ema_setup,
    reference=_update(ema_update_loop),
    variants={"loop_lerp": _update(ema_update_loop_lerp),
              "foreach_mul_add": _update(ema_update_foreach_mul_add),
              "foreach_lerp": _update(ema_update_foreach), "flat_lerp": _update(ema_update_flat)},
    grids={"quick": Grid(width=[64, 128]), "full": Grid(width=list(WIDTHS))},
    mode="train_step",  # every implementation starts from the same EMA state
    tolerance=Tolerance(rtol=1e-6, atol=1e-8),
    work=("GB", lambda p: ema_gigabytes(p["width"])),  # throughput = achieved GB/s
    measures=ema_measures,
    time_limit_s=300,
))


# -- dcgan.checkpoint --------------------------------------------------------------------------


def checkpoint_setup(params: Mapping[str, Any], device: str) -> dict[str, Any]:
    config = TrainConfig(model=DCGANConfig(width=params["width"]), batch_size=2)
    training = build_training(config, device)
    materialize_optimizer_state(training)
    return {"training": training, "path": ScratchFile()}  # a path-like file, deleted with the inputs


def checkpoint_measures(ctx: MeasureContext) -> dict[str, float]:
    training: GANTraining = ctx.inputs["training"]
    models = (training.generator, training.discriminator)
    weights = sum(p.numel() * p.element_size() for m in models for p in m.parameters())
    return {"checkpoint_mb": float(ctx.output) / MB, "g_d_weights_mb": weights / MB}


register(Case(
    name="dcgan.checkpoint",
    description=(
        "Save then restore a checkpoint through a scratch file (the OS page cache, not the disk, "
        "absorbs it). Reference: the resumable state (G, D, EMA-G, both Adams' moments, step); "
        "ema_only: the EMA generator alone. Extras: checkpoint_mb (file size) and g_d_weights_mb "
        "(G + D float32 weights alone, for comparison with the note's sizes)."
    ),
    setup=checkpoint_setup,
    reference=checkpoint_roundtrip,
    variants={"ema_only": Variant(ema_roundtrip, exact=False, note="EMA generator weights only")},
    grids={"quick": Grid(width=[64, 96]), "full": Grid(width=list(WIDTHS))},
    mode="forward",
    measures=checkpoint_measures,
    claims=[
        Claim("D6", "Checkpoint ~20 MB at width 64", metric="extra", extra="checkpoint_mb",
              expected=about(20, 0.1), at={"width": 64}),
        Claim("D6-96", "Checkpoint ~45 MB at width 96", metric="extra", extra="checkpoint_mb",
              expected=about(45, 0.1), at={"width": 96}),
    ],
    time_limit_s=300,
))
