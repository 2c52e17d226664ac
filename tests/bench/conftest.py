"""Fixtures for the harness's tests: a temporary project holding the toy suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import psutil
import pytest

from bench.counts import ItemCount, count_items
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
    # item, the fewest an interval takes, and workers forked from the run's process (not from a
    # fork server per trial, each a fresh interpreter that imports torch: seconds of every run)
    # keep the tests' runs short; the runs that test the default say --worker-start forkserver.
    ini = (
        "[pytest]\npythonpath = .\ntestpaths = tests\nbench_suites = suites\n"
        "addopts = --bench-trials=2 --bench-worker-start=fork\n"
    )
    (path / "pytest.ini").write_text(ini)
    return path


@pytest.fixture
def toy_project(tmp_path: Path) -> Path:
    return make_toy_project(tmp_path)


@pytest.fixture(scope="session")
def left_out_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A quick `bench run` of the toy project with a case marked slow (which it leaves out): the
    run that test_cli's profile test and test_claims' not-run test both read, made once."""
    project = make_toy_project(tmp_path_factory.mktemp("left_out"))
    proc = run_in(
        project, "-m", "bench.cli", "run", "-k", "n8 and cpu", "--json", "q.json", behaviour="slow_case"
    )
    return project, proc


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


def clock_run(project: Path, suite: str, out: Path, min_rounds: int) -> subprocess.CompletedProcess[str]:
    """pytest --benchmark-only over ``project``'s suites, with ``tests/bench/data/SUITE`` copied in
    as its only suite (``suites/clock.py``) and timed on that suite's ``virtual_timer``; probes off."""
    shutil.copy(DATA / suite, project / "suites" / "clock.py")
    (project / "suites" / "toy.py").unlink()
    return run_in(
        project,
        "-m",
        "pytest",
        "suites",
        "--benchmark-only",
        f"--benchmark-json={out}",
        "--benchmark-timer=suites.clock.virtual_timer",
        f"--benchmark-min-rounds={min_rounds}",
        "--benchmark-max-time=0.01",
        "--benchmark-min-time=0.0003",
        "--bench-no-probes",
        "-p",
        "no:cacheprovider",
    )


COUNTED = "suites/toy.py::toy.square[n{}-cpu-{}]"
COUNTED_IDS = [COUNTED.format(n, v) for n, v in ((8, "reference"), (8, "reference"), (16, "reference"))]
COUNTED_IDS += [COUNTED.format(8, "nonexistent"), COUNTED.format(8, "forks")]


def counting_passes(project: Path) -> list[Future[tuple[list[ItemCount], dict]]]:
    """Two counting passes of COUNTED_IDS in ``project``, side by side (one core each: valgrind
    runs one thread, and a count does not follow the load). ``early_counts`` starts them with
    the session where test_counts_repeat_and_see_more_work is selected: the session's other
    tests overlap their 50 s."""
    pool = ThreadPoolExecutor(2)

    def one_pass() -> tuple[list[ItemCount], dict]:
        return count_items(
            COUNTED_IDS,
            ["--benchmark-only", "--bench-device=cpu"],
            rootdir=project,
            limit_s=120,
            env={"TOY_BEHAVIOUR": "spawn"},
        )

    futures = [pool.submit(one_pass) for _ in range(2)]
    pool.shutdown(wait=False)
    # Until both have started valgrind, with this process's environment as it is now: a later test
    # that changes the environment (monkeypatch of PATH, TMPDIR) must not reach into their start.
    deadline = time.monotonic() + 60
    me = psutil.Process()
    while time.monotonic() < deadline and not all(f.done() for f in futures):
        started = [p for p in me.children() if "valgrind" in " ".join(_cmdline(p))]
        if len(started) >= 2:
            break
        time.sleep(0.05)
    return futures


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


@pytest.fixture(scope="session", autouse=True)
def early_counts(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Future[tuple[list[ItemCount], dict]]]]:
    """The counting passes of test_counts_repeat_and_see_more_work, started with the session's
    first test where that test is selected and valgrind is installed (else none)."""
    selected = any(item.name == "test_counts_repeat_and_see_more_work" for item in request.session.items)
    ready = selected and shutil.which("valgrind") is not None
    futures = counting_passes(make_toy_project(tmp_path_factory.mktemp("counted"))) if ready else []
    yield futures
    for future in futures:
        future.cancel()


@pytest.fixture
def counts_finished(early_counts: list[Future[tuple[list[ItemCount], dict]]]) -> None:
    """For a test that times against something else (timeit): the early counting passes, which
    keep both cores busy, are over before it starts."""
    wait(early_counts)
