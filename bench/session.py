"""One pytest run of the harness: item specs, the reference cache, correctness, probes and timing."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

# pytest's own -k / -m matching, to tell which cases -m alone left out (pytest has no public API).
from _pytest.mark import KeywordMatcher
from _pytest.mark.expression import Expression

from bench import __version__
from bench.calls import Caller
from bench.case import REFERENCE, Case, Claim
from bench.claims import claims_at, trials_to_decide
from bench.device import DevicePlan, plan_devices
from bench.environment import (
    cpu_times,
    describe,
    git_commit,
    load_average,
    others_share,
    own_cpu_seconds,
    steal_share,
)
from bench.execute import Executor, ItemSpec, new_record
from bench.journal import Group, Journal, journal_path, read_journal
from bench.options import RunOptions
from bench.plugin import SPEC_KEY
from bench.results import SCHEMA, Record
from bench.stats import trial_speedup
from bench.trials import (
    AA,
    THREAD_POOLS,
    Job,
    Outcome,
    TrialSettings,
    WorkerSeconds,
    check_groups,
    cycles_per_trial,
    group_job,
    measure_group,
    stop_fork_servers,
    timer_precision,
    warm_imports,
)

__all__ = ["BenchSession", "ItemSpec"]

# Check workers at a time, at most (BenchSession.check_width).
CHECK_WIDTH = 4


def results_path(option: Any) -> Path:
    """The path of ``--benchmark-json``: pytest-benchmark 5.3 gives the path, earlier versions
    the file it opened for writing (argparse.FileType)."""
    if isinstance(option, (str, os.PathLike)):
        return Path(option)
    return Path(os.fsdecode(option.name))


class BenchSession:
    """State of one pytest run of the harness: options, the reference cache, failures."""

    def __init__(self, config: pytest.Config, options: RunOptions | None = None) -> None:
        self.config = config
        self.options = options if options is not None else RunOptions.from_config(config)
        self.profile: str = self.options.profile
        self.device_choice: str = self.options.device
        self.time_limit_s: float | None = self.options.time_limit_s
        self.probes: bool = self.options.probes
        self.traces: Path | None = self.options.traces
        self.plan: DevicePlan = plan_devices(self.device_choice)
        self.cases: dict[str, Case] = {}
        self.left_out: dict[str, list[str]] = {}
        self.deselected: list[pytest.Item] = []
        self.failures: list[Record] = []
        self.skipped: list[dict[str, Any]] = []
        self.interrupted = False
        self.item_cases: dict[str, Case] = {}
        self.started = time.time()
        # The commit the run's code was loaded from: the tree can move on while a run goes on.
        self.git_at_start = git_commit(self.config.rootpath)
        self.load_at_start = load_average()
        self.cpu_at_start = cpu_times()
        self.own_cpu_at_start = own_cpu_seconds()
        # The selected implementations of each group, and the group measured last.
        self.group_variants: dict[Group, list[str]] = {}
        # The groups with an item that no skip marker holds back (a device this machine lacks
        # marks its items so): the groups the audit can judge claims on.
        self.live_groups: set[Group] = set()
        self._outcomes: dict[Group, dict[str, Outcome]] = {}
        # The groups whose checks may run ahead, several at a time (``check_ahead``): the first
        # item of each, in run order; and the checks done ahead, with the job they were done for.
        self._ahead: dict[Group, tuple[ItemSpec, pytest.Item]] = {}
        self._checked: dict[Group, tuple[Job, dict[str, Outcome]]] = {}
        # Groups whose check and first trials a resumed run's journal holds (check_ahead).
        self._partial: dict[Group, dict[str, Outcome]] = {}
        # Told (groups checked, groups to check, the group) as each check done ahead ends: the
        # runner's progress.
        self.on_check: Callable[[int, int, str, str], None] | None = None
        self.check_ahead_s: float | None = None  # the wall time of the checks done ahead
        # The journal this run appends to (a resumed run's groups start out as measured).
        self.journal: Journal | None = None
        self._warmed = False
        self._precisions: dict[Callable[[], float], float] = {}  # per timer, measured once
        self.worker_seconds: list[WorkerSeconds] = []  # (phase, wall seconds, group) of every worker
        results = config.getoption("benchmark_json", None)
        if self.options.resume is not None:
            _, self._outcomes, self._partial = read_journal(self.options.resume)
            self.journal = Journal(self.options.resume, [], config.rootpath, append=True)
        elif results is not None:
            args = [str(a) for a in config.invocation_params.args]
            self.journal = Journal(journal_path(results_path(results)), args, config.rootpath)

    # -- collection ---------------------------------------------------------------------------

    def items_for(self, case: Case) -> Iterator[tuple[ItemSpec, str | None]]:
        """Every item of a case with, for devices this run skips, the reason."""
        skipped = dict(self.plan.skipped)
        for params in case.points(self.profile):
            for device in case.devices:
                if device not in self.plan.run and device not in skipped:
                    continue
                for vname, impl in case.implementations():
                    yield ItemSpec(case, params, device, vname, impl), skipped.get(device)

    # -- running (in workers: bench.trials) ---------------------------------------------------

    def implementation_caller(self, spec: ItemSpec) -> Caller:
        """The item's implementation on fresh, seeded inputs (for bench.counts' counting process)."""
        return Executor(self.options).implementation_caller(spec)

    def item_timing(self, case: Case) -> dict[str, float]:
        """pytest-benchmark's rounds and times for ``case``'s items: the run's (profile or flags),
        then what the case fixes for its own items (``Case.benchmark``), which wins, as a
        ``@pytest.mark.benchmark`` does over the command line in pytest-benchmark."""
        opt = self.config.getoption
        own = case.benchmark
        return {
            "min_rounds": int(own.get("min_rounds", opt("benchmark_min_rounds"))),
            "max_time_s": float(own.get("max_time", opt("benchmark_max_time"))),
            "min_time_s": float(own.get("min_time", opt("benchmark_min_time"))),
        }

    def trial_settings(self, spec: ItemSpec, timed: bool) -> TrialSettings:
        opt = self.config.getoption
        trials = self.options.trial_count if timed else 0
        timing = self.item_timing(spec.case)
        start = self.worker_start(spec.device)
        memory = self.options.memory_limit_mb
        timer = _timer(opt("benchmark_timer"))
        return TrialSettings(
            trials=trials,
            max_trials=self.options.max_trial_count if timed else 0,
            # pytest-benchmark's time per item, shared out over the trials.
            budget_s=timing["max_time_s"] / max(trials, 1),
            min_rounds=cycles_per_trial(int(timing["min_rounds"]), trials),
            min_time_s=timing["min_time_s"],
            time_limit_s=self.time_limit_s or spec.case.time_limit_s,
            threads=self.options.worker_threads,
            start=start,
            memory_limit_bytes=int(memory * 2**20) if memory is not None else None,
            timer=timer,
            timer_precision_s=self._precision(timer),
            # Side by side while they build and warm up, as the checks do (on CUDA too: a worker
            # waiting for its turn holds its context and runs nothing on the device).
            ready_width=self.check_width(),
        )

    def worker_start(self, device: str) -> str:
        """How the workers of ``device``'s groups start (``--worker-start``, resolved)."""
        if self.options.worker_start != "auto":
            return self.options.worker_start
        # A fork server per trial: each trial's workers in an address-space layout of their own,
        # which forks of this process would all share (bench.trials, _SERVERS). On CUDA it is
        # needed anyway: a child forked from a process that has initialised CUDA (the run's
        # environment measures the GPU) could not use it, and a fork server never does.
        return "forkserver"

    def _precision(self, timer: Callable[[], float]) -> float:
        if timer not in self._precisions:
            self._precisions[timer] = timer_precision(timer)
        return self._precisions[timer]

    def outcomes(self, spec: ItemSpec, item: pytest.Item, timed: bool) -> dict[str, Outcome]:
        """The group's outcomes: measured in workers the first time one of its items runs (or
        taken from the journal being resumed), then kept for its other items."""
        if spec.group in self._outcomes:
            return self._outcomes[spec.group]
        job = self._group_job(spec, item, self.trial_settings(spec, timed))
        if job.settings.start == "fork":
            self._warm_up()
        if spec.group in self._ahead and spec.group not in self._checked:
            self.check_ahead(timed)
        ahead = self._checked.pop(spec.group, None)
        found = measure_group(
            job,
            worker_seconds=self.worker_seconds,
            decide=self._decide(spec),
            # A check done ahead for another job (this item's settings differ) is done again.
            checked=ahead[1] if ahead is not None and ahead[0] == job else None,
        )
        self._outcomes[spec.group] = found
        if self.journal is not None and timed:
            self.journal.write(spec.group, found)
        return found

    def _warm_up(self) -> None:
        """Before the first fork from this process: what the workers would each import again
        (trials.warm_imports; a fork server does it for its own)."""
        if not self._warmed:
            warm_imports(flops=self.options.probes)
            self._warmed = True

    def _group_job(self, spec: ItemSpec, item: pytest.Item, settings: TrialSettings) -> Job:
        names = self.group_variants.get(spec.group) or [spec.variant]
        return group_job(
            item.path,
            self.config.rootpath,
            spec.case.name,
            spec.params,
            spec.device,
            names,
            self.options,
            settings,
            judged=[claim.id for claim in self._judged(spec)],
        )

    def check_width(self) -> int:
        """Check workers at a time: one per core their threads leave (at most CHECK_WIDTH); one
        where traces are recorded (a trace times its calls)."""
        if self.traces is not None:
            return 1
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return max(1, min(CHECK_WIDTH, cores // self.options.worker_threads))

    def check_ahead(self, timed: bool) -> None:
        """Check every group still queued (``_ahead``), ``check_width`` at a time, before any of
        them is timed; then take the first half of every group's trials, group after group, and
        leave the rest for the group's turn. A group's trials so span the run: the host's slower
        changes (minutes) reach its interval, which trials taken seconds apart miss (between three
        quick runs, a run's mean trial speedup varied a median 1.45x, at the 90th percentile 4.3x,
        what the trials inside a run predicted)."""
        ahead = {
            g: self._group_job(spec, item, self.trial_settings(spec, timed))
            for g, (spec, item) in self._ahead.items()
            if g not in self._outcomes
        }
        self._ahead = {}
        queued: list[Group] = []
        for group, job in ahead.items():
            if group in self._partial:  # a resumed run's: checked, and its first trials taken
                self._checked[group] = (job, self._partial.pop(group))
            else:
                queued.append(group)
        jobs = [ahead[group] for group in queued]
        started = time.perf_counter()
        finished = 0

        def done(index: int) -> None:
            nonlocal finished
            finished += 1
            if self.on_check is not None:
                self.on_check(finished, len(jobs), jobs[index].group, "checks")

        checks = check_groups(jobs, self.check_width(), self.worker_seconds, done)
        for group, job, found in zip(queued, jobs, checks, strict=True):
            self._checked[group] = (job, found)
        self.check_ahead_s = time.perf_counter() - started
        for number, (group, job, found) in enumerate(zip(queued, jobs, checks, strict=True), start=1):
            first = job.settings.trials // 2
            if first < 1:
                continue
            measure_group(job, self.worker_seconds, None, found, trials_now=first)
            if self.journal is not None:
                self.journal.write(group, found, partial=True)
            if self.on_check is not None:
                self.on_check(number, len(jobs), job.group, "first trials")

    def _judged(self, spec: ItemSpec) -> list[Claim]:
        """The claims the audit will judge on the item's group."""
        live = [g for g in self.group_variants if g in self.live_groups]
        return claims_at(spec.case, self.profile, live, spec.group)

    def _decide(self, spec: ItemSpec) -> Callable[[dict[str, Outcome]], int] | None:
        """For a group that claims are judged on: how many trials in all would decide those that
        its trials leave inconclusive (bench.claims.trials_to_decide); None for other groups."""
        mine = self._judged(spec)
        if not mine:
            return None
        cap = self.options.max_trial_count

        def decide(outcomes: dict[str, Outcome]) -> int:
            wanted = 0
            for claim in mine:
                base, var = outcomes.get(claim.baseline), outcomes.get(claim.variant)
                if base is None or var is None or base is var or base.error or var.error:
                    continue
                if base.trials and len(base.trials) == len(var.trials):
                    found = trial_speedup(base.trials, var.trials)
                    if found is not None:
                        wanted = max(wanted, trials_to_decide(claim, found, cap))
            return wanted

        return decide

    def run(self, spec: ItemSpec, benchmark: Any, item: pytest.Item) -> None:
        timed = bool(benchmark.enabled)
        outcomes = self.outcomes(spec, item, timed)
        outcome = outcomes.get(spec.variant) or Outcome(
            spec.variant, error={"kind": "crash", "message": "not measured"}
        )
        base = Record.from_json(outcome.record) if outcome.record else new_record(spec, self.profile)
        record = replace(base, trials=tuple(tuple(t) for t in outcome.trials))
        reference = outcomes.get(REFERENCE)
        if spec.variant == REFERENCE:
            aa = outcomes.get(AA)
            if aa is not None and aa.trials and outcome.trials:
                found = trial_speedup(outcome.trials, aa.trials)
                record = replace(record, aa=found.as_dict() if found else None)
        elif reference is not None and reference.trials and outcome.trials:
            found = trial_speedup(reference.trials, outcome.trials)
            record = replace(record, speedup=found.as_dict() if found else None)
        if outcome.error is not None:
            error = {k: v for k, v in outcome.error.items()}
            record = replace(record, error=error, item=spec.name)
            self.failures.append(record)
            pytest.fail(f"{spec.name}: {error['kind']}: {error['message']}", pytrace=False)
        if timed and outcome.trials and outcome.iterations:
            # The trials' rounds, into pytest-benchmark's statistics and JSON (seconds per round).
            stats = benchmark._make_stats(outcome.iterations)
            for trial in outcome.trials:
                for seconds in trial:
                    stats.update(seconds * outcome.iterations)
            benchmark._mode = "bench trials"
        benchmark.extra_info["bench"] = record.to_json()

    # -- hooks of this run (the session is registered as a plugin) ----------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and report.when in ("setup", "call") and report.nodeid in self.item_cases:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            reason = reason.removeprefix("Skipped: ")
            self.skipped.append({"item": report.nodeid.rsplit("::", 1)[-1], "reason": reason})

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # Only the cases that kept an item after -k / -m selection belong to this run (and its
        # claims audit).
        self.cases = {}
        self.group_variants = {}
        self.live_groups = set()
        self._ahead = {}
        for item in session.items:
            case = self.item_cases.get(item.nodeid)
            if case is not None:
                self.cases.setdefault(case.name, case)
                spec: ItemSpec = item.stash[SPEC_KEY]
                self.group_variants.setdefault(spec.group, []).append(spec.variant)
                held_back = item.get_closest_marker("skip") or item.get_closest_marker("skipif")
                if not held_back:
                    self.live_groups.add(spec.group)
                if (
                    spec.device == "cpu"
                    and spec.group not in self._outcomes  # not measured already (a resumed run)
                    and spec.group not in self._ahead
                    and not held_back
                ):
                    self._ahead[spec.group] = (spec, item)
        if len(self._ahead) < 2:
            self._ahead = {}  # one group: checked and timed when it is reached
        self.left_out = {}
        left_out_by_markers = _marker_filter(self.config, self.options.marker_expression)
        for item in self.deselected:
            case = self.item_cases.get(item.nodeid)
            if case is not None and case.name not in self.cases and left_out_by_markers(item):
                self.left_out[case.name] = sorted(case.markers)

    def pytest_deselected(self, items: Sequence[pytest.Item]) -> None:
        self.deselected.extend(items)

    def pytest_keyboard_interrupt(self, excinfo: Any) -> None:
        self.interrupted = True

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        stop_fork_servers()
        if self.journal is not None:
            self.journal.close()

    # -- the run's JSON -----------------------------------------------------------------------

    def timing_options(self) -> dict[str, Any]:
        opt = self.config.getoption
        return {
            "min_rounds": opt("benchmark_min_rounds"),
            "min_time_s": opt("benchmark_min_time"),
            "max_time_s": opt("benchmark_max_time"),
            "warmup": str(opt("benchmark_warmup")),
            "disable_gc": opt("benchmark_disable_gc"),
            "timer": str(opt("benchmark_timer")),
        }

    def run_info(self) -> dict[str, Any]:
        claims = []
        # The claims of cases -m left out are recorded too: the audit lists them as not run.
        left_out = {c.name: c for c in self.item_cases.values() if c.name in self.left_out}
        for case in [*self.cases.values(), *left_out.values()]:
            for claim in case.claims:
                claims.append(
                    {
                        "case": case.name,
                        "id": claim.id,
                        "text": claim.text,
                        "metric": claim.metric,
                        "variant": claim.variant,
                        "baseline": claim.baseline,
                        # Standard JSON has no infinity: an open upper end is stored as null.
                        "expected": (
                            [claim.expected[0], None if math.isinf(claim.expected[1]) else claim.expected[1]]
                            if claim.expected
                            else None
                        ),
                        "at": dict(claim.at),
                        "extra": claim.extra,
                        "hardware": claim.hardware,
                        "measurable": claim.measurable,
                        "reason": claim.reason,
                    }
                )
        environment = describe(self.plan.run, measure=True, cwd=self.config.rootpath)
        # After the measured limits, which are this run's own work too.
        cpu_end, own_s = cpu_times(), own_cpu_seconds() - self.own_cpu_at_start
        git, git_end = self.git_at_start, environment.get("git")
        if git is not None and git_end is not None and git_end != git:
            git = {**git, "at_end": git_end}  # committed (or edited) while the run went on
        return {
            "schema": SCHEMA,
            "harness_version": __version__,
            "profile": self.profile,
            "devices": {
                "requested": self.device_choice,
                "run": list(self.plan.run),
                "skipped": [{"device": d, "reason": r} for d, r in self.plan.skipped],
            },
            "environment": {
                **environment,
                "git": git,
                "load_average": {"start": self.load_at_start, "end": load_average()},
                "cpu_steal": steal_share(self.cpu_at_start, cpu_end),
                "cpu_others": others_share(self.cpu_at_start, cpu_end, own_s),
            },
            "timing": self.timing_options(),
            "selection": {
                "keyword": self.options.keyword,
                "markers": self.options.marker_expression or None,
                # Cases that -k selects but -m keeps out of this run (by default the quick
                # profile's `slow` cases), with their markers.
                "left_out": self.left_out,
                # An interrupted run's cases with a group it did not finish: their claims are
                # not run (--resume finishes them), not unmeasurable.
                "not_reached": sorted({g[0] for g in self.live_groups if g not in self._outcomes})
                if self.interrupted
                else [],
            },
            "time_limit_s": self.time_limit_s,
            "trials": {
                "per_item": self.options.trial_count,
                "min_cycles": cycles_per_trial(
                    int(self.config.getoption("benchmark_min_rounds")), self.options.trial_count
                ),
                "threads": self.options.worker_threads,
                "thread_pools": list(THREAD_POOLS),
                "start": self.options.worker_start,
                "starts": {device: self.worker_start(device) for device in self.plan.run},
                "malloc": self.options.malloc,
                "memory_limit_mb": self.options.memory_limit_mb,
                "resumed_from": str(self.options.resume) if self.options.resume else None,
                "journal": str(self.journal.path) if self.journal is not None else None,
                "workers": _worker_summary(self.worker_seconds),
                # A CPU group's trial workers that build and warm up at a time (then time alone).
                "ready_width": self.check_width(),
                # Checks run ahead of the trials, side by side: how many at a time, wall seconds.
                "checks_ahead": {"width": self.check_width(), "wall_s": self.check_ahead_s}
                if self.check_ahead_s is not None
                else None,
            },
            "started": self.started,
            "finished": time.time(),
            "interrupted": self.interrupted,
            "cases": {
                name: {
                    "family": case.family,
                    "mode": case.mode,
                    "description": case.description,
                    "work_unit": case.work[0] if case.work else None,
                    # pytest-benchmark settings the case fixes for its items (over the run's).
                    "benchmark": dict(case.benchmark),
                    "variants": {
                        vname: {"exact": impl.exact, "note": impl.note, "overrides": dict(impl.params)}
                        for vname, impl in case.implementations()
                    },
                }
                for name, case in self.cases.items()
            },
            "claims": claims,
            "failures": [record.to_json() for record in self.failures],
            "skipped": self.skipped,
        }


def _worker_summary(seconds: Sequence[WorkerSeconds]) -> dict[str, Any]:
    """What the workers cost: per phase, how many, their median and total wall seconds; and per
    group, its check's and its trials' wall seconds, the costliest group first (where a run's time
    goes)."""
    out: dict[str, Any] = {}
    for phase in ("check", "trial"):
        values = sorted(s for p, s, _ in seconds if p == phase)
        if values:
            out[phase] = {"count": len(values), "median_s": values[len(values) // 2], "total_s": sum(values)}
    groups: dict[str, dict[str, float]] = {}
    for phase, value, group in seconds:
        cost = groups.setdefault(group, {"check_s": 0.0, "trial_s": 0.0, "trials": 0})
        cost[f"{phase}_s"] += value
        cost["trials"] += phase == "trial"
    if groups:
        out["groups"] = dict(sorted(groups.items(), key=lambda g: -(g[1]["check_s"] + g[1]["trial_s"])))
    return out


def _timer(option: Any) -> Callable[[], float]:
    """pytest-benchmark's --benchmark-timer, loaded as pytest-benchmark loads it."""
    if isinstance(option, str):
        from pytest_benchmark.utils import load_timer

        option = load_timer(option)  # type: ignore[no-untyped-call]
    timer: Callable[[], float] = getattr(option, "target", option)  # unwrapped from its NameWrapper
    return timer


def _marker_filter(config: pytest.Config, markexpr: str) -> Callable[[pytest.Item], bool]:
    """A test of whether -k would keep an item and -m alone deselects it (expressions compiled once)."""
    keyword = config.getoption("keyword")
    keyword_expr = Expression.compile(keyword) if keyword else None
    marker_expr = Expression.compile(markexpr) if markexpr else None

    def left_out(item: pytest.Item) -> bool:
        if marker_expr is None:
            return False
        if keyword_expr is not None and not keyword_expr.evaluate(KeywordMatcher.from_item(item)):
            return False
        names = {marker.name for marker in item.iter_markers()}

        def has(name: str, /, **_: str | int | bool | None) -> bool:
            return name in names

        return not marker_expr.evaluate(has)

    return left_out


# Paired rounds are skipped where their minimum number would take longer than this (or 4 budgets).
PAIRED_CAP_S = 1.5
