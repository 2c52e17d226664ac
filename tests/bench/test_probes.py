"""Probes: CPU peak memory of one call, pinned malloc, FLOP counting, GPU sampling with a fake NVML."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from bench.probes import GpuSampler, count_flops, cpu_peak, sample_gpu

ROOT = Path(__file__).resolve().parents[2]


def test_cpu_peak_sees_a_large_temporary() -> None:
    def allocate() -> None:
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB, freed on return
        block.add_(1)

    peak = cpu_peak(allocate)
    assert peak.delta_bytes >= 48 * 2**20, peak
    assert peak.peak_bytes >= peak.delta_bytes
    small = cpu_peak(lambda: torch.ones(16).sum())
    assert small.delta_bytes < 16 * 2**20


def test_flops_of_a_matmul() -> None:
    a, b = torch.ones(32, 16), torch.ones(16, 8)
    assert count_flops(lambda: a @ b) == 2 * 32 * 16 * 8


def test_gpu_sampling_is_none_on_cpu() -> None:
    assert sample_gpu(lambda: None, "cpu") is None


def _fake_nvml(utils: list[int]) -> SimpleNamespace:
    readings = iter(utils + [utils[-1]] * 1000)
    return SimpleNamespace(
        nvmlDeviceGetHandleByIndex=lambda i: object(),
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=next(readings)),
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(used=2**30),
        nvmlDeviceGetPowerUsage=lambda h: 150_000,
    )


def test_gpu_sampler_summarises_samples() -> None:
    sampler = GpuSampler(nvml=_fake_nvml([10, 90]), interval_s=0.001)
    with sampler:
        pass
    summary = sampler.summary()
    assert summary is not None
    assert summary["util_max_pct"] >= summary["util_mean_pct"] > 0
    assert summary["mem_used_max_bytes"] == 2**30
    assert summary["power_mean_w"] == 150.0


def test_sample_gpu_repeats_the_call() -> None:
    calls = []
    summary = sample_gpu(lambda: calls.append(1), "cuda:0", min_s=0.0, min_calls=3, nvml=_fake_nvml([50]))
    assert len(calls) == 3
    assert summary is not None and summary["util_mean_pct"] == 50


_FREED_AFTER_A_LARGE_BLOCK = """
import ctypes, ctypes.util, sys
from bench.probes.memory import pin_malloc

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "pinned":
    assert pin_malloc()
libc.free(libc.malloc(8 << 20))  # glibc then raises its mmap threshold to 8 MiB, unless pinned

def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

blocks = [libc.malloc(1 << 20) for _ in range(32)]
for block in blocks:
    ctypes.memset(block, 1, 1 << 20)
before = rss()
for block in blocks[:-1]:  # the last one stays, so the heap's top cannot shrink
    libc.free(block)
print(before - rss())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_pinned_malloc_returns_freed_large_blocks_whatever_ran_before() -> None:
    def released(mode: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", _FREED_AFTER_A_LARGE_BLOCK, mode],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        return int(done.stdout)

    # Unpinned, the 1 MiB blocks came from the heap and stay resident when freed: a later call's
    # growth would depend on this history. Pinned, each was mapped and is returned on free.
    assert released("default") < 8 << 20
    assert released("pinned") >= 28 << 20
