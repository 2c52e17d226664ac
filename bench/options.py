"""What a run is asked to do: one options object for `bench` and the pytest plugin, declared once."""

from __future__ import annotations

import argparse
import os
import shlex
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from bench.case import PROFILES
from bench.errors import SelectionError, SuiteError

if TYPE_CHECKING:
    import pytest

DEVICE_CHOICES = ("cpu", "cuda", "auto", "all")


@dataclass(frozen=True)
class Timing:
    """pytest-benchmark's rounds and time per item for one profile."""

    min_rounds: int
    max_time_s: float
    min_time_s: float

    def pytest_values(self) -> dict[str, Any]:
        """pytest-benchmark's option destinations and values, as its own parsers give them."""
        return {
            "benchmark_min_rounds": self.min_rounds,
            "benchmark_max_time": str(self.max_time_s),
            "benchmark_min_time": str(self.min_time_s),
        }


# quick keeps the whole suite to minutes on 2 cores; full gives the source notes' sizes their time.
PROFILE_TIMING: Mapping[str, Timing] = MappingProxyType(
    {"quick": Timing(5, 0.25, 0.0002), "full": Timing(10, 2.0, 0.0005)}
)
# Trials per item (worker processes, one after another): the interval of a speedup is over them.
PROFILE_TRIALS: Mapping[str, int] = MappingProxyType({"quick": 4, "full": 7})
# A group behind a claim that its trials leave inconclusive gets more, up to this many times the
# planned number, where the projected interval would then decide it (bench.claims.trials_to_decide).
# Three, not two: at 5609a29 the second of three quick runs left S6 (seqsetvae.monitor, 0.2 s
# calls, two cycles a trial) and issue5 inconclusive where 11 and 9 trials would have decided them,
# and 8 were the most a group could get: two of the verdicts that changed between the runs.
MORE_TRIALS_FACTOR = 3
# Threads in a worker's pools (torch, BLAS, OpenMP) unless --threads says otherwise. One: on a
# 2-core machine two identical quick runs moved a speedup by ~18 % (median) with torch's default
# two threads, 3-7 % with one; and a 2-thread OpenMP op can stall a scheduler tick under contention.
DEFAULT_THREADS = 1
# How a worker's glibc malloc is set up before it builds anything (bench.probes.memory): steady
# (the heap keeps what calls free, so steady-state calls fault no fresh pages) or glibc's default.
MALLOC_MODES = ("steady", "default")
# The -m expression a profile uses when none is given: quick leaves out the cases marked `slow`
# (cold torch.compile, multi-process DDP: minutes each on a 2-core CPU).
PROFILE_MARKERS: Mapping[str, str] = MappingProxyType({"quick": "not slow", "full": ""})
# The flags of pytest-benchmark's that a profile sets, when the user does not.
TIMING_FLAGS = {
    "benchmark_min_rounds": "--benchmark-min-rounds",
    "benchmark_max_time": "--benchmark-max-time",
    "benchmark_min_time": "--benchmark-min-time",
}


