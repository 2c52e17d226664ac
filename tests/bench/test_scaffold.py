"""`bench init`: the suite file it writes, the declaration, and the README's walk-through end to end."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.errors import SelectionError, SuiteError
from bench.scaffold import write_scaffold
from tests.bench.conftest import PLUGINS, harness_env

MODEL = "import torch\n\n\ndef forward(x, weight, scale=1.0):\n    return torch.tanh(x @ weight) * scale\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    module = tmp_path / "scaffold_model_mod.py"  # a name of its own: the test imports it in-process
    module.write_text(MODEL)
    return tmp_path


def test_init_writes_a_suite_for_the_function_and_declares_it(project: Path) -> None:
    done = write_scaffold(project, None, "scaffold_model_mod:forward")
    assert done.suite_file == project / "suites" / "scaffold_model_mod.py"
    source = done.suite_file.read_text()
    ast.parse(source)
    assert "from scaffold_model_mod import forward" in source
    assert '"x": torch.randn' in source and '"weight": torch.randn' in source
    assert '"scale"' not in source  # arguments with defaults keep them
    assert 'name="scaffold_model_mod.forward"' in source
    assert tomllib.loads((project / "pyproject.toml").read_text()) == {
        "tool": {"bench": {"suites": ["suites"]}}
    }
    assert "created" in done.declaration
    with pytest.raises(SuiteError, match="exists; pass --force"):
        write_scaffold(project, None, "scaffold_model_mod:forward")
    write_scaffold(project, None, "scaffold_model_mod:forward", force=True)


def test_init_appends_the_table_or_says_what_to_add(project: Path) -> None:
    (project / "pyproject.toml").write_text('[project]\nname = "mine"\n')
    done = write_scaffold(project, Path("benchmarks/vision"), None)
    assert done.suite_file == project / "benchmarks" / "vision" / "example.py"
    data = tomllib.loads((project / "pyproject.toml").read_text())
    assert data == {"project": {"name": "mine"}, "tool": {"bench": {"suites": ["benchmarks/vision"]}}}
    # Declared already (a parent folder): nothing to add.
    done = write_scaffold(project, Path("benchmarks/vision/more.py"), None)
    assert "already declares" in done.declaration
    # Declared elsewhere: the user is told what to add, and the file is left alone.
    before = (project / "pyproject.toml").read_text()
    done = write_scaffold(project, Path("other"), None)
    assert "add 'other' to [tool.bench] suites" in done.declaration
    assert (project / "pyproject.toml").read_text() == before


def test_the_example_suite_runs_as_written(project: Path) -> None:
    source = write_scaffold(project, None, None).suite_file.read_text()
    namespace: dict = {}
    exec(compile(source.replace("register(", "case = (", 1), "example.py", "exec"), namespace)
    case = namespace["case"]  # the Case validated its declaration
    inputs = namespace["setup"](case.points("quick")[0], "cpu")
    reference, variant = namespace["reference"](**inputs), namespace["fused"](**inputs)
    assert (reference - variant).abs().max().item() < 1e-6


@pytest.mark.parametrize(
    ("function", "error", "message"),
    [
        ("forward", SelectionError, "MODULE:CALLABLE"),
        ("no_such_module_here:forward", SelectionError, "cannot import 'no_such_module_here'"),
        ("scaffold_model_mod:backward", SelectionError, "has no 'backward'"),
        ("scaffold_model_mod:torch.__version__", SelectionError, "is not callable"),
    ],
)
def test_init_rejects_bad_functions(project: Path, function: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        write_scaffold(project, None, function)


def test_init_rejects_bad_paths(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    with pytest.raises(SuiteError, match=r"ending in \.py"):
        write_scaffold(project, Path("suites/model.txt"), None)
    with pytest.raises(SuiteError, match="leading underscore"):
        write_scaffold(project, Path("suites/_private.py"), None)
    with pytest.raises(SuiteError, match="outside the project"):
        write_scaffold(project, tmp_path_factory.mktemp("elsewhere") / "x.py", None)


# -- the README's "Benchmark your own model", as a newcomer types it -----------------------------

NEWCOMER_MODEL = "import torch\n\n\ndef forward(x, weight):\n    return torch.tanh(x @ weight)\n"


@pytest.mark.slow
def test_readme_walkthrough(tmp_path: Path) -> None:
    """Every step of the README section, each a command of the installed package, in a new folder."""
    (tmp_path / "mymodel.py").write_text(NEWCOMER_MODEL)
    bindir = Path(sys.executable).parent
    env = harness_env(COLUMNS="200", PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}")
    # Not the repository on the path, as a newcomer has it: only the tests' small_cache plugin.
    env["PYTHONPATH"] = str(PLUGINS)

    def step(*command: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{' '.join(command)}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    started = time.perf_counter()
    step("bench", "init", "--function", "mymodel:forward")
    suite = tmp_path / "suites" / "mymodel.py"
    # The README's edit: weight is (dim, dim), and the variant is a real rewrite.
    text = suite.read_text()
    text = text.replace(
        '"weight": torch.randn(params["batch"], params["dim"]',
        '"weight": torch.randn(params["dim"], params["dim"]',
    )
    text = text.replace("return forward(x=x, weight=weight)", "return torch.tanh(torch.mm(x, weight))")
    suite.write_text(text)
    # Steps that need only the suite (or only the run's results) are independent of one another:
    # they run side by side, each command as the README has it, one per core.
    with ThreadPoolExecutor(2) as pool:
        listing = pool.submit(step, "bench", "list")
        running = pool.submit(step, "bench", "run", "--threads", "1", "--json", "results/first.json")
        listed, run = listing.result(), running.result()
    assert "mymodel.forward[batch8-dim64-cpu-fast]" in listed.stdout
    assert "Speedup" in run.stdout and "2 timed, 0 failed" in run.stderr

    def report_and_gate() -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
        report = step("bench", "report", "results/first.json", "-o", "results/first.md")
        return report, step("bench", "gate", "results/first.json", "--baseline", "results/first.json")

    with ThreadPoolExecutor(2) as pool:
        reporting = pool.submit(report_and_gate)
        profiling = pool.submit(
            step, "bench", "profile", "mymodel.forward", "--variant", "fast", "--out", "traces"
        )
        plain_run = pool.submit(
            step,
            "pytest",
            "--benchmark-only",
            "--bench-threads",
            "1",
            "--benchmark-json",
            "results/pytest.json",
        )
        (report, gate), profile, plain = reporting.result(), profiling.result(), plain_run.result()
    assert "report: results/first.md" in report.stderr and (tmp_path / "results" / "first.md").exists()
    assert "PASS" in gate.stdout
    assert "aten::mm" in profile.stdout and list((tmp_path / "traces").rglob("*.pt.trace.json"))
    assert "2 passed" in plain.stdout
    doc = json.loads((tmp_path / "results" / "pytest.json").read_text())
    assert {b["name"] for b in doc["benchmarks"]} == {
        "mymodel.forward[batch8-dim64-cpu-reference]",
        "mymodel.forward[batch8-dim64-cpu-fast]",
    }
    assert time.perf_counter() - started < 180
