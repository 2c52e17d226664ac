"""The pytest plugin end to end on the toy suite: items, correctness, probes, failures, the JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.results import load_run
from tests.bench.conftest import make_toy_project, run_in

FAST = ["--benchmark-max-time=0.01", "--benchmark-min-rounds=3"]
# A toy run's project, exit code, output and JSON document.
ToyRun = tuple[Path, int, str, dict]


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


# The toy runs of this module's tests, each in its own project: (pytest arguments, TOY_BEHAVIOUR).
# They share nothing, and each keeps one core busy (one worker at a time, one torch thread): the
# module starts them all, two at a time, when its first test asks, and each test reads its own.
TOY_RUNS: dict[str, tuple[tuple[str, ...], str]] = {
    "failures": (("--bench-device=all",), "failures"),
    "n8": (("-k", "n8"), ""),
    "interrupt": (("-k", "cpu"), "interrupt"),
    "stop_mid_timing": (("-k", "cpu"), "stop_mid_timing"),
    "no_timed": (("-k", "n8 and cpu and wrong"), "failures"),
    "prepared": (("--bench-device=cpu", "-k", "prepared"), ""),
}


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[ToyRun]]]:
    def run(name: str, project: Path) -> ToyRun:
        args, behaviour = TOY_RUNS[name]
        return project, *_pytest(project, *args, behaviour=behaviour)

    with ThreadPoolExecutor(2) as pool:
        futures = {}
        for name in TOY_RUNS:
            project = make_toy_project(tmp_path_factory.mktemp(name))
            if name == "prepared":
                # The toy configuration, with a suite of prepared implementations beside the toy one.
                shutil.copy(
                    Path(__file__).parent / "data" / "prepared_suite.py", project / "suites" / "prepared.py"
                )
            futures[name] = pool.submit(run, name, project)
        yield futures
        for future in futures.values():  # the runs of deselected tests: not started if still waiting
            future.cancel()


def test_items_records_and_failures(toy_runs: dict[str, Future[ToyRun]]) -> None:
    _, code, output, doc = toy_runs["failures"].result()
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


def test_results_load_and_pytest_benchmark_compare_reads_them(toy_runs: dict[str, Future[ToyRun]]) -> None:
    toy_project, code, output, _ = toy_runs["n8"].result()
    assert code == 0, output
    run = load_run(toy_project / "out.json")
    assert {r.variant for r in run.records} == {"reference", "same", "half", "small"}
    compare = Path(sys.executable).with_name("pytest-benchmark")
    proc = subprocess.run(
        [str(compare), "compare", str(toy_project / "out.json")], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "toy.square[n8-cpu-same]" in proc.stdout


def test_keyboard_interrupt_keeps_finished_results(toy_runs: dict[str, Future[ToyRun]]) -> None:
    _, code, output, doc = toy_runs["interrupt"].result()
    assert code == 2, output  # pytest's "interrupted"
    assert doc["bench"]["interrupted"] is True
    names = {b["name"] for b in doc["benchmarks"]}
    assert "toy.square[n8-cpu-reference]" in names
    assert not any("n16" in name for name in names)  # the group being measured is not half-saved


def test_interrupt_during_timing_keeps_the_finished_items(toy_runs: dict[str, Future[ToyRun]]) -> None:
    # The group cut short has some rounds in its worker: none of them may be saved as if timed.
    _, code, output, doc = toy_runs["stop_mid_timing"].result()
    assert code == 2, output
    assert doc["bench"]["interrupted"] is True
    names = {b["name"] for b in doc["benchmarks"]}
    assert {
        "toy.square[n8-cpu-reference]",
        "toy.square[n8-cpu-same]",
        "toy.square[n8-cpu-zz_midway]",
    } <= names
    assert not any("n16" in name for name in names)


def test_no_timed_items_still_writes_failures(toy_runs: dict[str, Future[ToyRun]]) -> None:
    _, code, output, doc = toy_runs["no_timed"].result()
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


# -- a good citizen: inert in projects that declare no suites ------------------------------------

PLAIN_TEST = "def test_sum(benchmark):\n    assert benchmark(sum, range(100)) == 4950\n"
HEAVY = ("torch", "pandas", "matplotlib", "pennylane", "numpy", "scipy")


def _plain_project(tmp_path: Path) -> Path:
    (tmp_path / "test_plain.py").write_text(PLAIN_TEST)
    # A folder named suites/ is not a declaration: importing this file would fail the run.
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "model.py").write_text("raise RuntimeError('suites/ must not be imported')\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "plain"\n')
    return tmp_path


def test_plain_project_benchmark_only_is_unchanged(tmp_path: Path) -> None:
    project = _plain_project(tmp_path)
    outputs = {}
    for label, extra in (("with", []), ("without", ["-p", "no:bench"])):
        out = project / f"{label}.json"
        proc = run_in(project, "-m", "pytest", "--benchmark-only", f"--benchmark-json={out}", *extra)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        doc = json.loads(out.read_text())
        outputs[label] = (doc["benchmarks"][0]["name"], doc["benchmarks"][0]["options"], "bench" in doc)
        assert "1 passed" in proc.stdout
    # Same test, same pytest-benchmark timing options, no harness data.
    assert outputs["with"] == outputs["without"] == (outputs["with"][0], outputs["without"][1], False)


def test_loading_the_plugin_imports_nothing_heavy(tmp_path: Path) -> None:
    project = _plain_project(tmp_path)
    script = (
        "import sys, pytest\n"
        "code = pytest.main(['--co', '-q', '-p', 'no:cacheprovider', '--benchmark-only'])\n"
        "assert 'bench.plugin' in sys.modules, 'the plugin did not load'\n"
        f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules], int(code))\n"
    )
    proc = run_in(project, "-c", script, fresh=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "HEAVY [] 0" in proc.stdout, proc.stdout


def test_declared_suites_load_the_harness(toy_project: Path) -> None:
    script = (
        "import sys, pytest\n"
        "pytest.main(['--co', '-q', '-p', 'no:cacheprovider', '--benchmark-only'])\n"
        "print('TORCH', 'torch' in sys.modules)\n"
    )
    proc = run_in(toy_project, "-c", script, fresh=True)
    assert "TORCH True" in proc.stdout and "toy.square[n8-cpu-reference]" in proc.stdout, proc.stdout


# -- cases in any repo: [tool.bench], nested folders, files imported by path ---------------------

SUITE = """
from bench import Case, Grid, register
from helpers import double  # the project root's own code: on sys.path without pythonpath