@dataclass(frozen=True)
class Option:
    """One run option: `bench` takes it as ``--FLAG``, pytest as ``--bench-FLAG``.

    ``name`` is the RunOptions attribute (and the CLI's argparse destination); ``cli_flag``
    spells the CLI's flag where it reads better apart from the plugin's namespace.
    """

    name: str
    flag: str
    help: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    commands: tuple[str, ...] = ("list", "run")
    cli_flag: str | None = None

    @property
    def pytest_flag(self) -> str:
        return f"--bench-{self.flag}"

    @property
    def pytest_dest(self) -> str:
        return "bench_" + self.flag.replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option(
        "profile",
        "profile",
        "grid sizes, timing and default markers: quick (CI sizes, leaves `slow` cases out) or full "
        "(the source notes' sizes, every case)",
        {"choices": PROFILES, "default": "quick"},
    ),
    Option(
        "device",
        "device",
        "cpu, cuda (an error without CUDA), auto (CUDA if usable, else CPU), all",
        {"choices": DEVICE_CHOICES, "default": "auto"},
    ),
    Option(
        "time_limit_s",
        "time-limit",
        "stop any item running longer than this (default: each case's own limit)",
        {"type": float, "metavar": "SECONDS"},
        commands=("run",),
    ),
    Option(
        "threads",
        "threads",
        f"threads in the workers, in torch's pool and in every BLAS and OpenMP pool (numpy, scipy, "
        f"PennyLane Lightning) (default {DEFAULT_THREADS}: one thread moves a speedup 3-7 %% between "
        "runs on a 2-core machine, torch's default of two ~18 %%)",
        {"type": int, "metavar": "N"},
        commands=("run",),
    ),
    Option(
        "no_probes",
        "no-probes",
        "skip the memory/FLOP/GPU probe pass",
        {"action": "store_true", "default": False},
        commands=("run",),
    ),
    Option(
        "traces",
        "traces",
        "also record a torch.profiler trace of every item under DIR/<case>/<variant>/ "
        "(default DIR: reports/traces)",
        {"nargs": "?", "const": Path("reports/traces"), "type": Path, "metavar": "DIR"},
        commands=("run",),
        cli_flag="profile-traces",
    ),
    Option(
        "trials",
        "trials",
        "independent trials per item, each in a fresh worker process (default: the profile's, "
        f"{', '.join(f'{p} {n}' for p, n in sorted(PROFILE_TRIALS.items()))})",
        {"type": int, "metavar": "N"},
        commands=("run",),
    ),
    Option(
        "worker_start",
        "worker-start",
        "how workers start: forkserver (a trial's workers forked from a fresh interpreter of that "
        "trial's own, which has imported torch and the suites and never touches CUDA: each trial in "
        "its own memory layout), fork (all from the run's process: one layout for the whole run; "
        "CPU only), spawn (a fresh interpreter each), or auto (forkserver)",
        {"choices": ("auto", "fork", "forkserver", "spawn"), "default": "auto"},
        commands=("run",),
    ),
    Option(
        "malloc",
        "malloc",
        "glibc malloc in the workers: steady (blocks up to 32 MiB from a heap that keeps what calls "
        "free: timed calls reuse memory, as a long training process does, and fault no fresh pages, "
        "whose cost moves with the host) or default (glibc's own, whose thresholds follow what ran "
        "before in the worker)",
        {"choices": MALLOC_MODES, "default": "steady"},
        commands=("run",),
    ),
    Option(
        "memory_limit_mb",
        "memory-limit",
        "address space (MiB) a worker may add to what it starts with; beyond it an allocation "
        "fails and the item is recorded as oom",
        {"type": float, "metavar": "MIB"},
        commands=("run",),
    ),
    Option(
        "resume",
        "resume",
        "complete a run that was cut short from its journal (RESULTS.journal.jsonl): the groups "
        "it holds are taken from it, the rest measured",
        {"type": Path, "metavar": "JOURNAL"},
        commands=("run",),
    ),
)


@dataclass(frozen=True)
class RunOptions:
    """Everything a run is asked for, whether `bench` or pytest was given the arguments.

    ``keyword`` and ``markers`` are pytest's ``-k`` and ``-m``; ``markers`` is None when none was
    given, and the profile's expression applies (``""`` given means every case).
    """

    profile: str = "quick"
    device: str = "auto"
    time_limit_s: float | None = None
    threads: int | None = None
    no_probes: bool = False
    traces: Path | None = None
    trials: int | None = None
    worker_start: str = "auto"
    malloc: str = "steady"
    memory_limit_mb: float | None = None
    resume: Path | None = None
    keyword: str | None = None
    markers: str | None = None

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise SelectionError(f"unknown profile {self.profile!r}; choose one of {', '.join(PROFILES)}")
        if self.device not in DEVICE_CHOICES:
            raise SelectionError(f"unknown device {self.device!r}; choose one of {', '.join(DEVICE_CHOICES)}")
        if self.threads is not None and self.threads < 1:
            raise SelectionError(f"--threads must be at least 1, got {self.threads}")
        if self.time_limit_s is not None and not self.time_limit_s > 0:
            raise SelectionError(f"--time-limit must be more than 0 seconds, got {self.time_limit_s}")
        if self.trials is not None and self.trials < 2:
            raise SelectionError(
                f"--trials must be at least 2 (an interval needs two processes), got {self.trials}"
            )
        if self.malloc not in MALLOC_MODES:
            raise SelectionError(f"unknown --malloc {self.malloc!r}; choose one of {', '.join(MALLOC_MODES)}")
        if self.memory_limit_mb is not None and not self.memory_limit_mb > 0:
            raise SelectionError(f"--memory-limit must be more than 0 MiB, got {self.memory_limit_mb}")

    @property
    def probes(self) -> bool:
        return not self.no_probes

    @property
    def trial_count(self) -> int:
        return self.trials if self.trials is not None else PROFILE_TRIALS[self.profile]

    @property
    def max_trial_count(self) -> int:
        """Trials a group may get in all, where a claim is left inconclusive by the planned ones."""
        return MORE_TRIALS_FACTOR * self.trial_count

    @property
    def worker_threads(self) -> int:
        return self.threads if self.threads is not None else DEFAULT_THREADS

    @property
    def timing(self) -> Timing:
        return PROFILE_TIMING[self.profile]

    @property
    def marker_expression(self) -> str:
        """The -m expression the run uses: the one given (even empty), else the profile's."""
        return PROFILE_MARKERS[self.profile] if self.markers is None else self.markers

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> RunOptions:
        """From `bench`'s parsed arguments (options a command does not take keep their defaults)."""
        names = {f.name for f in fields(cls)}
        values = {
            "keyword": getattr(args, "select", None),
            **{name: getattr(args, name) for name in names if getattr(args, name, None) is not None},
        }
        return cls(**values)

    @classmethod
    def from_config(cls, config: pytest.Config) -> RunOptions:
        """From pytest's configuration: the --bench-* options, -k, and -m when it was given."""
        values = {o.name: config.getoption(o.pytest_dest) for o in OPTIONS}
        given = given_flags(config)
        markexpr = config.getoption("markexpr") or ""
        markers = markexpr if markexpr or "-m" in given else None
        return cls(**values, keyword=config.getoption("keyword") or None, markers=markers)

    def pytest_args(self) -> list[str]:
        """The pytest arguments that give a plugin these options (the defaults left out)."""
        args: list[str] = []
        defaults = RunOptions()
        for option in OPTIONS:
            value = getattr(self, option.name)
            if value == getattr(defaults, option.name):
                continue
            if option.kwargs.get("action") == "store_true":
                args.append(option.pytest_flag)
            else:
                args.append(f"{option.pytest_flag}={value}")
        if self.keyword:
            args += ["-k", self.keyword]
        if self.markers is not None:
            args += ["-m", self.markers]
        return args


