"""CUDA paths: synchronised timing, allocator peaks, NVML sampling and `--device cuda` (skip without CUDA)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from bench.calls import Caller
from bench.environment import describe
from bench.probes import cuda_peak, sample_gpu
from tests.bench.conftest import run_in

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_timed_call_waits_for_the_kernels() -> None:
    a = torch.randn(4096, 4096, device="cuda")
    caller = Caller(lambda a: a @ a, {"a": a}, "forward", "cuda")
    call, context = caller.timed()
    with context:
        call()
        start = time.perf_counter()
        call()
        synced = time.perf_counter() - start
    # 2 * 4096^3 FLOPs cannot finish in the few microseconds an unsynchronised launch takes.
    assert synced > 1e-4


def test_cuda_peak_sees_an_allocation() -> None:
    peak = cuda_peak(lambda: torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda").fill_(1), "cuda")
    assert peak.allocated_delta_bytes >= 256 * 2**20
    assert peak.reserved_bytes >= peak.allocated_bytes


def test_nvml_sampling_reports_utilization() -> None:
    a = torch.randn(4096, 4096, device="cuda")
    summary = sample_gpu(lambda: (a @ a, torch.cuda.synchronize()), "cuda", min_s=0.5)
    if summary is None:
        pytest.skip("NVML is not available on this machine")
    assert summary["samples"] >= 3
    assert summary["util_max_pct"] > 0
    assert summary["mem_used_max_bytes"] > 0


def test_environment_measures_the_gpu() -> None:
    env = describe(("cuda",), measure=True)
    assert env["gpu"]["name"]
    assert env["peak"]["cuda"]["gflops_fp32"] > 100


def test_bench_run_on_cuda(toy_project: Path) -> None:
    proc = run_in(toy_project, "-m", "bench.cli", "run", "--device", "cuda", "-k", "n8", "--json", "gpu.json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((toy_project / "gpu.json").read_text())
    records = [b["extra_info"]["bench"] for b in doc["benchmarks"]]
    assert records and all(r["device"] == "cuda" for r in records)
    assert all(r["memory"]["cuda_peak_allocated_bytes"] is not None for r in records)


GPU_SUITE = """
import ctypes

import torch

from bench import Case, Grid, register


def setup(params, device):
    gen = torch.Generator().manual_seed(0)
    return {"a": torch.randn(params["n"], params["n"], generator=gen).to(device)}


def product(a):
    return a @ a


def segfault(a):
    ctypes.string_at(0)  # a read of address 0, after this worker has initialised CUDA


register(Case(name="gpu.product", setup=setup, reference=product,
              variants={"same": product, "segfault": segfault},
              grids={"quick": Grid(n=[4096]), "full": Grid(n=[4096])}))
"""


@pytest.mark.parametrize("start", ["forkserver", "spawn"])
def test_a_cuda_worker_times_synchronised_calls_reads_its_allocator_and_may_crash(
    start: str, tmp_path: Path
) -> None:
    # In this process CUDA is initialised already (the tests above): its workers must start from a
    # fork server or a fresh interpreter, never a fork of it.
    from bench.options import RunOptions
    from bench.trials import TrialSettings, group_job, measure_group

    torch.ones(1, device="cuda")
    suite = tmp_path / "gpu_suite.py"
    suite.write_text(GPU_SUITE)
    settings = TrialSettings(trials=2, budget_s=0.05, min_rounds=2, min_time_s=1e-6, time_limit_s=60,
                             threads=1, start=start, timer_precision_s=1e-9, ready_width=2)
    job = group_job(suite, tmp_path, "gpu.product", {"n": 4096}, "cuda", ["reference", "same", "segfault"],
                    RunOptions(), settings)
    found = measure_group(job)
    crashed = found["segfault"].error
    assert crashed is not None and crashed["kind"] == "crash" and crashed["signal"] == "SIGSEGV", crashed
    for name in ("reference", "same"):
        outcome = found[name]
        assert outcome.error is None and len(outcome.trials) == 2, outcome
        rounds = [s for trial in outcome.trials for s in trial]
        # 2 * 4096^3 FLOPs: far longer than the few microseconds an unsynchronised launch takes.
        assert min(rounds) > 1e-4, rounds
        memory = (outcome.record or {})["memory"]
        # The input and the product, 64 MiB each, seen by the worker's own allocator.
        assert memory["cuda_peak_allocated_bytes"] >= 2 * 64 * 2**20, memory


def test_correctness_check_runs_in_full_fp32_and_restores_tf32() -> None:
    from bench.device import strict_fp32

    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = True
    x = torch.randn(2, 16, 32, 32, device="cuda")
    conv = torch.nn.Conv2d(16, 32, 3, padding=1).cuda()
    with strict_fp32("cuda"):
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        nchw = conv(x)
        nhwc = conv.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    # Different kernels, one arithmetic: full float32 agrees far inside an exact tolerance.
    torch.testing.assert_close(nhwc, nchw, rtol=1e-5, atol=1e-5)
    assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
