"""History: runs ordered by time, trends per implementation, step changes flagged only when real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import ResultsError
from bench.history import load_history
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
