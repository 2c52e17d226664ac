"""The comparison table's columns and cells, shared by the console and markdown renderers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bench.compare import CACHE, MEMORY, PARTLY_CACHED, BandwidthUse, Comparison
from bench.render import format as fmt

COLUMNS = (
    "Point",
    "Device",
    "Variant",
    "Median",
    "IQR",
    "Speedup [95% CI]",
    "Peak mem Δ",
    "Mem vs ref",
    "Correctness",
    "GFLOP/s",
    "% peak",
    "Throughput",
)
GPU_COLUMN = "GPU util"
COUNT_COLUMNS = ("Instructions", "Count ratio")


def columns(rows: Sequence[Comparison]) -> tuple[str, ...]:
    """The table's columns: GPU utilisation only where some row was sampled through NVML,
    instruction counts only where some row was counted (or asked to be)."""
    heads: tuple[str, ...] = COLUMNS
    if any(r.instructions is not None or r.counts_note for r in rows):
        at = COLUMNS.index("Speedup [95% CI]") + 1  # the count ratio beside the time ratio
        heads = (*COLUMNS[:at], *COUNT_COLUMNS, *COLUMNS[at:])
    return (*heads, GPU_COLUMN) if any(r.gpu_util_pct is not None for r in rows) else heads


def cells(row: Comparison, gpu: bool = False, counts: bool = False) -> list[str]:
    """The row's cells under ``columns``: the count cells after the speedup when ``counts``, the
    GPU utilisation cell last when ``gpu``."""
    variant = row.variant
    if row.overrides:
        variant += f" ({fmt.params(dict(row.overrides))})"
    if row.error:
        timing = [f"not timed ({row.error.split(':', 1)[0]})", fmt.DASH, fmt.DASH]
    else:
        timing = [fmt.seconds(row.median_s), fmt.seconds(row.iqr_s), fmt.ratio(row.speedup, row.speedup_ci)]
    throughput = (
        f"{row.throughput:.3g} {row.work_unit}/s" + _bandwidth(row.bandwidth)
        if row.throughput is not None and row.work_unit
        else fmt.DASH
    )
    return [
        fmt.params(dict(row.params)),
        row.device,
        variant,
        *timing,
        *(_counts(row) if counts else []),
        fmt.nbytes(row.peak_bytes),
        fmt.ratio(row.memory_ratio),
        row.correctness,
        fmt.number(row.gflops),
        _pct_of_peak(row.pct_of_peak),
        throughput,
        *([_gpu_util(row)] if gpu else []),
    ]


def _counts(row: Comparison) -> list[str]:
    """Instructions per call and the count ratio (the reference's count over this one's)."""
    if row.instructions is None:
        return [f"not counted ({row.counts_note})" if row.counts_note else fmt.DASH, fmt.DASH]
    ratio = fmt.ratio(row.instruction_ratio) if row.role != "reference" else "1×"
    return [f"{row.instructions:,.0f}", ratio]


def _pct_of_peak(pct: float | None) -> str:
    if pct is None:
        return fmt.DASH
    # No achieved rate may exceed its roof: above it, the FLOP count or the measured peak is wrong.
    return "over peak" if pct > 100 else f"{pct:.3g} %"


def _bandwidth(use: BandwidthUse | None) -> str:
    """What an achieved bandwidth is against: the memory limit, the cache's, or neither."""
    if use is None:
        return ""
    if use.limit == MEMORY:
        return f" ({use.pct:.3g} % of memory bw)"
    if use.limit == CACHE:
        return f" (cache-resident, {use.pct:.3g} % of cache bw)"
    if use.limit == PARTLY_CACHED:
        return " (above memory bw: partly cache-resident)"
    return " (over the limit)"


def _gpu_util(row: Comparison) -> str:
    if row.gpu_util_pct is None:
        return fmt.DASH
    mean, peak = row.gpu_util_pct
    return f"{mean:.0f} % (max {peak:.0f})"


def by_case(rows: Iterable[Comparison]) -> dict[str, list[Comparison]]:
    grouped: dict[str, list[Comparison]] = {}
    for row in rows:
        grouped.setdefault(row.case, []).append(row)
    return grouped
