"""The regression gate: ratio, absolute, count and correctness rules; rules files; the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import ResultsError, RulesError
from bench.gate import (
    IMPROVEMENT,
    NOT_COMPARABLE,
    REGRESSION,
    UNCHANGED,
    WARNING,
    Rules,
    RuleSet,
    gate,
    load_rules,
)
from bench.results import load_run
from tests.bench.sample_run import document_copy, with_trials


def _write(tmp_path: Path, name: str, doc: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def _scale(doc: dict, variant: str, factor: float) -> dict:
    for entry in doc["benchmarks"]:
        if entry["extra_info"]["bench"]["variant"] == variant:
            stats = entry["stats"]
            stats["data"] = [x * factor for x in stats["data"]]
            stats["median"] *= factor
    return doc


def _find(result, variant: str, rule: str):
    return next(f for f in result.findings if f.variant == variant and f.rule == rule)


def test_unchanged_run_passes(tmp_path: Path) -> None:
    run = load_run(_write(tmp_path, "a.json", document_copy()))
    result = gate(run, run)
    assert result.exit_code() == 0
    assert not result.with_status(REGRESSION)
    assert _find(result, "fast", "ratio").status == UNCHANGED
    assert result.same_machine


def test_slower_variant_is_a_ratio_and_absolute_regression(tmp_path: Path) -> None:
    base = load_run(_write(tmp_path, "base.json", document_copy()))
    now = load_run(_write(tmp_path, "now.json", _scale(document_copy(), "fast", 1.25)))
    assert not [f for f in gate(now, base).findings if f.rule == "absolute"]  # off by default
    result = gate(now, base, RuleSet(defaults=Rules(absolute=True)))
    ratio = _find(result, "fast", "ratio")
    assert ratio.status == REGRESSION
    assert ratio.change == pytest.approx(1 / 1.25 - 1)
    assert ratio.interval[1] < 0
    assert _find(result, "fast", "absolute").status == REGRESSION
    assert _find(result, "reference", "absolute").status == UNCHANGED
    assert result.exit_code() == 1


def test_faster_variant_is_an_improvement(tmp_path: Path) -> None:
    base = load_run(_write(tmp_path, "base.json", document_copy()))
    now = load_run(_write(tmp_path, "now.json", _scale(document_copy(), "fast", 0.7)))
    result = gate(now, base)
    assert _find(result, "fast", "ratio").status == IMPROVEMENT
    assert result.exit_code() == 0 and result.exit_code(fail_on_improvement=True) == 1


def test_a_machine_twice_as_fast_changes_no_ratio(tmp_path: Path) -> None:
    doc = document_copy()
    for variant in ("reference", "fast", "small"):
        _scale(doc, variant, 0.5)
    doc["bench"]["environment"]["cpu_model"] = "Faster CPU"
    base = load_run(_write(tmp_path, "base.json", document_copy()))
    result = gate(load_run(_write(tmp_path, "now.json", doc)), base, RuleSet(defaults=Rules(absolute=True)))
    assert not result.same_machine and "cpu_model" in result.machine_note
    assert _find(result, "fast", "ratio").status == UNCHANGED
    assert _find(result, "fast", "absolute").status == NOT_COMPARABLE
    assert result.exit_code() == 0


def test_correctness_and_count_regressions(tmp_path: Path) -> None:
    doc = document_copy()
    fast = next(e for e in doc["benchmarks"] if e["extra_info"]["bench"]["variant"] == "fast")
    doc["benchmarks"].remove(fast)
    failed = dict(fast["extra_info"]["bench"], error={"kind": "mismatch", "message": "now wrong"})
    doc["bench"]["failures"].append(failed)
    small = next(e for e in doc["benchmarks"] if e["extra_info"]["bench"]["variant"] == "small")
    small["extra_info"]["bench"]["flops"] = {"per_call": 2e9, "source": "declared"}
    base = load_run(_write(tmp_path, "base.json", document_copy()))
    result = gate(load_run(_write(tmp_path, "now.json", doc)), base)
    assert _find(result, "fast", "correctness").status == REGRESSION
    assert "now wrong" in _find(result, "fast", "correctness").detail
    assert _find(result, "small", "flops").status == REGRESSION


def test_nothing_in_common_is_unusable(tmp_path: Path) -> None:
    doc = document_copy()
    for entry in doc["benchmarks"]:
        entry["extra_info"]["bench"]["case"] = "other.case"
    doc["bench"]["failures"] = []
    with pytest.raises(ResultsError, match="no benchmark in common"):
        gate(load_run(_write(tmp_path, "a.json", doc)), load_run(_write(tmp_path, "b.json", document_copy())))


def test_rules_file_groups_and_errors(tmp_path: Path) -> None:
    rules_path = tmp_path / "rules.toml"
    rules_path.write_text(
        '[defaults]\nratio_threshold = 0.5\nabsolute = true\n\n[[group]]\ncases = "toy.*"\nabsolute = false\n'
    )
    rules = load_rules(rules_path)
    assert rules.for_case("toy.square").ratio_threshold == 0.5
    assert rules.for_case("toy.square").absolute is False
    assert rules.for_case("paco2.x").absolute is True
    base = load_run(_write(tmp_path, "base.json", document_copy()))
    now = load_run(_write(tmp_path, "now.json", _scale(document_copy(), "fast", 1.25)))
    result = gate(now, base, rules)
    assert _find(result, "fast", "ratio").status == UNCHANGED  # a 20 % drop is inside 50 %
    assert not [f for f in result.findings if f.rule == "absolute"]
    for text, message in (
        ("[defaults]\nratio_threshold = -1\n", "must be a number"),
        ("[defaults]\nspeed = 1\n", "unknown setting 'speed'"),
        ("[[group]]\nratio = true\n", "needs cases"),
        ("[limits]\n", "unknown tables"),
        ("not toml =", "not valid TOML"),
    ):
        rules_path.write_text(text)
        with pytest.raises(RulesError, match=message):
            load_rules(rules_path)


def test_gate_command(tmp_path: Path, monkeypatch, capsys) -> None:
    base = _write(tmp_path, "base.json", document_copy())
    now = _write(tmp_path, "now.json", _scale(document_copy(), "fast", 1.25))
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["gate", str(now), "--baseline", str(base), "--json", str(tmp_path / "gate.json")]) == 1
    out = capsys.readouterr().out
    assert "Benchmark gate: **FAIL**" in out and "### Regressions" in out
    assert "Benchmark gate" in summary.read_text()
    verdicts = json.loads((tmp_path / "gate.json").read_text())
    assert verdicts["counts"]["regression"] >= 1
    assert main(["gate", str(base), "--baseline", str(base)]) == 0
    assert main(["gate", str(tmp_path / "missing.json"), "--baseline", str(base)]) == 2


def test_baseline_save_names_the_machine_kind(tmp_path: Path) -> None:
    run = _write(tmp_path, "run.json", document_copy())
    assert main(["baseline", "save", str(run), "--dir", str(tmp_path / "baselines")]) == 0
    saved = list((tmp_path / "baselines").glob("*.json"))
    assert [p.name for p in saved] == ["cpu-2core-test-cpu-quick.json"]


def test_gate_against_a_folder_of_baselines_picks_this_machine_kind(tmp_path: Path, capsys) -> None:
    run = _write(tmp_path, "run.json", document_copy())
    folder = tmp_path / "baselines"
    assert main(["baseline", "save", str(run), "--dir", str(folder)]) == 0
    slower = _write(tmp_path, "slower.json", _scale(document_copy(), "fast", 1.25))
    assert main(["gate", str(slower), "--baseline", str(folder)]) == 1
    assert "cpu-2core-test-cpu-quick.json" in capsys.readouterr().out

    # A run from another kind of machine is still judged, against the closest baseline there is.
    other = document_copy()
    other["bench"]["environment"]["cpu_count"] = 64
    elsewhere = _write(tmp_path, "elsewhere.json", other)
    assert main(["gate", str(elsewhere), "--baseline", str(folder)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "no baseline for this machine (cpu-64core-test-cpu-quick)" in out
    assert "using cpu-2core-test-cpu-quick, from another machine" in out

    # Only a folder with nothing for this profile is unusable.
    full = document_copy()
    full["bench"]["profile"] = "full"
    assert main(["gate", str(_write(tmp_path, "full.json", full)), "--baseline", str(folder)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "no baseline for the 'full' profile (present: cpu-2core-test-cpu-quick)" in err


def _with_pairs(doc: dict, variant: str, speedup: float) -> dict:
    for entry in doc["benchmarks"]:
        if entry["extra_info"]["bench"]["variant"] == variant:
            ratios = [speedup * (1 + 0.01 * ((i % 5) - 2)) for i in range(15)]
            entry["extra_info"]["bench"]["paired"] = {"speedup": speedup, "ratios": ratios}
    return doc


def test_ratio_rule_uses_paired_rounds_when_both_runs_have_them(tmp_path: Path) -> None:
    # Separately timed, the variant looks 25 % slower; its paired rounds say the speedup held.
    base = load_run(_write(tmp_path, "base.json", _with_pairs(document_copy(), "fast", 4.0)))
    now_doc = _with_pairs(_scale(document_copy(), "fast", 1.25), "fast", 4.0)
    result = gate(load_run(_write(tmp_path, "now.json", now_doc)), base)
    ratio = _find(result, "fast", "ratio")
    assert ratio.status == UNCHANGED and ratio.change == pytest.approx(0.0)
    assert "paired rounds" in ratio.detail

    # Paired rounds that lost 20 % of the speedup are a regression.
    slower = _with_pairs(document_copy(), "fast", 3.2)
    result = gate(load_run(_write(tmp_path, "slower.json", slower)), base)
    ratio = _find(result, "fast", "ratio")
    assert ratio.status == REGRESSION and ratio.change == pytest.approx(-0.2)
    assert ratio.interval[1] < 0

    # Only one run paired: the separate timings decide.
    result = gate(load_run(_write(tmp_path, "plain.json", _scale(document_copy(), "fast", 1.25))), base)
    ratio = _find(result, "fast", "ratio")
    assert ratio.status == REGRESSION and "separate timings" in ratio.detail


def test_several_runs_each_side_compare_run_speedups(tmp_path: Path, capsys) -> None:
    from bench.results import pool_runs

    def runs(prefix: str, speedups: list[float]) -> list[Path]:
        return [
            _write(tmp_path, f"{prefix}{i}.json", _with_pairs(document_copy(), "fast", s))
            for i, s in enumerate(speedups)
        ]

    base = runs("base", [4.0, 4.4, 3.6, 4.2, 3.8])
    folder = tmp_path / "baselines"
    assert main(["baseline", "save", *map(str, base), "--dir", str(folder)]) == 0
    assert sorted(p.name for p in (folder / "cpu-2core-test-cpu-quick").iterdir()) == [
        f"run-0{i}.json" for i in range(1, 6)
    ]
    pooled = pool_runs([load_run(p) for p in base])
    fast = next(r for r in pooled.records if r.variant == "fast")
    assert sorted(fast.run_speedups) == pytest.approx([3.6, 3.8, 4.0, 4.2, 4.4])
    assert len(fast.rounds_s) == 5 * len(load_run(base[0]).records[0].rounds_s)

    # The same spread of run speedups: unchanged. The whole spread 25 % lower: a regression.
    same = runs("same", [3.9, 4.3, 3.7, 4.1, 4.0])
    assert main(["gate", *map(str, same), "--baseline", str(folder)]) == 0
    slower = runs("slow", [3.0, 3.3, 2.7, 3.15, 2.85])
    assert main(["gate", *map(str, slower), "--baseline", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "5 runs against 5" in out

    # Saving a single run replaces the folder.
    assert main(["baseline", "save", str(base[0]), "--dir", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["cpu-2core-test-cpu-quick.json"]


def _counted(doc: dict, instructions: dict[str, float], **code_path: str) -> dict:
    """Give each variant's record an instruction count (and a code path)."""
    path = {"cpu_capability": "AVX2", "torch": "2.13.0+cpu", **code_path}
    for entry in doc["benchmarks"]:
        bench = entry["extra_info"]["bench"]
        bench["counts"] = {
            "instructions_per_call": instructions[bench["variant"]],
            "calls": 1,
            "tool": "callgrind 3.19.0",
            "code_path": path,
        }
    return doc


