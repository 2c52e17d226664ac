"""Trials in worker processes: the pytest process starts workers, they run the implementations.

A case's implementations at one grid point on one device (a *group*) are measured together:

1. One **check** worker builds the inputs, checks every variant against the reference, runs the
   trace, measures each implementation's seconds per call (from which the parent sets the calls
   per timed round, ``round_calls``), then runs the probes, peak memory last.
2. ``trials`` **trial** workers, one after another, each a fresh process: it builds its own
   inputs and callers, warms them up, then times cycles of rounds, every cycle all the
   implementations (and the reference once more, as the A/A control) in a shuffled order,
   mirrored in the next cycle and trial (``cycle_order``), until its time budget is spent.
   Where a claim judged on the group is inconclusive after them, the caller's ``decide`` may
   ask for more (up to ``max_trials``).

The parent never calls an implementation: it sends a job, reads messages, enforces the time
limit (killing a worker that hangs, even inside native code) and turns a worker's death into a
failure of the implementation that was running (``crash`` with its signal, or ``timeout``); the
group's other implementations go on in a new worker. Workers are forked from fork servers, one
per trial (a check's from the first): each a fresh interpreter that has imported torch, the
harness and the suites, never touches CUDA (which a child forked from a process that has
initialised it cannot use), and has an address-space layout of its own, which its workers share
(``_SERVERS``). ``fork`` forks them all from the pytest process (which has imported torch and the
suites, and has run nothing): one layout for the whole run; ``spawn``, a fresh interpreter per
worker, costs those imports in every worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import math
import multiprocessing
import multiprocessing.connection
import os
import random
import resource
import signal
import time
import traceback
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.case import MEMORY_METRICS, REFERENCE, point_id
from bench.options import RunOptions

AA = "reference (A/A)"  # the reference timed a second time, as if it were a variant
MAX_CYCLES = 10_000
# Seconds a worker may take beyond its limit to send its last message and exit after "done".
EXIT_GRACE_S = 10.0
# Seconds a worker may take beyond its first step's limit before its first message: its start
# (a spawned interpreter's imports, the suite's import, a CUDA context) is no
# implementation's time, and a case's limit is sized for its calls.
STARTUP_GRACE_S = 60.0


@dataclass(frozen=True)
class TrialSettings:
    """How a group is measured."""

    trials: int  # trial workers per group (0: check only, nothing timed)
    budget_s: float  # timed seconds per implementation per trial
    min_rounds: int  # cycles per trial, at least
    min_time_s: float  # the shortest timed round (more calls per round below it)
    time_limit_s: float  # per step of a worker: one implementation's check, setup, or the cycles
    threads: int  # torch intra-op threads in the workers
    start: str = "fork"  # or "forkserver", "spawn"
    max_trials: int = 0  # at most this many where ``measure_group``'s ``decide`` asks for more
    # Trial workers that build and warm up side by side (their timed cycles still run one at a
    # time, with every other worker idle): ``measure_group``.
    ready_width: int = 1
    memory_limit_bytes: int | None = None  # address space a worker may add to what it starts with
    seed: int = 0
    timer: Callable[[], float] = time.perf_counter  # pytest-benchmark's --benchmark-timer
    timer_precision_s: float | None = None  # measured once by the parent (None: by each worker)


# Cycles a trial runs at least, whatever the minimum rounds share out to. With one, a slow group's
# trial is one pair of rounds, and its interval is over four numbers: two quick runs on the 2-core
# Xeon VM (2026-12-03, quick's 4 rounds over 4 trials) put the second estimate inside the first
# interval for 69 % of speedups (79 of 114; the misses mostly such groups), against 89.5 and
# 90.4 % with two cycles per trial the day before.
MIN_CYCLES = 2


def cycles_per_trial(min_rounds: int, trials: int) -> int:
    """Cycles a trial runs at least: pytest-benchmark's minimum rounds per item shared out over
    the trials (the variation that matters is between them, which the interval resamples), and
    never fewer than MIN_CYCLES."""
    return max(MIN_CYCLES, math.ceil(min_rounds / max(trials, 1)))


@dataclass
class Outcome:
    """What the workers found for one implementation of a group."""

    name: str
    record: dict[str, Any] | None = None  # Record.to_json() from the check
    iterations: int | None = None  # calls per timed round
    call_s: float | None = None  # seconds per call, as the check worker measured it
    trials: list[list[float]] = field(default_factory=list)  # seconds per call, per round, per trial
    error: dict[str, Any] | None = None  # {kind, message[, signal]}

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "record": self.record,
            "iterations": self.iterations,
            "call_s": self.call_s,
            "trials": self.trials,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Outcome:
        return cls(
            doc["name"],
            doc.get("record"),
            doc.get("iterations"),
            doc.get("call_s"),
            list(doc.get("trials") or []),
            doc.get("error"),
        )


@dataclass(frozen=True)
class Job:
    """What one worker is asked to do (picklable: a worker from a fork server or spawned gets it by
    pickle)."""

    phase: str  # "check" or "trial"
    suite: str  # the suite file that declares the case, for a worker to import where it has not
    rootdir: str
    case: str
    params: dict[str, Any]
    device: str
    names: tuple[str, ...]  # implementations, in the order a check runs them (may include AA)
    options: RunOptions
    settings: TrialSettings
    trial: int = 0
    iterations: dict[str, int] = field(default_factory=dict)
    judged: tuple[str, ...] = ()  # the claims the audit judges on this group (their ids)
    # multiprocessing's start method in the run's process, which a worker restores: started by a
    # fork server or spawned, multiprocessing would make that its own default, and a DataLoader's
    # workers in it would each start a fork server of their own.
    mp_start: str | None = None

    @property
    def group(self) -> str:
        """The group, as a run's console and its cost summary name it."""
        return f"{self.case}[{point_id(self.params)}-{self.device}]"


