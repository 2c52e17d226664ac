"""The machine and software a run happened on, with its measured peak FLOP/s and memory bandwidth."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import time
from collections.abc import Callable, Mapping
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


def is_busy(load: Mapping[str, float | None], threads: int, cores: int) -> bool:
    """Whether other processes took a real share of the cores: more than half of them."""
    others = others_load(load, threads)
    return bool(cores) and others is not None and others > cores / 2


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


def _best_seconds(call: Callable[[], Any], device: str, repeats: int) -> float:
    call()
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def peak_gflops(device: str = "cpu", n: int | None = None, repeats: int = 5) -> float:
    """Best-of fp32 GEMM rate, the roof that achieved GFLOP/s are shown against."""
    n = n or (2048 if device == "cpu" else 8192)
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # a true fp32 peak, not TF32
    try:
        seconds = _best_seconds(lambda: torch.mm(a, b), device, repeats)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    return 2 * n**3 / seconds / 1e9


def copy_bandwidth_gbs(device: str = "cpu", megabytes: int = 256, repeats: int = 5) -> float:
    """Best-of tensor copy rate in GB/s, counting the bytes read plus the bytes written."""
    count = megabytes * 2**20 // 4
    src = torch.empty(count, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    seconds = _best_seconds(lambda: dst.copy_(src), device, repeats)
    return 2 * src.numel() * src.element_size() / seconds / 1e9


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
            env["peak"][device] = {
                "gflops_fp32": peak_gflops(device),
                "copy_gbs": copy_bandwidth_gbs(device),
            }
    return env


def machine_kind(env: dict[str, Any] | Any) -> str:
    """A file-name-safe name for the kind of machine a run came from (baselines are per kind)."""
    gpu = env.get("gpu")
    if gpu:
        raw = f"cuda-{gpu.get('name', 'gpu')}"
    else:
        raw = f"cpu-{env.get('cpu_count', '?')}core-{env.get('cpu_model', 'unknown')}"
    slug = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")
    return slug or "unknown"
