"""Peak memory of one call: CPU resident set (exact high-water mark on Linux) and CUDA allocator."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass(frozen=True)
class MemoryPeak:
    """Peak and peak-above-start of one call, in bytes; ``method`` says how it was measured."""

    peak_bytes: int
    delta_bytes: int
    method: str


def _status_kib(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"{field} not found in {_STATUS}")


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, loaded once (find_library runs ldconfig); None where there is none."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def _release_freed_memory() -> None:
    # Freed heap pages stay resident until trimmed; without this a call that reuses an earlier
    # call's freed memory would show no growth at all.
    gc.collect()
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)


# glibc's mallopt parameters, and the default thresholds they are pinned at.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
PINNED_THRESHOLD_BYTES = 128 * 1024
# The allocator the timed calls run under (RunOptions.malloc "steady"): blocks up to glibc's
# ceiling for the mmap threshold on 64-bit (32 MiB) come from the heap, and the heap keeps what
# is freed (trimmed only beyond 1 GiB).
STEADY_MMAP_THRESHOLD_BYTES = 32 * 2**20
STEADY_TRIM_THRESHOLD_BYTES = 2**30


def _mallopt(mmap_threshold: int, trim_threshold: int) -> bool:
    """Set glibc's mmap and trim thresholds (which also ends its dynamic raising of them);
    False without glibc."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, trim_threshold))


def pin_malloc() -> bool:
    """Fix glibc's mmap and trim thresholds at their defaults, for the probes' process.

    By default glibc raises its mmap threshold each time a large block is freed, so later large
    blocks come from the heap, whose freed pages stay resident: a call's resident-set growth then
    follows what ran before it in that process. Measured on dcgan.train_step (quick): the peak
    growth of one step moved between 124 and 131 MiB over three check workers (w96: 229 to
    250 MiB); pinned, 58.0 / 58.1 and 114.8 / 115.1 MiB: what the call itself holds at its peak.
    Returns whether it was pinned (False without glibc).
    """
    return _mallopt(PINNED_THRESHOLD_BYTES, PINNED_THRESHOLD_BYTES)


def steady_malloc() -> bool:
    """Let a timing worker's calls reuse the memory earlier calls freed, as a long training
    process (or CUDA's caching allocator) does: blocks up to 32 MiB from the heap, which is
    never trimmed below 1 GiB.

    Under glibc's default the thresholds move with what was freed before, so a call's page faults
    (the kernel zeroing fresh pages, whose cost is the host's) follow the implementations that ran
    before it in the worker. Measured on the 2-core Xeon VM (2026-12-03): ``paco2.covariance``'s
    reference took 545 minor faults and 1.5 ms of system time per call, 4.0 ms in all; steady,
    1.8 faults and 1.74 ms. Returns whether it was set (False without glibc).
    """
    return _mallopt(STEADY_MMAP_THRESHOLD_BYTES, STEADY_TRIM_THRESHOLD_BYTES)


def hwm_resettable() -> bool:
    """Whether this process can reset its peak-RSS high-water mark (Linux clear_refs)."""
    try:
        _CLEAR_REFS.write_text("5")
        _status_kib("VmHWM")
        return True
    except OSError:
        return False


def cpu_peak(call: Callable[[], Any], *, sample_interval_s: float = 0.001) -> MemoryPeak:
    """Peak RSS during ``call()``: exact via VmHWM after a clear_refs reset, else sampled."""
    _release_freed_memory()
    if hwm_resettable():
        start = _status_kib("VmRSS") * 1024
        _CLEAR_REFS.write_text("5")
        call()
        peak = _status_kib("VmHWM") * 1024
        return MemoryPeak(peak, max(0, peak - start), "vmhwm")
    process = psutil.Process()
    start = process.memory_info().rss
    peak = start
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            done.wait(sample_interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        call()
    finally:
        done.set()
        sampler.join()
    peak = max(peak, process.memory_info().rss)
    return MemoryPeak(peak, max(0, peak - start), "sampled")


@dataclass(frozen=True)
class CudaPeak:
    allocated_bytes: int
    reserved_bytes: int
    allocated_delta_bytes: int


def cuda_peak(call: Callable[[], Any], device: str) -> CudaPeak:
    """Peak CUDA allocator bytes during ``call()`` (the call must synchronise, as callers do)."""
    torch.cuda.synchronize(device)
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    call()
    torch.cuda.synchronize(device)
    allocated = torch.cuda.max_memory_allocated(device)
    return CudaPeak(allocated, torch.cuda.max_memory_reserved(device), max(0, allocated - start))
