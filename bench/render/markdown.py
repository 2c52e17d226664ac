"""GitHub-flavoured markdown tables of comparisons, claims and failures."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bench.claims import ClaimResult
from bench.compare import Comparison
from bench.render import format as fmt
from bench.render.tables import COUNT_COLUMNS, GPU_COLUMN, by_case, cells, columns

_RIGHT = {
    "Median",
    "IQR",
    "Speedup [95% CI]",
    "Peak mem Δ",
    "Mem vs ref",
    "GFLOP/s",
    "% peak",
    "Throughput",
    *COUNT_COLUMNS,
    GPU_COLUMN,
}


def escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], right: set[str] | None = None) -> str:
    right = right or set()
    lines = [
        "| " + " | ".join(escape(h) for h in headers) + " |",
        "|" + "|".join("---:" if h in right else "---" for h in headers) + "|",
    ]
    lines += ["| " + " | ".join(escape(str(c)) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def comparison_tables(rows: Iterable[Comparison]) -> dict[str, str]:
    """Markdown table per case, keyed by case name."""
    tables = {}
    for case, case_rows in by_case(rows).items():
        heads = columns(case_rows)
        extra = {"gpu": GPU_COLUMN in heads, "counts": COUNT_COLUMNS[0] in heads}
        tables[case] = table(heads, [cells(r, **extra) for r in case_rows], _RIGHT)
    return tables


def claims_table(results: Iterable[ClaimResult]) -> str:
    return table(
        ("Claim", "Case", "Claimed", "Measured", "Verdict", "Where / note"),
        [
            (
                f"**{r.id}** {r.text}",
                f"`{r.case}`",
                fmt.claim_expected(r),
                fmt.claim_value(r),
                f"**{r.verdict}**",
                "; ".join(x for x in (r.where, r.note) if x) or fmt.DASH,
            )
            for r in results
        ],
    )
