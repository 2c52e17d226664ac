"""The pytest plugin: turns registered cases into benchmark items (the work is in bench.session).

Inert unless the project declares suites (``[tool.bench] suites`` in pyproject.toml, or pytest's
``bench_suites`` ini option): it then imports nothing heavy, registers nothing and leaves the run's
arguments alone. torch and the rest of the harness load only once suites are declared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bench.errors import BenchError
from bench.options import RunOptions, add_pytest_options, declared_suites, profile_values
from bench.registry import load_suite

if TYPE_CHECKING:
    from bench.session import BenchSession, ItemSpec

MARKERS = {
    "gpu": "needs a CUDA device; skipped cleanly without one",
    "quantum": "runs quantum circuit simulation (PennyLane)",
    "slow": "takes long; deselect with -m 'not slow'",
}

_KEY = pytest.StashKey["BenchSession"]()
SPEC_KEY = pytest.StashKey["ItemSpec"]()  # each collected item's spec, for passes that run items themselves
_SUITES = pytest.StashKey[list[Path]]()


def session_of(config: pytest.Config) -> BenchSession:
    return config.stash[_KEY]


def suites_of(config: pytest.Config) -> list[Path]:
    """The suite folders this run collects from; empty where the project declares none."""
    return config.stash.get(_SUITES, [])


def is_suite_file(path: Path, suites: list[Path]) -> bool:
    """A module anywhere under a declared suite folder; names with a leading underscore are helpers."""
    if path.suffix != ".py" or path.name.startswith("_") or path.name == "conftest.py":
        return False
    resolved = path.resolve()
    return any(resolved.is_relative_to(folder) for folder in suites)


class SuiteFile(pytest.File):
    """A suite file: importing it registers cases; each becomes benchmark items."""

    def collect(self) -> Iterator[pytest.Item]:
        session = session_of(self.config)
        try:
            cases = load_suite(self.path, self.config.rootpath)
        except BenchError as exc:
            raise self.CollectError(str(exc)) from None
        for case in cases:
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
    def bench_item(benchmark: Any, request: pytest.FixtureRequest) -> None:
        session.run(spec, benchmark, request.node)

    bench_item.__doc__ = f"{spec.case.name}: {spec.variant} on {spec.device} at {spec.params}"
    return bench_item


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bench", "benchmark harness (cases in the project's declared suites)")
    add_pytest_options(group)
    parser.addini(
        "bench_suites",
        "folders of benchmark suite files (or declare them in pyproject.toml: [tool.bench] suites)",
        type="paths",
        default=[],
    )


def pytest_configure(config: pytest.Config) -> None:
    try:
        suites = declared_suites(config.rootpath, config.getini("bench_suites"))
        if not suites:
            return  # no suites declared: this plugin does nothing for this project
        missing = [str(p) for p in suites if not p.is_dir()]
        if missing:
            raise BenchError(f"declared suite folder(s) not found: {', '.join(missing)}")
        options = RunOptions.from_config(config)
        # The profile's timing, unless the user gave pytest-benchmark's own flags (which run
        # before pytest-benchmark reads them: its configure hook runs last).
        for dest, value in profile_values(config, options).items():
            setattr(config.option, dest, value)
        from bench.session import BenchSession

        session = BenchSession(config, options)
    except BenchError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[_SUITES] = suites
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    # Items that fail before timing never touch the fixture; pytest-benchmark would warn on each.
    config.addinivalue_line(
        "filterwarnings",
        "ignore:Benchmark fixture was not used at all:pytest_benchmark.logger.PytestBenchmarkWarning",
    )
    config.stash[_KEY] = session
    config.pluginmanager.register(session, "bench-session")
    # `pytest --benchmark-only` with no paths means "run the benchmarks": collect the suites.
    if config.getoption("benchmark_only") and config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(p) for p in suites]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    suites = suites_of(parent.config)
    if suites and is_suite_file(file_path, suites):
        return SuiteFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The profile's marker expression (quick: `not slow`) on the harness's items, unless -m was given."""
    if _KEY not in config.stash:
        return
    session = session_of(config)
    expression = session.options.marker_expression
    if session.options.markers is not None or not expression:
        return
    from _pytest.mark.expression import Expression

    compiled = Expression.compile(expression)
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        keep = SPEC_KEY not in item.stash or compiled.evaluate(_has_marker(item))
        (kept if keep else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _has_marker(item: pytest.Item) -> Any:
    names = {marker.name for marker in item.iter_markers()}

    def has(name: str, /, **_: Any) -> bool:
        return name in names

    return has


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
    if _KEY in config.stash and session_of(config).cases:
        output_json["bench"] = session_of(config).run_info()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """pytest-benchmark writes no file when nothing was timed; the failures must still be kept."""
    if _KEY not in session.config.stash:
        return
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
    from bench.session import results_path

    results_path(bs.json).write_text(json.dumps(output, indent=2, default=str))
