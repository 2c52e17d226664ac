"""History: runs ordered by time, trends per implementation, step changes flagged only when real."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main
from bench.errors import ResultsError
from bench.history import SPEEDUPS, load_history
from bench.results import Run
from bench.stats import trial_speedup
from tests.bench.sample_run import document_copy, with_trials


def _run(folder: Path, name: str, when: str, fast_factor: float = 1.0) -> None:
    doc = document_copy()
    doc["datetime"] = when
    for entry in doc["benchmarks"]:
        if entry["extra_info"]["bench"]["variant"] == "fast":
            entry["stats"]["data"] = [x * fast_factor for x in entry["stats"]["data"]]
            entry["stats"]["median"] *= fast_factor
    (folder / name).write_text(json.dumps(doc))


def test_steps_are_flagged_where_the_median_moves(tmp_path: Path) -> None:
    # File names sort differently from the run times: the history must follow the times.
    _run(tmp_path, "c.json", "2026-11-01T00:00:00")
    _run(tmp_path, "a.json", "2026-11-02T00:00:00", 1.01)
    _run(tmp_path, "b.json", "2026-11-03T00:00:00", 1.5)
    (tmp_path / "notes.json").write_text("{}")
    history = load_history(tmp_path)
    assert [Path(r.path).name for r in history.runs] == ["c.json", "a.json", "b.json"]
    fast = next(s for s in history.series if s.variant == "fast")
    assert [p.step for p in fast.points] == ["", "", "slower"]
    assert fast.points[2].speedup == pytest.approx(4 / 1.5)
    reference = next(s for s in history.series if s.variant == "reference")
    assert not any(p.step for p in reference.points)
    assert len(history.skipped) == 1


def test_history_command_writes_table_and_plot(tmp_path: Path) -> None:
    for i, factor in enumerate((1.0, 1.0, 0.5)):
        _run(tmp_path, f"run{i}.json", f"2026-11-0{i + 1}T00:00:00", factor)
    assert main(["history", str(tmp_path)]) == 0
    text = (tmp_path / "history.md").read_text()
    assert "## Step changes" in text and "faster" in text
    assert (tmp_path / "history-figures" / "toy.square-history.png").exists()


def test_empty_folder_is_unusable(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no harness results files"):
        load_history(tmp_path)
    assert main(["history", str(tmp_path / "missing")]) == 2


def _trial_run(folder: Path, name: str, when: str, trial_speedups: list[float]) -> None:
    doc = with_trials(document_copy(), "fast", trial_speedups)
    doc["datetime"] = when
    (folder / name).write_text(json.dumps(doc))


def test_a_step_needs_the_trial_intervals_to_separate(tmp_path: Path) -> None:
    # Runs 1 and 2 differ by 15 % in their estimates, but their trials spread widely: no step.
    # Run 3 is 2x slower with tight trials: a step.
    _trial_run(tmp_path, "1.json", "2026-11-01T00:00:00", [4.0, 3.0, 5.0, 4.5, 3.5])
    _trial_run(tmp_path, "2.json", "2026-11-02T00:00:00", [3.4, 2.6, 4.2, 3.9, 3.0])
    _trial_run(tmp_path, "3.json", "2026-11-03T00:00:00", [1.6, 1.65, 1.7, 1.62, 1.68])
    history = load_history(tmp_path)
    fast = next(s for s in history.series if s.variant == "fast")
    assert [p.step for p in fast.points] == ["", "", "slower"]


def _references_run(
    folder: Path, name: str, when: str, seconds: list[float], jitter: list[float] | None = None
) -> None:
    """A run of grid points' references only, each measured in three tight trials; or, with
    ``jitter``, in eight trials whose medians spread around point i's time by ``jitter[i]`` (log)."""
    doc = document_copy()
    template = next(e for e in doc["benchmarks"] if e["extra_info"]["bench"]["variant"] == "reference")
    entries = []
    for n, base in zip(range(8, 8 + len(seconds)), seconds, strict=True):
        entry = json.loads(json.dumps(template))
        bench = entry["extra_info"]["bench"]
        bench["params"] = {"n": n}
        entry["name"] = f"toy.square[n{n}-cpu-reference]"
        entry["fullname"] = f"suites/toy.py::{entry['name']}"
        if jitter is None:
            trials = [[base * (1 + 0.002 * (i + j % 3)) for j in range(20)] for i in range(3)]
        else:
            offsets = [-1.5, -1.0, -0.5, 0.0, 0.0, 0.5, 1.0, 1.5]
            spread = jitter[n - 8]
            trials = [[base * math.exp(spread * z) * (1 + 0.001 * (j % 3)) for j in range(10)]
                      for z in offsets]
        bench["trials"] = [{"trial": i, "rounds_s": t} for i, t in enumerate(trials)]
        rounds = sorted(x for t in trials for x in t)
        entry["stats"]["data"] = rounds
        entry["stats"]["median"] = rounds[len(rounds) // 2]
        entries.append(entry)
    doc["benchmarks"] = entries
    doc["datetime"] = when
    (folder / name).write_text(json.dumps(doc))


def test_absolute_times_that_move_with_every_reference_are_not_steps(tmp_path: Path) -> None:
    # Run 2: every reference 30 % slower, with trial intervals that separate (the machine moved);
    # run 3: one reference 3x slower, the others back to run 1's times: that one is a step.
    base = [0.001, 0.002, 0.003, 0.004, 0.005, 0.006]
    _references_run(tmp_path, "1.json", "2026-11-01T00:00:00", base)
    _references_run(tmp_path, "2.json", "2026-11-02T00:00:00", [1.3 * t for t in base])
    _references_run(tmp_path, "3.json", "2026-11-03T00:00:00", [3 * 1.3 * base[0], *base[1:]])
    history = load_history(tmp_path)
    steps = {s.point: [p.step for p in s.points] for s in history.series}
    assert steps["n8"] == ["", "", "slower"]
    assert all(steps[f"n{n}"] == ["", "", ""] for n in range(9, 14))
    first, second = history.drifts
    assert (first.run, first.references) == (1, 6)
    assert first.median == pytest.approx(math.log(1.3), abs=0.01) and first.spread < 0.01
    assert second.median == pytest.approx(math.log(1 / 1.3), abs=0.01)
    assert main(["history", str(tmp_path)]) == 0
    text = (tmp_path / "history.md").read_text()
    assert "## How times and speedups moved between runs" in text and "+30.0 %" in text


def _speedups_run(folder: Path, name: str, when: str, speedups: list[float]) -> None:
    """A run of grid points with a reference and its variant `fast` each, in three tight trials,
    the variant's speedup at point i ``speedups[i]``."""
    doc = with_trials(document_copy(), "fast", [2.0, 2.0, 2.0])
    templates = [e for e in doc["benchmarks"] if e["extra_info"]["bench"]["variant"] in ("reference", "fast")]
    entries = []
    for n, ratio in zip(range(8, 8 + len(speedups)), speedups, strict=True):
        timed: dict[str, list[list[float]]] = {}
        for template in templates:
            entry = json.loads(json.dumps(template))
            bench = entry["extra_info"]["bench"]
            variant = bench["variant"]
            bench["params"] = {"n": n}
            entry["name"] = f"toy.square[n{n}-cpu-{variant}]"
            entry["fullname"] = f"suites/toy.py::{entry['name']}"
            per_call = 0.004 if variant == "reference" else 0.004 / ratio
            trials = [[per_call * (1 + 0.002 * (i + j % 3)) for j in range(20)] for i in range(3)]
            timed[variant] = trials
            bench["trials"] = [{"trial": i, "rounds_s": t} for i, t in enumerate(trials)]
            rounds = sorted(x for t in trials for x in t)
            entry["stats"]["data"] = rounds
            entry["stats"]["median"] = rounds[len(rounds) // 2]
            entries.append(entry)
        found = trial_speedup(timed["reference"], timed["fast"])
        assert found is not None
        entries[-1]["extra_info"]["bench"]["speedup"] = found.as_dict()
    doc["benchmarks"] = entries
    doc["datetime"] = when
    (folder / name).write_text(json.dumps(doc))


def test_speedups_that_move_as_much_as_every_speedup_are_not_steps(tmp_path: Path) -> None:
    # Between runs 1 and 2 the speedups move by -6 % to +6 % (tight trial intervals that separate):
    # a 12 % move among them is within three robust SDs of that spread, not a step; a 2x move is.
    base = [2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    moves = [1.12, 0.94, 1.06, 0.96, 1.04, 0.5, 1.0, 1.02]
    _speedups_run(tmp_path, "1.json", "2026-11-01T00:00:00", base)
    moved_base = [b * m for b, m in zip(base, moves, strict=True)]
    _speedups_run(tmp_path, "2.json", "2026-11-02T00:00:00", moved_base)
    history = load_history(tmp_path)
    steps = {s.point: s.points[1].step for s in history.series if s.variant == "fast"}
    assert steps == {f"n{n}": "slower" if n == 13 else "" for n in range(8, 16)}
    moved = next(d for d in history.drifts if d.kind == SPEEDUPS)
    assert moved.references == 8 and 0.03 < moved.spread < 0.08
    # Without the drift rule the 12 % move would be a step: its intervals separate.
    from bench.history import _raw_step

    first, second = ({r.key: r for r in run.records} for run in history.runs)
    key = ("toy.square", "n8", "cpu", "fast")
    ref = ("toy.square", "n8", "cpu", "reference")
    assert _raw_step(first[key], second[key], first[ref], second[ref]) == "faster"


@pytest.mark.parametrize(("jitter", "step"), [(0.002, "faster"), (0.06, "")])
def test_a_change_must_stand_out_from_the_drift_by_its_own_precision_too(
    tmp_path: Path, jitter: float, step: str
) -> None:
    # Seven references move by -3 % to +3 % between the runs (a robust SD of about 3 %); the eighth
    # gets 12 % faster, its trial intervals separating. With tight trials that is 3.7 spreads from
    # the median move: a step. With trials spread by 6 % (a standard error of 2 % per run) the move
    # is within three of the drift's spread and its own errors added in quadrature: not a step.
    times = [0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.010, 0.011]
    moves = [1.02, 0.98, 1.01, 0.99, 1.03, 0.97, 1.0, 1 / 1.12]
    loose = [0.002] * 7 + [jitter]
    _references_run(tmp_path, "1.json", "2026-11-01T00:00:00", times, loose)
    moved = [t * m for t, m in zip(times, moves, strict=True)]
    _references_run(tmp_path, "2.json", "2026-11-02T00:00:00", moved, loose)
    history = load_history(tmp_path)
    steps = {s.point: s.points[1].step for s in history.series}
    assert steps == {f"n{n}": step if n == 15 else "" for n in range(8, 16)}
    # Either way the move passes 10 % and its intervals separate: only the drift rule tells them apart.
    from bench.history import _raw_step

    first, second = ({r.key: r for r in run.records} for run in history.runs)
    key = ("toy.square", "n15", "cpu", "reference")
    assert _raw_step(first[key], second[key], None, None) == "faster"


def test_steps_between_runs_of_the_same_code_are_told_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Runs 1 and 2: one clean commit, the same libraries; run 2's variant 2x slower (a step of the
    # machine). Run 3: another commit, the variant 2x slower again (a step the code may have made).
    # Run 4: that commit with uncommitted changes, 2x faster: not the same code either.
    for name, when, speedups, commit, dirty in (
        ("1.json", "2026-11-01T00:00:00", [4.0, 4.1, 3.9], "aaaa", False),
        ("2.json", "2026-11-02T00:00:00", [2.0, 2.05, 1.95], "aaaa", False),
        ("3.json", "2026-11-03T00:00:00", [1.0, 1.02, 0.98], "bbbb", False),
        ("4.json", "2026-11-04T00:00:00", [2.0, 2.05, 1.95], "bbbb", True),
    ):
        doc = with_trials(document_copy(), "fast", speedups)
        doc["datetime"] = when
        doc["bench"]["environment"]["git"] = {"id": commit, "dirty": dirty}
        (tmp_path / name).write_text(json.dumps(doc))
    history = load_history(tmp_path)
    fast = next(s for s in history.series if s.variant == "fast")
    assert [p.step for p in fast.points] == ["", "slower", "slower", "faster"]
    assert [p.previous for p in fast.points] == [None, 0, 1, 2]
    assert [p.run for _, p in history.same_code_steps()] == [1]
    assert len(history.steps()) == 3
    assert main(["history", str(tmp_path)]) == 0
    assert "3 step changes (1 between runs of the same code" in capsys.readouterr().err
    text = (tmp_path / "history.md").read_text()
    assert "1 of these 3 are between two runs of the same code" in text
    rows = [line for line in text.splitlines() if line.startswith("| `toy.square`")]
    assert [row.rstrip(" |").rsplit("| ", 1)[1] for row in rows] == ["same", "changed", "changed"]


def test_runs_of_one_commit_with_other_libraries_are_not_the_same_code(tmp_path: Path) -> None:
    from bench.history import same_code
    from bench.results import load_run

    def run(name: str, change: Callable[[dict[str, Any]], None]) -> Run:
        doc = document_copy()
        change(doc["bench"]["environment"])
        (tmp_path / name).write_text(json.dumps(doc))
        return load_run(tmp_path / name)

    first = run("a.json", lambda env: None)
    assert same_code(first, run("b.json", lambda env: None))
    assert not same_code(first, run("c.json", lambda env: env.update(torch="9.9.9")))
    moved = run("d.json", lambda env: env["git"].update(at_end={"id": "ffff", "dirty": False}))
    assert not same_code(first, moved)  # committed while the run went on
    assert not same_code(first, run("e.json", lambda env: env.update(git={})))  # no commit known
