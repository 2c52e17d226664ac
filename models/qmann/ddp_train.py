"""A DistributedDataParallel training worker (gloo) for torchrun; rank 0 writes its measurements as JSON.

Run as ``python -m torch.distributed.run --nproc-per-node=N -m models.qmann.ddp_train --out R.json``
(``models.qmann.launch.launch_ddp`` does this and cleans up). Each rank trains the batched-memory
model on its DistributedSampler shard with a fixed per-rank batch, times every step, and times
the gradient all-reduce through a DDP communication hook. The JSON holds the global throughput
(samples per second over all ranks, after warm-up), the step time, the share of the step during
which an all-reduce was in flight, and whether the replicas ended identical.

Run as a program, a worker ends with ``os._exit`` once its process group is destroyed, skipping
interpreter finalisation: gloo's worker threads may still be releasing the last collective's
tensors, which takes the GIL, and a thread that asks for the GIL while the interpreter
finalises is ended by ``pthread_exit``, whose unwinding through a C++ destructor calls
``std::terminate`` (SIGABRT, "terminate called without an active exception"; seen on 1 in 5
to 15 launches on a loaded 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from models.qmann.data import SequenceDataset, make_sequences, preprocess_all, split
from models.qmann.model import SIZES, build_model, config_for
from models.qmann.train import make_optimizer, train_step


class CommTimer:
    """Wall-clock intervals during which a gradient bucket's all-reduce was in flight."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self.intervals: list[tuple[float, float]] = []

    def reset(self) -> None:
        self.intervals = []

    def busy_s(self) -> float:
        """Length of the union of the intervals (buckets may overlap each other)."""
        total, end = 0.0, float("-inf")
        for start, stop in sorted(self.intervals):
            if stop <= end:
                continue
            total += stop - max(start, end)
            end = stop
        return total


def timed_allreduce(state: CommTimer, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """DDP's default averaging all-reduce, recording when each bucket's reduction starts and ends."""
    start = time.perf_counter()
    tensor = bucket.buffer().div_(state.world_size)
    future = dist.all_reduce(tensor, async_op=True).get_future()  # type: ignore[union-attr]

    def finished(fut: torch.futures.Future[Any]) -> torch.Tensor:
        state.intervals.append((start, time.perf_counter()))
        return fut.value()[0]

    return future.then(finished)


# DDP checks the hook's annotations as objects; postponed (string) annotations fail that check.
timed_allreduce.__annotations__ = {
    "state": CommTimer,
    "bucket": dist.GradBucket,
    "return": torch.futures.Future[torch.Tensor],
}


def _watch_parent(poll_s: float = 0.2) -> None:
    """Exit if the launcher goes away (torchrun starts workers in their own sessions, so a
    killed launcher would otherwise leave them running)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _batches(
    loader: DataLoader[Any], sampler: DistributedSampler[Any]
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per rank")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--batch-per-rank", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="where rank 0 writes the JSON")
    parser.add_argument(
        "--fail-rank", type=int, default=None, help="(tests) this rank raises at its first step"
    )
    parser.add_argument("--hang", action="store_true", help="(tests) every rank sleeps instead of training")
    parser.add_argument("--tag", default="", help="(tests) a label to find these processes by")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.batch_per_rank < 1:
        parser.error("need --steps >= 1, --warmup >= 0 and --batch-per-rank >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    _watch_parent()
    dist.init_process_group("gloo")
    try:
        _train(args)
    finally:
        dist.destroy_process_group()


def _train(args: argparse.Namespace) -> None:
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.hang:
        time.sleep(3600)
    config = config_for(args.size)
    (x, y), _ = split(*make_sequences(n_features=config.input_size, seed=args.seed))
    dataset = SequenceDataset(preprocess_all(x), y)
    sampler: DistributedSampler[Any] = DistributedSampler(
        dataset, num_replicas=world, rank=rank, shuffle=True, seed=args.seed, drop_last=True
    )
    loader = DataLoader(dataset, batch_size=args.batch_per_rank, sampler=sampler, drop_last=True)
    if len(loader) == 0:
        raise ValueError(f"{len(dataset)} samples over {world} ranks give no batch of {args.batch_per_rank}")
    model = build_model(config, seed=args.seed)
    ddp = DistributedDataParallel(model)
    timer = CommTimer(world)
    ddp.register_comm_hook(timer, timed_allreduce)
    optimizer = make_optimizer(ddp)
    batches = _batches(loader, sampler)
    step_s, comm_s, loss = [], [], float("nan")
    for step in range(args.warmup + args.steps):
        if step == 0 and args.fail_rank == rank:
            raise RuntimeError(f"rank {rank} fails on purpose (--fail-rank)")
        xb, yb = next(batches)
        timer.reset()
        started = time.perf_counter()
        loss = float(train_step(ddp, optimizer, xb, yb))  # type: ignore[arg-type]
        elapsed = time.perf_counter() - started
        if step >= args.warmup:
            step_s.append(elapsed)
            comm_s.append(timer.busy_s())
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    first = flat.clone()
    dist.broadcast(first, src=0)
    drift = (flat - first).abs().max()
    dist.all_reduce(drift, op=dist.ReduceOp.MAX)
    mine = {"step_s": step_s, "comm_s": comm_s, "loss": loss}
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, mine)
    if rank == 0:
        slowest = max(sum(r["step_s"]) for r in gathered)
        result = {
            "world_size": world,
            "steps": args.steps,
            "batch_per_rank": args.batch_per_rank,
            "global_batch": args.batch_per_rank * world,
            "samples_per_s": args.batch_per_rank * world * args.steps / slowest,
            "step_ms_median": 1e3 * statistics.median(s for r in gathered for s in r["step_s"]),
            "comm_ms_median": 1e3 * statistics.median(c for r in gathered for c in r["comm_s"]),
            "comm_share": sum(sum(r["comm_s"]) for r in gathered) / sum(sum(r["step_s"]) for r in gathered),
            "final_loss": statistics.fmean(r["loss"] for r in gathered),
            "replica_max_abs_diff": float(drift),
            "threads_per_rank": torch.get_num_threads(),
        }
        args.out.write_text(json.dumps(result, indent=2))


def run_and_exit(argv: list[str] | None = None) -> NoReturn:
    """Run ``main`` and end the process without interpreter finalisation (see the module notes).

    The exit code is 0 on success, argparse's on a usage error, 1 after any other exception
    (its traceback printed first, as Python would)."""
    code = 0
    try:
        main(argv)
    except SystemExit as exc:  # argparse's usage errors (it has printed the message)
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run_and_exit()
