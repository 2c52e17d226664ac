"""Regression rules and verdicts of a run against a baseline run.

Two engines: instruction counts (bench.counts), deterministic, the primary verdict on CPU where a
record has them; wall clock (ratio and absolute rules) for what counts cannot see (CUDA, threads,
memory-bound changes) and for records without counts. Where both implementations' counts are
unchanged, a wall-clock change is a warning, not a regression, unless the rules say otherwise.
"""

from __future__ import annotations

import fnmatch
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.compare import peak_bytes, speedup
from bench.errors import ResultsError, RulesError
from bench.results import Record, Run
from bench.stats import paired_change_interval, slower_p_value, speedup_change_interval

REGRESSION, IMPROVEMENT, UNCHANGED, NOT_COMPARABLE, WARNING = (
    "regression",
    "improvement",
    "unchanged",
    "not comparable",
    "warning",
)
STATUSES = (REGRESSION, IMPROVEMENT, WARNING, UNCHANGED, NOT_COMPARABLE)
WALL_CLOCK_RULES = ("ratio", "absolute")
# What must match for absolute times (and CUDA bytes) of two runs to be comparable.
MACHINE_KEYS = ("cpu_model", "cpu_count", "threads", "torch", "python", "cuda")


@dataclass(frozen=True)
class Rules:
    """Thresholds for one case; the defaults are what the project's own CI uses."""

    ratio_threshold: float = 0.05  # speedup may fall by at most this fraction
    absolute_threshold: float = 0.10  # a median may rise by at most this fraction ...
    alpha: float = 0.01  # ... unless the rise is not significant at this level
    count_tolerance: float = 0.0  # FLOPs and parameter counts: relative change allowed
    memory_tolerance: float = 0.05  # CUDA peak allocated bytes (same device): relative change allowed
    ratio: bool = True
    # Off unless asked for: on a shared machine a median moves 10-30 % between processes (measured
    # with tools/gate_experiment.py), so absolute rules belong to dedicated runners.
    absolute: bool = False
    counts: bool = True
    correctness: bool = True
    # Instructions per call (callgrind) may rise by at most this fraction. Counts repeat, but not
    # exactly: two counting processes of the same small call (220,000 instructions, mostly Python
    # and dispatch) were 1.08 % apart in a CI run on 2026-12-03 (up to 0.67 % before), from the
    # heap the counting process is left with; at 1 % the gate would have flagged unchanged code.
    instruction_threshold: float = 0.02
    instructions: bool = True
    # Where both implementations' counts are unchanged, a wall-clock finding is only a warning.
    counts_decide: bool = True
    # A speedup measured on another CPU model moves with the CPU (vector units, caches, MKL's
    # kernels): there a ratio finding is only a warning unless this is true.
    ratio_across_cpus: bool = False
    # Plain pytest-benchmark records have no reference to form a ratio: the absolute rule (with
    # its significance test) judges them, on the same machine.
    plain_absolute: bool = True


@dataclass(frozen=True)
class RuleSet:
    defaults: Rules = field(default_factory=Rules)
    groups: tuple[tuple[str, Rules], ...] = ()  # (glob on case names, rules); the last match wins

    def for_case(self, case: str) -> Rules:
        chosen = self.defaults
        for pattern, rules in self.groups:
            if fnmatch.fnmatchcase(case, pattern):
                chosen = rules
        return chosen


