"""The machine and software a run happened on, with its measured peak FLOP/s and memory bandwidth."""

from __future__ import annotations

import math
import os
import platform
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from bench.device import synchronize


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none): other work competing for the cores."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def others_load(load: Mapping[str, float | None], threads: int) -> float | None:
    """Runnable work other than the run itself, from the load averages at its start and end.

    At the start the run has not begun, so the load is all other work; at the end the run's own
    threads (up to `threads` of them busy) are part of the 1-minute average and are taken out.
    """
    start, end = load.get("start"), load.get("end")
    parts = [v for v in (start, None if end is None else end - threads) if v is not None]
    return max(parts) if parts else None


def is_busy(
    load: Mapping[str, float | None], threads: int, cores: int, others_cpu: float | None = None
) -> bool:
    """Whether other processes took a real share of the cores: more than half of them. From
    ``others_cpu`` (``others_share``) where the run recorded it; else from the load averages,
    which count a run that ended just before this one as other work at its start."""
    if others_cpu is not None:
        return others_cpu > 0.5
    others = others_load(load, threads)
    return bool(cores) and others is not None and others > cores / 2


def cpu_times(stat: Path = Path("/proc/stat")) -> tuple[int, ...] | None:
    """The machine's CPU time counters (user, nice, system, idle, iowait, irq, softirq, steal), in
    clock ticks since boot, from Linux's /proc/stat; None elsewhere."""
    try:
        fields = stat.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    return tuple(int(v) for v in fields[1:9])


def steal_share(start: Sequence[int] | None, end: Sequence[int] | None) -> float | None:
    """The share of the cores' time between two ``cpu_times`` readings that the hypervisor gave to
    other guests (steal): a virtual machine's contention, which its load average does not see."""
    if start is None or end is None:
        return None
    total = sum(end) - sum(start)
    return (end[7] - start[7]) / total if total > 0 else None


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have ended (workers, their own
    children once reaped): what a run takes of the cores itself."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def others_share(start: Sequence[int] | None, end: Sequence[int] | None, own_s: float) -> float | None:
    """The share of the cores' time between two ``cpu_times`` readings that processes other than
    this run (``own_s`` CPU seconds in between) kept busy: user, nice, system and interrupt time,
    less the run's own."""
    if start is None or end is None:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    total = (sum(end) - sum(start)) / ticks
    busy = sum(end[i] - start[i] for i in (0, 1, 2, 5, 6)) / ticks
    return max(0.0, busy - own_s) / total if total > 0 else None


# Steal above this share of the cores' time marks a contended host in the report (the 2-core VMs
# this was built on: about 4-5 % in the quieter hours, 29 % over ten busy seconds).
CONTENDED_STEAL = 0.05


def git_commit(cwd: Path | None = None) -> dict[str, Any] | None:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"id": commit, "dirty": bool(dirty)}


# Timed calls go on until this much time has passed too, so that a best-of is not taken over a
# few milliseconds in which a thread of the pool happened to be descheduled.
MIN_TIME_S = 0.05


def _best_seconds(
    call: Callable[[], Any], device: str, repeats: int, min_time_s: float = MIN_TIME_S
) -> float:
    call()
    synchronize(device)
    best = float("inf")
    began = time.perf_counter()
    count = 0
    while count < repeats or (time.perf_counter() - began < min_time_s and count < 100 * repeats):
        start = time.perf_counter()
        call()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
        count += 1
    return best


# Seconds of the best of ``repeats`` timed calls of a kernel on a device (injectable in tests).
Timer = Callable[[Callable[[], Any], str, int], float]


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@contextmanager
def all_threads() -> Iterator[int]:
    """torch's intra-op threads set to every usable core for a machine limit, then restored (a run
    may time with fewer: the limit is the machine's, not the run's setting)."""
    old, cores = torch.get_num_threads(), usable_cores()
    torch.set_num_threads(cores)
    try:
        yield cores
    finally:
        torch.set_num_threads(old)


