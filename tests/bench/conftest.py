"""Fixtures for the harness's tests: a temporary project holding the toy suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def toy_project(tmp_path: Path) -> Path:
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "__init__.py").write_text("")
    shutil.copy(DATA / "toy_suite.py", tmp_path / "suites" / "toy.py")
    # Suites declared the ini way (this repo uses [tool.bench]; both are tested). Two trials per
    # item, the fewest an interval takes, keep the tests' runs short.
    ini = "[pytest]\npythonpath = .\ntestpaths = tests\nbench_suites = suites\naddopts = --bench-trials=2\n"
    (tmp_path / "pytest.ini").write_text(ini)
    return tmp_path


def run_in(
    project: Path, *args: str, behaviour: str = "", timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run a command of this interpreter's environment inside a temporary project."""
    env = {**os.environ, "TOY_BEHAVIOUR": behaviour, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, *args], cwd=project, env=env, capture_output=True, text=True, timeout=timeout
    )
