"""Which devices are usable; synchronisation; saving and restoring torch's global knobs."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from bench.errors import CaseTimeout, DeviceUnavailableError, SelectionError
from bench.options import DEVICE_CHOICES as DEVICE_CHOICES  # the choices live with the run options


@dataclass(frozen=True)
class DevicePlan:
    """The devices a run will use, and those it skips with the reason."""

    run: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]  # (device, reason)


def cuda_unavailable_reason() -> str | None:
    """None when CUDA is usable, else why not (said to the user as is)."""
    if not torch.backends.cuda.is_built():
        return "this torch build has no CUDA support"
    if not torch.cuda.is_available():
        return "no CUDA device is visible (torch.cuda.is_available() is False)"
    return None


def plan_devices(choice: str, unavailable: Callable[[], str | None] = cuda_unavailable_reason) -> DevicePlan:
    """Turn ``--device`` into the devices to run; an explicit ``cuda`` without CUDA is an error."""
    if choice not in DEVICE_CHOICES:
        raise SelectionError(f"unknown device {choice!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    reason = unavailable()
    if choice == "cpu":
        return DevicePlan(("cpu",), ())
    if choice == "cuda":
        if reason:
            raise DeviceUnavailableError(
                f"--device cuda was asked for, but {reason}. Use --device cpu, or auto to fall back."
            )
        return DevicePlan(("cuda",), ())
    if choice == "auto":
        return DevicePlan(("cpu",), (("cuda", reason),)) if reason else DevicePlan(("cuda",), ())
    return DevicePlan(("cpu",), (("cuda", reason),)) if reason else DevicePlan(("cpu", "cuda"), ())


def synchronize(device: str) -> None:
    """Wait for queued kernels so a timed call ends when its work ends."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def preserved_knobs() -> Iterator[None]:
    """Restore threads, tf32, cudnn and grad mode after a variant that changes them."""
    saved: dict[str, Any] = {
        "threads": torch.get_num_threads(),
        "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "grad": torch.is_grad_enabled(),
        "matmul_precision": torch.get_float32_matmul_precision(),
    }
    try:
        yield
    finally:
        torch.set_num_threads(saved["threads"])
        torch.backends.cuda.matmul.allow_tf32 = saved["matmul_tf32"]
        torch.backends.cudnn.allow_tf32 = saved["cudnn_tf32"]
        torch.backends.cudnn.benchmark = saved["cudnn_benchmark"]
        torch.backends.cudnn.deterministic = saved["cudnn_deterministic"]
        torch.set_grad_enabled(saved["grad"])
        torch.set_float32_matmul_precision(saved["matmul_precision"])


@contextlib.contextmanager
def strict_fp32(device: str) -> Iterator[None]:
    """Full float32 matmuls and convolutions (no TF32) on CUDA for the correctness check.

    cuDNN uses TF32 for float32 convolutions by default on Ampere and newer, so two correct
    implementations that pick different kernels (NCHW against channels_last, say) differ by about
    1e-3 relative: more than an exact tolerance allows, and not a sign of a bug. The check runs
    the reference and each variant in full float32; the timed calls keep torch's defaults. A
    variant that turns TF32 on itself still does so. No effect on the CPU.
    """
    if not device.startswith("cuda"):
        yield
        return
    with preserved_knobs():
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        yield


@contextlib.contextmanager
def time_limit(seconds: float, what: str) -> Iterator[bool]:
    """Raise CaseTimeout inside the block after ``seconds`` of wall time.

    Uses SIGALRM, so it works in the main thread on POSIX only; elsewhere it yields False and
    does not limit. A single long native call (one huge kernel) is interrupted when it returns.
    """
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield False
        return

    def expire(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"{what} ran past its time limit of {seconds:g} s and was stopped")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