COUNTS = {"reference": 4.0e6, "fast": 1.0e6, "small": 2.5e5}


def test_instruction_counts_decide_on_cpu(tmp_path: Path) -> None:
    base = load_run(_write(tmp_path, "base.json", _counted(document_copy(), COUNTS)))
    same = load_run(_write(tmp_path, "same.json", _counted(document_copy(), COUNTS)))
    result = gate(same, base)
    assert _find(result, "fast", "instructions").status == UNCHANGED
    assert _find(result, "fast", "instructions").change == 0.0

    # 3 % more instructions in one implementation: a regression, whatever the wall clock says.
    more = load_run(_write(tmp_path, "more.json", _counted(document_copy(), {**COUNTS, "fast": 1.03e6})))
    result = gate(more, base)
    assert _find(result, "fast", "instructions").status == REGRESSION
    assert _find(result, "reference", "instructions").status == UNCHANGED
    assert result.exit_code() == 1
    # 1.5 % is inside the default 2 % threshold (two counting processes of one call: up to 1.08 %).
    within = load_run(_write(tmp_path, "in.json", _counted(document_copy(), {**COUNTS, "fast": 1.015e6})))
    assert _find(gate(within, base), "fast", "instructions").status == UNCHANGED


def test_wall_clock_change_with_unchanged_counts_is_a_warning(tmp_path: Path) -> None:
    base = load_run(_write(tmp_path, "base.json", _counted(document_copy(), COUNTS)))
    slower = load_run(_write(tmp_path, "slow.json", _counted(_scale(document_copy(), "fast", 1.25), COUNTS)))
    result = gate(slower, base)
    ratio = _find(result, "fast", "ratio")
    assert ratio.status == WARNING and "instruction counts are unchanged" in ratio.detail
    assert result.exit_code() == 0
    # Unless the rules say the wall clock decides too.
    assert (
        _find(gate(slower, base, RuleSet(Rules(counts_decide=False))), "fast", "ratio").status == REGRESSION
    )
    # And where the reference's count changed, the ratio is not outranked.
    moved = _counted(_scale(document_copy(), "fast", 1.25), {**COUNTS, "reference": 5e6})
    assert (
        _find(gate(load_run(_write(tmp_path, "m.json", moved)), base), "fast", "ratio").status == REGRESSION
    )


