"""Driving pytest for `bench list` and `bench run`: the arguments from the run options, progress, outcome."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.options import RunOptions
from bench.plugin import session_of, suites_of


@dataclass
class Outcome:
    """What a pytest pass over the suites did, as the CLI needs it."""

    exit_code: int = 0
    items: list[Any] = field(default_factory=list)
    passed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: int = 0
    collection_errors: list[str] = field(default_factory=list)
    interrupted: bool = False
    suites: list[Path] = field(default_factory=list)  # the declared suite folders; empty: none declared


class _Reporter:
    """A pytest plugin object: progress bar, one line per failure, and the outcome."""

    def __init__(self, console: Console | None, outcome: Outcome) -> None:
        self.console = console
        self.outcome = outcome
        self.progress: Progress | None = None
        self.task: Any = None
        self.total = 0
        self.done = 0
        self.started = time.perf_counter()
        self.outcomes: dict[str, str] = {}
        self.config: pytest.Config | None = None

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.outcome.collection_errors.append(f"{report.nodeid}: {report.longreprtext.strip()}")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.outcome.items = list(session.items)
        self.outcome.suites = suites_of(session.config)
        self.total = len(session.items)
        # A live bar only on a terminal; logs (CI) get one line per finished item instead.
        if (
            self.console is not None
            and self.console.is_terminal
            and session.items
            and not session.config.option.collectonly
        ):
            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[item]}"),
                console=self.console,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("benchmarks", total=len(session.items), item="")
        if self.console is not None and not session.config.option.collectonly:
            self.config = session.config
            try:
                session_of(session.config).on_check = self.checked
            except KeyError:  # the harness's plugin is not active in this pass
                pass

    def checked(self, done: int, total: int, group: str, stage: str = "checks") -> None:
        """A group checked ahead of the trials, or its first trials taken (``stage``: "checks" or
        "first trials"; bench.session.BenchSession.check_ahead), which happens inside an item's
        call: pytest's output capture is suspended to say so."""
        capture = self.config.pluginmanager.getplugin("capturemanager") if self.config else None
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            if self.progress is not None:
                doing = "checking" if stage == "checks" else "first trials"
                self.progress.update(self.task, item=f"{doing} {done}/{total}: {escape(group)}")
                self.progress.refresh()  # now, while the capture is off (the bar's thread draws under it)
            elif self.console is not None:
                elapsed = time.perf_counter() - self.started
                # escaped: rich would take "[checks ...]" for a style tag
                did = "checked" if stage == "checks" else "timed the first trials of"
                line = escape(f"[{stage} {done}/{total} {elapsed:6.0f} s] {did} {group}")
                self.console.print(line, highlight=False)

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        if self.progress is not None:
            self.progress.update(self.task, item=escape(nodeid.rsplit("::", 1)[-1]))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        name = report.nodeid.rsplit("::", 1)[-1]
        if report.failed:
            message = report.longreprtext.strip().splitlines()[-1] if report.longreprtext else "failed"
            self.outcome.failed.append((name, message))
            if self.console is not None:
                self.console.print(f"[red]✗[/] {escape(message)}", highlight=False)
        elif report.skipped and report.when in ("setup", "call"):
            self.outcome.skipped += 1
        elif report.passed and report.when == "call":
            self.outcome.passed += 1
        if report.outcome != "passed" or report.when == "call":
            self.outcomes.setdefault(report.nodeid, report.outcome)
        if report.when == "teardown":
            self.done += 1
            if self.progress is not None:
                self.progress.advance(self.task)
            elif self.console is not None and self.total:
                outcome = self.outcomes.pop(report.nodeid, report.outcome)
                elapsed = time.perf_counter() - self.started
                self.console.print(
                    f"[{self.done}/{self.total} {elapsed:6.0f} s] {outcome:7} {escape(name)}", highlight=False
                )

    def pytest_keyboard_interrupt(self, excinfo: Any) -> None:
        self.outcome.interrupted = True

    def pytest_sessionfinish(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def pytest_args(
    options: RunOptions | None = None,
    *,
    profile: str = "quick",
    device: str = "auto",
    select: str | None = None,
    markers: str | None = None,
    json_path: Path | None = None,
    collect_only: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """pytest's arguments for a run with these options (or the keyword ones, for older callers).

    The profile's timing and marker default are not spelled out here: the plugin applies them, so
    this run and `pytest --benchmark-only --bench-profile P` select and time the same items.
    """
    if options is None:
        options = RunOptions(profile=profile, device=device, keyword=select, markers=markers)
    args = [
        "--benchmark-only",
        "--benchmark-quiet",
        "-p",
        "no:terminal",
        "-p",
        "no:cacheprovider",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        *options.pytest_args(),
    ]
    if collect_only:
        args.append("--collect-only")
    if json_path is not None:
        args.append(f"--benchmark-json={json_path}")
    return args + list(extra)


def run_pytest(args: list[str], console: Console | None) -> Outcome:
    outcome = Outcome()
    reporter = _Reporter(console, outcome)
    try:
        outcome.exit_code = int(pytest.main(args, plugins=[reporter]))
    finally:
        reporter.pytest_sessionfinish()
    return outcome
