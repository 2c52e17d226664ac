"""The gate's markdown summary: regressions, improvements, counts, and what could not be compared."""

from __future__ import annotations

from bench.gate import IMPROVEMENT, NOT_COMPARABLE, REGRESSION, UNCHANGED, Finding, GateResult
from bench.render import format as fmt
from bench.render.markdown import table


def _value(finding: Finding, value: float | None) -> str:
    if value is None:
        return fmt.DASH
    if finding.rule == "ratio":
        return fmt.ratio(value)
    if finding.rule == "absolute":
        return fmt.seconds(value)
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


def render_gate(result: GateResult, current: str, baseline: str) -> str:
    regressions = result.with_status(REGRESSION)
    improvements = result.with_status(IMPROVEMENT)
    verdict = "**FAIL**" if regressions else "**PASS**"
    out = [
        f"## Benchmark gate: {verdict}",
        "",
        f"`{current}` against the baseline `{baseline}`: {len(regressions)} regressions, "
        f"{len(improvements)} improvements, {len(result.with_status(UNCHANGED))} unchanged, "
        f"{len(result.with_status(NOT_COMPARABLE))} not comparable.",
        "",
    ]
    if not result.same_machine:
        out += [
            f"Absolute times were not compared: the runs differ in {result.machine_note}. Speedup "
            "ratios (each measured within one run), FLOPs and parameter counts still were.",
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
    others = result.with_status(NOT_COMPARABLE)
    if others:
        out += ["### Not comparable", "", table(HEADERS, _rows(others)), ""]
    return "\n".join(out)