def _rules_from(table: Mapping[str, Any], base: Rules, where: str) -> Rules:
    known = {f.name: f.type for f in fields(Rules)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "cases":
            continue
        if key not in known:
            raise RulesError(f"{where}: unknown setting {key!r}; known: {', '.join(known)}")
        default = getattr(base, key)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise RulesError(f"{where}: {key} must be true or false")
        elif not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or math.isnan(value):
            raise RulesError(f"{where}: {key} must be a number >= 0")
        values[key] = value
    return replace(base, **values)


def load_rules(path: str | Path | None) -> RuleSet:
    """Read a TOML rules file: ``[defaults]`` and ``[[group]]`` tables with ``cases = "glob"``."""
    if path is None:
        return RuleSet()
    try:
        doc = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise RulesError(f"cannot read rules file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{path} is not valid TOML: {exc}") from None
    unknown = set(doc) - {"defaults", "group"}
    if unknown:
        raise RulesError(f"{path}: unknown tables {sorted(unknown)}; use [defaults] and [[group]]")
    defaults = _rules_from(doc.get("defaults", {}), Rules(), f"{path} [defaults]")
    groups = []
    for i, table in enumerate(doc.get("group", [])):
        if not isinstance(table.get("cases"), str):
            raise RulesError(f'{path} [[group]] #{i + 1}: needs cases = "<glob on case names>"')
        groups.append((table["cases"], _rules_from(table, defaults, f"{path} [[group]] #{i + 1}")))
    return RuleSet(defaults, tuple(groups))


@dataclass(frozen=True)
class Finding:
    """One rule applied to one implementation at one grid point and device."""

    case: str
    point: str
    device: str
    variant: str
    rule: str
    status: str
    before: float | None = None
    now: float | None = None
    change: float | None = None  # now / before - 1
    interval: tuple[float, float] | None = None
    detail: str = ""


@dataclass(frozen=True)
class GateResult:
    findings: tuple[Finding, ...]
    same_machine: bool
    machine_note: str

    def with_status(self, status: str) -> list[Finding]:
        return [f for f in self.findings if f.status == status]

    def exit_code(self, fail_on_improvement: bool = False) -> int:
        if self.with_status(REGRESSION):
            return 1
        if fail_on_improvement and self.with_status(IMPROVEMENT):
            return 1
        return 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "same_machine": self.same_machine,
            "machine_note": self.machine_note,
            "counts": {s: len(self.with_status(s)) for s in STATUSES},
            "findings": [f.__dict__ for f in self.findings],
        }


def machine_difference(current: Run, baseline: Run) -> str:
    """Empty when both runs come from the same kind of machine and software, else what differs."""
    now, before = current.environment, baseline.environment
    diffs = [f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in MACHINE_KEYS if now.get(k) != before.get(k)]
    gpu_now, gpu_before = (now.get("gpu") or {}).get("name"), (before.get("gpu") or {}).get("name")
    if gpu_now != gpu_before:
        diffs.append(f"gpu: {gpu_before!r} -> {gpu_now!r}")
    return "; ".join(diffs)


def code_path_difference(now: Record, before: Record) -> str:
    """Empty when both counts ran the same code (torch build, CPU capability, tool, pins)."""
    a = (before.counts or {}).get("code_path") or {}
    b = (now.counts or {}).get("code_path") or {}
    return "; ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted({*a, *b}) if a.get(k) != b.get(k))


def _instruction_finding(
    base: tuple[str, str, str, str], rules: Rules, now: Record, before: Record
) -> Finding | None:
    """The count rule: instructions per call against the baseline's, on the same code path."""
    if now.counts is None or before.counts is None:
        return None
    n, b = now.instructions_per_call, before.instructions_per_call
    if n is None or b is None:
        reason = (now.counts if n is None else before.counts).get("reason") or "no count"
        side = "this run" if n is None else "the baseline"
        return Finding(
            *base, rule="instructions", status=NOT_COMPARABLE, detail=f"not counted in {side}: {reason}"
        )
    path = code_path_difference(now, before)
    if path:
        return Finding(
            *base,
            rule="instructions",
            status=NOT_COMPARABLE,
            before=b,
            now=n,
            detail=f"counted on another code path ({path})",
        )
    change = n / b - 1 if b else (0.0 if n == b else math.inf)
    if change > rules.instruction_threshold:
        status = REGRESSION
    elif change < -rules.instruction_threshold:
        status = IMPROVEMENT
    else:
        status = UNCHANGED
    return Finding(
        *base,
        rule="instructions",
        status=status,
        before=b,
        now=n,
        change=change,
        detail=f"instructions per call may rise by {rules.instruction_threshold:.1%} (callgrind)",
    )


def _demote(finding: Finding, why: str) -> Finding:
    """A wall-clock verdict that another signal outranks: kept, shown, but not failing."""
    if finding.status not in (REGRESSION, IMPROVEMENT):
        return finding
    return replace(
        finding, status=WARNING, detail=f"{finding.detail}; {finding.status} by wall clock only: {why}"
    )


def _index(records: Iterable[Record]) -> dict[tuple[str, str, str, str], Record]:
    return {r.key: r for r in records}


def _passed(rec: Record | None) -> bool:
    return rec is not None and rec.timed and bool((rec.correctness or {}).get("passed", True))


def _count_finding(
    base: tuple[str, str, str, str], rule: str, before: float | None, now: float | None, tolerance: float
) -> Finding | None:
    if before is None or now is None:
        return None
    change = now / before - 1 if before else (0.0 if now == before else math.inf)
    status = UNCHANGED if abs(change) <= tolerance else (REGRESSION if change > 0 else IMPROVEMENT)
    return Finding(
        *base,
        rule=rule,
        status=status,
        before=before,
        now=now,
        change=change,
        detail=f"allowed change {tolerance:.0%}",
    )


