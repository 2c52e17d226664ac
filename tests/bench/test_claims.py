"""Claim verdicts from known numbers: holds, understated, refuted, inconclusive, not run, ..."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest

from bench.case import Claim
from bench.claims import (
    HOLDS,
    INCONCLUSIVE,
    REFUTED,
    UNDERSTATED,
    audit,
    claims_at,
    judge,
    memory_change,
    passes_to_decide,
    run_command,
    trials_to_decide,
)
from bench.results import load_run
from bench.stats import Speedup
from tests.bench.conftest import clock_run
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


def test_holds_only_with_the_estimate_inside_the_range() -> None:
    # The S6: -0.5 % [-19.0, 16.6] against a claimed 5-15 % time reduction used to "hold"
    # because the wide interval overlapped the range.
    verdict, note = judge("time_reduction", (0.05, 0.15), -0.005, (-0.190, 0.166))
    assert verdict == INCONCLUSIVE
    assert "[-19 %, 16.6 %]" in note and "edge 5 %" in note
    assert "at most 5.5 points (now 17)" in note  # 5 % - (-0.5 %) = 5.5 points; 16.6 - (-0.5) = 17.1
    # A wide interval does not stop an estimate inside the range from holding.
    assert judge("time_reduction", (0.05, 0.15), 0.10, (-0.2, 0.4)) == (HOLDS, "")


def test_beyond_the_range_needs_the_whole_interval_beyond() -> None:
    assert judge("speedup", (3.0, 5.0), 2.0, (1.8, 2.2)) == (REFUTED, "")
    assert judge("speedup", (3.0, 5.0), 6.0, (5.5, 6.5)) == (UNDERSTATED, "")
    # Lower is better for a cost: a wholly larger increase is worse than claimed.
    assert judge("time_increase", (0.1, 0.2), 0.5, (0.4, 0.6)) == (REFUTED, "")
    assert judge("time_increase", (0.1, 0.2), 0.05, (0.01, 0.08)) == (UNDERSTATED, "")
    # Above the range with the interval's lower end inside it: the precision that would decide.
    verdict, note = judge("speedup", (3.0, 5.0), 6.0, (4.5, 7.0))
    assert verdict == INCONCLUSIVE
    assert "edge 5" in note and "at most 17 % of the estimate (now 25 %)" in note


def test_without_an_interval_the_estimate_decides_and_says_so() -> None:
    verdict, note = judge("speedup", (3.0, 5.0), 2.0, None, "fewer than 3 rounds on a side")
    assert verdict == REFUTED
    assert note == "no interval (fewer than 3 rounds on a side): judged on the estimate alone"
    assert judge("memory_reduction", (0.4, 0.5), 0.45, None)[0] == HOLDS


def test_interval_reaching_into_the_range_is_inconclusive(results) -> None:
    # 4.0x [3.94, 4.06] against 4.05-6x: the estimate is outside, the interval's top inside.
    c8 = results["C8"]
    assert c8.verdict == "inconclusive"
    assert "edge 4.05" in c8.note and "1.2 % of the estimate (now 1.5 %)" in c8.note


def test_claims_of_cases_left_out_are_not_run_with_the_command(results) -> None:
    c9 = results["C9"]
    assert c9.verdict == "not run" and c9.value is None
    assert c9.command == "bench run -m slow -k toy.heavy"
    assert c9.command in c9.note and "marked slow" in c9.note


def test_run_command_quotes_several_markers_and_names_the_profile() -> None:
    assert run_command("a.b", ["gpu", "slow"], "full") == "bench run -m 'gpu and slow' -k a.b --profile full"
    assert run_command("a.b", [], "quick") == "bench run -m '' -k a.b"


def test_a_run_records_the_claims_of_cases_it_left_out(
    left_out_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    toy_project, proc = left_out_run
    assert proc.returncode == 0, proc.stderr
    run = load_run(toy_project / "q.json")
    assert run.info["selection"]["left_out"] == {"toy.heavy": ["slow"]}
    assert run.info["selection"]["not_reached"] == []  # not interrupted
    verdicts = {r.id: r for r in audit(run)}
    assert verdicts["H1"].verdict == "not run"
    assert verdicts["H1"].command == "bench run -m slow -k toy.heavy"
    assert verdicts["T1"].verdict != "not run"


def test_memory_passes_give_a_memory_claim_its_interval(tmp_path: Path) -> None:
    # Three kept passes of the memory probe, paired by pass: the claim is judged on their ratios
    # with a Student-t interval; with one pass (no samples) on the estimate alone.
    doc = sample_document()
    memory = {
        e["extra_info"]["bench"]["variant"]: e["extra_info"]["bench"]["memory"] for e in doc["benchmarks"]
    }
    mib = 2**20
    memory["reference"]["cpu_peak_rss_delta_samples"] = [8 * mib, 9 * mib, 10 * mib]
    memory["fast"]["cpu_peak_rss_delta_samples"] = [int(4.4 * mib), int(4.9 * mib), int(5.6 * mib)]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    c3 = {r.id: r for r in audit(load_run(path))}["C3"]
    ratios = [4.4 / 8, 4.9 / 9, 5.6 / 10]
    assert c3.interval is not None
    low, high = c3.interval
    assert low < 1 - max(ratios) and high > 1 - min(ratios)
    assert c3.value == pytest.approx(1 - math.exp(sum(math.log(r) for r in ratios) / 3), rel=1e-3)
    assert c3.verdict == HOLDS and "no interval" not in c3.note
    # Passes that disagree widely leave a reduction outside the range undecided.
    memory["fast"]["cpu_peak_rss_delta_samples"] = [int(3 * mib), int(6 * mib), int(3.5 * mib)]
    path.write_text(json.dumps(doc))
    c3 = {r.id: r for r in audit(load_run(path))}["C3"]
    assert c3.value is not None and not 0.4 <= c3.value <= 0.5
    assert c3.verdict == INCONCLUSIVE


def test_more_trials_are_asked_for_only_where_they_would_decide() -> None:
    claim = Claim("X", "at least 2x", metric="speedup", variant="fast", expected=(2.0, math.inf))
    # 1.8x [1.5, 2.16] over 4 trials: doubling the trials projects a half-width of about half
    # today's, [1.65, 1.96], which no longer reaches 2.
    wanted = trials_to_decide(claim, Speedup(1.8, 1.5, 2.16, 4, "t"), cap=8)
    assert 4 < wanted <= 8
    # A trial fewer than that would not have decided it.
    assert trials_to_decide(claim, Speedup(1.8, 1.5, 2.16, 4, "t"), cap=wanted - 1) == 0
    # Decided claims, and one whose estimate sits on the edge, get no more.
    assert trials_to_decide(claim, Speedup(2.5, 2.2, 2.8, 4, "t"), cap=8) == 0
    assert trials_to_decide(claim, Speedup(1.0, 0.9, 1.1, 4, "t"), cap=8) == 0
    assert trials_to_decide(claim, Speedup(1.99, 1.5, 2.6, 4, "t"), cap=8) == 0
    # A time reduction is judged in its own terms: 12 % [2 %, 21 %] against a claimed 20-30 %.
    cut = Claim("Y", "20-30 % faster", metric="time_reduction", variant="fast", expected=(0.2, 0.3))
    assert trials_to_decide(cut, Speedup(1 / 0.88, 1 / 0.98, 1 / 0.79, 4, "t"), cap=8) > 4
    # ... and 8 % [-2 %, 17 %] is refuted already.
    assert trials_to_decide(cut, Speedup(1 / 0.92, 1 / 1.02, 1 / 0.83, 4, "t"), cap=8) == 0
    # Claims that are not about time are not decided by trials.
    mem = Claim("Z", "half the memory", metric="memory_reduction", variant="fast", expected=(0.5, 0.5))
    assert trials_to_decide(mem, Speedup(1.8, 1.5, 2.16, 4, "t"), cap=8) == 0


def test_more_memory_passes_are_asked_for_only_where_they_would_decide() -> None:
    claim = Claim("M", "5-9x more memory", metric="memory_increase", variant="fast", expected=(5.0, 9.0))
    base = [4.0, 4.0, 4.0]
    # Ratios 2, 4, 2: 2.5x [0.93, 6.8], an increase of [-7 %, 580 %] that reaches the claimed 500 %;
    # a fourth pass projects [0.8, 4.8]x, short of it.
    assert memory_change("memory_increase", base, [8.0, 16.0, 8.0]) is not None
    assert passes_to_decide(claim, base, [8.0, 16.0, 8.0], cap=9) == 4
    assert passes_to_decide(claim, base, [8.0, 16.0, 8.0], cap=3) == 0
    # Decided already (refuted), and an estimate on the edge (no number of passes decides it).
    assert passes_to_decide(claim, base, [8.0, 8.1, 7.9], cap=9) == 0
    assert passes_to_decide(claim, base, [23.0, 25.0, 24.0], cap=9) == 0
    # Not a memory claim; and fewer than two pairs.
    speed = Claim("S", "2x faster", metric="speedup", variant="fast", expected=(2.0, 3.0))
    assert passes_to_decide(speed, base, [8.0, 16.0, 8.0], cap=9) == 0
    assert passes_to_decide(claim, [4.0], [8.0, 16.0], cap=9) == 0


def test_a_memory_interval_pairs_the_passes_both_have() -> None:
    # The variant's extra passes (a claim of its own asked for them) pair with nothing.
    paired = memory_change("memory_reduction", [10.0, 10.0, 10.0], [5.0, 5.0, 5.0, 1.0, 1.0])
    assert paired is not None
    value, (low, high) = paired
    assert value == pytest.approx(0.5) and low == pytest.approx(0.5) and high == pytest.approx(0.5)
    assert memory_change("memory_reduction", [10.0], [5.0, 5.0]) is None


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="with a GPU the claim is judged on the CUDA group"
)
def test_a_cpu_group_gets_the_trials_that_decide_its_claim_when_its_cuda_items_are_skipped(
    toy_project: Path,
) -> None:
    # The variant's per-call cost alternates between worker processes (1.0x, then 0.8x the
    # reference's): two trials give 0.89x [0.33, 2.4] against a claimed 1.5-3x, inconclusive;
    # a third decides it (refuted). The case also declares CUDA, whose items are collected and
    # skipped here: the claim is judged on the CPU group, so that group gets the third trial.
    out = toy_project / "out.json"
    proc = clock_run(toy_project, "alternating_suite.py", out, min_rounds=3)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = load_run(out)
    assert {(r.device, r.variant): len(r.trials) for r in run.records} == {
        ("cpu", "reference"): 3,
        ("cpu", "alternating"): 3,
    }
    (verdict,) = audit(run)
    assert verdict.verdict == REFUTED, verdict


def test_the_claims_judged_on_a_group_are_those_the_audit_picks() -> None:
    from bench import Case, Grid

    at_small = Claim("S", "small", metric="speedup", variant="v", expected=(2.0, 3.0), at={"n": 1})
    anywhere = Claim("L", "largest", metric="speedup", variant="v", expected=(2.0, 3.0))
    absent = Claim("A", "not in quick", metric="speedup", variant="v", expected=(2.0, 3.0), at={"n": 8})
    unmeasurable = Claim("U", "no", metric="speedup", variant="v", measurable=False, reason="elsewhere")
    case = Case(
        name="toy.pick",
        setup=lambda p, d: {},
        reference=lambda: None,
        variants={"v": lambda: None},
        grids={"quick": Grid(n=[1, 2]), "full": Grid(n=[1, 2, 8])},
        devices=("cpu", "cuda"),
        claims=(at_small, anywhere, absent, unmeasurable),
    )
    cpu = [("toy.pick", "n1", "cpu"), ("toy.pick", "n2", "cpu"), ("other", "n2", "cpu")]
    assert [c.id for c in claims_at(case, "quick", cpu, ("toy.pick", "n1", "cpu"))] == ["S"]
    # No point at n8 in quick: judged at the largest point, as the audit does.
    assert [c.id for c in claims_at(case, "quick", cpu, ("toy.pick", "n2", "cpu"))] == ["L", "A"]
    # With CUDA in the run the audit judges on CUDA, so the CPU group decides nothing.
    both = [*cpu, ("toy.pick", "n1", "cuda"), ("toy.pick", "n2", "cuda")]
    assert claims_at(case, "quick", both, ("toy.pick", "n1", "cpu")) == []
    assert [c.id for c in claims_at(case, "quick", both, ("toy.pick", "n2", "cuda"))] == ["L", "A"]
    # -k left n1 out: every claim is judged at n2.
    assert [c.id for c in claims_at(case, "quick", cpu[1:], ("toy.pick", "n2", "cpu"))] == ["S", "L", "A"]


def _audit(doc: dict, tmp_path: Path) -> dict:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    return {r.id: r for r in audit(load_run(path))}


def test_claims_of_cases_an_interrupted_run_did_not_finish_are_not_run(tmp_path: Path) -> None:
    doc = sample_document()
    doc["bench"]["interrupted"] = True
    doc["bench"]["selection"]["not_reached"] = ["toy.square"]
    # Not judged on the points it did finish: another point may be the claim's in a whole run.
    c1 = _audit(doc, tmp_path)["C1"]
    assert c1.verdict == "not run" and c1.value is None and c1.command == "bench run -k toy.square"
    doc["bench"]["trials"] = {"journal": "results/r.journal.jsonl"}
    c1 = _audit(doc, tmp_path)["C1"]
    assert c1.command == "bench run --resume results/r.journal.jsonl"
    assert c1.note == f"the run was interrupted before it finished toy.square; run: `{c1.command}`"
    c9 = _audit(doc, tmp_path)["C9"]  # left out by -m: said so, whatever else happened
    assert c9.verdict == "not run" and "marker expression" in c9.note
    doc["bench"]["selection"]["not_reached"] = []
    assert _audit(doc, tmp_path)["C1"].verdict == "holds"


@pytest.mark.parametrize(("trials", "verdict"), [(2, "not run"), (4, "holds")])
def test_an_interrupted_run_recorded_before_not_reached_tells_it_from_its_groups(
    trials: int, verdict: str, tmp_path: Path
) -> None:
    doc = sample_document()
    doc["bench"]["interrupted"] = True
    groups = {"toy.square[n8-cpu]": {"check_s": 1.0, "trial_s": 1.0, "trials": trials}}
    doc["bench"]["trials"] = {"per_item": 4, "workers": {"groups": groups}}
    assert _audit(doc, tmp_path)["C1"].verdict == verdict
