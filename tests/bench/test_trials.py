"""Trials in worker processes: faults in a variant are recorded and the run goes on; a killed run resumes."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import psutil
import pytest

from bench.errors import ResultsError
from bench.journal import journal_path, read_journal
from bench.stats import trial_speedup
from tests.bench.conftest import harness_env
from tests.bench.launcher import launch

FAULTS_SUITE = """
import ctypes
import os

import torch

from bench import Case, Grid, register


def setup(params, device):
    return {"x": torch.randn(params["n"], params["n"])}


def reference(x):
    return x @ x


def same(x):
    return x @ x


def segfault(x):
    ctypes.string_at(0)  # reads address 0: SIGSEGV
    return x @ x


def abort(x):
    os.abort()


def greedy(x):
    return torch.ones(2**31) @ torch.ones(2**31)  # 8 GiB per vector, past the worker's memory limit


def hang(x):
    ctypes.CDLL(None).sleep(1000)  # inside a C call: no Python signal handler runs
    return x @ x


register(
    Case(
        name="faults.mm",
        setup=setup,
        reference=reference,
        variants={"same": same, "segfault": segfault, "abort": abort, "greedy": greedy, "hang": hang},
        mode="forward",
        grids={"quick": Grid(n=[16]), "full": Grid(n=[16])},
        time_limit_s=60,
    )
)
"""

SLOW_SUITE = """
import multiprocessing
import os
import time

import torch

from bench import Case, Grid, register

LOG = os.environ["SETUP_LOG"]


def setup(params, device):
    with open(LOG, "a") as f:
        f.write(f"{params['n']} {multiprocessing.current_process().name}\\n")
    return {"x": torch.randn(8, 8) * params["n"]}


def reference(x):
    time.sleep(0.002)
    return x + 1


def variant(x):
    time.sleep(0.001)
    return x + 1


register(
    Case(
        name="slow.add",
        setup=setup,
        reference=reference,
        variants={"half": variant},
        mode="forward",
        grids={"quick": Grid(n=[1, 2, 3, 4, 5, 6]), "full": Grid(n=[1])},
    )
)
"""


def _project(tmp_path: Path, suite: str, name: str) -> Path:
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / f"{name}.py").write_text(suite)
    (tmp_path / "pyproject.toml").write_text('[tool.bench]\nsuites = ["suites"]\n')
    return tmp_path


def _bench(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return launch(["-m", "bench.cli", *args], project, harness_env(COLUMNS="200", **(env or {})), 400)


# `bench run` on the faults suite, each in its own project: the arguments of two tests' runs.
FAULT_RUNS: dict[str, tuple[str, ...]] = {
    "faults": (
        *("run", "--device", "cpu", "--trials", "2", "--time-limit", "4"),
        *("--memory-limit", "1024", "--json", "out/run.json"),
    ),
    "spawn": (
        "run",
        "-k",
        "reference or same",
        "--trials",
        "2",
        "--worker-start",
        "spawn",
        "--json",
        "spawn.json",
    ),
}
FaultRun = tuple[Path, subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def fault_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[FaultRun]]]:
    """Both runs, started together when the first of their tests asks: they share nothing, and each
    keeps one core busy (a worker at a time; the hanging variant waits out its 4 s on none)."""

    def run(name: str) -> FaultRun:
        project = _project(tmp_path_factory.mktemp(name), FAULTS_SUITE, "faults")
        return project, _bench(project, *FAULT_RUNS[name])

    with ThreadPoolExecutor(len(FAULT_RUNS)) as pool:
        yield {name: pool.submit(run, name) for name in FAULT_RUNS}


def test_crashes_aborts_memory_and_hangs_are_recorded_and_the_run_goes_on(
    fault_runs: dict[str, Future[FaultRun]],
) -> None:
    project, proc = fault_runs["faults"].result()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = json.loads((project / "out" / "run.json").read_text())
    errors = {f["variant"]: f["error"] for f in doc["bench"]["failures"]}
    assert errors["segfault"]["kind"] == "crash" and errors["segfault"]["signal"] == "SIGSEGV"
    assert errors["abort"]["kind"] == "crash" and errors["abort"]["signal"] == "SIGABRT"
    assert errors["greedy"]["kind"] == "oom", errors["greedy"]
    assert errors["hang"]["kind"] == "timeout", errors["hang"]
    hang = "ran past its time limit of 4 s in hang's check or probes and was killed"
    assert errors["hang"]["message"] == hang
    timed = {b["extra_info"]["bench"]["variant"]: b for b in doc["benchmarks"]}
    assert set(timed) == {"reference", "same"}
    same = timed["same"]["extra_info"]["bench"]
    assert same["speedup"]["trials"] == 2 and same["speedup"]["low"] <= same["speedup"]["high"]
    assert len(same["trials"]) == 2 and all(t["rounds_s"] for t in same["trials"])
    assert timed["reference"]["extra_info"]["bench"]["aa"]["trials"] == 2
    report = (project / "out" / "run.md").read_text()
    assert "SIGSEGV" in report and "SIGABRT" in report and "## A/A control" in report
    assert doc["bench"]["trials"]["starts"] == {"cpu": "forkserver"}
    assert "started by a fork server per trial on CPU" in report
    assert "2 timed, 4 failed" in proc.stderr


MEET_SUITE = """
import ctypes
import faulthandler
import os
import time
from pathlib import Path

import torch

from bench import Case, Grid, register

MEET = Path(os.environ["MEET_DIR"])


