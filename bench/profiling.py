"""torch.profiler traces (TensorBoard / Perfetto) and top-operator tables for one implementation."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

from bench.calls import Caller, arguments_for, check_inputs
from bench.case import Case, point_id
from bench.device import preserved_knobs
from bench.errors import SelectionError

_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def safe_name(name: str) -> str:
    """A single path component from a case or variant name: no separators, no '..', no leading dot."""
    cleaned = _UNSAFE.sub("_", name).strip("._")
    cleaned = re.sub(r"\.{2,}", "_", cleaned)
    if not cleaned:
        raise SelectionError(f"{name!r} gives no usable file name")
    return cleaned


def trace_dir(root: Path, case: str, variant: str) -> Path:
    """``root/<case>/<variant>``, guaranteed to stay inside ``root``."""
    target = (root / safe_name(case) / safe_name(variant)).resolve()
    if root.resolve() not in target.parents:
        raise SelectionError(f"trace folder for {case!r}/{variant!r} would leave {root}")
    return target


@dataclass(frozen=True)
class OperatorRow:
    name: str
    calls: int
    self_cpu_s: float
    self_cuda_s: float
    cpu_memory_bytes: int


@dataclass(frozen=True)
class TraceResult:
    directory: Path
    files: tuple[Path, ...]
    top: tuple[OperatorRow, ...]


def record_trace(
    caller: Caller,
    directory: Path,
    *,
    worker: str = "bench",
    wait: int = 1,
    warmup: int = 1,
    active: int = 3,
    top: int = 15,
) -> TraceResult:
    """Run ``caller`` through a wait/warm-up/active profiler schedule and write a TensorBoard trace."""
    directory.mkdir(parents=True, exist_ok=True)
    before = set(directory.glob("*.pt.trace.json"))
    activities = [ProfilerActivity.CPU]
    if caller.device.startswith("cuda"):
        activities.append(ProfilerActivity.CUDA)
    call, context = caller.timed()
    with (
        context,
        profile(
            activities=activities,
            schedule=schedule(wait=wait, warmup=warmup, active=active, repeat=1),
            on_trace_ready=tensorboard_trace_handler(str(directory), worker_name=worker),
            record_shapes=True,
            profile_memory=True,
        ) as prof,
    ):
        for _ in range(wait + warmup + active):
            call()
            prof.step()
    files = tuple(sorted(set(directory.glob("*.pt.trace.json")) - before))
    return TraceResult(directory, files, top_operators(prof.key_averages(), top))


def top_operators(averages: Sequence[Any], limit: int) -> tuple[OperatorRow, ...]:
    def cuda_self(event: Any) -> float:
        return float(
            getattr(event, "self_device_time_total", 0.0) or getattr(event, "self_cuda_time_total", 0.0)
        )

    rows = [
        OperatorRow(
            name=event.key,
            calls=int(event.count),
            self_cpu_s=float(event.self_cpu_time_total) / 1e6,
            self_cuda_s=cuda_self(event) / 1e6,
            cpu_memory_bytes=int(getattr(event, "self_cpu_memory_usage", 0) or 0),
        )
        for event in averages
    ]
    rows.sort(key=lambda r: r.self_cuda_s + r.self_cpu_s, reverse=True)
    return tuple(rows[:limit])


def profile_case(
    case: Case, *, variant: str | None, device: str, profile_name: str, out: Path
) -> list[tuple[str, TraceResult]]:
    """Traces for the reference and variants (or one variant) at the profile's first grid point."""
    impls = case.implementations()
    if variant is not None:
        impls = [(name, impl) for name, impl in impls if name == variant]
        if not impls:
            known = ", ".join(name for name, _ in case.implementations())
            raise SelectionError(f"{case.name} has no variant {variant!r} (known: {known})")
    if device not in case.devices:
        raise SelectionError(f"{case.name} does not run on {device} (it supports {', '.join(case.devices)})")
    params = case.points(profile_name)[0]
    results = []
    for name, impl in impls:
        torch.manual_seed(0)
        run_params = {**params, **impl.params}
        inputs = check_inputs(case.setup(run_params, device), case.name)
        arguments = arguments_for(impl, inputs, run_params, device, f"Case {case.name!r}, {name}")
        caller = Caller(impl.fn, arguments.values, case.mode, device, case.objective)
        with preserved_knobs():
            caller.run()  # first-call costs (allocation, compilation) stay out of the trace
            results.append(
                (
                    name,
                    record_trace(
                        caller,
                        trace_dir(out, case.name, name),
                        worker=safe_name(f"{point_id(params)}-{device}"),
                    ),
                )
            )
    return results