def _status(worse: bool, better: bool) -> str:
    """A wall-clock verdict: each side needs both its threshold and its evidence (``worse``, ``better``)."""
    return REGRESSION if worse else IMPROVEMENT if better else UNCHANGED


def _ratio_finding(
    base: tuple[str, str, str, str],
    rules: Rules,
    now: Mapping[Any, Record],
    before: Mapping[Any, Record],
    var_now: Record,
    var_before: Record,
) -> Finding:
    ref_key = (var_now.case, var_now.point, var_now.device, "reference")
    ref_now, ref_before = now.get(ref_key), before.get(ref_key)
    if not (ref_now and ref_before and ref_now.timed and ref_before.timed):
        return Finding(
            *base, rule="ratio", status=NOT_COMPARABLE, detail="the reference was not timed in both runs"
        )
    assert ref_now.median_s and ref_before.median_s and var_now.median_s and var_before.median_s
    sp_now, sp_before = speedup(ref_now, var_now), speedup(ref_before, var_before)
    if sp_now is not None and sp_before is not None and sp_now.trials > 1 and sp_before.trials > 1:
        # Both runs measured in trials: the same intervals the report shows. A regression needs the
        # two intervals to separate, and the change to pass the threshold.
        change = sp_now.estimate / sp_before.estimate - 1
        status = _status(
            worse=change < -rules.ratio_threshold and sp_now.high < sp_before.low,
            better=change > rules.ratio_threshold and sp_now.low > sp_before.high,
        )
        return Finding(
            *base,
            rule="ratio",
            status=status,
            before=sp_before.estimate,
            now=sp_now.estimate,
            change=change,
            interval=(sp_now.low / sp_before.high - 1, sp_now.high / sp_before.low - 1),
            detail=(
                f"wall clock: speedup may fall by {rules.ratio_threshold:.0%}, with intervals that "
                f"separate ({sp_now.trials} trials against {sp_before.trials})"
            ),
        )
    samples: tuple[Sequence[float], Sequence[float]] | None = None
    if len(var_now.run_speedups) >= 3 and len(var_before.run_speedups) >= 3:
        # Several runs on each side: each run's speedup is one observation, since the process is
        # what varies most on a shared machine.
        samples = var_now.run_speedups, var_before.run_speedups
        basis = f"{len(var_now.run_speedups)} runs against {len(var_before.run_speedups)}"
    elif var_now.paired_ratios and var_before.paired_ratios:
        # Rounds that alternated with the reference: the machine's drift cancels within each pair.
        samples = var_now.paired_ratios, var_before.paired_ratios
        basis = "paired rounds"
    if samples is not None:
        s_now, s_before = (float(np.median(values)) for values in samples)
        interval = paired_change_interval(*samples)
    else:
        s_now = ref_now.median_s / var_now.median_s
        s_before = ref_before.median_s / var_before.median_s
        interval = speedup_change_interval(
            ref_now.rounds_s, var_now.rounds_s, ref_before.rounds_s, var_before.rounds_s
        )
        basis = "separate timings"
    change = s_now / s_before - 1
    low, high = interval or (change + 1, change + 1)
    # A verdict needs both a change beyond the threshold and an interval that excludes "no change".
    status = _status(
        worse=change < -rules.ratio_threshold and high < 1, better=change > rules.ratio_threshold and low > 1
    )
    return Finding(
        *base,
        rule="ratio",
        status=status,
        before=s_before,
        now=s_now,
        change=change,
        interval=(low - 1, high - 1),
        detail=f"wall clock: speedup may fall by {rules.ratio_threshold:.0%} ({basis})",
    )


def _absolute_finding(base: tuple[str, str, str, str], rules: Rules, now: Record, before: Record) -> Finding:
    assert now.median_s and before.median_s
    change = now.median_s / before.median_s - 1
    if not (now.rounds_s and before.rounds_s):
        return Finding(
            *base,
            rule="absolute",
            status=NOT_COMPARABLE,
            before=before.median_s,
            now=now.median_s,
            change=change,
            detail="no rounds stored, so no significance test (write the JSON with --benchmark-json)",
        )
    p_slower = slower_p_value(now.rounds_s, before.rounds_s) if now.rounds_s and before.rounds_s else 1.0
    p_faster = slower_p_value(before.rounds_s, now.rounds_s) if now.rounds_s and before.rounds_s else 1.0
    status = _status(
        worse=change > rules.absolute_threshold and p_slower < rules.alpha,
        better=change < -rules.absolute_threshold and p_faster < rules.alpha,
    )
    return Finding(
        *base,
        rule="absolute",
        status=status,
        before=before.median_s,
        now=now.median_s,
        change=change,
        detail=f"wall clock: Mann-Whitney p(slower) = {p_slower:.2g}",
    )