def add_cli_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The run options `bench COMMAND` takes, as declared in OPTIONS."""
    for option in OPTIONS:
        if command in option.commands:
            flag = f"--{option.cli_flag or option.flag}"
            parser.add_argument(flag, dest=option.name, help=option.help, **option.kwargs)


def add_pytest_options(group: Any) -> None:
    """The same options for pytest, each as --bench-FLAG (a pytest OptionGroup)."""
    for option in OPTIONS:
        group.addoption(option.pytest_flag, dest=option.pytest_dest, help=option.help, **option.kwargs)


def given_flags(config: pytest.Config) -> set[str]:
    """The long flags (and -k / -m) the user gave this run: its arguments, PYTEST_ADDOPTS, addopts.

    pytest keeps no record of which options took their default; the profile must not override what
    was asked for explicitly, even where that equals pytest-benchmark's default.
    """
    args: list[str] = [*config.getini("addopts"), *shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))]
    args += [str(a) for a in config.invocation_params.args]
    return flags_in(args)


def flags_in(args: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for arg in args:
        if arg == "--":
            break
        if arg.startswith("--"):
            found.add(arg.split("=", 1)[0])
        elif arg.startswith(("-k", "-m")):
            found.add(arg[:2])
    return found


def profile_values(config: pytest.Config, options: RunOptions) -> dict[str, Any]:
    """pytest-benchmark's options that this run's profile sets: those the user did not give."""
    given = given_flags(config)
    return {
        dest: value
        for dest, value in options.timing.pytest_values().items()
        if TIMING_FLAGS[dest] not in given
    }


def declared_suites(rootpath: Path, ini_paths: Sequence[Path]) -> list[Path]:
    """The suite folders a project declares: pytest's ``bench_suites`` ini option, else the
    ``suites`` list of ``[tool.bench]`` in the rootdir's pyproject.toml. None declared: none used.
    """
    if ini_paths:
        return [Path(p).resolve() for p in ini_paths]
    pyproject = rootpath / "pyproject.toml"
    if not pyproject.is_file():
        return []
    try:
        table = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("bench")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SuiteError(f"{pyproject} cannot be read: {exc}") from None
    if table is None:
        return []
    suites = table.get("suites") if isinstance(table, dict) else None
    if not isinstance(suites, list) or not suites or not all(isinstance(s, str) and s for s in suites):
        raise SuiteError(
            f'{pyproject}: [tool.bench] needs suites = ["folder", ...] (folders of suite files, '
            f"relative to {rootpath}), got {suites!r}"
        )
    return [(rootpath / s).resolve() for s in suites]
