"""The pytest plugin end to end on the toy suite: items, correctness, probes, failures, the JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.results import load_run
from tests.bench.conftest import run_in

FAST = ["--benchmark-max-time=0.01", "--benchmark-min-rounds=3"]


def _pytest(project: Path, *args: str, behaviour: str = "") -> tuple[int, str, dict]:
    out = project / "out.json"
    proc = run_in(
        project,
        "-m",
        "pytest",
        "--benchmark-only",
        f"--benchmark-json={out}",
        *FAST,
        *args,
        behaviour=behaviour,
    )
    doc = json.loads(out.read_text()) if out.exists() else {}
    return proc.returncode, proc.stdout + proc.stderr, doc


def test_items_records_and_failures(toy_project: Path) -> None:
    code, output, doc = _pytest(toy_project, "--bench-device=all", behaviour="failures")
    assert code == 1, output
    names = {b["name"] for b in doc["benchmarks"]}
    # Reference, exact, approximate and different-workload variants are timed at both points.
    for n in (8, 16):
        for variant in ("reference", "same", "half", "small"):
            assert f"toy.square[n{n}-cpu-{variant}]" in names
    record = next(b for b in doc["benchmarks"] if b["name"] == "toy.square[n8-cpu-same]")
    bench = record["extra_info"]["bench"]
    assert bench["correctness"]["exact"] and bench["correctness"]["passed"]
    assert bench["correctness"]["max_abs_err"] < 1e-9
    assert bench["flops"] == {"per_call": 3 * 2 * 8**3, "source": "counted"}  # forward + two backward matmuls
    assert bench["memory"]["cpu_peak_rss_bytes"] > 0
    assert bench["work"] == {"unit": "rows", "per_call": 8.0}
    assert bench["dtype"] == "float64"
    assert len(record["stats"]["data"]) >= 3
    half = next(b for b in doc["benchmarks"] if b["name"] == "toy.square[n8-cpu-half]")["extra_info"]["bench"]
    assert half["correctness"]["quality_metric"] == "ratio"
    assert half["correctness"]["value"] == pytest.approx(0.5)
    failures = {f["item"]: f["error"] for f in doc["bench"]["failures"]}
    assert failures["toy.square[n8-cpu-wrong]"]["kind"] == "mismatch"
    assert "max abs err 1" in failures["toy.square[n8-cpu-wrong]"]["message"]
    assert failures["toy.square[n8-cpu-boom]"]["kind"] == "exception"
    assert failures["toy.square[n8-cpu-oom]"]["kind"] == "oom"
    assert failures["toy.square[n8-cpu-slow]"]["kind"] == "timeout"
    # Failed variants are never timed.
    assert not names & set(failures)
    skipped = doc["bench"]["skipped"]
    if skipped:  # no CUDA here: every cuda item is skipped with the reason
        assert all(
            s["item"].endswith(
                tuple(["reference]", "same]", "half]", "small]", "wrong]", "boom]", "oom]", "slow]"])
            )
            for s in skipped
        )
        assert all("cuda" in s["reason"] for s in skipped)
    assert doc["bench"]["environment"]["peak"]["cpu"]["gflops_fp32"] > 0
    assert {c["id"] for c in doc["bench"]["claims"]} == {"T1", "T2", "T3", "T4"}


def test_results_load_and_pytest_benchmark_compare_reads_them(toy_project: Path) -> None:
    code, output, _ = _pytest(toy_project, "-k", "n8")
    assert code == 0, output
    run = load_run(toy_project / "out.json")
    assert {r.variant for r in run.records} == {"reference", "same", "half", "small"}
    compare = Path(sys.executable).with_name("pytest-benchmark")
    proc = subprocess.run(
        [str(compare), "compare", str(toy_project / "out.json")], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "toy.square[n8-cpu-same]" in proc.stdout


def test_keyboard_interrupt_keeps_finished_results(toy_project: Path) -> None:
    code, output, doc = _pytest(toy_project, "-k", "n8 and cpu", behaviour="interrupt")
    assert code == 2, output  # pytest's "interrupted"
    assert doc["bench"]["interrupted"] is True
    assert "toy.square[n8-cpu-reference]" in {b["name"] for b in doc["benchmarks"]}


def test_interrupt_during_timing_keeps_the_finished_items(toy_project: Path) -> None:
    # The item cut short has some rounds: pytest-benchmark would save them as if timed (and
    # pytest-benchmark 5.2 writes an empty file when it has none: min() of no rounds).
    code, output, doc = _pytest(toy_project, "-k", "n8 and cpu", behaviour="stop_mid_timing")
    assert code == 2, output
    assert doc["bench"]["interrupted"] is True
    names = {b["name"] for b in doc["benchmarks"]}
    assert {"toy.square[n8-cpu-reference]", "toy.square[n8-cpu-same]"} <= names
    assert "toy.square[n8-cpu-zz_midway]" not in names


def test_no_timed_items_still_writes_failures(toy_project: Path) -> None:
    code, output, doc = _pytest(toy_project, "-k", "n8 and cpu and wrong", behaviour="failures")
    assert code == 1, output
    assert doc["benchmarks"] == []
    assert [f["error"]["kind"] for f in doc["bench"]["failures"]] == ["mismatch"]


def test_explicit_cuda_without_cuda_is_a_usage_error(toy_project: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    code, output, _ = _pytest(toy_project, "--bench-device=cuda")
    assert code == 4  # pytest's usage error
    assert "--device cuda was asked for" in output


def test_plain_benchmark_only_collects_the_suites(toy_project: Path) -> None:
    proc = run_in(toy_project, "-m", "pytest", "--benchmark-only", "--collect-only", "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "suites/toy.py::toy.square[n8-cpu-reference]" in proc.stdout


def test_prepare_kwargs_and_measures_context(toy_project: Path) -> None:
    # The toy project's configuration, with a suite of prepared implementations beside the toy one.
    shutil.copy(Path(__file__).parent / "data" / "prepared_suite.py", toy_project / "suites" / "prepared.py")
    code, output, doc = _pytest(toy_project, "--bench-device=cpu", "-k", "prepared")
    assert code == 0, output
    records = {b["name"]: b for b in doc["benchmarks"]}
    bench = {name.split("-")[-1].rstrip("]"): r["extra_info"]["bench"] for name, r in records.items()}
    # The prepared variant is checked against the reference (same sum) and told what it ran with.
    assert bench["transposed"]["correctness"]["passed"]
    again = bench["reference"]["extra"]["again"]
    expected = {"factor": 2.0, "reference": 0.0, "again": again, "n": 8.0}
    assert bench["transposed"]["extra"] == pytest.approx(expected)
    assert bench["reference"]["extra"]["reference"] == 1.0
    assert bench["doubled"]["extra"]["factor"] == 4.0
    # prepare's cost is recorded apart and stays out of the timed rounds and the checked call.
    assert bench["transposed"]["prepare_s"] >= 0.2
    assert bench["reference"]["prepare_s"] is None
    assert max(records["prepared.scale[n8-cpu-transposed]"]["stats"]["data"]) < 0.1
    assert bench["transposed"]["first_call_s"] < 0.1