def setup(params, device):
    return {{"n": params["n"]}}


register(Case(name="{name}", setup=setup, reference=double, variants={{"again": lambda n: n * 2}},
              grids={{"quick": Grid(n=[1]), "full": Grid(n=[1, 2])}}, devices=("cpu",)))
"""


def _tool_bench_project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text('[tool.bench]\nsuites = ["benchmarks"]\n')
    (tmp_path / "helpers.py").write_text("def double(n):\n    return n * 2\n")
    # Two files of one name in different nested folders, no __init__.py anywhere.
    for folder, name in (("benchmarks/vision/deep", "vision.double"), ("benchmarks/audio", "audio.double")):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "cases.py").write_text(SUITE.format(name=name))
    (tmp_path / "benchmarks" / "_shared.py").write_text("raise RuntimeError('helpers are not suites')\n")
    return tmp_path


def test_tool_bench_table_nested_folders_and_files_imported_by_path(tmp_path: Path) -> None:
    project = _tool_bench_project(tmp_path)
    proc = run_in(project, "-m", "pytest", "--benchmark-only", "--collect-only", "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "benchmarks/vision/deep/cases.py::vision.double[n1-cpu-reference]" in proc.stdout
    assert "benchmarks/audio/cases.py::audio.double[n1-cpu-again]" in proc.stdout
    proc = run_in(project, "-m", "bench.cli", "list", "--profile", "full")
    assert proc.returncode == 0, proc.stderr
    assert "8 benchmark items" in proc.stdout, proc.stdout


def test_bench_suites_ini_option_declares_suites(tmp_path: Path) -> None:
    project = _tool_bench_project(tmp_path)
    (project / "pyproject.toml").unlink()
    (project / "pytest.ini").write_text("[pytest]\nbench_suites = benchmarks/audio\n")
    proc = run_in(project, "-m", "pytest", "--benchmark-only", "--collect-only", "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "audio.double[n1-cpu-reference]" in proc.stdout and "vision" not in proc.stdout


def test_a_suite_file_that_registers_nothing_or_fails_is_a_clear_error(tmp_path: Path) -> None:
    project = _tool_bench_project(tmp_path)
    (project / "benchmarks" / "empty.py").write_text("x = 1\n")
    (project / "benchmarks" / "broken.py").write_text("import torch\nfrom nowhere import model\n")
    proc = run_in(project, "-m", "bench.cli", "list")
    assert proc.returncode == 2
    assert "benchmarks/empty.py registers no cases" in proc.stderr
    assert (
        "benchmarks/broken.py failed to import: ModuleNotFoundError: No module named 'nowhere'" in proc.stderr
    )
    assert "broken.py:2" in proc.stderr and "Traceback" not in proc.stderr


def test_declared_suites_that_do_not_exist_are_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.bench]\nsuites = ["nowhere"]\n')
    proc = run_in(tmp_path, "-m", "pytest", "--benchmark-only")
    assert proc.returncode == 4
    assert "declared suite folder(s) not found" in proc.stderr and "nowhere" in proc.stderr
    (tmp_path / "pyproject.toml").write_text('[tool.bench]\nsuites = "benchmarks"\n')
    proc = run_in(tmp_path, "-m", "pytest", "--benchmark-only")
    assert proc.returncode == 4 and 'needs suites = ["folder", ...]' in proc.stderr


def test_bench_commands_say_when_no_suites_are_declared(tmp_path: Path) -> None:
    project = _plain_project(tmp_path)
    proc = run_in(project, "-m", "bench.cli", "list")
    assert proc.returncode == 2
    assert "declares no suites" in proc.stderr and "[tool.bench]" in proc.stderr


# -- registration: cases belong to the file whose top level runs ---------------------------------


def test_register_from_a_helper_belongs_to_the_suite_file(tmp_path: Path) -> None:
    from bench.errors import CaseDefinitionError
    from bench.registry import REGISTRY, load_suite

    (tmp_path / "reghelper_mod.py").write_text(
        "from bench import Case, Grid, register\n"
        "def declare(name):\n"
        "    register(Case(name=name, setup=lambda p, d: {}, reference=lambda: 0, variants={},\n"
        "                  grids={'quick': Grid(n=[1]), 'full': Grid(n=[1])}))\n"
    )
    suite = tmp_path / "suite_a.py"
    suite.write_text("from reghelper_mod import declare\ndeclare('regtest.one')\ndeclare('regtest.two')\n")
    cases = load_suite(suite, tmp_path)
    assert [c.name for c in cases] == ["regtest.one", "regtest.two"]
    assert load_suite(suite, tmp_path) == cases  # imported once
    other = tmp_path / "suite_b.py"
    other.write_text("from reghelper_mod import declare\ndeclare('regtest.one')\n")
    with pytest.raises(CaseDefinitionError, match=r"declared twice: in .*suite_a\.py and in .*suite_b\.py"):
        load_suite(other, tmp_path)
    assert REGISTRY.from_file(suite) == cases


def test_prepare_kwargs_and_measures_context(toy_runs: dict[str, Future[ToyRun]]) -> None:
    _, code, output, doc = toy_runs["prepared"].result()
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


def test_the_results_path_is_read_from_a_path_or_from_the_file_pytest_benchmark_opens(tmp_path: Path) -> None:
    # pytest-benchmark 5.3 hands --benchmark-json over as a path; 5.2 and earlier as the file it
    # opened for writing (argparse.FileType("wb")), which the journal must not be given as a path.
    from bench.session import results_path

    target = tmp_path / "run.json"
    assert results_path(str(target)) == target
    assert results_path(target) == target  # a Path has a name too: not the file's
    with open(target, "wb") as opened:
        assert results_path(opened) == target
