"""Probes that run in their own pass, before timing: peak memory, GPU utilization, FLOPs."""

from bench.probes.flops import count_flops
from bench.probes.gpu import GpuSampler, sample_gpu
from bench.probes.memory import MemoryPeak, cpu_peak, cuda_peak

__all__ = ["GpuSampler", "MemoryPeak", "count_flops", "cpu_peak", "cuda_peak", "sample_gpu"]
