"""A toy suite for the harness's own tests: copied into a temporary project as suites/toy.py."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import torch

from bench import Case, Claim, Grid, Tolerance, Variant, register

BEHAVIOUR = os.environ.get("TOY_BEHAVIOUR", "")
# The run's own process: the first to import this file (at collection), before it starts any
# worker or fork server, which inherit the variable (a worker's parent may be a fork server).
RUN_PID = int(os.environ.setdefault("TOY_RUN_PID", str(os.getpid())))
# Asked at import, as suites do (for pinned memory, say): on CUDA the workers' fork server imports
# this file, and must still fork children that can use CUDA.
PIN_MEMORY = torch.cuda.is_available()


def setup(params, device):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(params["n"], params["n"], generator=gen, dtype=torch.float64)
    return {"x": x.to(device).requires_grad_()}


def square(x):
    return (x @ x).sum()


def square_again(x):
    return torch.matmul(x, x).sum()


def off_by_one(x):
    return (x @ x).sum() + 1


def explode(x):
    raise ValueError("this variant always fails")


def out_of_memory(x):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 TiB")


def sleepy(x):
    time.sleep(60)  # far past the case's limit: the harness must stop it
    return (x @ x).sum()


def _ctrl_c() -> None:
    # As a user's Ctrl-C: to the run's own process, which owns the terminal.
    # One Ctrl-C: two trial workers warm up side by side, and only the first to get here sends it.
    try:
        open("ctrl-c-sent", "x").close()
    except FileExistsError:
        time.sleep(1)
        return
    os.kill(RUN_PID, signal.SIGINT)
    time.sleep(1)


# The trial taken at a group's turn (with two trials, the first of each group is taken early in
# the run, after every group's check: bench.session.BenchSession.check_ahead).
LAST_TRIAL = "bench-trial-1"


def interrupt(x):
    # At the second grid point, in its last trial worker's first call (its warm-up): the first
    # point is measured and kept. (Not in a check, nor in a first trial: with two points, both are
    # checked and have their first trials before either is timed whole.)
    if multiprocessing.current_process().name == LAST_TRIAL and x.shape[0] == 16:
        _ctrl_c()
    return (x @ x).sum()


_timed_calls = [0]


def interrupt_midway(x):
    # Passes the correctness check and the probes; at the second grid point, Ctrl-C arrives in the
    # third call of the last trial worker (after its warm-up: while rounds are being timed).
    if multiprocessing.current_process().name == LAST_TRIAL and x.shape[0] == 16:
        _timed_calls[0] += 1
        if _timed_calls[0] == 3:
            _ctrl_c()
    return (x @ x).sum()


def halved(x):
    return (x @ x).sum() / 2


def forks(x):
    # Work in another process: a per-call instruction count cannot include it.
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return (x @ x).sum()


variants = {
    "same": square_again,
    "half": Variant(halved, exact=False, quality=lambda r, v: {"ratio": float(v / r)}, note="half of it"),
    "small": Variant(square_again, exact=False, params={"n": 4}, note="a smaller matrix"),
}
if "failures" in BEHAVIOUR:
    variants.update({"wrong": off_by_one, "boom": explode, "oom": out_of_memory, "slow": sleepy})
if "interrupt" in BEHAVIOUR:
    variants["zz_interrupt"] = interrupt
if "spawn" in BEHAVIOUR:
    variants["forks"] = forks
if "stop_mid_timing" in BEHAVIOUR:
    variants["zz_midway"] = interrupt_midway

register(
    Case(
        name="toy.square",
        description="sum of a matrix squared",
        setup=setup,
        reference=square,
        variants=variants,
        grids={"quick": Grid(n=[8, 16]), "full": Grid(n=[32])},
        mode="forward_backward",
        tolerance=Tolerance(rtol=1e-9, atol=1e-9),
        work=("rows", lambda p: p["n"]),
        claims=[
            Claim(
                "T1",
                "same is as fast as the reference",
                metric="speedup",
                variant="same",
                expected=(0.2, 5.0),
            ),
            Claim("T2", "small is 100x faster", metric="speedup", variant="small", expected=(100, 200)),
            Claim("T3", "takes 1 s on a big GPU", metric="seconds", expected=(1, 1), hardware="a big GPU"),
            Claim("T4", "FID improves", metric="seconds", measurable=False, reason="no Inception weights"),
        ],
        # The `slow` variant hangs until this limit: short, as the tests wait for it, and still
        # far past any other variant's check or trial here (under a second each).
        time_limit_s=4.0,
    )
)

if "slow_case" in BEHAVIOUR:
    register(
        Case(
            name="toy.heavy",
            description="the same sum, marked slow",
            setup=setup,
            reference=square,
            variants={"same": square_again},
            grids={"quick": Grid(n=[8]), "full": Grid(n=[8])},
            mode="forward_backward",
            markers=("slow",),
            claims=[Claim("H1", "same is as fast", metric="speedup", variant="same", expected=(0.5, 2.0))],
        )
    )
