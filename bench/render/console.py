"""Rich console tables of comparisons and claims."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bench.claims import HOLDS, INCONCLUSIVE, OTHER_HARDWARE, REFUTED, UNDERSTATED, ClaimResult
from bench.compare import Comparison
from bench.render import format as fmt
from bench.render.tables import COUNT_COLUMNS, GPU_COLUMN, by_case, cells, columns

_VERDICT_STYLE = {
    HOLDS: "green",
    UNDERSTATED: "cyan",
    REFUTED: "red",
    INCONCLUSIVE: "magenta",
    OTHER_HARDWARE: "yellow",
}


def comparison_tables(rows: Iterable[Comparison]) -> list[Table]:
    tables = []
    for case, case_rows in by_case(rows).items():
        table = Table(title=escape(f"{case} ({case_rows[0].family})"), title_justify="left", show_lines=False)
        heads = columns(case_rows)
        for column in heads:
            table.add_column(
                column,
                justify="right" if column not in ("Variant", "Correctness", "Point") else "left",
                no_wrap=column in ("Median", "Speedup [95% CI]"),
            )
        previous = None
        for row in case_rows:
            key = (row.point, row.device)
            if previous is not None and key != previous:
                table.add_section()
            previous = key
            style = "red" if row.error or not row.correct else ("bold" if row.role == "reference" else None)
            table.add_row(
                *(
                    Text(cell)
                    for cell in cells(row, gpu=GPU_COLUMN in heads, counts=COUNT_COLUMNS[0] in heads)
                ),
                style=style,
            )
        tables.append(table)
    return tables


def claims_table(results: Iterable[ClaimResult]) -> Table:
    table = Table(title="Claims audit", title_justify="left")
    for column in ("Claim", "Case", "Expected", "Measured", "Verdict", "Where / note"):
        table.add_column(column, overflow="fold")
    for r in results:
        table.add_row(
            Text(f"{r.id}: {r.text}"),
            Text(r.case),
            Text(fmt.claim_expected(r)),
            Text(fmt.claim_value(r)),
            Text(r.verdict, style=_VERDICT_STYLE.get(r.verdict, "dim")),
            Text("; ".join(x for x in (r.where, r.note) if x)),
        )
    return table


def print_results(console: Console, rows: list[Comparison], claims: list[ClaimResult]) -> None:
    for table in comparison_tables(rows):
        console.print(table)
    if claims:
        console.print(claims_table(claims))
    controls = [r for r in rows if r.aa is not None]
    if controls:
        bad = [r for r in controls if r.aa is not None and not r.aa.contains(1.0)]
        line = (
            f"A/A control: {len(controls) - len(bad)} of {len(controls)} intervals of the reference "
            "against itself contain 1"
        )
        if bad:
            where = ", ".join(f"{r.case}[{r.point}-{r.device}] {r.aa.estimate:.3f}×" for r in bad if r.aa)
            line += f"; not trustworthy in this run: {where}"
        console.print(Text(line, style="yellow" if bad else "dim"))