# -- the parent's side ------------------------------------------------------------------------


@dataclass
class _Ended:
    messages: list[tuple[Any, ...]]
    failure: dict[str, Any] | None  # the worker's death: kind, message, signal
    blamed: str | None  # the implementation in flight when it died
    seconds: float = 0.0  # the worker's wall time, start to exit, less any wait for its turn

    @property
    def rounds(self) -> dict[str, list[float]] | None:
        """A trial worker's rounds, per implementation (None where it sent none)."""
        return next((m[1] for m in self.messages if m[0] == "rounds"), None)

    @property
    def failed(self) -> dict[str, tuple[Any, ...]]:
        """The implementations that failed in the worker, with their "failed" messages."""
        return {m[1]: m for m in self.messages if m[0] == "failed"}

    @property
    def brought_rounds(self) -> bool:
        """A trial that timed every implementation: its rounds, no failure, no death."""
        return self.rounds is not None and self.failure is None and not self.failed


# What the fork server imports before it forks a worker: what every worker imports, so that a
# worker pays only for its own case. CUDA is never initialised there. bench.forkserver, first,
# also does what warm_imports does (it is imported nowhere else).
FORKSERVER_PRELOAD = ("bench.forkserver", "torch", "bench.trials", "bench.execute", "bench.probes")


def warm_imports(flops: bool = True) -> None:
    """Import what workers would each import again, once, in the process they are forked from
    (the run's process, or the fork server); neither starts a thread.

    torch.optim imports torch._dynamo (~800 modules) on the first optimizer a process builds:
    1.5-1.8 s of every worker of a training case on a 2-core VM. FlopCounterMode (``flops``: the
    probes count FLOPs) imports sympy on first use: 1-3 s of every check worker, counted against
    its first implementation's time limit (an op on two elements does it here instead).
    """
    import importlib

    import torch

    importlib.import_module("torch._dynamo")
    if flops:
        from bench.probes import count_flops

        count_flops(lambda: torch.ones(2) + 1)


def _context(start: str) -> Any:
    """multiprocessing's context for ``start``."""
    return multiprocessing.get_context(start)


# The fork servers, by number: a check's workers fork from the first, trial t's from number
# t % trials (``server_number``). Each is an interpreter of its own, so it has an address-space
# layout of its own (the kernel draws one at each exec) and a heap of its own; every worker
# forked from one shares that server's. A whole run's workers forked from one process measured
# that process's layout in every trial: ``paco2.covariance``'s K = 4 variant took 165-225 us
# from one run to the next on the 2-core Xeon VM (2026-12-04), each run's four trials within a
# few % of each other, and with the layout fixed (``setarch -R``, ``PYTHONHASHSEED=0``) every
# run agreed (162-185 us). With a server per trial the trials sample the layouts, and the
# interval is over them too.
_SERVERS: dict[int, Any] = {}


def server_number(job: Job) -> int:
    """The fork server ``job``'s worker forks from (under ``start="forkserver"``)."""
    return job.trial % max(job.settings.trials, 1) if job.phase == "trial" else 0


def _fork_server(number: int) -> Any:
    """Fork server ``number``, preloading what every worker imports and the suites (those
    importable by name, as the registry holds them when it starts); started on first use."""
    import multiprocessing.forkserver

    server = _SERVERS.get(number)
    if server is None:
        from bench.registry import REGISTRY

        server = _SERVERS[number] = multiprocessing.forkserver.ForkServer()
        server.set_forkserver_preload([*FORKSERVER_PRELOAD, *REGISTRY.importable_modules()])
    return server


def start_fork_servers(jobs: Sequence[Job]) -> None:
    """Start the fork servers ``jobs`` fork from, side by side (each imports for seconds)."""
    for number in sorted({server_number(job) for job in jobs if job.settings.start == "forkserver"}):
        _fork_server(number).ensure_running()


def stop_fork_servers() -> None:
    """Stop every fork server this process started (they stop anyway once it has exited)."""
    while _SERVERS:
        _SERVERS.popitem()[1]._stop()


