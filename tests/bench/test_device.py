"""Device planning, knob restoration and the per-item time limit."""

from __future__ import annotations

import time

import pytest
import torch

from bench.device import plan_devices, preserved_knobs, time_limit
from bench.errors import CaseTimeout, DeviceUnavailableError, SelectionError


def _no_cuda() -> str:
    return "no CUDA device is visible"


def _cuda() -> None:
    return None


def test_plans_without_cuda() -> None:
    assert plan_devices("cpu", _no_cuda).run == ("cpu",)
    auto = plan_devices("auto", _no_cuda)
    assert auto.run == ("cpu",) and auto.skipped == (("cuda", "no CUDA device is visible"),)
    assert plan_devices("all", _no_cuda).run == ("cpu",)
    with pytest.raises(DeviceUnavailableError, match="--device cuda was asked for, but no CUDA"):
        plan_devices("cuda", _no_cuda)


def test_plans_with_cuda() -> None:
    assert plan_devices("auto", _cuda).run == ("cuda",)
    assert plan_devices("all", _cuda).run == ("cpu", "cuda")
    assert plan_devices("cuda", _cuda).skipped == ()


def test_unknown_device() -> None:
    with pytest.raises(SelectionError, match="unknown device 'tpu'"):
        plan_devices("tpu", _cuda)


def test_knobs_are_restored() -> None:
    threads = torch.get_num_threads()
    with preserved_knobs():
        torch.set_num_threads(1)
        torch.set_grad_enabled(False)
    assert torch.get_num_threads() == threads
    assert torch.is_grad_enabled()


def test_time_limit_stops_a_long_call() -> None:
    start = time.perf_counter()
    with pytest.raises(CaseTimeout, match=r"ran past its time limit of 0\.2 s"):
        with time_limit(0.2, "sleeper"):
            time.sleep(3)
    assert time.perf_counter() - start < 2


def test_time_limit_leaves_fast_calls_alone() -> None:
    with time_limit(5, "quick") as active:
        assert active
    time.sleep(0.01)  # the timer was cancelled: nothing fires later


def test_strict_fp32_leaves_cpu_runs_alone() -> None:
    from bench.device import strict_fp32

    before = (torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision())
    with strict_fp32("cpu"):
        assert (torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()) == before
    assert (torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()) == before
