"""The run's journal: every measured group appended to disk as it completes, for --resume.

A JSON-lines file next to the run's JSON (``RESULTS.json`` → ``RESULTS.journal.jsonl``). Its first
line says how the run was started (pytest's arguments, the root folder); each further line holds
one group's outcomes (bench.trials.Outcome: the check's record, the calls per round, every
trial's rounds, or the failure), flushed and synced before the run goes on. A group whose first
trials were taken early in the run (bench.session.BenchSession.check_ahead) is written then too,
marked ``partial``, and again, whole, at its turn. A parent killed mid-run loses at most the
group it was measuring. Resuming runs the same selection again and takes every journaled group
from the file instead of measuring it, and a partial group's check and first trials instead of
taking them again: one complete JSON, nothing measured twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.errors import ResultsError
from bench.trials import Outcome

FORMAT = 1
Group = tuple[str, str, str]


def journal_path(results: Path) -> Path:
    return results.with_name(results.stem + ".journal.jsonl")


class Journal:
    """An append-only journal being written."""

    def __init__(self, path: Path, args: Sequence[str], rootdir: Path, append: bool = False) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a" if append else "w", encoding="utf-8")
        if not append:
            self._line({"journal": FORMAT, "args": list(args), "rootdir": str(rootdir)})

    def _line(self, doc: dict[str, Any]) -> None:
        self._file.write(json.dumps(doc, default=str) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def write(self, group: Group, outcomes: dict[str, Outcome], partial: bool = False) -> None:
        """A group's outcomes; ``partial``: its check and first trials, the rest still to come."""
        found = {name: outcome.as_dict() for name, outcome in outcomes.items()}
        doc: dict[str, Any] = {"group": list(group), "outcomes": found}
        if partial:
            doc["partial"] = True
        self._line(doc)

    def close(self) -> None:
        self._file.close()


Groups = dict[Group, dict[str, Outcome]]


def read_journal(path: Path) -> tuple[dict[str, Any], Groups, Groups]:
    """The journal's header, its groups measured whole, and its partial ones (only their check
    and first trials, and not whole later), in one read. A last line cut short by a kill is
    ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ResultsError(f"cannot read the journal {path}: {exc.strerror or exc}") from None
    if not lines:
        raise ResultsError(f"{path} is empty: not a journal of a run")
    try:
        header = json.loads(lines[0])
    except json.JSONDecodeError:
        header = {}
    if header.get("journal") != FORMAT:
        raise ResultsError(f"{path} is not a run's journal (its first line is no journal header)")
    groups: Groups = {}
    partials: Groups = {}
    for number, line in enumerate(lines[1:], start=2):
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break  # the line being written when the run was killed
            raise ResultsError(f"{path}, line {number}: not JSON") from None
        case, point, device = doc["group"]
        found = {n: Outcome.from_dict(o) for n, o in doc["outcomes"].items()}
        (partials if doc.get("partial") else groups)[(case, point, device)] = found
    return header, groups, {g: o for g, o in partials.items() if g not in groups}
