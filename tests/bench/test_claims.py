"""Claim verdicts from known numbers: holds, understated, refuted, other hardware, not measurable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.claims import audit
from bench.results import load_run
from tests.bench.sample_run import sample_document


@pytest.fixture
def results(tmp_path: Path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(sample_document()))
    return {r.id: r for r in audit(load_run(path))}


def test_speedup_inside_the_range_holds(results) -> None:
    assert results["C1"].verdict == "holds"
    assert results["C1"].value == pytest.approx(4.0)
    low, high = results["C1"].interval
    assert low <= 4.0 <= high


def test_open_ended_claim_below_is_refuted(results) -> None:
    assert results["C2"].verdict == "refuted"
    assert results["C2"].expected == (10.0, float("inf"))


def test_better_than_claimed_is_understated(results) -> None:
    # Peak growth 8 MiB -> 2 MiB is a 75 % reduction; the note claimed 40-50 %.
    assert results["C3"].value == pytest.approx(0.75)
    assert results["C3"].verdict == "understated"


def test_absolute_figure_on_other_hardware_shows_the_value_and_where(results) -> None:
    c4 = results["C4"]
    assert c4.verdict == "other hardware"
    assert c4.value == pytest.approx(0.04)
    assert "no point at n64" in c4.where


def test_not_measurable_and_failed_variants(results) -> None:
    assert results["C5"].verdict == "not measurable here"
    assert results["C5"].note == "no Inception weights"
    assert results["C6"].verdict == "not measurable here"
    assert "off by one" in results["C6"].note


def test_flops_reduction_of_a_smaller_workload(results) -> None:
    assert results["C7"].value == pytest.approx(0.5)
    assert results["C7"].verdict == "holds"
