"""The measurement tools under tools/ that the README's figures come from."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

from bench.claims import audit
from bench.results import load_run
from tests.bench.sample_run import document_copy, with_trials

ROOT = Path(__file__).resolve().parent.parent


def _tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "verdict_stability.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def test_verdict_stability_lists_the_claims_that_changed_and_the_share_two_runs_would_have(
    tmp_path: Path,
) -> None:
    # C1 claims 3-5x: it holds at 4x, is understated at 6x (the whole interval above 5), holds again.
    paths = []
    for i, speedup in enumerate((4.0, 6.0, 4.0)):
        doc = with_trials(document_copy(), "fast", [speedup * 0.99, speedup, speedup * 1.01])
        paths.append(tmp_path / f"run{i}.json")
        paths[-1].write_text(json.dumps(doc))
    verdicts = [{c.id: c.verdict for c in audit(load_run(p))} for p in paths]
    assert [v["C1"] for v in verdicts] == ["holds", "understated", "holds"]
    changed = sorted(k for k in verdicts[0] if len({v[k] for v in verdicts}) > 1)
    done = _tool(*map(str, paths))
    assert done.returncode == 0, done.stderr
    headers = [line for line in done.stdout.splitlines() if not line.startswith(" ") and line.endswith(":")]
    listed = [line.split(" ")[0] for line in headers]
    assert sorted(listed) == changed and "C1" in listed
    n = len(verdicts[0])
    same = [sum(a[k] == b[k] for k in a) for a, b in itertools.pairwise(verdicts)]
    assert f"{same[0]} ({100 * same[0] / n:.1f} %), {same[1]} ({100 * same[1] / n:.1f} %)" in done.stdout
    # Over the three runs C1 agrees between two of them with probability (2/3)^2 + (1/3)^2 = 5/9.
    expected = sum(
        sum((sum(v[k] == verdict for v in verdicts) / 3) ** 2 for verdict in {v[k] for v in verdicts})
        for k in verdicts[0]
    )
    assert f"expected between two of these runs: {expected:.1f} of {n}" in done.stdout
    assert expected < n


def test_verdict_stability_needs_two_runs(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(document_copy()))
    done = _tool(str(path))
    assert done.returncode == 2 and "at least two results files" in done.stderr
