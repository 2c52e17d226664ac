"""The bench command: exit codes and messages for good runs, failures and unusable input."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from bench.claims import audit
from bench.cli import main
from bench.results import load_run
from tests.bench.conftest import make_toy_project, run_in
from tests.bench.sample_run import sample_document


def _bench(project: Path, *args: str, behaviour: str = ""):
    return run_in(project, "-m", "bench.cli", *args, behaviour=behaviour)


# Two tests' runs, each in its own toy project: (arguments, TOY_BEHAVIOUR).
TOY_RUNS: dict[str, tuple[tuple[str, ...], str]] = {
    "failures": (("run", "-k", "n8 and cpu", "--json", "out/run.json"), "failures"),
    # Under the default start: the run's Ctrl-C with its fork servers up.
    "interrupt": (("run", "-k", "cpu", "--worker-start", "forkserver", "--json", "int.json"), "interrupt"),
}
ToyRun = tuple[Path, subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[ToyRun]]]:
    """Both runs, started together when the first of their tests asks: they share nothing, and each
    keeps one core busy (a worker at a time; the hanging variant waits out its 4 s on none)."""

    def run(name: str) -> ToyRun:
        project = make_toy_project(tmp_path_factory.mktemp(name))
        args, behaviour = TOY_RUNS[name]
        return project, _bench(project, *args, behaviour=behaviour)

    with ThreadPoolExecutor(len(TOY_RUNS)) as pool:
        yield {name: pool.submit(run, name) for name in TOY_RUNS}


def test_run_writes_json_and_report_and_exits_1_on_failures(toy_runs: dict[str, Future[ToyRun]]) -> None:
    toy_project, proc = toy_runs["failures"].result()
    assert proc.returncode == 1, proc.stderr
    doc = json.loads((toy_project / "out" / "run.json").read_text())
    assert {f["error"]["kind"] for f in doc["bench"]["failures"]} == {
        "mismatch",
        "exception",
        "oom",
        "timeout",
    }
    report = (toy_project / "out" / "run.md").read_text()
    assert "## Claims audit" in report and "## Failures" in report
    assert "not timed (mismatch)" in report
    # Progress goes to stderr one line per item when not on a terminal; the table to stdout.
    assert "[1/8" in proc.stderr and "Speedup" in proc.stdout
    assert "4 timed, 4 failed" in proc.stderr


def test_selection_matching_nothing_exits_2(toy_project: Path) -> None:
    proc = _bench(toy_project, "run", "-k", "no_such_case")
    assert proc.returncode == 2
    assert "selected no benchmark items" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_list_shows_items(toy_project: Path) -> None:
    proc = _bench(toy_project, "list", "-k", "n8")
    assert proc.returncode == 0, proc.stderr
    assert "toy.square[n8-cpu-reference]" in proc.stdout


def test_interrupt_writes_finished_results(toy_runs: dict[str, Future[ToyRun]]) -> None:
    toy_project, proc = toy_runs["interrupt"].result()
    assert proc.returncode == 130, proc.stderr
    doc = json.loads((toy_project / "int.json").read_text())
    assert doc["bench"]["interrupted"] is True
    assert len(doc["benchmarks"]) >= 1
    report = (toy_project / "int.md").read_text()
    assert "interrupted" in report
    # n16 was not finished: toy.square's claims are not run (not judged on n8 alone)
    assert doc["bench"]["selection"]["not_reached"] == ["toy.square"]
    t1 = {c.id: c for c in audit(load_run(toy_project / "int.json"))}["T1"]
    assert t1.verdict == "not run" and t1.command == "bench run --resume int.journal.jsonl"
    assert "the run was interrupted before it finished toy.square; run: `bench run --resume" in report
    if (os.cpu_count() or 1) >= 2:  # the two groups' checks ran first, side by side
        assert "[checks 2/2" in proc.stderr and proc.stderr.index("[checks 2/2") < proc.stderr.index("[1/")


def test_broken_suite_is_unusable_input(toy_project: Path) -> None:
    (toy_project / "suites" / "broken.py").write_text(
        "from bench import Case, Grid, register\n"
        "register(Case(name='bad.case', setup=lambda p, d: {}, reference=None, variants={},\n"
        "              grids={'quick': Grid(n=[1]), 'full': Grid(n=[1])}))\n"
    )
    proc = _bench(toy_project, "list")
    assert proc.returncode == 2
    assert "has no reference implementation" in proc.stderr


# In-process: argument errors and the report command need no pytest run.


def test_unknown_profile_exits_2(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--profile", "huge"])
    assert exc.value.code == 2
    assert "invalid choice: 'huge'" in capsys.readouterr().err


def test_cuda_without_cuda_exits_2(capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert main(["run", "--device", "cuda"]) == 2
    assert "--device cuda was asked for" in capsys.readouterr().err


def test_report_of_a_malformed_file_exits_2(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "is not valid JSON" in err and "Traceback" not in err


def test_report_writes_markdown(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(sample_document()))
    assert main(["report", str(path), "-o", str(tmp_path / "r.md")]) == 0
    text = (tmp_path / "r.md").read_text()
    assert text.startswith("# Performance report") and "**C1**" in text


def test_quick_profile_leaves_slow_cases_out_unless_asked(
    left_out_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    toy_project, quick = left_out_run
    # Two more runs that share nothing but the project (each its own JSON and report), side by
    # side: one per core, not one after another.
    runs = [
        # A clean selection exits 0 and writes the report where --report says.
        ("run", "-k", "n8 and cpu", "-m", "", "--json", "all.json", "--report", "reports/all.md"),
        ("run", "-k", "heavy", "--json", "none.json"),
    ]
    with ThreadPoolExecutor(len(runs)) as pool:
        done = pool.map(lambda args: _bench(toy_project, *args, behaviour="slow_case"), runs)
        everything, nothing = done

    proc = quick
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((toy_project / "q.json").read_text())
    assert {b["extra_info"]["bench"]["case"] for b in doc["benchmarks"]} == {"toy.square"}
    assert doc["bench"]["selection"] == {
        "keyword": "n8 and cpu",
        "markers": "not slow",
        "left_out": {"toy.heavy": ["slow"]},
        "not_reached": [],
    }
    report = (toy_project / "q.md").read_text()
    assert "left out by the marker expression (1 case(s)" in report and "`toy.heavy`" in report

    proc = everything
    assert proc.returncode == 0, proc.stderr
    assert (toy_project / "reports" / "all.md").exists()
    doc = json.loads((toy_project / "all.json").read_text())
    assert {b["extra_info"]["bench"]["case"] for b in doc["benchmarks"]} == {"toy.square", "toy.heavy"}
    assert doc["bench"]["selection"]["left_out"] == {}

    proc = nothing
    assert proc.returncode == 2
    assert "-m 'not slow'" in proc.stderr and "selected no benchmark items" in proc.stderr