def peak_gflops(
    device: str = "cpu", n: int | None = None, repeats: int = 3, timer: Timer = _best_seconds
) -> float:
    """Best-of fp32 GEMM rate on all cores, the roof that achieved GFLOP/s are shown against."""
    n = n or (2048 if device == "cpu" else 8192)
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # a true fp32 peak, not TF32
    try:
        with all_threads():
            seconds = timer(lambda: torch.mm(a, b), device, repeats)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    return 2 * n**3 / seconds / 1e9


def last_level_cache_bytes(device: str = "cpu", root: Path = Path("/sys/devices/system/cpu")) -> int | None:
    """The size of the highest-level cache (CPU: cpu0's, from sysfs; CUDA: the L2), or None."""
    if device.startswith("cuda"):
        size = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0)
        return int(size) or None
    best: tuple[int, int] | None = None
    for index in sorted((root / "cpu0" / "cache").glob("index*")):
        try:
            level = int((index / "level").read_text())
            kind = (index / "type").read_text().strip()
            text = (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        match = re.fullmatch(r"(\d+)\s*([KMG]?)", text, re.IGNORECASE)
        if kind == "Instruction" or match is None:
            continue
        size = int(match[1]) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[match[2].upper()]
        if best is None or level > best[0]:
            best = (level, size)
    return best[1] if best else None


def available_memory_bytes(device: str = "cpu", meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Memory free for new arrays: MemAvailable on Linux, the free device memory on CUDA."""
    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info()
        return int(free)
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# STREAM's kernels and the words each counts per element (reads + writes; like STREAM, not the
# write-allocate read of a line that is only written), plus STREAM2's in-place DAXPY, which
# reads every line it writes: it is the pattern of in-place updates such as an EMA, and on
# machines with write-allocate caches it reaches more counted bandwidth than copy or triad.
STREAM_WORDS = {"copy": 2, "scale": 2, "add": 3, "triad": 3, "daxpy": 3}
# STREAM's rule: each array at least 4x the last-level cache, so no kernel runs from cache.
CACHE_MULTIPLE = 4
MIN_ARRAY_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Bandwidth:
    """Best-of rates of the STREAM kernels on three arrays of ``array_bytes`` (float64), in GB/s
    of counted bytes (10^9 bytes/s), on ``threads`` threads."""

    kernels_gbs: Mapping[str, float]
    array_bytes: int
    threads: int

    @property
    def best_gbs(self) -> float:
        return max(self.kernels_gbs.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "kernels_gbs": dict(self.kernels_gbs),
            "array_bytes": self.array_bytes,
            "threads": self.threads,
        }


def stream_array_bytes(llc_bytes: int | None, available_bytes: int | None) -> int:
    """Bytes per array for a memory (not cache) bandwidth: 4x the last-level cache, at least
    64 MiB, and the three arrays within a quarter of the available memory."""
    size = max(CACHE_MULTIPLE * (llc_bytes or 0), MIN_ARRAY_BYTES)
    if available_bytes:
        size = min(size, available_bytes // 12)
    return max(size // 8 * 8, 8)


# Each kernel is timed in this many separate windows, the kernels taking turns: on a shared
# machine another process can hold a core for a second or more, and every parallel kernel timed
# meanwhile waits for its descheduled thread (cache-sized kernels measured 1-3 GB/s in such a
# window here, 170-240 GB/s a second later).
PASSES = 2


def stream_bandwidth(
    device: str = "cpu",
    array_bytes: int | None = None,
    repeats: int = 3,
    timer: Timer = _best_seconds,
    passes: int = PASSES,
) -> Bandwidth:
    """STREAM (copy c = a, scale b = s c, add c = a + b, triad a = b + s c) and STREAM2's DAXPY
    (a = a + s b) with torch on all cores, the best of ``passes`` x ``repeats`` (or more) calls
    each; arrays of ``array_bytes`` (default: far beyond the last-level cache, see
    ``stream_array_bytes``)."""
    if array_bytes is None:
        array_bytes = stream_array_bytes(last_level_cache_bytes(device), available_memory_bytes(device))
    n = max(array_bytes // 8, 1)
    a = torch.full((n,), 1.0, dtype=torch.float64, device=device)  # written: pages touched
    b = torch.full((n,), 2.0, dtype=torch.float64, device=device)
    c = torch.zeros(n, dtype=torch.float64, device=device)
    scalar = 3.0
    kernels: dict[str, Callable[[], Any]] = {
        "copy": lambda: c.copy_(a),
        "scale": lambda: torch.mul(c, scalar, out=b),
        "add": lambda: torch.add(a, b, out=c),
        "triad": lambda: torch.add(b, c, alpha=scalar, out=a),
        "daxpy": lambda: a.add_(b, alpha=scalar),
    }
    best = dict.fromkeys(kernels, math.inf)
    with all_threads() as threads:
        for _ in range(passes):
            for name, kernel in kernels.items():
                best[name] = min(best[name], timer(kernel, device, repeats))
    rates = {name: STREAM_WORDS[name] * 8 * n / seconds / 1e9 for name, seconds in best.items()}
    return Bandwidth(rates, 8 * n, threads)


def cache_bandwidth(device: str = "cpu", repeats: int = 10, timer: Timer = _best_seconds) -> Bandwidth | None:
    """The same kernels on arrays that fit in the last-level cache together (an eighth of it
    each): the limit of a working set that stays cache-resident. None without a known cache."""
    llc = last_level_cache_bytes(device)
    if not llc:
        return None
    return stream_bandwidth(device, array_bytes=llc // 8, repeats=repeats, timer=timer)


def copy_bandwidth_gbs(device: str = "cpu", megabytes: int | None = None, repeats: int = 3) -> float:
    """The machine's memory bandwidth limit in GB/s: the best STREAM kernel on arrays far beyond
    the last-level cache (``megabytes`` per array to override the size)."""
    size = None if megabytes is None else megabytes * 2**20
    return stream_bandwidth(device, array_bytes=size, repeats=repeats).best_gbs


def gpu_info() -> dict[str, Any] | None:
    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    driver = None
    try:
        import pynvml

        pynvml.nvmlInit()
        driver = pynvml.nvmlSystemGetDriverVersion()
        driver = driver.decode() if isinstance(driver, bytes) else driver
    except Exception:  # no NVML library or driver: the driver version is simply unknown
        driver = None
    return {
        "name": props.name,
        "count": torch.cuda.device_count(),
        "memory_bytes": int(props.total_memory),
        "capability": f"{props.major}.{props.minor}",
        "driver": driver,
    }


def describe(devices: tuple[str, ...], measure: bool = True, cwd: Path | None = None) -> dict[str, Any]:
    """Everything the report's header needs; ``measure`` runs the peak and bandwidth probes."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "gpu": gpu_info(),
        "pennylane": _version("pennylane"),
        "pennylane_lightning": _version("pennylane-lightning"),
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "pytest_benchmark": _version("pytest-benchmark"),
        "git": git_commit(cwd),
        "peak": {},
    }
    if measure:
        for device in devices:
            env["peak"][device] = measured_limits(device)
    return env


def measured_limits(device: str, timer: Timer = _best_seconds) -> dict[str, Any]:
    """The device's roofs: fp32 GEMM rate, memory bandwidth (STREAM, far beyond the last-level
    cache) and cache bandwidth (the same kernels inside it), all cores, best of several."""
    memory = stream_bandwidth(device, timer=timer)
    cache = cache_bandwidth(device, timer=timer)
    # A cache slower than memory is a measurement taken while another process held a core (seen
    # here: 1-3 GB/s for a second, 170-240 GB/s after): measure it again, keep the best.
    for _ in range(2):
        if cache is None or cache.best_gbs >= memory.best_gbs:
            break
        again = cache_bandwidth(device, timer=timer)
        if again is not None and again.best_gbs > cache.best_gbs:
            cache = again
    return {
        "gflops_fp32": peak_gflops(device, timer=timer),
        "memory_gbs": memory.best_gbs,
        "copy_gbs": memory.kernels_gbs["copy"],
        "stream": memory.as_dict(),
        "cache_gbs": cache.best_gbs if cache else None,
        "cache_stream": cache.as_dict() if cache else None,
        "llc_bytes": last_level_cache_bytes(device),
    }