def setup(params, device):
    # Each point's set-up waits (up to 60 s) for the other point's: both meet only if their
    # checks run side by side.
    me, other = params["n"], 3 - params["n"]
    (MEET / str(me)).touch()
    deadline = time.monotonic() + 60
    while not (MEET / str(other)).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    (MEET / f"{me}.met").write_text(str((MEET / str(other)).exists()))
    return {"x": torch.ones(4) * me}


def reference(x):
    return x + 1


def same(x):
    return x + 1


def segfault(x):
    # This worker is forked from the test session, whose fault handler would print the crash to
    # the session's own output.
    faulthandler.disable()
    ctypes.string_at(0)
    return x + 1


register(
    Case(
        name="meet.add",
        setup=setup,
        reference=reference,
        variants={"same": same, "segfault": segfault},
        mode="forward",
        grids={"quick": Grid(n=[1, 2]), "full": Grid(n=[1])},
    )
)
"""


def test_checks_run_side_by_side_and_a_crash_in_one_costs_the_other_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.options import RunOptions
    from bench.trials import check_groups, group_job

    suite = tmp_path / "meet_suite.py"
    suite.write_text(MEET_SUITE)
    meet = tmp_path / "meet"
    meet.mkdir()
    monkeypatch.setenv("MEET_DIR", str(meet))  # read by the suite, imported in each worker
    settings = _toy_settings(time_limit_s=120)
    options = RunOptions(no_probes=True)
    names = ["reference", "same", "segfault"]
    jobs = [group_job(suite, tmp_path, "meet.add", {"n": n}, "cpu", names, options, settings) for n in (1, 2)]
    ended: list[int] = []
    seconds: list[tuple[str, float, str]] = []
    found = check_groups(jobs, 2, seconds, ended.append)
    assert (meet / "1.met").read_text() == (meet / "2.met").read_text() == "True"
    assert sorted(ended) == [0, 1]
    for outcomes in found:
        assert outcomes["reference"].record is not None and outcomes["reference"].call_s
        assert outcomes["same"].record is not None and outcomes["same"].error is None
        error = outcomes["segfault"].error
        assert error is not None and error["kind"] == "crash" and error["signal"] == "SIGSEGV"
    # Per group: the worker that died in the segfault, then one for the two it had not reported.
    assert [phase for phase, _, _ in seconds] == ["check"] * 4
    assert sorted(group for _, _, group in seconds) == ["meet.add[n1-cpu]"] * 2 + ["meet.add[n2-cpu]"] * 2


GROWTH_SUITE = """
import torch

from bench import Case, Claim, Grid, register

calls = [0]


def setup(params, device):
    return {"n": params["n"]}


def hold(mib):
    held = torch.ones(mib * 2**18)  # mib MiB of float32, written
    return float(held[-1])


def reference(n):
    return hold(4)


def alternating(n):
    calls[0] += 1
    return hold(8 if calls[0] % 2 else 16)  # twice, then four times the reference's growth


def same(n):
    return hold(4)


register(
    Case(
        name="growth.alternating",
        setup=setup,
        reference=reference,
        variants={"alternating": alternating, "same": same},
        mode="forward",
        grids={"quick": Grid(n=[1]), "full": Grid(n=[1])},
        claims=[Claim("M1", "5-9x the memory", metric="memory_increase", variant="alternating",
                      expected=(5.0, 9.0))],
    )
)
"""


def test_a_memory_claim_that_the_planned_passes_leave_inconclusive_gets_more_passes(tmp_path: Path) -> None:
    from bench.claims import memory_change
    from bench.options import RunOptions
    from bench.trials import CLAIMED_MEMORY_PASSES, MAX_MEMORY_PASSES, check_groups, group_job

    suite = tmp_path / "growth_suite.py"
    suite.write_text(GROWTH_SUITE)
    settings = _toy_settings(time_limit_s=120)
    names = ["reference", "alternating", "same"]

    def samples(judged: list[str]) -> dict[str, list[int]]:
        case, options = "growth.alternating", RunOptions()
        job = group_job(suite, tmp_path, case, {"n": 1}, "cpu", names, options, settings, judged=judged)
        (outcomes,) = check_groups([job], 1)
        assert all(o.error is None and o.record for o in outcomes.values()), outcomes
        return {n: outcomes[n].record["memory"]["cpu_peak_rss_delta_samples"] for n in names}  # type: ignore[index]

    # Growth ratios of 2 and 4 in turn: over three passes, 2.5x [0.9, 7.9] (an increase of 1.5x
    # [-0.07, 6.9]) reaches the claimed 5-9x increase; a fourth pass decides it (refuted).
    planned = samples([])
    assert {n: len(s) for n, s in planned.items()} == dict.fromkeys(names, CLAIMED_MEMORY_PASSES)
    change = memory_change("memory_increase", planned["reference"], planned["alternating"])
    assert change is not None and change[1][1] > 5.0, change
    more = samples(["M1"])
    assert CLAIMED_MEMORY_PASSES < len(more["alternating"]) == len(more["reference"]) <= MAX_MEMORY_PASSES
    assert len(more["same"]) == CLAIMED_MEMORY_PASSES  # not in the claim: no more passes
    change = memory_change("memory_increase", more["reference"], more["alternating"])
    assert change is not None and change[1][1] < 5.0, change


PAGES_SUITE = """
import ctypes
import os
import resource

from bench import Case, Grid, register

LOG = os.path.join(os.path.dirname(__file__), "faults.log")  # not os.environ: a fork server keeps its own
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
BLOCK = 24 * 2**20


def setup(params, device):
    return {"n": params["n"]}


