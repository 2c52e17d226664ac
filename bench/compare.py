"""Speedups, memory ratios, and achieved FLOP rates and bandwidths against the machine's limits, per run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.results import Record, Run
from bench.stats import Speedup, ratio_interval, trial_speedup

# Below this, resident-set growth is page-level noise and a ratio of two such numbers means nothing.
MIN_RATIO_BYTES = 2**20
# Work units that are bytes moved: their throughput is an achieved bandwidth.
BYTE_UNITS = {
    "B": 1.0,
    "bytes": 1.0,
    "kB": 1e3,
    "MB": 1e6,
    "GB": 1e9,
    "KiB": 2.0**10,
    "MiB": 2.0**20,
    "GiB": 2.0**30,
}
# Which limit an achieved bandwidth is shown against.
MEMORY, CACHE, PARTLY_CACHED, OVER = "memory", "cache", "partly cached", "over"
# STREAM's rule: data up to 4x the last-level cache may still be served from it in part.
CACHE_MULTIPLE = 4


def speedup(base: Record, var: Record) -> Speedup | None:
    """How much faster ``var`` is than ``base`` (both of one group, one run), with its interval:
    the one computation behind every speedup the harness shows, judges or gates on.

    The variant's stored speedup where ``base`` is its reference; else the trials of the two, which
    ran in the same worker processes (bench.stats.trial_speedup); for files without trials (older
    runs, plain pytest-benchmark files), a bootstrap of the two sets of rounds of one process,
    labelled as such.
    """
    if not (base.timed and var.timed and base.median_s and var.median_s):
        return None
    if var.speedup and base.role == "reference" and var.role != "reference":
        return Speedup.from_dict(var.speedup)
    if base is var:
        return None
    if base.trials and len(base.trials) == len(var.trials):
        found = trial_speedup(base.trials, var.trials)
        if found is not None:
            return found
    ci = ratio_interval(base.rounds_s, var.rounds_s)
    ratio = base.median_s / var.median_s
    low, high = ci if ci else (ratio, ratio)
    return Speedup(
        ratio, low, high, 1, "bootstrap of the rounds of one process" if ci else "fewer than 3 rounds"
    )


@dataclass(frozen=True)
class BandwidthUse:
    """An achieved bandwidth against the limit that applies to it.

    ``limit`` is ``MEMORY`` (the STREAM bandwidth far beyond the last-level cache); above it,
    ``CACHE`` (the bytes one call moves fit in the last-level cache, so repeated calls run from
    it: shown against the measured cache bandwidth), ``PARTLY_CACHED`` (the bytes are within 4x
    the cache, so part of them may stay in it: between the two limits, no percentage of either),
    or ``OVER`` (above every limit that can apply: the byte count or the limit is wrong; no
    percentage).
    """

    achieved_gbs: float
    limit: str
    limit_gbs: float | None
    pct: float | None


def bandwidth_use(
    achieved_gbs: float, bytes_per_call: float, limits: Mapping[str, Any]
) -> BandwidthUse | None:
    """Which limit an achieved bandwidth is measured against (None when the run measured none)."""
    memory = limits.get("memory_gbs") or limits.get("copy_gbs")  # runs before STREAM: copy only
    if not memory:
        return None
    if achieved_gbs <= memory:
        return BandwidthUse(achieved_gbs, MEMORY, memory, 100 * achieved_gbs / memory)
    cache, llc = limits.get("cache_gbs"), limits.get("llc_bytes")
    if cache and llc and achieved_gbs <= cache:
        if bytes_per_call <= llc:
            return BandwidthUse(achieved_gbs, CACHE, cache, 100 * achieved_gbs / cache)
        if bytes_per_call <= CACHE_MULTIPLE * llc:
            return BandwidthUse(achieved_gbs, PARTLY_CACHED, cache, None)
    return BandwidthUse(achieved_gbs, OVER, memory, None)


@dataclass(frozen=True)
class Comparison:
    """One row of a comparison table: an implementation beside its reference."""

    case: str
    family: str
    params: Mapping[str, Any]
    device: str
    variant: str
    role: str
    exact: bool
    note: str = ""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    median_s: float | None = None
    iqr_s: float | None = None
    rounds: int = 0
    speedup: float | None = None
    speedup_ci: tuple[float, float] | None = None
    speedup_method: str | None = None
    aa: Speedup | None = None  # the reference's A/A control (the reference timed again as a variant)
    peak_bytes: int | None = None
    memory_ratio: float | None = None
    correctness: str = ""
    correct: bool = True
    gflops: float | None = None
    pct_of_peak: float | None = None
    throughput: float | None = None
    work_unit: str | None = None
    parameters: int | None = None
    error: str | None = None
    source: str = ""
    gpu_util_pct: tuple[float, float] | None = None  # NVML utilisation during the probe: mean, max
    instructions: float | None = None  # per call, under callgrind (bench run --counts)
    instruction_ratio: float | None = None  # reference's instructions / this one's: the count "speedup"
    counts_note: str | None = None  # why an item asked to be counted has no count
    bandwidth: BandwidthUse | None = None  # where the work unit is bytes: achieved vs its limit

    @property
    def point(self) -> str:
        return "-".join(f"{k}{v}" for k, v in self.params.items())


def gpu_util(record: Record) -> tuple[float, float] | None:
    """Mean and max GPU utilisation (%) sampled through NVML during the probe pass, if any."""
    gpu = record.gpu or {}
    mean, peak = gpu.get("util_mean_pct"), gpu.get("util_max_pct")
    return (float(mean), float(peak)) if mean is not None and peak is not None else None


def peak_bytes(record: Record) -> int | None:
    """The call's own peak memory: CUDA allocator growth on CUDA, resident-set growth on CPU."""
    memory = record.memory or {}
    key = (
        "cuda_peak_allocated_delta_bytes" if record.device.startswith("cuda") else "cpu_peak_rss_delta_bytes"
    )
    value = memory.get(key)
    return int(value) if value is not None else None