def _findings(
    key: tuple[str, str, str, str],
    r: Rules,
    now: Mapping[Any, Record],
    before: Mapping[Any, Record],
    var_now: Record,
    var_before: Record,
    difference: str,
    other_cpu: bool,
) -> list[Finding]:
    """Every rule but correctness and presence on one implementation both runs timed."""
    out: list[Finding] = []
    counted = _instruction_finding(key, r, var_now, var_before) if r.instructions else None
    if counted is not None:
        out.append(counted)
    ref_key = (key[0], key[1], key[2], "reference")
    ref_now, ref_before = now.get(ref_key), before.get(ref_key)
    ref_counted = (
        _instruction_finding(ref_key, r, ref_now, ref_before)
        if r.instructions and ref_now is not None and ref_before is not None and ref_key != key
        else counted
    )
    wall: list[Finding] = []
    if r.ratio and not var_now.plain and var_now.variant != "reference":
        ratio = _ratio_finding(key, r, now, before, var_now, var_before)
        if other_cpu and not r.ratio_across_cpus:
            ratio = _demote(ratio, "measured on another CPU model, where speedups move with the CPU")
        wall.append(ratio)
    if r.absolute or (var_now.plain and r.plain_absolute):
        if difference:
            wall.append(
                Finding(
                    *key,
                    rule="absolute",
                    status=NOT_COMPARABLE,
                    detail=f"different machine or software ({difference})",
                )
            )
        else:
            wall.append(_absolute_finding(key, r, var_now, var_before))
    if r.counts_decide:
        # The ratio involves the reference too: both counts must be unchanged to outrank it.
        unchanged = counted is not None and counted.status == UNCHANGED
        both = unchanged and (ref_counted is None or ref_counted.status == UNCHANGED)
        wall = [
            _demote(f, "the instruction counts are unchanged")
            if (both if f.rule == "ratio" else unchanged)
            else f
            for f in wall
        ]
    out.extend(wall)
    if r.counts:
        for rule, b, n, tol in (
            ("flops", var_before.flops_per_call, var_now.flops_per_call, r.count_tolerance),
            ("parameters", var_before.parameters, var_now.parameters, r.count_tolerance),
        ):
            finding = _count_finding(key, rule, b, n, tol)
            if finding:
                out.append(finding)
        if key[2].startswith("cuda") and not difference:
            finding = _count_finding(
                key, "cuda_memory", peak_bytes(var_before), peak_bytes(var_now), r.memory_tolerance
            )
            if finding:
                out.append(finding)
    return out


def gate(current: Run, baseline: Run, rules: RuleSet | None = None) -> GateResult:
    """Every rule on every implementation the two runs have in common."""
    rules = rules or RuleSet()
    now = _index([*current.records, *current.failures])
    before = _index([*baseline.records, *baseline.failures])
    common = [k for k in before if k in now]
    if not common:
        raise ResultsError(
            f"{current.path} and {baseline.path} have no benchmark in common (same case, grid point, device "
            "and variant); was the baseline made with the same profile?"
        )
    difference = machine_difference(current, baseline)
    other_cpu = current.environment.get("cpu_model") != baseline.environment.get("cpu_model")
    findings: list[Finding] = []
    for key in sorted(before):
        r = rules.for_case(key[0])
        var_before, var_now = before[key], now.get(key)
        if var_now is None:
            findings.append(
                Finding(
                    *key, rule="presence", status=NOT_COMPARABLE, detail="in the baseline, not in this run"
                )
            )
            continue
        if r.correctness and _passed(var_before) and not _passed(var_now):
            error = (var_now.error or {}).get("message", "failed its correctness check")
            findings.append(Finding(*key, rule="correctness", status=REGRESSION, detail=error))
            continue
        if not (var_now.timed and var_before.timed):
            continue
        findings.extend(_findings(key, r, now, before, var_now, var_before, difference, other_cpu))
    for key in now:
        if key not in before:
            findings.append(
                Finding(*key, rule="presence", status=NOT_COMPARABLE, detail="new in this run (no baseline)")
            )
    return GateResult(tuple(findings), not difference, difference)
