"""Fixtures for the harness's tests: a temporary project holding the toy suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.launcher import launch

DATA = Path(__file__).parent / "data"
PLUGINS = DATA / "plugins"


def harness_env(**extra: str) -> dict[str, str]:
    """This process's environment for a run a test starts, with the small_cache plugin loaded by
    every pytest session in it (`bench run` too: it runs pytest in-process), and ``extra``."""
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGINS), env.get("PYTHONPATH", "")) if p)
    env["PYTEST_ADDOPTS"] = f"-p small_cache {env.get('PYTEST_ADDOPTS', '')}".strip()
    return env


def make_toy_project(path: Path) -> Path:
    """The toy suite in a project at ``path`` (an empty folder)."""
    (path / "suites").mkdir()
    (path / "suites" / "__init__.py").write_text("")
    shutil.copy(DATA / "toy_suite.py", path / "suites" / "toy.py")
    # Suites declared the ini way (this repo uses [tool.bench]; both are tested). Two trials per
    # item, the fewest an interval takes, keep the tests' runs short.
    ini = "[pytest]\npythonpath = .\ntestpaths = tests\nbench_suites = suites\naddopts = --bench-trials=2\n"
    (path / "pytest.ini").write_text(ini)
    return path


@pytest.fixture
def toy_project(tmp_path: Path) -> Path:
    return make_toy_project(tmp_path)


def run_in(
    project: Path, *args: str, behaviour: str = "", timeout: float = 240, fresh: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` of this interpreter's environment inside a temporary project: forked
    from a process that has imported torch, pytest and the harness (tests/bench/launcher.py), or,
    with ``fresh``, in a new interpreter (where what it imports is the point)."""
    env = harness_env(TOY_BEHAVIOUR=behaviour, COLUMNS="200")
    if not fresh:
        return launch(args, project, env, timeout)
    return subprocess.run(
        [sys.executable, *args], cwd=project, env=env, capture_output=True, text=True, timeout=timeout
    )
