"""A toy suite of prepared implementations: copied into a temporary project as suites/prepared.py."""

from __future__ import annotations

import time

import torch

from bench import Case, Grid, MeasureContext, Variant, register

PREPARE_S = 0.2  # long against the timed calls: a prepare inside the timing would show


def setup(params, device):
    gen = torch.Generator().manual_seed(0)
    return {"x": torch.randn(params["n"], params["n"], generator=gen, dtype=torch.float64)}


def scaled(x, factor):
    return (x * factor).sum()


def transposed(inputs, params):
    time.sleep(PREPARE_S)  # the one-time work (quantise, compile, ...): recorded as prepare_s
    return {"x": inputs["x"].T.contiguous(), "factor": 2.0}


def measures(ctx: MeasureContext) -> dict[str, float]:
    # Told which implementation ran, and with what: no side channel.
    return {
        "factor": float(ctx.arguments["factor"]),
        "reference": float(ctx.is_reference),
        "again": float(ctx.call()),
        "n": float(ctx.params["n"]),
    }


register(
    Case(
        name="prepared.scale",
        setup=setup,
        reference=Variant(scaled, kwargs={"factor": 2.0}),
        variants={
            "transposed": Variant(scaled, prepare=transposed),
            "doubled": Variant(scaled, kwargs={"factor": 4.0}, exact=False),
        },
        grids={"quick": Grid(n=[8]), "full": Grid(n=[8])},
        measures=measures,
        devices=("cpu",),
    )
)
