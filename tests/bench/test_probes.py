"""Probes: CPU peak memory of one call, FLOP counting, GPU sampling with a fake NVML."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from bench.probes import GpuSampler, count_flops, cpu_peak, sample_gpu


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
