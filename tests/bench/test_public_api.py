"""The public API: `bench.__all__` is what the package exports, each name documented, and light to import."""

from __future__ import annotations

import importlib.resources
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import bench
from tests.bench.sample_run import sample_document

HEAVY = ("torch", "pandas", "matplotlib", "pennylane")
METADATA = {"__version__"}


def _exported() -> set[str]:
    """The public names of the package's namespace that are not its submodules."""
    return {
        name
        for name, value in vars(bench).items()
        if not name.startswith("_")
        and not isinstance(value, ModuleType)
        and type(value).__module__ != "__future__"  # the package's own `from __future__ import`
    }


def test_all_is_what_the_package_exports() -> None:
    assert len(bench.__all__) == len(set(bench.__all__)), "a name is listed twice"
    assert set(bench.__all__) - METADATA == _exported()
    namespace: dict[str, object] = {}
    exec("from bench import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(bench.__all__)


def test_the_api_covers_declaring_cases_and_reading_results() -> None:
    expected = {"Case", "Claim", "Grid", "Tolerance", "Variant", "MeasureContext", "register"}
    expected |= {"BenchError", "ResultsError", "relative_error", "max_abs_error", "agreement"}
    expected |= {"load", "Run", "Record"}
    assert set(bench.__all__) - METADATA == expected


def test_every_name_is_the_harness_own_and_documented() -> None:
    assert isinstance(bench.__version__, str) and bench.__version__
    for name in set(bench.__all__) - METADATA:
        value = getattr(bench, name)
        assert value.__module__.startswith("bench."), f"{name} is not the harness's own"
        doc = (value.__doc__ or "").strip()
        # A dataclass without a docstring gets its signature as one: that documents nothing.
        assert doc and not doc.startswith(f"{name}("), f"bench.{name} has no docstring"


def test_importing_bench_imports_nothing_heavy(tmp_path: Path) -> None:
    results = tmp_path / "run.json"
    results.write_text(json.dumps(sample_document()))
    script = (
        "import json, sys\n"
        "import bench\n"
        f"heavy = {HEAVY!r}\n"
        "at_import = [m for m in heavy if m in sys.modules]\n"
        f"run = bench.load({str(results)!r})\n"
        "at_load = [m for m in heavy if m in sys.modules]\n"
        "rows = len(run.frame())\n"
        "print(json.dumps([at_import, at_load, rows, 'pandas' in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    at_import, at_load, rows, pandas_after_frame = json.loads(done.stdout)
    assert at_import == [] and at_load == []
    assert rows == 4 and pandas_after_frame  # pandas is loaded where a frame is asked for


def test_the_package_is_typed() -> None:
    assert (importlib.resources.files("bench") / "py.typed").is_file()
