"""Fixed CPU workloads for checking the harness's timings against timeit (tools/fidelity.py)."""

from __future__ import annotations

import torch

from bench import Case, Grid, register


def matmul_inputs(params, device):
    gen = torch.Generator().manual_seed(0)
    n = params["n"]
    return {
        "a": torch.randn(n, n, generator=gen).to(device),
        "b": torch.randn(n, n, generator=gen).to(device),
    }


def matmul(a, b):
    return a @ b


def python_inputs(params, device):
    return {"n": params["n"]}


def python_loop(n):
    """Pure Python, about 10 µs for n = 150 on a current CPU."""
    total = 0
    for i in range(n):
        total += i * i
    return total


register(
    Case(
        name="fidelity.matmul",
        setup=matmul_inputs,
        reference=matmul,
        variants={},
        grids={"quick": Grid(n=[256]), "full": Grid(n=[256])},
        devices=("cpu",),
    )
)
register(
    Case(
        name="fidelity.python",
        setup=python_inputs,
        reference=python_loop,
        variants={},
        grids={"quick": Grid(n=[150]), "full": Grid(n=[150])},
        devices=("cpu",),
    )
)
