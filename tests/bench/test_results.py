"""Loading results: good files become records; bad files raise ResultsError saying what is wrong."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest

import bench
from bench.errors import ResultsError
from bench.results import Record, frame, load_run, load_runs, pool_runs
from tests.bench.sample_run import sample_document

# A variant's record as the writer wrote it before Record.to_json existed (schema 1): "paired" with
# its iterations, a trace folder, why FLOPs were not counted, no prepare_s.
OLD_RECORD: dict[str, Any] = {
    "schema": 1,
    "case": "toy.square",
    "family": "toy",
    "variant": "fast",
    "role": "variant",
    "params": {"n": 8},
    "overrides": {},
    "device": "cpu",
    "dtype": "float32",
    "profile": "quick",
    "mode": "forward",
    "exact": True,
    "note": "",
    "work": None,
    "correctness": {"exact": True, "passed": True, "max_abs_err": 0.0, "max_rel_err": 0.0},
    "memory": None,
    "gpu": None,
    "flops": None,
    "parameters": 12,
    "extra": {"loss": 0.5},
    "warmup_calls": 1,
    "first_call_s": 0.25,
    "error": None,
    "flops_error": "RuntimeError: no",
    "paired": {"speedup": 2.0, "ratios": [1.0, 2.0, 3.0], "reference_iterations": 4, "variant_iterations": 8},
    "trace": "traces/toy.square/fast",
}


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


def test_records_read_back_what_the_writer_wrote() -> None:
    doc = sample_document()
    for entry in doc["benchmarks"]:
        bench_json = entry["extra_info"]["bench"]
        record = Record.from_json(bench_json, entry["stats"], "run.json")
        assert record.to_json() == bench_json
        assert record.median_s == entry["stats"]["median"]
        assert record.rounds_s == tuple(entry["stats"]["data"])
    for failure in doc["bench"]["failures"]:
        record = Record.from_json(failure)
        assert record.to_json() == failure
        assert record.item == "toy.square[n8-cpu-broken]" and not record.timed


def test_a_record_written_before_the_record_type_loads_with_every_field() -> None:
    record = Record.from_json(OLD_RECORD, None, "old.json")
    assert record.paired_ratios == (1.0, 2.0, 3.0) and record.paired_iterations == (4, 8)
    assert record.trace == "traces/toy.square/fast" and record.flops_error == "RuntimeError: no"
    assert record.first_call_s == 0.25 and record.prepare_s is None and record.parameters == 12
    assert record.profile == "quick" and record.warmup_calls == 1 and record.extra == {"loss": 0.5}
    again = record.to_json()
    # The same document, with the key the writer has added since (prepare_s) written out.
    assert again == {**OLD_RECORD, "prepare_s": None, "speedup": None, "trials": []}


def test_paired_speedup_is_the_median_of_the_ratios() -> None:
    record = Record.from_json({**OLD_RECORD, "paired": {"ratios": [1.0, 4.0]}})
    assert record.paired_iterations is None
    assert record.to_json()["paired"] == {"speedup": statistics.median([1.0, 4.0]), "ratios": [1.0, 4.0]}
    unpaired = Record.from_json({**OLD_RECORD, "paired": None})
    assert unpaired.paired_ratios == () and "paired" not in unpaired.to_json()


def test_a_record_of_an_unknown_schema_is_refused(tmp_path: Path) -> None:
    doc = sample_document()
    doc["benchmarks"][0]["extra_info"]["bench"]["schema"] = 2
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ResultsError, match=r"run\.json: a benchmark record has schema 2"):
        load_run(path)


def test_load_and_frame(tmp_path: Path) -> None:
    doc = sample_document()
    doc["benchmarks"][1]["extra_info"]["bench"]["extra"] = {"quality": 0.9}
    doc["benchmarks"][1]["extra_info"]["bench"]["counts"] = {"instructions_per_call": 1000.0}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    run = bench.load(path)
    assert run == load_run(path)
    df = run.frame()
    assert df["variant"].tolist() == ["reference", "fast", "small", "broken"]
    fast = df.set_index("variant").loc["fast"]
    assert fast["median_s"] == pytest.approx(0.01) and fast["rounds"] == 20
    assert fast["extra.quality"] == 0.9 and fast["instructions_per_call"] == 1000.0
    assert fast["work_unit"] == "rows" and fast["work_per_call"] == 8.0 and fast["dtype"] == "float64"
    assert df.set_index("variant").loc["broken", "error"] == "mismatch"
    # frame() of several runs: one row per record of each, in order.
    both = frame([run, run])
    assert len(both) == 8 and both.iloc[4:].reset_index(drop=True).equals(df)
    pooled = pool_runs([run, run])
    assert pooled.frame()["rounds"].tolist() == [40, 40, 40, 0]


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
