"""Instruction counts: the callgrind file format, the pinned environment, merging, and a real count."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import Future
from pathlib import Path

import pytest

from bench.cli import main
from bench.counts import (
    PINNED_ENV,
    CountsUnavailable,
    ItemCount,
    counting_env,
    merge_into,
    parse_callgrind,
    require_valgrind,
)
from tests.bench.sample_run import document_copy

CALLGRIND = """# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 4652
cmd:  python -m bench.counts request.json
part: 1

positions: line
events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw

fl=(1) ???
fn=(1) main
0 70 20 10 1 2 3

summary: 79427 21000 9000 12 40 30 5
totals: 79427 21000 9000 12 40 30 5
"""


def test_parse_callgrind_reads_every_event(tmp_path: Path) -> None:
    path = tmp_path / "cg.1.1"
    path.write_text(CALLGRIND)
    events = parse_callgrind(path)
    assert events["Ir"] == 79427 and events["D1mr"] == 40
    assert events["DLmw"] == 0  # trailing zero events may be left out of the totals line
    path.write_text(
        CALLGRIND.replace("events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw", "events: Ir").replace(
            "79427 21000 9000 12 40 30 5", "79427"
        )
    )
    assert parse_callgrind(path) == {"Ir": 79427}
    path.write_text("not a callgrind file\n")
    with pytest.raises(Exception, match="not a callgrind output file"):
        parse_callgrind(path)


def test_counting_env_pins_threads_and_keeps_a_chosen_code_path() -> None:
    env = counting_env({"OMP_NUM_THREADS": "8", "PYTHONHASHSEED": "random", "HOME": "/root"})
    assert env["OMP_NUM_THREADS"] == "1" and env["PYTHONHASHSEED"] == "0" and env["HOME"] == "/root"
    assert env["ATEN_CPU_CAPABILITY"] == PINNED_ENV["ATEN_CPU_CAPABILITY"]
    # A code path the user chose is kept (and recorded); threads and the hash seed are not theirs.
    chosen = counting_env({"ATEN_CPU_CAPABILITY": "default"})
    assert chosen["ATEN_CPU_CAPABILITY"] == "default"
    assert counting_env({}, {"ATEN_CPU_CAPABILITY": "avx512"})["ATEN_CPU_CAPABILITY"] == "avx512"


def test_missing_valgrind_says_how_to_install_it(tmp_path: Path, monkeypatch, capsys) -> None:
    with pytest.raises(CountsUnavailable, match="apt-get install -y valgrind"):
        require_valgrind(which=lambda name: None)
    monkeypatch.setenv("PATH", str(tmp_path))  # no valgrind on this PATH
    assert main(["run", "--counts", "-k", "nothing"]) == 2
    assert "apt-get install -y valgrind" in " ".join(capsys.readouterr().err.split())


def test_merge_writes_counts_into_records_and_the_run(tmp_path: Path) -> None:
    doc = document_copy()
    entries = doc["benchmarks"]
    cuda = json.loads(json.dumps(entries[0]))
    cuda["fullname"] = "suites/toy.py::cuda-item"
    cuda["extra_info"]["bench"]["device"] = "cuda"
    entries.append(cuda)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    counts = [
        ItemCount(entries[0]["fullname"], 1000.0, 1, None, {"Ir": 1000.0, "D1mr": 3.0}),
        ItemCount(entries[1]["fullname"], None, 1, "past the per-item limit"),
    ]
    context = {"tool": "callgrind 3.19.0", "code_path": {"cpu_capability": "AVX2"}, "seconds": 12.0}
    assert merge_into(path, counts, context) == 1
    merged = json.loads(path.read_text())
    first, second = (e["extra_info"]["bench"]["counts"] for e in merged["benchmarks"][:2])
    assert first["instructions_per_call"] == 1000.0 and first["cache"] == {"D1mr": 3.0}
    assert first["code_path"] == {"cpu_capability": "AVX2"} and first["tool"] == "callgrind 3.19.0"
    assert second["instructions_per_call"] is None and second["reason"] == "past the per-item limit"
    assert "GPU" in merged["benchmarks"][-1]["extra_info"]["bench"]["counts"]["reason"]
    assert merged["bench"]["counts"]["counted"] == 1 and merged["bench"]["counts"]["requested"] == 2


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_counts_repeat_and_see_more_work(early_counts: list[Future[tuple[list[ItemCount], dict]]]) -> None:
    """Under callgrind for real, twice. Two counting processes agree within the gate's default
    threshold (2 %), and so does the same item counted twice in one process; a larger matrix costs more
    instructions; an unknown item and one whose call forks get a reason, not a failed pass. About
    50 s. Measured on these 220,000-instruction calls (mostly Python and dispatch): up to 0.62 %
    apart between the two passes of a CI run (0.5 % was this test's bound then), 0.49 % over six
    passes here. Every call is shifted alike (counting in five blocks and taking the median block
    moved as much, up to 0.67 % in eleven passes from two project paths): the counting process's
    heap after collection depends a little on what its collection did. A CI run on 2026-12-03 had
    them 1.08 % apart, past the 1 % that was then the default threshold (and this test's bound)."""
    from bench.gate import Rules

    threshold = Rules().instruction_threshold
    passes = [future.result(timeout=600) for future in early_counts]
    (first, context), (second, _) = passes
    assert [c.reason for c in first[:3]] == [None, None, None]
    values = [c.instructions_per_call or 0.0 for c in first[:3]]
    again = [c.instructions_per_call or 0.0 for c in second[:3]]
    assert all(v > 0 for v in values)
    assert values == pytest.approx(again, rel=threshold)
    assert values[0] == pytest.approx(values[1], rel=threshold)
    assert values[2] > 1.01 * values[0]
    assert first[3].instructions_per_call is None and "not collected" in (first[3].reason or "")
    assert first[4].instructions_per_call is None and "starts other processes" in (first[4].reason or "")
    assert context["code_path"]["cpu_capability"] and context["tool"].startswith("callgrind")