def test_counts_on_another_code_path_are_not_compared(tmp_path: Path) -> None:
    base = load_run(_write(tmp_path, "base.json", _counted(document_copy(), COUNTS)))
    other = _counted(document_copy(), {**COUNTS, "fast": 2e6}, cpu_capability="DEFAULT")
    finding = _find(gate(load_run(_write(tmp_path, "o.json", other)), base), "fast", "instructions")
    assert finding.status == NOT_COMPARABLE and "cpu_capability: 'AVX2' -> 'DEFAULT'" in finding.detail
    uncounted = document_copy()
    _counted(uncounted, COUNTS)
    uncounted["benchmarks"][1]["extra_info"]["bench"]["counts"] = {
        "instructions_per_call": None,
        "reason": "CUDA",
    }
    result = gate(load_run(_write(tmp_path, "u.json", uncounted)), base)
    variant = uncounted["benchmarks"][1]["extra_info"]["bench"]["variant"]
    assert _find(result, variant, "instructions").detail == "not counted in this run: CUDA"


def test_a_ratio_from_another_cpu_model_only_warns(tmp_path: Path) -> None:
    base = load_run(_write(tmp_path, "base.json", document_copy()))
    doc = _scale(document_copy(), "fast", 1.25)
    doc["bench"]["environment"]["cpu_model"] = "Another CPU"
    result = gate(load_run(_write(tmp_path, "now.json", doc)), base)
    ratio = _find(result, "fast", "ratio")
    assert ratio.status == WARNING and "another CPU model" in ratio.detail
    assert result.exit_code() == 0
    strict = RuleSet(Rules(ratio_across_cpus=True))
    assert (
        _find(gate(load_run(_write(tmp_path, "now.json", doc)), base, strict), "fast", "ratio").status
        == REGRESSION
    )