def peak_samples(record: Record) -> list[int]:
    """The resident-set growth of each pass of the memory probe (CPU; several where a claim is
    judged on them); empty on CUDA, whose allocator peak is exact."""
    if record.device.startswith("cuda"):
        return []
    return [int(x) for x in (record.memory or {}).get("cpu_peak_rss_delta_samples") or ()]


def correctness_text(record: Record) -> tuple[str, bool]:
    """A short cell for the table and whether it is a pass."""
    if record.role == "reference":
        return "reference", True
    corr = record.correctness or {}
    if record.error and record.error.get("kind") == "mismatch":
        return f"MISMATCH (max rel err {corr.get('max_rel_err', float('nan')):.2g})", False
    if not corr:
        return "not checked", record.error is None
    if corr.get("exact"):
        return f"exact (max rel err {corr.get('max_rel_err', 0.0):.1e})", bool(corr.get("passed"))
    if corr.get("quality_metric"):
        return f"≈ {corr['quality_metric']} = {corr['value']:.4g}", True
    return "not compared (different workload)", True


def compare_run(run: Run) -> list[Comparison]:
    """Rows for every record of a run, grouped by case, grid point and device, reference first."""
    peaks = run.environment.get("peak", {})
    case_info = run.info.get("cases", {})
    groups: dict[tuple[str, str, str], list[Record]] = {}
    for rec in (*run.records, *run.failures):
        groups.setdefault((rec.case, rec.point, rec.device), []).append(rec)
    rows: list[Comparison] = []
    for (case, _, device), recs in groups.items():
        order = list(case_info.get(case, {}).get("variants", {}))
        recs.sort(key=lambda r: order.index(r.variant) if r.variant in order else len(order))
        ref = next((r for r in recs if r.role == "reference" and r.timed), None)
        ref_peak = peak_bytes(ref) if ref else None
        limits = peaks.get(device.split(":")[0]) or {}
        device_peak = limits.get("gflops_fp32")
        for rec in recs:
            found = speedup(ref, rec) if ref is not None and rec is not ref else None
            value = 1.0 if rec is ref and rec.timed else (found.estimate if found else None)
            ci = (found.low, found.high) if found is not None and found.low < found.high else None
            mine = peak_bytes(rec)
            gflops = (
                rec.flops_per_call / rec.median_s / 1e9
                if rec.flops_per_call and rec.timed and rec.median_s
                else None
            )
            text, ok = correctness_text(rec)
            mine_ir, ref_ir = rec.instructions_per_call, ref.instructions_per_call if ref else None
            scale = BYTE_UNITS.get(rec.work_unit or "")
            bandwidth = (
                bandwidth_use(
                    rec.work_per_call * scale / rec.median_s / 1e9, rec.work_per_call * scale, limits
                )
                if scale and rec.work_per_call and rec.timed and rec.median_s
                else None
            )
            rows.append(
                Comparison(
                    case=rec.case,
                    family=rec.family,
                    params=rec.params,
                    device=device,
                    variant=rec.variant,
                    role=rec.role,
                    exact=rec.exact,
                    note=rec.note,
                    overrides=rec.overrides,
                    median_s=rec.median_s if rec.timed else None,
                    iqr_s=rec.iqr_s if rec.timed else None,
                    rounds=len(rec.rounds_s),
                    speedup=value,
                    speedup_ci=ci,
                    speedup_method=found.method if found else None,
                    aa=Speedup.from_dict(rec.aa) if rec.aa else None,
                    peak_bytes=mine,
                    memory_ratio=(
                        mine / ref_peak
                        if mine is not None and ref_peak and ref_peak >= MIN_RATIO_BYTES
                        else None
                    ),
                    correctness=text,
                    correct=ok,
                    gflops=gflops,
                    pct_of_peak=100 * gflops / device_peak if gflops and device_peak else None,
                    throughput=(
                        rec.work_per_call / rec.median_s
                        if rec.work_per_call and rec.timed and rec.median_s
                        else None
                    ),
                    work_unit=rec.work_unit,
                    parameters=rec.parameters,
                    error=f"{rec.error['kind']}: {rec.error['message']}" if rec.error else None,
                    source=rec.source,
                    gpu_util_pct=gpu_util(rec),
                    bandwidth=bandwidth,
                    instructions=mine_ir,
                    instruction_ratio=ref_ir / mine_ir if mine_ir and ref_ir else None,
                    counts_note=(rec.counts or {}).get("reason") if rec.counts and mine_ir is None else None,
                )
            )
    return rows


def compare_runs(runs: list[Run]) -> list[Comparison]:
    return [row for run in runs for row in compare_run(run)]
