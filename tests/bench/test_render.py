"""Renderers against golden files: the markdown report and the console tables of a known run."""

from __future__ import annotations

import dataclasses
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from bench.claims import audit
from bench.compare import compare_runs
from bench.render import format as fmt
from bench.render.console import print_results
from bench.render.report import render_report
from bench.results import load_run
from tests.bench.sample_run import sample_document

GOLDEN = Path(__file__).parent / "data"


def _run(tmp_path: Path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(sample_document()))
    return dataclasses.replace(load_run(path), path="results/run.json")


def _check_golden(name: str, text: str) -> None:
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), f"{name} changed; rerun with UPDATE_GOLDEN=1 if intended"


def test_markdown_report_golden(tmp_path: Path) -> None:
    run = _run(tmp_path)
    rows = compare_runs([run])
    text = render_report(
        [run],
        rows,
        audit(run),
        command="bench report results/run.json",
        now=datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
    )
    _check_golden("golden_report.md", text)


def test_console_tables_golden(tmp_path: Path) -> None:
    run = _run(tmp_path)
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, color_system=None, legacy_windows=False)
    print_results(console, compare_runs([run]), audit(run))
    _check_golden("golden_console.txt", buffer.getvalue())


@pytest.mark.parametrize(
    ("value", "text"),
    [(2.5, "2.5 s"), (0.0123, "12.3 ms"), (4.2e-6, "4.2 µs"), (None, "—")],
)
def test_seconds(value, text) -> None:
    assert fmt.seconds(value) == text


def test_bytes_and_counts() -> None:
    assert fmt.nbytes(3 * 2**20) == "3 MiB"
    assert fmt.nbytes(512) == "512 B"
    assert fmt.count(3_800_000) == "3.8 M"
    assert fmt.ratio(2.0, (1.5, 2.5)) == "2× [1.5, 2.5]"


def test_busy_machine_is_other_work_not_the_run_itself() -> None:
    from bench.environment import is_busy, others_load

    # Idle before, and at the end only the run's own two threads: not busy.
    assert others_load({"start": 0.7, "end": 2.06}, threads=2) == 0.7
    assert not is_busy({"start": 0.7, "end": 2.06}, threads=2, cores=2)
    # Others already busy at the start, or more load at the end than the run's threads explain.
    assert is_busy({"start": 4.6, "end": 4.9}, threads=2, cores=2)
    assert is_busy({"start": 0.2, "end": 3.5}, threads=2, cores=2)
    assert not is_busy({"start": None, "end": None}, threads=2, cores=2)


def test_cpu_steal_is_read_from_proc_stat_and_a_contended_host_is_said(tmp_path: Path) -> None:
    from bench.environment import cpu_times, steal_share

    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 10 0 5 35 0 0\ncpu0 50 0 25 400 5 0 2 18 0 0\n")
    start = cpu_times(stat)
    assert start == (100, 0, 50, 800, 10, 0, 5, 35)
    stat.write_text("cpu  400 0 100 1050 10 0 5 335 0 0\n")
    # 300 of the 900 ticks between the readings were stolen.
    assert steal_share(start, cpu_times(stat)) == pytest.approx(1 / 3)
    assert steal_share(start, None) is None and steal_share(start, start) is None
    stat.write_text("intr 1 2 3\n")
    assert cpu_times(stat) is None and cpu_times(tmp_path / "missing") is None

    def report(steal: float | None) -> str:
        doc = sample_document()
        doc["bench"]["environment"]["cpu_steal"] = steal
        run = _loaded(tmp_path, doc)
        return render_report([run], compare_runs([run]), [])

    busy = report(0.29)
    assert "- **CPU steal**: 29 % of the cores' time" in busy and "**contended host**" in busy
    quiet = report(0.012)
    assert "- **CPU steal**: 1.2 %" in quiet and "contended" not in quiet
    assert "CPU steal" not in report(None)


def test_other_processes_share_leaves_the_runs_own_time_out(tmp_path: Path) -> None:
    import os

    from bench.environment import is_busy, others_share

    hz = os.sysconf("SC_CLK_TCK")
    start = (0, 0, 0, 0, 0, 0, 0, 0)
    # 10 s of two cores (20 s): 12 s busy (user 9, system 2, softirq 1), 7 s idle, 1 s stolen.
    end = (9 * hz, 0, 2 * hz, 7 * hz, 0, 0, 1 * hz, 1 * hz)
    assert others_share(start, end, own_s=10.0) == pytest.approx(2 / 20)
    assert others_share(start, end, own_s=14.0) == 0.0  # children counted late: never below 0
    assert others_share(None, end, own_s=1.0) is None
    # A run right after another: the 1-minute load at its start is the earlier run's. Where the
    # run measured what others used, that decides.
    assert is_busy({"start": 1.3, "end": 1.5}, threads=1, cores=2)
    assert not is_busy({"start": 1.3, "end": 1.5}, threads=1, cores=2, others_cpu=0.02)
    assert is_busy({"start": 0.1, "end": 1.1}, threads=1, cores=2, others_cpu=0.6)

    doc = sample_document()
    doc["bench"]["environment"]["load_average"] = {"start": 1.3, "end": 1.54}
    doc["bench"]["environment"]["cpu_others"] = 0.021
    run = _loaded(tmp_path, doc)
    text = render_report([run], compare_runs([run]), [])
    assert "other processes used 2.1 % of the cores' time" in text and "busy machine" not in text


