"""GPU utilization, memory and power sampled through NVML while a call repeats; None without NVML."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GpuSample:
    util_pct: float
    mem_used_bytes: int
    power_w: float | None


def _nvml() -> Any | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # pynvml raises NVMLError subclasses (no driver, no library); none are fatal here
        return None
    return pynvml


def _handle(nvml: Any, index: int) -> Any:
    """NVML's handle for torch's device ``index``.

    NVML numbers GPUs ignoring CUDA_VISIBLE_DEVICES, so match on the PCI bus id when torch can
    tell it, and fall back to the index.
    """
    try:
        import torch

        props: Any = torch.cuda.get_device_properties(index)
        bus_id = f"{props.pci_domain_id:08X}:{props.pci_bus_id:02X}:{props.pci_device_id:02X}.0"
        return nvml.nvmlDeviceGetHandleByPciBusId(bus_id)
    except Exception:  # no CUDA in torch, an old torch without PCI ids, or NVML disagreeing
        return nvml.nvmlDeviceGetHandleByIndex(index)


class GpuSampler:
    """Samples one GPU in a background thread; ``summary()`` is the record's ``gpu`` field."""

    def __init__(self, index: int = 0, interval_s: float = 0.02, nvml: Any | None = None) -> None:
        self.nvml = nvml if nvml is not None else _nvml()
        self.interval_s = interval_s
        self.samples: list[GpuSample] = []
        self._handle = _handle(self.nvml, index) if self.nvml else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return self._handle is not None

    def _read(self) -> GpuSample:
        nvml: Any = self.nvml
        util = nvml.nvmlDeviceGetUtilizationRates(self._handle)
        mem = nvml.nvmlDeviceGetMemoryInfo(self._handle)
        try:
            power: float | None = nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0
        except Exception:  # power readout is unsupported on some boards
            power = None
        return GpuSample(float(util.gpu), int(mem.used), power)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self._read())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> GpuSampler:
        if self.available:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.samples.append(self._read())

    def summary(self) -> dict[str, Any] | None:
        if not self.samples:
            return None
        powers = [s.power_w for s in self.samples if s.power_w is not None]
        return {
            "util_mean_pct": sum(s.util_pct for s in self.samples) / len(self.samples),
            "util_max_pct": max(s.util_pct for s in self.samples),
            "mem_used_max_bytes": max(s.mem_used_bytes for s in self.samples),
            "power_mean_w": sum(powers) / len(powers) if powers else None,
            "samples": len(self.samples),
        }


def sample_gpu(
    call: Callable[[], Any], device: str, *, min_s: float = 0.5, min_calls: int = 3, nvml: Any | None = None
) -> dict[str, Any] | None:
    """Repeat ``call`` for at least ``min_s`` (and ``min_calls``) while sampling its GPU."""
    if not device.startswith("cuda"):
        return None
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    sampler = GpuSampler(index, nvml=nvml)
    if not sampler.available:
        return None
    with sampler:
        start, calls = time.perf_counter(), 0
        while calls < min_calls or time.perf_counter() - start < min_s:
            call()
            calls += 1
    return sampler.summary()