def reference(n):
    # Three 24 MiB blocks from malloc, written, then freed. glibc's default mmap threshold rises
    # with what is freed, to 32 MiB at most, and its trim threshold is twice it: however far what
    # ran before raised them, the 72 MiB freed at the heap's top is past it, trimmed, and faulted
    # in again at the next call. Each call logs the process's minor faults so far.
    blocks = [libc.malloc(BLOCK) for _ in range(3 * n)]
    for block in blocks:
        libc.memset(block, 1, BLOCK)
    for block in blocks:
        libc.free(block)
    with open(LOG, "a") as f:
        f.write(f"{os.getpid()} {resource.getrusage(resource.RUSAGE_SELF).ru_minflt}\\n")
    return len(blocks)


register(Case(name="pages.blocks", setup=setup, reference=reference, variants={"same": reference},
              grids={"quick": Grid(n=[1]), "full": Grid(n=[1])}))
"""


@pytest.mark.parametrize(
    ("malloc", "start"),
    # forkserver: how a CUDA group's workers start, and spawn: a fresh interpreter (each sets the
    # allocator the same way)
    [("steady", "fork"), ("default", "fork"), ("steady", "forkserver"), ("steady", "spawn")],
)
def test_steady_malloc_spares_a_trials_calls_the_page_faults_of_memory_freed_before(
    malloc: str, start: str, tmp_path: Path
) -> None:
    from bench.trials import measure_group

    log = tmp_path / "faults.log"  # beside the suite, which each worker imports
    settings = _toy_settings(trials=2, min_rounds=8, min_time_s=1e-6, time_limit_s=60, start=start)
    job = _toy_group(tmp_path, PAGES_SUITE, "pages.blocks", ["reference", "same"], settings, malloc=malloc)
    found = measure_group(job)
    assert all(o.error is None and len(o.trials) == 2 for o in found.values()), found
    faults: dict[str, list[int]] = {}
    for line in log.read_text().splitlines():
        pid, count = line.split()
        faults.setdefault(pid, []).append(int(count))
    trial_workers = list(faults.values())[-2:]  # the check worker logged first
    per_call = sorted(b - a for counts in trial_workers for a, b in pairwise(counts[5:]))
    median = per_call[len(per_call) // 2]
    if malloc == "steady":
        assert median < 100, per_call  # the heap keeps the 72 MiB: nothing to fault in
    else:
        assert median > 15_000, per_call  # 18,432 pages trimmed and faulted in again, call after call


PARENTS_SUITE = """
import multiprocessing
import os

import torch

from bench import Case, Grid, register

LOG = os.path.join(os.path.dirname(__file__), "parents.log")  # not os.environ: a fork server keeps its own


def setup(params, device):
    with open(LOG, "a") as f:
        name, start = multiprocessing.current_process().name, multiprocessing.get_start_method()
        f.write(f"{name} {os.getppid()} {start}\\n")
    return {"x": torch.ones(4)}


def reference(x):
    return x + 1


register(Case(name="parents.add", setup=setup, reference=reference, variants={"same": reference},
              grids={"quick": Grid(n=[1]), "full": Grid(n=[1])}))
"""


def test_each_trial_forks_its_workers_from_a_fork_server_of_its_own(tmp_path: Path) -> None:
    # Workers forked from one process share its address-space layout, which moved a case's
    # speedup between runs while every trial of a run agreed; a server per trial samples it.
    import psutil

    from bench.trials import measure_group, server_number, stop_fork_servers

    settings = _toy_settings(trials=3, time_limit_s=60, start="forkserver")
    job = _toy_group(tmp_path, PARENTS_SUITE, "parents.add", ["reference", "same"], settings)
    try:
        found = measure_group(job)
    finally:
        stop_fork_servers()
    assert all(o.error is None and len(o.trials) == 3 for o in found.values()), found
    parents: dict[str, set[int]] = {}
    starts = set()
    for line in (tmp_path / "parents.log").read_text().splitlines():
        name, pid, start = line.split()
        parents.setdefault(name, set()).add(int(pid))
        starts.add(start)
    # A DataLoader in a worker starts its workers as it would in the run's process.
    assert starts == {multiprocessing.get_start_method()}
    assert sorted(parents) == ["bench-check", "bench-trial-0", "bench-trial-1", "bench-trial-2"], parents
    assert all(len(pids) == 1 for pids in parents.values()), parents
    servers = [parents[f"bench-trial-{t}"].pop() for t in range(3)]
    assert len(set(servers)) == 3 and os.getpid() not in servers, servers
    assert parents["bench-check"] == {servers[0]}  # a check forks from the first
    assert not any(psutil.pid_exists(pid) for pid in servers)  # stopped, and reaped
    # A trial beyond the planned ones (asked for by a claim) goes round the servers again.
    extra = replace(job, phase="trial", trial=4)
    assert server_number(extra) == 1


POOLS_SUITE = """
import json
import os

import numpy
import torch
from threadpoolctl import threadpool_info

from bench import Case, Grid, register

LOG = os.path.join(os.path.dirname(__file__), "pools.log")


def setup(params, device):
    pools = {f"{p['user_api']}:{os.path.basename(p['filepath'])}": p["num_threads"]
             for p in threadpool_info()}
    with open(LOG, "a") as f:
        f.write(json.dumps({"pools": pools, "torch": torch.get_num_threads(),
                            "env": os.environ.get("OPENBLAS_NUM_THREADS")}) + "\\n")
    return {"x": numpy.ones((8, 8))}


def reference(x):
    return torch.from_numpy(x @ x)


register(Case(name="pools.matmul", setup=setup, reference=reference, variants={"same": reference},
              grids={"quick": Grid(n=[1]), "full": Grid(n=[1])}))