def _plain_document(seconds: float) -> dict:
    """What plain pytest-benchmark writes for one test (no harness data)."""
    doc = document_copy()
    entry = doc["benchmarks"][0]
    del entry["extra_info"]["bench"]
    entry.update(name="test_sum", fullname="tests/test_speed.py::test_sum", group=None)
    data = [seconds * (1 + 0.02 * ((i * 7) % 11 - 5) / 5) for i in range(40)]
    entry["stats"].update(data=data, median=sorted(data)[20], rounds=40)
    doc["benchmarks"] = [entry]
    del doc["bench"]
    doc["machine_info"] = {"cpu": {"brand_raw": "Test CPU", "count": 2}, "python_version": "3.11.7"}
    return doc


def test_gate_on_plain_pytest_benchmark_files(tmp_path: Path, capsys) -> None:
    a = _write(tmp_path, "a.json", _plain_document(0.010))
    b = _write(tmp_path, "b.json", _plain_document(0.010))
    slower = _write(tmp_path, "slower.json", _plain_document(0.0125))
    assert main(["gate", str(b), "--baseline", str(a)]) == 0
    assert main(["gate", str(slower), "--baseline", str(a)]) == 1
    out = capsys.readouterr().out
    assert "tests/test_speed.py::test_sum" in out and "Mann-Whitney" in out
    run = load_run(slower)
    assert run.records[0].plain and run.environment["cpu_model"] == "Test CPU"
    # Another machine: absolute times are not comparable, and nothing fails.
    moved = _plain_document(0.0125)
    moved["machine_info"]["cpu"]["brand_raw"] = "Other CPU"
    assert main(["gate", str(_write(tmp_path, "m.json", moved)), "--baseline", str(a)]) == 0


def test_with_trials_a_regression_needs_the_intervals_to_separate(tmp_path: Path) -> None:
    base = load_run(
        _write(tmp_path, "base.json", with_trials(document_copy(), "fast", [4.0, 3.0, 5.0, 4.5, 3.5]))
    )
    # 15 % lower estimate, but trials as spread as the baseline's: the intervals overlap.
    spread = with_trials(document_copy(), "fast", [3.4, 2.6, 4.2, 3.9, 3.0])
    ratio = _find(gate(load_run(_write(tmp_path, "spread.json", spread)), base), "fast", "ratio")
    assert ratio.status == UNCHANGED and ratio.change < -0.1
    assert "intervals that separate" in ratio.detail
    # Half the speedup, tight trials: the intervals separate.
    slower = with_trials(document_copy(), "fast", [2.0, 2.05, 1.95, 2.02, 1.98])
    ratio = _find(gate(load_run(_write(tmp_path, "slower.json", slower)), base), "fast", "ratio")
    assert ratio.status == REGRESSION and ratio.interval[1] < 0