@contextlib.contextmanager
def _forking_from(number: int) -> Generator[None, None, None]:
    """Let the multiprocessing Process started inside fork from server ``number``: its
    ``Popen`` asks the module-level function, which is the default server's."""
    import multiprocessing.forkserver

    module: Any = multiprocessing.forkserver
    default = module.connect_to_new_process
    module.connect_to_new_process = _fork_server(number).connect_to_new_process
    try:
        yield
    finally:
        module.connect_to_new_process = default


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class _Running:
    """A worker in flight: its process and pipe, the messages read so far, its deadline.

    The parent reads every running worker's pipe in one loop (``_drive``), never in threads: a
    worker is forked from the parent, and a fork from a process with threads can copy a lock
    another thread holds.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self.began = time.perf_counter()
        ctx = _context(job.settings.start)
        self.receiver, sender = ctx.Pipe(duplex=False)
        self.in_flight = ctx.Value("i", -1, lock=False)
        # A trial worker, warmed up, waits for this before its timed cycles (``go``).
        self.turn = ctx.Event() if job.phase == "trial" else None
        self.process = ctx.Process(
            target=_worker_main,
            args=(job, sender, self.in_flight, self.turn),
            # "bench-check", "bench-trial-N" (N from 0): what a suite sees as its process's name
            name="bench-check" if job.phase == "check" else f"bench-trial-{job.trial}",
        )
        if job.settings.start == "fork":
            # The parent's objects out of the collector's reach: a collection in the child would
            # otherwise touch (and so copy) every page of the parent's heap.
            gc.freeze()
        if job.settings.start == "forkserver":
            with _forking_from(server_number(job)):
                self.process.start()
        else:
            self.process.start()
        sender.close()
        self.messages: list[tuple[Any, ...]] = []
        self.limit = job.settings.time_limit_s
        self.deadline = time.monotonic() + self.limit + STARTUP_GRACE_S
        self.failure: dict[str, Any] | None = None
        self.done = False
        self.over = False  # no more messages to read: done, failed, or the pipe closed
        self.ready = False  # a trial worker warmed up, waiting for its turn to time
        self.waited_s = 0.0  # how long it waited (not its own time: not counted against it)
        self._waiting_since: float | None = None
        self.step = "while starting"  # what it was doing, for a timeout's message

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def read(self) -> None:
        """Take one message (the pipe is ready to read), or the end of the pipe."""
        try:
            message = self.receiver.recv()
        except EOFError:
            self.over = True  # the worker is gone: its exit code says how
            return
        self.messages.append(message)
        kind = message[0]
        if kind == "fatal":
            self.failure = {"kind": "exception", "message": f"the worker failed: {message[1]}"}
        if kind == "start":
            doing = "check or probes" if self.job.phase == "check" else "setup and warm-up"
            self.step = f"in {message[1]}'s {doing}"
        if kind == "timing":
            # The cycles: every implementation's budget, plus one limit for a slow round.
            self.deadline = time.monotonic() + self.limit + message[1]
            self.step = "in its timed cycles"
        elif kind == "ready":
            # Waiting for its turn is the parent's doing: no deadline until ``go``.
            self.ready, self._waiting_since = True, time.perf_counter()
            self.deadline = math.inf
        elif kind == "done":
            self.done = self.over = True
        else:
            self.deadline = time.monotonic() + self.limit

    def go(self) -> None:
        """Let a trial worker that is ready start its timed cycles."""
        if self._waiting_since is not None:
            self.waited_s += time.perf_counter() - self._waiting_since
            self._waiting_since = None
        self.deadline = time.monotonic() + self.limit
        assert self.turn is not None
        self.turn.set()

    def expire(self) -> None:
        """Kill the worker if it ran past its deadline."""
        if not self.over and self.remaining() <= 0:
            self.failure = {
                "kind": "timeout",
                "message": f"ran past its time limit of {self.limit:g} s {self.step} and was killed",
            }
            self.process.kill()
            self.over = True

    def finish(self) -> _Ended:
        """Wait for the process to exit and say how it ended."""
        try:
            self.process.join(EXIT_GRACE_S if self.done or self.failure else self.limit)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
            if self.failure is None and not self.done:
                code = self.process.exitcode
                if code is not None and code < 0:
                    name = _signal_name(-code)
                    hint = " (killed for memory?)" if -code == signal.SIGKILL else ""
                    self.failure = {
                        "kind": "crash",
                        "message": f"the worker died of {name}{hint}",
                        "signal": name,
                    }
                else:
                    self.failure = {"kind": "crash", "message": f"the worker exited with code {code} mid-way"}
        finally:
            self.kill()
        names = self.job.names
        index = self.in_flight.value
        blamed = names[index] if self.failure is not None and 0 <= index < len(names) else None
        if self._waiting_since is not None:  # ended (killed) while waiting for its turn
            self.waited_s += time.perf_counter() - self._waiting_since
        return _Ended(self.messages, self.failure, blamed, time.perf_counter() - self.began - self.waited_s)

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.receiver.close()


# A plan: a generator that yields the jobs of one group's phase, one after another, and is sent
# how each worker ended.
Plan = Generator[Job, _Ended, None]
# What one worker cost: its phase ("check" or "trial"), wall seconds, and group (Job.group).
WorkerSeconds = tuple[str, float, str]


def _drive(plans: Sequence[Plan], width: int = 1, done: Callable[[int], None] | None = None) -> None:
    """Run the plans' workers, at most ``width`` at a time, until every plan is over; ``done``
    is told the index of each plan as it ends."""
    queue = list(enumerate(plans))
    active: dict[_Running, tuple[int, Plan]] = {}

    def advance(index: int, plan: Plan, ended: _Ended | None) -> None:
        try:
            job = next(plan) if ended is None else plan.send(ended)
        except StopIteration:
            if done is not None:
                done(index)
            return
        active[_Running(job)] = (index, plan)

    try:
        while queue or active:
            while queue and len(active) < max(width, 1):
                advance(*queue.pop(0), None)
            if not active:
                continue
            _poll(list(active))
            for running in list(active):
                if running.over:
                    index, plan = active.pop(running)
                    advance(index, plan, running.finish())
    finally:
        for running in active:
            running.kill()


# Trial workers build side by side only where that many of the group's largest worker (its peak
# resident set in the check, and on CUDA its allocator's peak plus a context) fit in this share of
# the memory available (on CUDA, of the device's free memory too).
READY_MEMORY_SHARE = 0.5
CUDA_CONTEXT_BYTES = 512 * 2**20  # what a process's CUDA context holds on the device, about


def _ready_width(settings: TrialSettings, outcomes: dict[str, Outcome], device: str = "cpu") -> int:
    """How many trial workers of a group may build and warm up at once: ``settings.ready_width``,
    fewer where that many copies of the group's worker would not fit in memory."""
    width = max(settings.ready_width, 1)
    if width == 1:
        return 1
    import psutil

    memory = [(o.record or {}).get("memory") or {} for o in outcomes.values()]
    peak = max((m.get("cpu_peak_rss_bytes") or 0 for m in memory), default=0)
    room = psutil.virtual_memory().available * READY_MEMORY_SHARE
    if peak:
        width = max(1, min(width, int(room // peak)))
    if device.startswith("cuda"):
        import torch

        on_device = max((m.get("cuda_peak_reserved_bytes") or 0 for m in memory), default=0)
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        width = max(1, min(width, int(free * READY_MEMORY_SHARE // (on_device + CUDA_CONTEXT_BYTES))))
    return width


def _run_trials(jobs: Sequence[Job]) -> list[_Ended]:
    """Trial workers for ``jobs``, started together: each builds its inputs and warms up, says it
    is ready and waits; once every one of them is ready (or over), they time their cycles one at
    a time, in order. So the untimed part of a trial shares the machine with another's, and a
    timed round never does: the others are idle, waiting, or gone. Stops at the first trial that
    did not bring its rounds (a crash, a failure, a timeout): the ones after it are killed
    unreleased and not returned (they are run again without what failed)."""
    start_fork_servers(jobs)
    batch = [_Running(job) for job in jobs]
    found: list[_Ended] = []
    try:
        _pump(batch, lambda: all(r.ready or r.over for r in batch))
        for running in batch:
            if not running.over:
                running.go()
                _pump([running], lambda: running.over)  # noqa: B023 (called before the loop moves on)
            ended = running.finish()
            found.append(ended)
            if not ended.brought_rounds:
                break
    finally:
        for running in batch:
            running.kill()
    return found


def _pump(workers: Sequence[_Running], until: Callable[[], bool]) -> None:
    """Read the workers' messages and enforce their deadlines until ``until()`` holds."""
    while not until() and any(not r.over for r in workers):
        _poll(workers)


def _poll(workers: Sequence[_Running]) -> None:
    """Wait (a second at most, or until the nearest deadline) for a message from any worker that
    is not over, take one from each that has one, and kill those past their deadline."""
    live = [r for r in workers if not r.over]
    wait = max(min(min(r.remaining() for r in live), 1.0), 0.0)
    ready = multiprocessing.connection.wait([r.receiver for r in live], wait)
    for running in live:
        if running.receiver in ready:
            running.read()
        running.expire()


def group_job(
    suite: Path,
    rootdir: Path,
    case: str,
    params: dict[str, Any],
    device: str,
    names: Sequence[str],
    options: RunOptions,
    settings: TrialSettings,
    judged: Sequence[str] = (),
) -> Job:
    """The check job of a group: its implementations ``names``, the reference first; ``judged``:
    the ids of the claims the audit judges on the group (their memory passes may be extended)."""
    ordered = (REFERENCE, *[n for n in names if n != REFERENCE])
    return Job(
        "check",
        str(suite),
        str(rootdir),
        case,
        dict(params),
        device,
        ordered,
        options,
        settings,
        judged=tuple(judged),
        # (Asked this way, it is fixed now: starting a fork server asks too, and a group's job
        # taken before it must equal the one taken after.)
        mp_start=multiprocessing.get_start_method(),
    )


def _check_plan(base: Job, outcomes: dict[str, Outcome], seconds: list[WorkerSeconds]) -> Plan:
    """Check every implementation of ``base`` in order; a worker that dies costs only the one in
    flight, and the rest go on in a new worker."""
    pending = list(base.names)
    while pending:
        ended = yield replace(base, names=tuple(pending))
        seconds.append(("check", ended.seconds, base.group))
        for message in ended.messages:
            _take(message, outcomes)
        finished = [n for n in pending if outcomes[n].record is not None or outcomes[n].error is not None]
        if ended.failure is not None:
            blamed = ended.blamed or next((n for n in pending if n not in finished), None)
            if blamed is not None:
                outcomes[blamed].error = ended.failure
                finished.append(blamed)
        if not finished:  # the worker died before it began: every implementation shares the failure
            for n in pending:
                outcomes[n].error = ended.failure or {
                    "kind": "crash",
                    "message": "the worker ended without a word",
                }
            break
        pending = [n for n in pending if n not in finished]


def check_groups(
    jobs: Sequence[Job],
    width: int,
    worker_seconds: list[WorkerSeconds] | None = None,
    done: Callable[[int], None] | None = None,
) -> list[dict[str, Outcome]]:
    """The checks of several groups (``group_job``), ``width`` workers at a time: what
    ``measure_group`` takes as ``checked``. A check times nothing that is reported (its seconds
    per call only set the calls per round), so checks may share the machine with each other;
    never with a trial. ``done`` is told the index of each group as its check ends."""
    seconds = worker_seconds if worker_seconds is not None else []
    found = [{name: Outcome(name) for name in job.names} for job in jobs]
    _drive(
        [_check_plan(job, outcomes, seconds) for job, outcomes in zip(jobs, found, strict=True)], width, done
    )
    return found


def measure_group(
    job: Job,
    worker_seconds: list[WorkerSeconds] | None = None,
    decide: Callable[[dict[str, Outcome]], int] | None = None,
    checked: dict[str, Outcome] | None = None,
    trials_now: int | None = None,
) -> dict[str, Outcome]:
    """Check, then time in trials, the implementations of a group's check job (``group_job``:
    the reference first).

    Returns an Outcome per name (and for AA when anything was timed). Never raises for what an
    implementation does: its failure is in its Outcome. ``worker_seconds`` collects each worker's
    phase and wall time (what a trial costs). ``decide``, given the outcomes after the planned
    trials, says how many trials in all would settle what they are measured for (a claim whose
    interval is still too wide); the group then gets more, up to ``settings.max_trials``, and is
    asked again. ``checked``: the group's check done already (``check_groups``), not run again,
    and any trials taken already (an earlier call's outcomes), which the trials go on from.
    ``trials_now``: stop once the group has this many trials (no ``decide``): the first of a
    group's trials, taken early in a run so that its trials span the run's time
    (``BenchSession.check_ahead``); a later call with those outcomes as ``checked`` takes the rest.
    """
    seconds = worker_seconds if worker_seconds is not None else []
    base, settings = job, job.settings
    names = list(base.names)
    if checked is not None:
        outcomes = checked
    else:
        outcomes = check_groups([base], 1, seconds)[0]
    reference_error = outcomes[REFERENCE].error
    if reference_error is not None:
        text = f"the reference failed: {reference_error['message']}"
        for name in names[1:]:
            if outcomes[name].error is None:
                outcomes[name].error = {"kind": reference_error["kind"], "message": text}
        return outcomes

    # Trials: the implementations that passed, and the reference once more as the A/A control.
    timed = [n for n in names if outcomes[n].error is None]
    iterations = round_calls({n: outcomes[n].call_s or 0.0 for n in timed}, round_floor_s(settings))
    for name, count in iterations.items():
        outcomes[name].iterations = count
    if settings.trials > 0:
        if AA not in outcomes:
            outcomes[AA] = Outcome(AA, iterations=iterations[REFERENCE])
        iterations[AA] = iterations[REFERENCE]
        timed.append(AA)
    trial = len(outcomes[REFERENCE].trials)
    target = settings.trials if trials_now is None else min(trials_now, settings.trials)
    while REFERENCE in timed:
        if trial >= target:
            if (
                trials_now is not None or decide is None or not settings.trials
                or trial >= settings.max_trials
            ):
                break
            target = min(decide(outcomes), settings.max_trials)
            if target <= trial:
                break
        jobs = [
            replace(base, phase="trial", names=tuple(timed), trial=number, iterations=iterations)
            for number in range(trial, min(trial + _ready_width(settings, outcomes, base.device), target))
        ]
        ended: _Ended | None = None
        for ended in _run_trials(jobs):
            seconds.append(("trial", ended.seconds, base.group))
            rounds = ended.rounds
            if rounds is None or not ended.brought_rounds:
                break
            for name in timed:
                outcomes[name].trials.append(list(rounds[name]))
            trial += 1
            ended = None
        if ended is None:
            continue
        # A failure in a trial: that implementation is out, the trial is run again without it.
        for name, message in ended.failed.items():
            outcomes[name].error = {"kind": message[2], "message": message[3]}
        if ended.failure is not None:
            blamed = ended.blamed or REFERENCE
            outcomes[blamed].error = ended.failure
        out = {n for n in timed if outcomes[n].error is not None}
        if not out:  # nothing to blame: do not loop forever
            for name in timed:
                outcomes[name].error = {"kind": "crash", "message": "a trial worker ended without its rounds"}
            break
        for name in out:
            outcomes[name].trials = []
        timed = [n for n in timed if n not in out]
        if REFERENCE not in timed or AA not in timed:
            # Without the reference there is no speedup to measure; without its A/A twin the
            # reference is what failed (the two are the same code).
            reason = outcomes[REFERENCE].error or outcomes[AA].error or {}
            for name in timed:
                outcomes[name].error = {
                    "kind": reason.get("kind", "crash"),
                    "message": f"the reference failed in a trial: {reason.get('message', '')}",
                }
            timed = []
    return outcomes


# A fast implementation's round lasts at least this share of the group's mean call (see round_calls).
ROUND_SHARE = 0.1


def round_floor_s(settings: TrialSettings) -> float:
    """The shortest timed round: pytest-benchmark's minimum time, and ten ticks of the timer."""
    precision = settings.timer_precision_s
    if precision is None:
        precision = timer_precision(settings.timer)
    return max(settings.min_time_s, 10 * precision)


def round_target(call_s: Sequence[float], floor_s: float) -> float:
    """How long a timed round of a group lasts at least: ``floor_s``, and a tenth (ROUND_SHARE) of
    the mean of its implementations' seconds per call (``call_s``; those not measured, <= 0, left
    out). A call shorter than this gets several per round (``round_calls``)."""
    known = [s for s in call_s if s > 0]
    return max(floor_s, ROUND_SHARE * sum(known) / len(known)) if known else floor_s


def round_calls(call_s: dict[str, float], floor_s: float, within: float = 4.0) -> dict[str, int]:
    """Calls per timed round for each implementation of a group, from its seconds per call.

    A round lasts at least ``floor_s``, and at least a tenth of the group's mean call. Where a
    group mixes slow and fast calls (a 0.3 ms generator beside a 0.25 s circuit), its trials run
    only the few cycles the slow calls allow, and a fast implementation got two rounds of one
    call per trial, each right after a slow call had flushed the caches: its trial medians moved
    by 2.5x between processes. A round of many calls measures the call in its steady state and
    averages one call's hiccups, at a cost of at most a tenth of a cycle (more where counts are
    shared, below). A group of calls of about the same speed is unchanged.

    Implementations of about the same speed share one count: those whose calls are within
    ``within`` of the fastest of them take its count. Seconds per call are noisy (identical code
    was measured at 9 and 21 calls per 0.2 ms), and rounds of different lengths differ by a few
    tenths of a percent per call in cache and loop effects, which tight intervals report as a
    speedup of identical code.
    """
    target = round_target(list(call_s.values()), floor_s)
    counts: dict[str, int] = {}
    fastest = 0.0
    for name in sorted(call_s, key=call_s.__getitem__):
        seconds = call_s[name]
        if seconds <= 0:
            counts[name] = 1  # not measured: one call per round
            continue
        if not fastest or seconds > within * fastest:
            fastest, count = seconds, max(1, math.ceil(target / seconds))
        counts[name] = count
    return counts


def _take(message: tuple[Any, ...], outcomes: dict[str, Outcome]) -> None:
    kind = message[0]
    if kind == "checked":
        _, name, record, call_s = message
        outcomes[name].record, outcomes[name].call_s = record, call_s
    elif kind == "failed":
        _, name, error_kind, text, record = message
        outcomes[name].error = {"kind": error_kind, "message": text}
        outcomes[name].record = record


# -- the worker's side ------------------------------------------------------------------------


def die_with_parent() -> None:
    """Be killed when the parent dies: a worker whose run was killed would run on for nothing
    (and hold the machine); so would a fork server."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# The environment variables by which BLAS libraries loaded from now on size their thread pools.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
# What ``limit_thread_pools`` limits besides torch's own pool (the run records it).
THREAD_POOLS = ("torch", "BLAS", "OpenMP")


def limit_thread_pools(threads: int) -> None:
    """Every thread pool of this worker to ``threads``, not torch's alone: the BLAS libraries that
    numpy and scipy load (OpenBLAS, two of them with numpy 2 and scipy's wheels) and OpenMP
    runtimes (PennyLane Lightning's) size theirs by the cores, 2 on a 2-core machine, and
    gaussgan.validation's numpy/scipy metrics took 0.13 s a call with an IQR of 25-29 % of it
    that way, 0.09 s within 2-5 % with one BLAS thread (25 calls in one process, 2026-12-05).
    Libraries loaded already are limited at once (threadpoolctl); those loaded later read the
    environment."""
    from threadpoolctl import threadpool_limits

    for name in BLAS_THREAD_VARIABLES:
        os.environ[name] = str(threads)
    threadpool_limits(limits=threads)


def _limit_memory(extra_bytes: int | None) -> None:
    if extra_bytes is None:
        return
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[0])
    current = pages * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (current + extra_bytes, current + extra_bytes))


def _worker_main(job: Job, conn: Any, in_flight: Any, turn: Any = None) -> None:
    die_with_parent()
    # What this process inherited (a fork server's imports, or the run's), out of the collector's
    # reach: a full collection would otherwise walk it, and copy every page it touches.
    gc.freeze()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # The run's default, not how this worker was started: under a fork server, seqsetvae's
    # DataLoader cases started a fork server per pass, 3 s each (checks of 150 s, not 17).
    multiprocessing.set_start_method(job.mp_start, force=True)
    try:
        import torch

        from bench.execute import Executor
        from bench.probes.memory import steady_malloc

        if job.device.startswith("cuda") and torch.cuda._is_in_bad_fork():
            raise RuntimeError(
                "this worker was forked from a process that had initialised CUDA (with "
                f"--worker-start {job.settings.start}; a module imported there touched CUDA): "
                "run with --worker-start spawn"
            )
        torch.set_num_threads(job.settings.threads)
        limit_thread_pools(job.settings.threads)
        if job.device.startswith("cuda"):
            # The context before the first step: its seconds go to the worker's start.
            from bench.device import synchronize

            started = time.perf_counter()
            torch.empty(1, device=job.device)
            synchronize(job.device)
            conn.send(("device", time.perf_counter() - started))
        if job.options.malloc == "steady":
            steady_malloc()  # before anything is built: every call of a trial under one allocator
        _limit_memory(job.settings.memory_limit_bytes)
        case = _find_case(job)
        executor = Executor(job.options)
        if job.phase == "check":
            _check(job, case, executor, conn, in_flight)
        else:
            _trial(job, case, executor, conn, in_flight, turn)
        conn.send(("done",))
    except BaseException as exc:  # the worker's own failure (not an implementation's): say what
        conn.send(("fatal", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        raise
    finally:
        conn.close()


def _find_case(job: Job) -> Any:
    from bench.registry import load_suite

    # Forked (from the parent, or from a fork server that preloaded it), the suite is imported
    # already; spawned, this imports it.
    found = {c.name: c for c in load_suite(Path(job.suite), Path(job.rootdir))}
    return found[job.case]


def _spec(case: Any, job: Job, name: str) -> Any:
    from bench.execute import ItemSpec

    variant = REFERENCE if name == AA else name
    return ItemSpec(case, dict(job.params), job.device, variant, case.implementation(variant))


def _check(job: Job, case: Any, executor: Any, conn: Any, in_flight: Any) -> None:
    """Check every implementation and measure its seconds per call; then the probes; then, with
    malloc pinned, peak memory. The order matters: the calibration runs under the trials' allocator
    (RunOptions.malloc), and pinning (which makes large allocations slower) comes last."""
    from bench.execute import Draft, error_kind, new_record
    from bench.probes.memory import pin_malloc

    ready: dict[int, tuple[str, Any, Any, float]] = {}  # index: (name, draft, checked, seconds per call)

    def step(index: int, name: str, draft: Any, work: Callable[[], Any]) -> None:
        # One implementation's piece of work; a failure takes it out of the later steps.
        in_flight.value = index
        conn.send(("start", name))
        try:
            work()
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            conn.send(("failed", name, error_kind(exc), message, draft.record.to_json()))
            ready.pop(index, None)

    floor_s = round_floor_s(job.settings)
    for index, name in enumerate(job.names):
        spec = _spec(case, job, name)
        draft = Draft(new_record(spec, job.options.profile))

        def checked(draft: Any = draft, spec: Any = spec, index: int = index, name: str = name) -> None:
            found = executor.check(spec, draft)
            known = [s for s in (draft.record.first_call_s, found.warm_s) if s is not None]
            long_s = max(10 * floor_s, job.settings.budget_s)
            call, context = found.caller.timed()
            if known and found.warm_s is None and min(known) >= long_s:
                # No warm-up call: the first call is all that is known, and it holds one-time work
                # (a torch.compile variant's compilation: 62 s against a 15 ms call). Taken as the
                # call's time it made the variant's rounds one call and its reference's 45 (the
                # group's rounds last a tenth of its mean call), where both take the same count.
                with context:
                    started = job.settings.timer()
                    call()
                    known.append(job.settings.timer() - started)
            if known and min(known) >= long_s:
                # One call outlasts a trial's budget: no calibration calls. A first call is slower
                # than later ones (it initialises), so the warm-up call's time is taken where there
                # is one, and a shorter call is measured.
                call_s = min(known)
            else:
                call_s = seconds_per_call(call, context, floor_s, job.settings.timer)
            ready[index] = (name, draft, found, call_s)

        step(index, name, draft, checked)
    # A second look at the seconds per call of the implementations whose rounds hold several
    # calls (those the count matters for), once every implementation is checked, in reverse order;
    # the smaller of the two is kept. A calibration right after an implementation's check can
    # catch the machine slow: in 4 of 20 runs of tools/aa_trials.py on the 2-core Xeon VM
    # (2026-12-04, 5103489) the reference's gave it 7-10 calls per round against 46-49 for its
    # identical copies (`x @ x`, n = 64, 4 us), which then measured 1.008-1.013x with intervals
    # that excluded 1 (the A/A twin, on the reference's own count, held 1 in all 20).
    target = round_target([call_s for *_, call_s in ready.values()], floor_s)
    for index, (name, draft, found, call_s) in sorted(ready.items(), reverse=True):
        if 0 < call_s < target:

            def again(
                index: int = index, name: str = name, found: Any = found, first_s: float = call_s
            ) -> None:
                call, context = found.caller.timed()
                second_s = seconds_per_call(call, context, floor_s, job.settings.timer)
                ready[index] = (name, ready[index][1], found, min(first_s, second_s))

            step(index, name, draft, again)
    if job.options.probes:
        for index, (name, draft, found, _) in sorted(ready.items()):
            step(index, name, draft, functools.partial(executor.probe, found, draft))
        pin_malloc()
        # Pass 0 lets the pinned allocator settle and is not kept: the first calls after pinning
        # grow the resident set less, the earlier in the pass the less (seqsetvae.monitor: 9.7,
        # 10.5, 12.2, 12.5 MiB in check order, then 12.5-13.3 MiB for all four in later passes).
        # Its calls count the FLOPs (FlopCounterMode times nothing; pinning slows no count). The
        # passes kept alternate their order, so no implementation is always first.
        # A memory claim judged on this group that the kept passes leave inconclusive gets more
        # passes of its two implementations, up to MAX_MEMORY_PASSES, where they would decide it
        # (on CPU: on CUDA the claim is judged on the allocator's exact peak, not on the passes).
        judged = [
            c
            for c in case.claims
            if c.id in job.judged and c.metric in MEMORY_METRICS and not job.device.startswith("cuda")
        ]
        number, names = 0, None  # names: those the pass measures (None: all)
        while names is None or names:
            order = sorted(ready.items(), reverse=number % 2 == 1)
            for index, (name, draft, found, _) in order:
                if names is None or name in names:
                    probe = functools.partial(executor.probe_memory, found, draft, settle=number == 0)
                    step(index, name, draft, probe)
            number += 1
            names = None if number <= memory_passes(case) else _undecided(judged, ready)
    for _, (name, draft, _, call_s) in sorted(ready.items()):
        conn.send(("checked", name, draft.record.to_json(), call_s))


def _undecided(claims: Sequence[Any], ready: dict[int, tuple[str, Any, Any, float]]) -> set[str]:
    """The implementations of the memory ``claims`` whose passes so far leave them inconclusive
    where more passes (MAX_MEMORY_PASSES in all) would decide them (bench.claims.passes_to_decide)."""
    from bench.claims import passes_to_decide

    samples = {
        name: (draft.record.memory or {}).get("cpu_peak_rss_delta_samples") or []
        for name, draft, _, _ in ready.values()
    }
    names: set[str] = set()
    for claim in claims:
        base, var = samples.get(claim.baseline), samples.get(claim.variant)
        if base is None or var is None or claim.baseline == claim.variant:
            continue
        wanted = passes_to_decide(claim, base, var, MAX_MEMORY_PASSES)
        if wanted > min(len(base), len(var)):
            names |= {claim.baseline, claim.variant}
    return names


# Kept passes of the memory probe for a case that claims a memory change (an interval over them);
# one pass for the others.
CLAIMED_MEMORY_PASSES = 3
# Passes a claim's two implementations may get in all where the planned ones leave it inconclusive.
MAX_MEMORY_PASSES = 3 * CLAIMED_MEMORY_PASSES


def memory_passes(case: Any) -> int:
    """Passes of the memory probe kept for ``case``: several where a claim is judged on them."""
    claimed = any(claim.metric in MEMORY_METRICS for claim in case.claims)
    return CLAIMED_MEMORY_PASSES if claimed else 1


def seconds_per_call(
    call: Callable[[], Any],
    context: Any,
    min_time_s: float,
    timer: Callable[[], float] = time.perf_counter,
) -> float:
    """Seconds per call, from batches long enough for the timer: what calls per round derive from.

    Batches of ten times more calls until one lasts a tenth of ``min_time_s``, then the best of
    three such batches. The count per round is then proportional to it (``round_calls``), so that
    identical code gets (nearly) the same count: a round of 20 calls against one of 100 (what
    pytest-benchmark's powers-of-ten rule gives two identical functions either side of a
    threshold) differs by a few tenths of a percent per call in cache and loop effects, which
    tight intervals then report as a difference.
    """

    def batch(loops: int) -> float:
        started = timer()
        for _ in range(loops):
            call()
        return timer() - started

    loops = 1
    with context:
        duration = batch(loops)
        while duration < min_time_s / 10 and loops < 10**7:
            loops *= 10
            duration = batch(loops)
        return min(duration, batch(loops), batch(loops)) / loops


def cycle_order(names: Sequence[str], key: str, trial: int, cycle: int) -> list[str]:
    """The order of a cycle's rounds: shuffled, in mirrored pairs, so order effects cancel.

    Cycles come in pairs within a trial, and trials in pairs: cycle ``c`` of trial ``t`` takes
    the permutation drawn for (t // 2, c // 2), reversed where t + c is odd. Of any two
    implementations each runs first equally often over the four orders of a block, and the
    trial pairs balance it where a trial runs one cycle (a slow group). Independent shuffles did
    not: in the quick run's four one-cycle trials of ``dcgan.checkpoint`` the reference came
    before its A/A twin every time, and overwriting the checkpoint file just written is slower,
    so identical code measured 0.70x [0.60, 0.82]. The draw is seeded by ``key`` (case, point,
    device, seed): the same orders in every run.
    """
    order = list(names)
    random.Random(f"{key}|{trial // 2}|{cycle // 2}").shuffle(order)
    if (trial + cycle) % 2:
        order.reverse()
    return order


def timer_precision(timer: Callable[[], float]) -> float:
    """The timer's resolution as pytest-benchmark measures it (a few tenths of a second)."""
    from pytest_benchmark.timers import compute_timer_precision

    return float(compute_timer_precision(timer))  # type: ignore[no-untyped-call]


def _trial(job: Job, case: Any, executor: Any, conn: Any, in_flight: Any, turn: Any = None) -> None:
    from bench.execute import error_kind

    calls: dict[str, Callable[[], Any]] = {}
    context: Any = None
    for index, name in enumerate(job.names):
        in_flight.value = index
        if name == AA and REFERENCE in calls:
            # The A/A twin is the reference's own call, on its inputs, warmed up already: a second
            # warm-up call would cost one more reference call per trial (1.3 s on the slowest).
            calls[name] = calls[REFERENCE]
            continue
        conn.send(("start", name))
        try:
            caller = executor.timing_caller(_spec(case, job, name))
        except Exception as exc:
            conn.send(("failed", name, error_kind(exc), f"{type(exc).__name__}: {exc}"))
            return
        calls[name], own = caller.timed()
        context = context or own  # one mode per case: the same context for every implementation
    budget_s = job.settings.budget_s * len(job.names)
    index_of = {name: i for i, name in enumerate(job.names)}
    rounds: dict[str, list[float]] = {name: [] for name in job.names}
    key = f"{job.case}|{job.params}|{job.device}|{job.settings.seed}"
    order = list(job.names)
    timer = job.settings.timer
    gc.collect()
    with context:
        for name in order:
            # An untimed round of each fast implementation (several calls per round): a fresh
            # process's first rounds fault pages in. A slow one was warmed by its first call.
            if job.iterations[name] > 1:
                in_flight.value = index_of[name]
                fn = calls[name]
                for _ in range(job.iterations[name]):
                    fn()
        if turn is not None:
            # Warmed up: wait (idle) until no other worker is building or warming up.
            in_flight.value = -1
            conn.send(("ready",))
            turn.wait()
        conn.send(("timing", budget_s))
        end = timer() + budget_s
        cycle = 0
        while cycle < job.settings.min_rounds or (timer() < end and cycle < MAX_CYCLES):
            order = cycle_order(job.names, key, job.trial, cycle)
            for name in order:
                in_flight.value = index_of[name]
                fn, n = calls[name], job.iterations[name]
                started = timer()
                for _ in range(n):
                    fn()
                rounds[name].append((timer() - started) / n)
            cycle += 1
    conn.send(("rounds", rounds))