"""


@pytest.mark.parametrize("start", ["fork", "forkserver"])
def test_a_worker_limits_every_thread_pool_not_torchs_alone(tmp_path: Path, start: str) -> None:
    # numpy's and scipy's OpenBLAS size their pools by the cores: with torch at one thread,
    # gaussgan.validation's numpy metrics still ran on two, with an IQR of a quarter of a call.
    # Forked from the run's process, the pools are numpy's, loaded there with the cores' size.
    from threadpoolctl import threadpool_info

    from bench.trials import measure_group, stop_fork_servers

    blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
    assert blas, "numpy's BLAS is loaded in the test process"
    settings = _toy_settings(trials=1, time_limit_s=60, start=start, threads=1)
    job = _toy_group(tmp_path, POOLS_SUITE, "pools.matmul", ["reference", "same"], settings)
    try:
        found = measure_group(job)
    finally:
        stop_fork_servers()
    assert all(o.error is None for o in found.values()), found
    seen = [json.loads(line) for line in (tmp_path / "pools.log").read_text().splitlines()]
    assert len(seen) == 2  # the check's worker and the trial's
    for worker in seen:
        assert worker["torch"] == 1 and worker["env"] == "1", worker
        assert any(name.startswith("blas:") for name in worker["pools"]), worker
        assert set(worker["pools"].values()) == {1}, worker


LOG_SUITE = """
import os
import time

import torch

from bench import Case, Grid, register

LOG = os.environ["ACTIVITY_LOG"]


def _log(kind, name, began):
    with open(LOG, "a") as f:
        f.write(f"{os.getpid()} {kind} {name} {began} {time.monotonic()}\\n")


def setup(params, device):
    began = time.monotonic()
    time.sleep(0.3)  # long enough for two workers' set-ups to meet, if they run side by side
    _log("setup", "-", began)
    return {"x": torch.ones(4)}


def _busy(name):
    def call(x):
        began = time.monotonic()
        while time.monotonic() - began < 0.02:
            pass
        _log("call", name, began)
        return x + 1
    return call


# No warm-up calls but the first: a worker's first call of each implementation is its only
# untimed one (rounds of one call).
register(Case(name="log.busy", setup=setup, reference=_busy("reference"), variants={"other": _busy("other")},
              mode="forward", grids={"quick": Grid(n=[1]), "full": Grid(n=[1])}, warmup_calls=0))
"""


def test_trial_workers_warm_up_side_by_side_and_time_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.trials import measure_group

    log = tmp_path / "activity.log"
    monkeypatch.setenv("ACTIVITY_LOG", str(log))
    settings = _toy_settings(trials=4, min_rounds=3, budget_s=0.0, min_time_s=1e-6, ready_width=2)
    job = _toy_group(tmp_path, LOG_SUITE, "log.busy", ["reference", "other"], settings)
    seconds: list[tuple[str, float, str]] = []
    found = measure_group(job, worker_seconds=seconds)
    assert all(o.error is None and len(o.trials) == 4 for o in found.values()), found
    events = [line.split() for line in log.read_text().splitlines()]
    check_pid = events[0][0]  # the check worker logs first, alone
    spans: dict[str, list[tuple[str, str, float, float]]] = {}
    for pid, kind, name, began, ended in events:
        if pid != check_pid:
            spans.setdefault(pid, []).append((kind, name, float(began), float(ended)))
    assert len(spans) == 4
    # Built side by side: two trial workers' set-ups overlap in time (pairs of workers).
    setups = sorted((b, e) for s in spans.values() for kind, _, b, e in s if kind == "setup")
    assert sum(setups[i][1] > setups[i + 1][0] for i in range(len(setups) - 1)) >= 2, setups
    # Timed alone: every call after an implementation's first one in its worker (its warm-up)
    # overlaps nothing another worker did.
    for pid, mine in spans.items():
        warmed: set[str] = set()
        for kind, name, began, ended in mine:
            if kind != "call" or name not in warmed:
                warmed.add(name)
                continue
            for other, theirs in spans.items():
                if other != pid:
                    assert all(e <= began or b >= ended for _, _, b, e in theirs), (pid, name, began, other)
    # A worker's seconds leave out its wait for its turn: none is as long as two workers' trials.
    trials = [s for phase, s, _ in seconds if phase == "trial"]
    assert len(trials) == 4 and max(trials) < 2 * min(trials), trials


MOVING_SUITE = """
import os
import subprocess

import torch

from bench import Case, Grid, register


def setup(params, device):
    # The project's tree moves on while the run goes on: a commit during the run (in a worker).
    if params["n"] == 1 and not os.path.exists("moved"):
        open("moved", "w").close()
        subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "moved"], check=True)
    return {"x": torch.ones(4)}


def reference(x):
    return x + 1


register(Case(name="moving.add", setup=setup, reference=reference, variants={"same": reference},
              mode="forward", grids={"quick": Grid(n=[1, 2]), "full": Grid(n=[1])}))