def test_gpu_utilisation_column_only_where_nvml_sampled(tmp_path: Path) -> None:
    from bench.render.markdown import comparison_tables

    doc = sample_document()
    cpu_only = comparison_tables(compare_runs([_loaded(tmp_path, doc)]))["toy.square"]
    assert "GPU util" not in cpu_only

    for entry in doc["benchmarks"]:
        bench = entry["extra_info"]["bench"]
        if bench["variant"] == "fast":
            bench["gpu"] = {"util_mean_pct": 63.4, "util_max_pct": 90.0, "samples": 12}
    table = comparison_tables(compare_runs([_loaded(tmp_path, doc)]))["toy.square"]
    header, _, *body = table.splitlines()
    assert header.rstrip(" |").endswith("GPU util")
    fast = next(line for line in body if "| fast |" in line)
    assert fast.rstrip(" |").endswith("63 % (max 90)")
    reference = next(line for line in body if "| reference |" in line)
    assert reference.rstrip(" |").endswith("—")


def _loaded(tmp_path: Path, doc: dict):
    path = tmp_path / "gpu-run.json"
    path.write_text(json.dumps(doc))
    return load_run(path)


def test_instruction_counts_get_their_columns(tmp_path: Path) -> None:
    doc = sample_document()
    counts = {"reference": 4.0e6, "fast": 1.0e6}
    for entry in doc["benchmarks"]:
        bench = entry["extra_info"]["bench"]
        value = counts.get(bench["variant"])
        bench["counts"] = {"instructions_per_call": value, "reason": None if value else "past the limit"}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    rows = compare_runs([load_run(path)])
    report = render_report([load_run(path)], rows, [], command="bench run --counts")
    assert "| Instructions | Count ratio |" in report
    assert "| 4,000,000 | 1× |" in report and "| 1,000,000 | 4× |" in report
    assert "not counted (past the limit)" in report
    fast = next(r for r in rows if r.variant == "fast")
    assert fast.instruction_ratio == pytest.approx(4.0)
    # A run without counts has no such columns (the golden files above).
    assert "Instructions" not in render_report([_run(tmp_path)], compare_runs([_run(tmp_path)]), [])


def test_the_environment_says_the_workers_threads_and_allocator(tmp_path: Path) -> None:
    def cpu_line(trials: dict | None) -> str:  # type: ignore[type-arg]
        doc = sample_document()
        if trials is not None:
            doc["bench"]["trials"] = trials
        run = _loaded(tmp_path, doc)
        text = render_report([run], compare_runs([run]), [])
        return next(line for line in text.splitlines() if line.startswith("- **CPU**"))

    steady = cpu_line({"threads": 1, "malloc": "steady"})
    assert steady.endswith("torch threads 1 in the workers, glibc malloc steady (`--malloc`)")
    # A run from before the option names no allocator; one without trials, the run's threads.
    assert cpu_line({"threads": 1}).endswith("torch threads 1 in the workers")
    assert cpu_line(None).endswith("torch threads 2")
    pools = cpu_line({"threads": 1, "malloc": "steady", "thread_pools": ["torch", "BLAS", "OpenMP"]})
    assert pools.endswith(
        "threads 1 in the workers, in each pool (torch, BLAS, OpenMP), glibc malloc steady (`--malloc`)"
    )


def test_the_method_says_where_the_runs_time_went(tmp_path: Path) -> None:
    doc = sample_document()
    doc["bench"]["started"], doc["bench"]["finished"] = 1000.0, 1571.4
    doc["bench"]["trials"] = {
        "per_item": 4,
        "ready_width": 2,
        "checks_ahead": {"width": 2, "wall_s": 91.2},
        "workers": {
            "check": {"count": 2, "median_s": 1.0, "total_s": 179.4},
            "trial": {"count": 8, "median_s": 1.0, "total_s": 574.0},
            "groups": {"slow.case[n1-cpu]": {"check_s": 11.5, "trial_s": 75.6, "trials": 4},
                       "fast.case[n1-cpu]": {"check_s": 0.2, "trial_s": 1.1, "trials": 4}},
        },
    }
    run = _loaded(tmp_path, doc)
    text = render_report([run], compare_runs([run]), [])
    line = next(line for line in text.splitlines() if line.startswith("- **Where the time went**"))
    assert line.startswith("- **Where the time went**: 571 s in all; 2 check workers, 179 s")
    assert "179 s (2 at a time, 91 s of wall time); " in line
    assert "8 trial workers, 574 s, building and warming up 2 at a time, timing alone" in line
    assert "`slow.case[n1-cpu]` 87 s, `fast.case[n1-cpu]` 1 s" in line
    # A run that kept no workers' seconds (the golden report's) has no such line.
    plain = _loaded(tmp_path, sample_document())
    assert "Where the time went" not in render_report([plain], compare_runs([plain]), [])
