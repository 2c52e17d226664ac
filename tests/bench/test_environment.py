"""Machine limits with injected numbers: cache sizes, STREAM byte counting, which limit applies."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from bench import environment
from bench.compare import CACHE, MEMORY, OVER, PARTLY_CACHED, bandwidth_use, compare_runs
from bench.environment import (
    STREAM_WORDS,
    available_memory_bytes,
    last_level_cache_bytes,
    measured_limits,
    stream_array_bytes,
    stream_bandwidth,
)
from bench.render.tables import cells
from bench.results import load_run
from tests.bench.sample_run import sample_document

MiB = 2**20


def _cache(root: Path, index: int, level: int, kind: str, size: str) -> None:
    folder = root / "cpu0" / "cache" / f"index{index}"
    folder.mkdir(parents=True)
    (folder / "level").write_text(f"{level}\n")
    (folder / "type").write_text(f"{kind}\n")
    (folder / "size").write_text(f"{size}\n")


def test_last_level_cache_is_the_highest_level_in_sysfs(tmp_path: Path) -> None:
    _cache(tmp_path, 0, 1, "Data", "32K")
    _cache(tmp_path, 1, 1, "Instruction", "32K")
    _cache(tmp_path, 2, 2, "Unified", "1024K")
    _cache(tmp_path, 3, 3, "Unified", "32768K")
    assert last_level_cache_bytes(root=tmp_path) == 32 * MiB
    assert last_level_cache_bytes(root=tmp_path / "nowhere") is None


def test_available_memory_from_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       32000000 kB\nMemAvailable:   22373816 kB\n")
    assert available_memory_bytes(meminfo=meminfo) == 22373816 * 1024
    assert available_memory_bytes(meminfo=tmp_path / "missing") is None


def test_stream_arrays_are_far_beyond_the_cache_within_memory() -> None:
    assert stream_array_bytes(32 * MiB, 64 * 2**30) == 128 * MiB  # 4x the last-level cache
    assert stream_array_bytes(2 * MiB, 64 * 2**30) == 64 * MiB  # never below 64 MiB
    assert stream_array_bytes(None, None) == 64 * MiB
    assert stream_array_bytes(1024 * MiB, 12 * 1000 * MiB) == 1000 * MiB  # 3 arrays: a quarter


def _timer(seconds: Iterator[float], threads_seen: list[int]) -> Callable[..., float]:
    def timer(call: Callable[[], Any], device: str, repeats: int) -> float:
        call()  # the kernel really runs on the (tiny) arrays: its shapes must be right
        threads_seen.append(torch.get_num_threads())
        return next(seconds)

    return timer


def test_stream_counts_bytes_as_stream_does_and_reports_the_best(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "usable_cores", lambda: 3)
    before = torch.get_num_threads()
    seen: list[int] = []
    # Two passes over copy, scale, add, triad, daxpy: the best (shortest) time of each counts.
    times = iter([2e-6, 2e-6, 3e-6, 3e-6, 6e-6, 1e-6, 4e-6, 1e-6, 1e-6, 1e-6])
    result = stream_bandwidth(array_bytes=800, timer=_timer(times, seen), passes=2)
    n = 100
    assert result.array_bytes == 8 * n
    assert result.kernels_gbs == pytest.approx(
        {
            "copy": 2 * 8 * n / 1e-6 / 1e9,  # read a, write c
            "scale": 2 * 8 * n / 2e-6 / 1e9,
            "add": 3 * 8 * n / 1e-6 / 1e9,  # read a and b, write c
            "triad": 3 * 8 * n / 1e-6 / 1e9,
            "daxpy": 3 * 8 * n / 1e-6 / 1e9,  # read a and b, write a
        }
    )
    assert set(STREAM_WORDS) == set(result.kernels_gbs)
    assert result.best_gbs == pytest.approx(2.4)
    assert seen == [3] * 10 and result.threads == 3  # all cores while timing ...
    assert torch.get_num_threads() == before  # ... and the run's setting back afterwards


def test_a_cache_slower_than_memory_is_measured_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "stream_array_bytes", lambda llc, available: 800)
    monkeypatch.setattr(environment, "last_level_cache_bytes", lambda device="cpu": 6400)
    # memory: 10 kernel timings; cache: 10 while another process held a core, then 10 good ones;
    # then the matmul.
    slow, fast = [1e-3] * 10, [1e-7] * 10
    times = iter([1e-6] * 10 + slow + fast + [1.0])
    limits = measured_limits("cpu", timer=_timer(times, []))
    assert limits["memory_gbs"] == pytest.approx(3 * 800 / 1e-6 / 1e9)
    assert limits["cache_gbs"] == pytest.approx(3 * 800 / 1e-7 / 1e9)  # the second measurement
    assert limits["cache_gbs"] > limits["memory_gbs"]
    assert limits["llc_bytes"] == 6400 and limits["stream"]["array_bytes"] == 800
    assert limits["cache_stream"]["array_bytes"] == 800  # an eighth of the cache each


LIMITS = {"memory_gbs": 20.0, "cache_gbs": 200.0, "llc_bytes": 32 * MiB}


def test_an_achieved_bandwidth_is_shown_against_the_limit_that_applies() -> None:
    # Beyond the cache, within the memory bandwidth.
    use = bandwidth_use(15.0, 150e6, LIMITS)
    assert use is not None and use.limit == MEMORY and use.pct == pytest.approx(75.0)
    # Above the memory bandwidth with bytes that fit in the last-level cache: cache-resident.
    use = bandwidth_use(52.0, 8e6, LIMITS)
    assert use is not None and use.limit == CACHE and use.pct == pytest.approx(26.0)
    # Within 4x the cache, part may stay in it: between the limits, a percentage of neither.
    use = bandwidth_use(52.0, 100e6, LIMITS)
    assert use is not None and use.limit == PARTLY_CACHED and use.pct is None
    # Above the memory bandwidth with bytes far beyond the cache: the count or the limit is wrong.
    use = bandwidth_use(52.0, 150e6, LIMITS)
    assert use is not None and use.limit == OVER and use.pct is None
    # An old run with a copy rate only, and a run with no limits at all.
    use = bandwidth_use(13.4, 150e6, {"copy_gbs": 26.8})
    assert use is not None and use.limit == MEMORY and use.pct == pytest.approx(50.0)
    assert bandwidth_use(13.4, 150e6, {}) is None


@pytest.mark.parametrize(
    ("gigabytes", "seconds", "cell"),
    [
        (0.15, 0.01, "15 GB/s (75 % of memory bw)"),
        (0.008, 0.0002, "40 GB/s (cache-resident, 20 % of cache bw)"),
        (0.1, 0.002, "50 GB/s (above memory bw: partly cache-resident)"),
        (0.15, 0.0029, "51.7 GB/s (over the limit)"),
    ],
)
def test_throughput_cells_never_exceed_their_limit(
    tmp_path: Path, gigabytes: float, seconds: float, cell: str
) -> None:
    doc = sample_document()
    doc["bench"]["environment"]["peak"] = {"cpu": {"gflops_fp32": 100.0, **LIMITS}}
    for entry in doc["benchmarks"]:
        bench = entry["extra_info"]["bench"]
        bench["work"] = {"unit": "GB", "per_call": gigabytes}
        if bench["variant"] == "fast":
            entry["stats"]["median"] = seconds
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    fast = next(r for r in compare_runs([load_run(path)]) if r.variant == "fast")
    assert cells(fast)[-1] == cell
    assert "%" not in cell or float(cell.split("(")[1].split(" %")[0].split(", ")[-1]) <= 100
