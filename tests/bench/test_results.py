"""Loading results: good files become records; bad files raise ResultsError saying what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.errors import ResultsError
from bench.results import frame, load_run, load_runs
from tests.bench.sample_run import sample_document


def test_loads_records_failures_and_frame(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(sample_document()))
    run = load_run(path)
    assert {r.variant for r in run.records} == {"reference", "fast", "small"}
    assert [f.variant for f in run.failures] == ["broken"]
    fast = next(r for r in run.records if r.variant == "fast")
    assert fast.timed and fast.median_s == pytest.approx(0.01) and len(fast.rounds_s) == 20
    df = frame([run])
    assert len(df) == 4
    assert set(df["error"].dropna()) == {"mismatch"}
    assert df["param.n"].tolist() == [8, 8, 8, 8]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "not a pytest-benchmark results file"),
        ('{"benchmarks": []}', "holds no benchmarks"),
        ('{"benchmarks": [], "bench": {"schema": 99}}', "has results schema 99"),
        (
            '{"benchmarks": [{"extra_info": {"bench": {"case": "a.b"}}}], "bench": {"schema": 1}}',
            "malformed benchmark record",
        ),
    ],
)
def test_bad_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ResultsError, match=message):
        load_run(path)


def test_missing_file_and_no_files(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="cannot read results file"):
        load_run(tmp_path / "absent.json")
    with pytest.raises(ResultsError, match="no results files"):
        load_runs([])