"""


def test_a_run_names_the_commit_it_started_from_and_where_the_tree_moved(tmp_path: Path) -> None:
    project = _project(tmp_path, MOVING_SUITE, "moving")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "start"], cwd=project, check=True)
    started = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PYTEST_ADDOPTS": "--benchmark-max-time=0.01"}
    proc = _bench(project, "run", "--trials", "2", "--no-probes", "--json", "run.json", "--report", "run.md",
                  env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ended = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout
    assert ended != started
    found = json.loads((project / "run.json").read_text())["bench"]["environment"]["git"]
    assert found["id"] == started.strip() and found["at_end"]["id"] == ended.strip()
    assert f"{started.strip()[:10]} at the start (the tree was at {ended.strip()[:10]}" in (
        project / "run.md"
    ).read_text()


def test_a_killed_run_resumes_from_its_journal_measuring_nothing_twice(tmp_path: Path) -> None:
    project = _project(tmp_path, SLOW_SUITE, "slow")
    log = project / "setups.log"
    # The journal is the subject, not the timing: rounds of 10 ms (the quick profile's 250 ms made
    # each of the six groups take over a second), the same for the killed run and its resumption.
    env = {"SETUP_LOG": str(log), "PYTEST_ADDOPTS": "--benchmark-max-time=0.01"}
    results = project / "out" / "run.json"
    journal = journal_path(results)
    args = [sys.executable, "-m", "bench.cli", "run", "--device", "cpu", "--trials", "2", "--no-probes"]
    parent = subprocess.Popen(
        [*args, "--json", str(results)],
        cwd=project,
        env=harness_env(**env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            if journal.exists() and len(read_journal(journal)[1]) >= 2:  # two groups measured whole
                break
        except ResultsError:
            pass  # its header not written yet
        time.sleep(0.05)
    # Its fork servers (one per trial, the default) and their workers: gone with it.
    descendants = psutil.Process(parent.pid).children(recursive=True)
    assert len(descendants) >= 2, descendants
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    _, alive = psutil.wait_procs(descendants, timeout=10)
    assert not alive, alive
    assert not results.exists()
    _, groups, partial = read_journal(journal)
    done = {int(point.removeprefix("n")) for _, point, _ in groups}
    assert 2 <= len(done) < 6
    # Every other group's check and first trial were journaled before any group was timed whole.
    assert {int(point.removeprefix("n")) for _, point, _ in partial} == set(range(1, 7)) - done
    setups_before = [line.split() for line in log.read_text().splitlines()]
    # A group's trials span the run: every group's first trial before any group's second.
    workers = [name for _, name in setups_before]
    assert {int(n) for n, name in setups_before if name == "bench-trial-0"} == set(range(1, 7))
    last_first = max(i for i, name in enumerate(workers) if name == "bench-trial-0")
    assert workers.index("bench-trial-1") > last_first

    proc = _bench(project, "run", "--resume", str(journal), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(results.read_text())
    names = [b["name"] for b in doc["benchmarks"]]
    assert len(names) == len(set(names)) == 12  # 6 points x 2 implementations, each once
    # The journaled groups were not measured again: no setup of theirs after the kill.
    setups_after = [line.split() for line in log.read_text().splitlines()][len(setups_before) :]
    assert setups_after and not done & {int(n) for n, _ in setups_after}
    assert doc["bench"]["trials"]["resumed_from"] == str(journal)
    assert doc["bench"]["interrupted"] is False and doc["bench"]["selection"]["not_reached"] == []
    # Nor were the others' checks and first trials: the resumed run took only their last trials.
    workers = doc["bench"]["trials"]["workers"]
    assert workers.get("check", {}).get("count", 0) == 0 and workers["trial"]["count"] == 6 - len(done)
    assert all(len(b["extra_info"]["bench"]["trials"]) == 2 for b in doc["benchmarks"])


def test_a_spawned_worker_imports_the_suite_itself(fault_runs: dict[str, Future[FaultRun]]) -> None:
    project, proc = fault_runs["spawn"].result()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((project / "spawn.json").read_text())
    assert {b["extra_info"]["bench"]["variant"] for b in doc["benchmarks"]} == {"reference", "same"}
    assert doc["bench"]["trials"]["start"] == "spawn" and doc["bench"]["trials"]["starts"] == {"cpu": "spawn"}
    # Where the run's time went: each group's check and trial workers, summed to the phase totals.
    workers = doc["bench"]["trials"]["workers"]
    groups = workers["groups"]
    assert groups and all(g["trials"] == 2 and g["check_s"] > 0 and g["trial_s"] > 0 for g in groups.values())
    assert sum(g["trial_s"] for g in groups.values()) == pytest.approx(workers["trial"]["total_s"])
    assert sum(g["check_s"] for g in groups.values()) == pytest.approx(workers["check"]["total_s"])
    costs = [g["check_s"] + g["trial_s"] for g in groups.values()]
    assert costs == sorted(costs, reverse=True)


def test_the_trial_interval_spans_the_variation_between_trials() -> None:
    # Two trials whose speedups differ by 20 %: the interval must reach both, however tight each
    # trial's own pairs are.
    reference = [[1.0] * 50, [1.0] * 50]
    variant = [[0.5] * 50, [0.6] * 50]
    found = trial_speedup(reference, variant)
    assert found is not None and found.trials == 2
    assert found.low < 1 / 0.6 and found.high > 1 / 0.5
    identical = trial_speedup(reference, reference)
    assert identical is not None and identical.contains(1.0)


def test_an_interval_needs_trials_with_pairs() -> None:
    assert trial_speedup([[]], [[]]) is None
    with pytest.raises(ValueError):
        trial_speedup([[1.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]])


def test_calls_per_round_shared_at_one_speed_and_longer_for_fast_calls_beside_slow_ones() -> None:
    from bench.trials import round_calls

    floor = 0.2e-3
    # Identical code was measured at 9 and 21 calls per 0.2 ms: one speed, one count (the fastest's).
    same = {"reference": 22e-6, "a": 9.5e-6, "b": 7e-6}
    assert round_calls(same, floor) == {"reference": 29, "a": 29, "b": 29}
    # Speeds far apart keep their own counts; a group of fast calls keeps the shortest round.
    apart = {"reference": 1e-3, "slow": 1.2e-3, "fast": 1.3e-6, "faster": 0.9e-6}
    assert round_calls(apart, floor) == {"reference": 1, "slow": 1, "fast": 223, "faster": 223}
    # Beside 0.25 s circuits a 0.3 ms call gets rounds of a tenth of the mean call, not one call
    # right after a circuit, and the cycle grows by less than a tenth.
    mixed = {"reference": 0.3e-3, "circuit": 0.25, "shadow": 0.2}
    counts = round_calls(mixed, floor)
    assert counts["circuit"] == counts["shadow"] == 1
    assert counts["reference"] * mixed["reference"] >= 0.1 * sum(mixed.values()) / 3
    cycle = sum(counts[n] * s for n, s in mixed.items())
    assert cycle < 1.1 * sum(mixed.values())
    # An implementation without a measured time gets one call per round.
    assert round_calls({"reference": 0.0, "a": 1e-3}, floor)["reference"] == 1


def _toy_settings(**changes: Any) -> Any:
    """Settings for a toy group: two short trials."""
    from bench.trials import TrialSettings

    defaults: dict[str, Any] = {
        "trials": 2,
        "budget_s": 0.01,
        "min_rounds": 1,
        "min_time_s": 1e-6,
        "time_limit_s": 10,
        "threads": 1,
        "timer_precision_s": 1e-9,
    }
    return TrialSettings(**{**defaults, **changes})


def _toy_group(
    folder: Path, source: str, case: str, names: list[str], settings: Any, **options: Any
) -> Any:
    """The check job of ``case``'s group at n = 1 on CPU, its suite ``source`` written into
    ``folder`` (the run's root), without probes unless ``options`` say otherwise."""
    from bench.options import RunOptions
    from bench.trials import group_job

    suite = folder / f"{case.split('.')[0]}_suite.py"
    suite.write_text(source)
    run_options = RunOptions(**{"no_probes": True, **options})
    return group_job(suite, folder, case, {"n": 1}, "cpu", names, run_options, settings)


def test_a_check_worker_calibrates_every_implementation_before_it_pins_malloc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pinned, every large block is mapped and unmapped: calls get slower, and calls per round
    # calibrated then would be too few for the trials, which run in the default allocator.
    import contextlib
    from types import SimpleNamespace

    import bench.probes.memory
    from bench import Case, Claim, Grid
    from bench.options import RunOptions
    from bench.trials import Job, _check

    events: list[str] = []
    monkeypatch.setattr(bench.probes.memory, "pin_malloc", lambda: events.append("pin") or True)

    class Executor:
        def check(self, spec: object, draft: object) -> SimpleNamespace:
            name = spec.variant  # type: ignore[attr-defined]
            events.append(f"check {name}")
            call = lambda: events.append(f"call {name}")  # noqa: E731
            timed = lambda: (call, contextlib.nullcontext())  # noqa: E731
            return SimpleNamespace(caller=SimpleNamespace(timed=timed, name=name), warm_s=None)

        def probe(self, found: object, draft: object) -> None:
            events.append("probe")

        def probe_memory(self, found: object, draft: object, settle: bool = False) -> None:
            name = found.caller.name  # type: ignore[attr-defined]
            events.append(f"{'settle' if settle else 'memory'} {name}")

    claim = Claim("M", "half the memory", metric="memory_reduction", variant="v", expected=(0.5, 0.5))
    settings = _toy_settings()
    names = ("reference", "v")
    for claims in ((), (claim,)):
        events.clear()
        case = Case(
            name="toy.order",
            setup=lambda p, d: {},
            reference=lambda: None,
            variants={"v": lambda: None},
            grids={"quick": Grid(n=[1]), "full": Grid(n=[1])},
            claims=claims,
        )
        job = Job("check", "suite.py", ".", case.name, {"n": 1}, "cpu", names, RunOptions(), settings)
        sent: list[tuple[object, ...]] = []
        _check(job, case, Executor(), SimpleNamespace(send=sent.append), SimpleNamespace(value=-1))
        pinned = events.index("pin")
        assert {"call reference", "call v"} <= set(events[:pinned])  # calibrated before
        # A pass that lets the pinned allocator settle, then the kept passes, in alternating order:
        # one without a memory claim, three with one.
        settle = ["settle reference", "settle v"]
        if not claims:
            assert events[pinned + 1 :] == [*settle, "memory v", "memory reference"]
        else:
            forward, backward = ["memory reference", "memory v"], ["memory v", "memory reference"]
            assert events[pinned + 1 :] == [*settle, *backward, *forward, *backward]
        assert [m[1] for m in sent if m[0] == "checked"] == ["reference", "v"]


def _checked_seconds_per_call(
    monkeypatch: pytest.MonkeyPatch,
    variant: str,
    settings: Any,
    spin_s: Callable[[str], float],
    on_check: Callable[[str, Any], None],
) -> dict[str, float]:
    """The seconds per call a check worker sends for a toy group of the reference and ``variant``:
    each call spins for ``spin_s(name)`` seconds (asked at every call), and ``on_check(name, draft)``
    runs at each implementation's check (to change the machine, or record a first call)."""
    import contextlib
    from types import SimpleNamespace

    import bench.probes.memory
    from bench import Case, Grid
    from bench.options import RunOptions
    from bench.trials import Job, _check

    monkeypatch.setattr(bench.probes.memory, "pin_malloc", lambda: True)

    class Executor:
        def check(self, spec: Any, draft: Any) -> SimpleNamespace:
            name = spec.variant
            on_check(name, draft)

            def call() -> None:
                end = time.perf_counter() + spin_s(name)
                while time.perf_counter() < end:
                    pass

            timed = lambda: (call, contextlib.nullcontext())  # noqa: E731
            return SimpleNamespace(caller=SimpleNamespace(timed=timed, name=name), warm_s=None)

        def probe(self, found: object, draft: object) -> None:
            pass

        def probe_memory(self, found: object, draft: object, settle: bool = False) -> None:
            pass

    case = Case(
        name="toy.calibrate",
        setup=lambda p, d: {},
        reference=lambda: None,
        variants={variant: lambda: None},
        grids={"quick": Grid(n=[1]), "full": Grid(n=[1])},
    )
    names = ("reference", variant)
    job = Job("check", "suite.py", ".", case.name, {"n": 1}, "cpu", names, RunOptions(), settings)
    sent: list[tuple[Any, ...]] = []
    _check(job, case, Executor(), SimpleNamespace(send=sent.append), SimpleNamespace(value=-1))
    return {m[1]: m[3] for m in sent if m[0] == "checked"}


def test_a_check_worker_calibrates_fast_calls_again_and_keeps_the_faster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The machine is slow while the reference is calibrated, right after its check, and back to
    # its pace when the identical variant is: one calibration each gave the reference a tenth of
    # the variant's calls per round (identical code in rounds of different lengths measures as a
    # speedup). A second calibration once both are checked finds the reference's true speed.
    from bench.trials import round_calls, round_floor_s

    machine = {"slow": True}

    def on_check(name: str, draft: Any) -> None:
        if name == "v":
            machine["slow"] = False

    settings = _toy_settings(min_time_s=2e-3)
    spin_s = lambda name: 4e-4 if machine["slow"] else 4e-5  # noqa: E731
    call_s = _checked_seconds_per_call(monkeypatch, "v", settings, spin_s, on_check)
    assert call_s["reference"] < 2 * call_s["v"], call_s
    counts = round_calls(call_s, round_floor_s(settings))
    assert counts["reference"] == counts["v"] > 1


def test_a_first_call_that_compiled_is_not_taken_for_the_calls_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # A torch.compile variant without warm-up calls: its checked first call compiles (here 5 s,
    # recorded as first_call_s), its calls then take as long as the reference's. Taken as its
    # time, that first call gave the variant rounds of one call and the reference rounds of many.
    from bench.trials import round_calls, round_floor_s

    def on_check(name: str, draft: Any) -> None:
        draft.update(first_call_s=5.0 if name == "compiled" else 2e-3)

    settings = _toy_settings(min_time_s=1e-4, budget_s=0.01)
    call_s = _checked_seconds_per_call(monkeypatch, "compiled", settings, lambda name: 2e-3, on_check)
    assert call_s["compiled"] < 5e-3, call_s
    counts = round_calls(call_s, round_floor_s(settings))
    assert counts["reference"] == counts["compiled"], counts


DECIDE_SUITE = """
import torch

from bench import Case, Grid, register

register(
    Case(
        name="toy.decide",
        setup=lambda params, device: {"x": torch.ones(8)},
        reference=lambda x: x + 1,
        variants={"same": lambda x: x + 1},
        grids={"quick": Grid(n=[1]), "full": Grid(n=[1])},
    )
)
"""


def test_a_group_gets_more_trials_where_decide_asks_up_to_its_cap(tmp_path: Path) -> None:
    from bench.options import RunOptions
    from bench.trials import AA, group_job, measure_group

    suite = tmp_path / "toy_decide_suite.py"
    suite.write_text(DECIDE_SUITE)
    settings = _toy_settings(min_rounds=2, min_time_s=1e-5, time_limit_s=60, max_trials=4)
    options = RunOptions(no_probes=True)
    asked: list[int] = []

    def measured(wanted: int | None) -> dict[str, int]:
        def decide(outcomes: dict) -> int:  # type: ignore[type-arg]
            asked.append(len(outcomes["same"].trials))
            return wanted or 0

        names = ["reference", "same"]
        job = group_job(suite, tmp_path, "toy.decide", {"n": 1}, "cpu", names, options, settings)
        found = measure_group(job, decide=decide if wanted is not None else None)
        assert all(o.error is None for o in found.values())
        return {name: len(o.trials) for name, o in found.items()}

    assert measured(None) == {"reference": 2, "same": 2, AA: 2}
    assert measured(0) == {"reference": 2, "same": 2, AA: 2} and asked == [2]
    asked.clear()
    # Asked for three in all: one more, then asked again (and still wanting three: no more).
    assert measured(3) == {"reference": 3, "same": 3, AA: 3} and asked == [2, 3]
    asked.clear()
    # Asked for more than the cap: the cap.
    assert measured(9) == {"reference": 4, "same": 4, AA: 4} and asked == [2]


def test_cycle_orders_are_balanced_over_trial_pairs_and_cycle_pairs() -> None:
    # One cycle per trial (a slow group): over each pair of trials, of any two implementations
    # each runs first once; with several cycles, the same within each pair of cycles. Independent
    # shuffles put dcgan.checkpoint's reference before its A/A twin in all four one-cycle trials.
    from itertools import combinations

    from bench.trials import AA, cycle_order

    names = ["reference", "a", "b", "c", AA]
    for cycles in (1, 2, 4):
        for pair in range(3):
            orders = [cycle_order(names, "k", t, c) for t in (2 * pair, 2 * pair + 1) for c in range(cycles)]
            for x, y in combinations(names, 2):
                first = sum(o.index(x) < o.index(y) for o in orders)
                assert 2 * first == len(orders), (x, y, cycles, orders)
    # Shuffled, not one fixed order: the pairs of trials differ, and every position is someone's.
    drawn = {tuple(cycle_order(names, "k", 2 * pair, 0)) for pair in range(20)}
    assert len(drawn) > 10 and {o[0] for o in drawn} == set(names)
    assert cycle_order(names, "k", 4, 2) == cycle_order(names, "k", 4, 2)  # seeded: every run alike


def test_a_cases_own_timing_is_shared_out_over_the_trials_at_two_cycles_at_least() -> None:
    # A case's `benchmark` settings win over the run's, as its pytest-benchmark marker does; the
    # minimum rounds are shared out over the trials, never below two cycles per trial.
    from types import SimpleNamespace

    from bench import Case, Grid
    from bench.session import BenchSession
    from bench.trials import MIN_CYCLES, cycles_per_trial

    assert MIN_CYCLES == 2
    assert [cycles_per_trial(r, 4) for r in (1, 5, 8, 9, 12)] == [2, 2, 2, 3, 3]
    assert cycles_per_trial(10, 7) == 2 and cycles_per_trial(5, 0) == 5

    run = {"benchmark_min_rounds": 5, "benchmark_max_time": "0.25", "benchmark_min_time": "0.0002"}
    fake = SimpleNamespace(config=SimpleNamespace(getoption=run.__getitem__))

    def case(**benchmark: float) -> Case:
        return Case(
            name="toy.timing",
            setup=lambda p, d: {},
            reference=lambda: None,
            variants={},
            grids={"quick": Grid(n=[1]), "full": Grid(n=[1])},
            benchmark=benchmark,
        )

    plain = BenchSession.item_timing(fake, case())  # type: ignore[arg-type]
    assert plain == {"min_rounds": 5, "max_time_s": 0.25, "min_time_s": 0.0002}
    own = BenchSession.item_timing(fake, case(min_rounds=12, max_time=1.0))  # type: ignore[arg-type]
    assert own == {"min_rounds": 12, "max_time_s": 1.0, "min_time_s": 0.0002}


SLOW_IMPORT_SUITE = """
import time

from bench import Case, Grid, register

time.sleep(2.5)  # a slow import: each spawned worker imports this file before its first step


def setup(params, device):
    return {"n": params["n"]}


def reference(n):
    return n + 1


register(Case(name="slowimport.add", setup=setup, reference=reference, variants={"same": reference},
              grids={"quick": Grid(n=[1]), "full": Grid(n=[1])}))
"""


def test_a_workers_start_is_not_held_to_its_first_steps_limit(tmp_path: Path) -> None:
    # A worker's start (imports, a CUDA context) is no implementation's time: a 1 s limit on each
    # step must not kill a worker whose suite takes 2.5 s to import.
    from bench.trials import measure_group

    settings = _toy_settings(trials=1, time_limit_s=1.0, start="spawn")
    job = _toy_group(tmp_path, SLOW_IMPORT_SUITE, "slowimport.add", ["reference", "same"], settings)
    found = measure_group(job)
    assert all(o.error is None and len(o.trials) == 1 for o in found.values()), found



FORK_SERVER_SCRIPT = """
import sys

from bench.trials import _context, _forking_from


def imported(names, conn):
    conn.send([name for name in names if name in sys.modules])


if __name__ == "__main__":
    ctx = _context("forkserver")
    receiver, sender = ctx.Pipe(duplex=False)
    names = ("torch._dynamo", "sympy", "bench.execute")
    worker = ctx.Process(target=imported, args=(names, sender))
    with _forking_from(0):
        worker.start()
    sender.close()
    print(receiver.recv() if receiver.poll(120) else "nothing")
    worker.join(10)
"""


KILLED_RUN_SCRIPT = """
import os
import signal
import time

from bench.trials import _context, _forking_from, die_with_parent


def hang(conn):
    die_with_parent()  # as every worker does
    conn.send((os.getppid(), os.getpid()))
    time.sleep(120)  # a hang the killed run can no longer stop


if __name__ == "__main__":
    ctx = _context("forkserver")
    receiver, sender = ctx.Pipe(duplex=False)
    worker = ctx.Process(target=hang, args=(sender,))
    with _forking_from(0):
        worker.start()
    print(*receiver.recv(), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_run_takes_its_fork_servers_and_their_hanging_workers_along(tmp_path: Path) -> None:
    # A worker dies with its parent, the fork server; the server would live on as long as that
    # worker holds the pipe that tells it the run is gone, so it dies with the run.
    import psutil

    script = tmp_path / "killed_run.py"
    script.write_text(KILLED_RUN_SCRIPT)
    out = tmp_path / "pids"  # a file, not a pipe: the server and the worker hold what they inherit
    with out.open("w") as f:
        proc = subprocess.run([sys.executable, str(script)], stdout=f, stderr=f, timeout=240)
    assert proc.returncode == -signal.SIGKILL, out.read_text()
    server, worker = (int(pid) for pid in out.read_text().split())
    gone = []
    for pid in (server, worker):
        try:
            gone.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(gone, timeout=10)
    assert not alive, alive


def test_a_fork_server_worker_starts_with_what_every_worker_imports(tmp_path: Path) -> None:
    # torch._dynamo (any optimizer imports it) and sympy (FlopCounterMode's first use): seconds of
    # each worker otherwise, counted against its first step's time limit. A fresh interpreter:
    # this process's fork server may be the tests' launcher's.
    script = tmp_path / "fork_server_worker.py"
    script.write_text(FORK_SERVER_SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['torch._dynamo', 'sympy', 'bench.execute']"
