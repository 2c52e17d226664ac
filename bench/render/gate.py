"""The gate's markdown summary: regressions, improvements, counts, and what could not be compared."""

from __future__ import annotations

from bench.gate import (
    IMPROVEMENT,
    NOT_COMPARABLE,
    REGRESSION,
    UNCHANGED,
    WALL_CLOCK_RULES,
    WARNING,
    Finding,
    GateResult,
)
from bench.render import format as fmt
from bench.render.markdown import table


def _value(finding: Finding, value: float | None) -> str:
    if value is None:
        return fmt.DASH
    if finding.rule == "ratio":
        return fmt.ratio(value)
    if finding.rule == "absolute":
        return fmt.seconds(value)
    if finding.rule == "instructions":
        return f"{value:,.0f}"
    if finding.rule == "cuda_memory":
        return fmt.nbytes(value)
    return fmt.count(value)


def _change(finding: Finding) -> str:
    if finding.change is None:
        return fmt.DASH
    text = f"{100 * finding.change:+.1f} %"
    if finding.interval:
        text += f" [{100 * finding.interval[0]:+.1f}, {100 * finding.interval[1]:+.1f}]"
    return text


def _rows(findings: list[Finding]) -> list[list[str]]:
    return [
        [
            f"`{f.case}`",
            f.point,
            f.device,
            f"`{f.variant}`",
            f.rule,
            _value(f, f.before),
            _value(f, f.now),
            _change(f),
            f.detail,
        ]
        for f in findings
    ]


HEADERS = ("Case", "Point", "Device", "Variant", "Rule", "Baseline", "Now", "Change [95% CI]", "Detail")


def _engines(result: GateResult) -> str:
    """What each engine judged: instruction counts first, wall clock for the rest."""
    parts = []
    for label, rules in (("instruction counts", ("instructions",)), ("wall clock", WALL_CLOCK_RULES)):
        mine = [f for f in result.findings if f.rule in rules]
        judged = [f for f in mine if f.status != NOT_COMPARABLE]
        if mine:
            failing = sum(f.status == REGRESSION for f in mine)
            parts.append(f"{label}: {len(judged)} judged, {failing} regressions")
    return "; ".join(parts)


def render_gate(result: GateResult, current: str, baseline: str, note: str = "") -> str:
    regressions = result.with_status(REGRESSION)
    improvements = result.with_status(IMPROVEMENT)
    warnings = result.with_status(WARNING)
    verdict = "**FAIL**" if regressions else "**PASS**"
    out = [
        f"## Benchmark gate: {verdict}",
        "",
        f"`{current}` against the baseline `{baseline}`: {len(regressions)} regressions, "
        f"{len(improvements)} improvements, {len(warnings)} warnings, {len(result.with_status(UNCHANGED))} "
        f"unchanged, {len(result.with_status(NOT_COMPARABLE))} not comparable.",
        "",
    ]
    engines = _engines(result)
    if engines:
        out += [f"By engine: {engines}.", ""]
    if note:
        out += [f"Baseline: {note}.", ""]
    if not result.same_machine:
        out += [
            f"The runs differ in {result.machine_note}: absolute times were not compared. Instruction "
            "counts (where the code path matches), speedup ratios (each measured within one run; a "
            "warning only where the CPU model differs), FLOPs and parameter counts still were.",
            "",
        ]
    if regressions:
        out += ["### Regressions", "", table(HEADERS, _rows(regressions)), ""]
    if improvements:
        out += [
            "### Improvements",
            "",
            "Better than the baseline beyond the threshold: refresh the baseline (`bench baseline save`) "
            "to keep the gate tight.",
            "",
            table(HEADERS, _rows(improvements)),
            "",
        ]
    if warnings:
        out += [
            "### Warnings",
            "",
            "Wall-clock changes that do not fail the gate: the instruction counts of the same code are "
            "unchanged, or the speedup was measured on another CPU model.",
            "",
            table(HEADERS, _rows(warnings)),
            "",
        ]
    others = result.with_status(NOT_COMPARABLE)
    if others:
        out += ["### Not comparable", "", table(HEADERS, _rows(others)), ""]
    return "\n".join(out)
