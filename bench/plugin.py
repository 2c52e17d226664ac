"""The pytest plugin: turns registered cases into benchmark items (the work is in bench.session)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.case import PROFILES
from bench.device import DEVICE_CHOICES
from bench.errors import BenchError
from bench.registry import REGISTRY
from bench.session import BenchSession, ItemSpec

MARKERS = {
    "gpu": "needs a CUDA device; skipped cleanly without one",
    "quantum": "runs quantum circuit simulation (PennyLane)",
    "slow": "takes long; deselect with -m 'not slow'",
}

_KEY = pytest.StashKey[BenchSession]()
SPEC_KEY = pytest.StashKey[ItemSpec]()  # each collected item's spec, for passes that run items themselves


def session_of(config: pytest.Config) -> BenchSession:
    return config.stash[_KEY]


class SuiteFile(pytest.File):
    """A module in suites/: importing it registers cases; each becomes benchmark items."""

    def collect(self) -> Iterator[pytest.Item]:
        session = session_of(self.config)
        relative = self.path.resolve().relative_to(self.config.rootpath.resolve()).with_suffix("")
        module = ".".join(relative.parts)
        importlib.import_module(module)
        for case in REGISTRY.from_module(module):
            for spec, skip_reason in session.items_for(case):
                item = pytest.Function.from_parent(
                    self, name=spec.name, callobj=_item_function(session, spec)
                )
                for marker in case.markers:
                    item.add_marker(marker)
                if case.benchmark:
                    item.add_marker(pytest.mark.benchmark(**case.benchmark))
                if spec.device == "cuda":
                    item.add_marker("gpu")
                if skip_reason:
                    item.add_marker(pytest.mark.skip(reason=f"cuda: {skip_reason}"))
                session.item_cases[item.nodeid] = case
                item.stash[SPEC_KEY] = spec
                yield item


def _item_function(session: BenchSession, spec: ItemSpec) -> Any:
    def bench_item(benchmark: Any) -> None:
        session.run(spec, benchmark)

    bench_item.__doc__ = f"{spec.case.name}: {spec.variant} on {spec.device} at {spec.params}"
    return bench_item


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bench", "benchmark harness (cases in suites/)")
    group.addoption(
        "--bench-profile",
        default="quick",
        choices=PROFILES,
        help="grid profile: quick (CI sizes) or full (the source notes' sizes)",
    )
    group.addoption(
        "--bench-device",
        default="auto",
        choices=DEVICE_CHOICES,
        help="cpu, cuda (error without CUDA), auto (CUDA if usable, else CPU), all",
    )
    group.addoption(
        "--bench-time-limit",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop any item running longer than this (default: each case's limit)",
    )
    group.addoption(
        "--bench-threads",
        type=int,
        default=None,
        metavar="N",
        help="torch intra-op threads for the run (default: torch's, usually the core count)",
    )
    group.addoption(
        "--bench-traces",
        metavar="DIR",
        default=None,
        help="also record a torch.profiler trace of every item under DIR/<case>/<variant>/",
    )
    group.addoption(
        "--bench-no-probes", action="store_true", default=False, help="skip the memory/FLOP/GPU probe pass"
    )
    group.addoption(
        "--bench-paired-budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds of reference/variant paired rounds per variant after its timing (the gate's "
        "ratio rule uses them); default: --benchmark-max-time; 0 turns them off",
    )
    parser.addini("bench_suites", "folders whose modules declare benchmark cases", type="paths", default=[])


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    # Items that fail before timing never touch the fixture; pytest-benchmark would warn on each.
    config.addinivalue_line(
        "filterwarnings",
        "ignore:Benchmark fixture was not used at all:pytest_benchmark.logger.PytestBenchmarkWarning",
    )
    try:
        session = BenchSession(config)
    except BenchError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[_KEY] = session
    config.pluginmanager.register(session, "bench-session")
    # `pytest --benchmark-only` with no paths means "run the benchmarks": collect the suites.
    if config.getoption("benchmark_only") and config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(p) for p in session.suite_dirs()]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if session_of(parent.config).is_suite_file(file_path):
        return SuiteFile.from_parent(parent, path=file_path)
    return None


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
    session = session_of(config)
    if session.cases:
        output_json["bench"] = session.run_info()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """pytest-benchmark writes no file when nothing was timed; the failures must still be kept."""
    bench = session_of(session.config)
    bs = getattr(session.config, "_benchmarksession", None)
    if not bench.cases or bs is None or not bs.json or bs.benchmarks:
        return
    output = session.config.hook.pytest_benchmark_generate_json(
        config=session.config,
        benchmarks=[],
        include_data=True,
        machine_info=bs.get_machine_info(),
        commit_info=session.config.hook.pytest_benchmark_generate_commit_info(config=session.config),
    )
    output["bench"] = bench.run_info()
    Path(bs.json).write_text(json.dumps(output, indent=2, default=str))
