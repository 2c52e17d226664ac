"""Loading pytest-benchmark JSON written by the harness into typed records and a pandas DataFrame."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from bench.case import point_id
from bench.errors import ResultsError

SUPPORTED_SCHEMAS = (1,)
PLAIN = "plain"  # the role of a benchmark that a plain pytest-benchmark run wrote


@dataclass(frozen=True)
class Record:
    """One implementation of one case at one grid point on one device, timed or failed."""

    case: str
    family: str
    variant: str
    role: str
    params: Mapping[str, Any]
    device: str
    mode: str
    exact: bool
    note: str = ""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    dtype: str | None = None
    work_unit: str | None = None
    work_per_call: float | None = None
    correctness: Mapping[str, Any] | None = None
    memory: Mapping[str, Any] | None = None
    gpu: Mapping[str, Any] | None = None
    flops_per_call: float | None = None
    flops_source: str | None = None
    parameters: int | None = None
    extra: Mapping[str, float] = field(default_factory=dict)
    error: Mapping[str, str] | None = None
    rounds_s: tuple[float, ...] = ()
    # Per-pair speedups from rounds alternating with the reference (bench.paired); () when none.
    paired_ratios: tuple[float, ...] = ()
    # Pooled records only (pool_runs): the variant's speedup in each run, one value per run.
    run_speedups: tuple[float, ...] = ()
    median_s: float | None = None
    iqr_s: float | None = None
    mean_s: float | None = None
    min_s: float | None = None
    iterations: int | None = None
    source: str = ""
    # Instruction counts of one call under callgrind (bench.counts), when the run asked for them.
    counts: Mapping[str, Any] | None = None

    @property
    def point(self) -> str:
        return point_id(self.params)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What identifies this implementation's item across runs: case, grid point, device, variant."""
        return self.case, self.point, self.device, self.variant

    @property
    def timed(self) -> bool:
        return self.error is None and self.median_s is not None

    @property
    def instructions_per_call(self) -> float | None:
        value = (self.counts or {}).get("instructions_per_call")
        return float(value) if value is not None else None

    @property
    def plain(self) -> bool:
        """A plain pytest-benchmark record: no reference, no harness data, only its rounds."""
        return self.role == PLAIN


@dataclass(frozen=True)
class Run:
    """One results file: its records, failures and run-level data."""

    path: str
    datetime: str
    info: Mapping[str, Any]
    records: tuple[Record, ...]
    failures: tuple[Record, ...]
    foreign: int = 0  # benchmarks in the file that the harness did not write

    @property
    def environment(self) -> Mapping[str, Any]:
        return self.info.get("environment", {})

    @property
    def claims(self) -> list[Mapping[str, Any]]:
        return list(self.info.get("claims", []))

    @property
    def profile(self) -> str:
        return str(self.info.get("profile", "?"))


def _record(bench: Mapping[str, Any], stats: Mapping[str, Any] | None, source: str) -> Record:
    work = bench.get("work") or {}
    flops = bench.get("flops") or {}
    data: Sequence[float] = (stats or {}).get("data") or ()
    return Record(
        case=bench["case"],
        family=bench.get("family", bench["case"].split(".", 1)[0]),
        variant=bench["variant"],
        role=bench["role"],
        params=dict(bench["params"]),
        device=bench["device"],
        mode=bench["mode"],
        exact=bool(bench.get("exact", True)),
        note=bench.get("note", ""),
        overrides=dict(bench.get("overrides") or {}),
        dtype=bench.get("dtype"),
        work_unit=work.get("unit"),
        work_per_call=work.get("per_call"),
        correctness=bench.get("correctness"),
        memory=bench.get("memory"),
        gpu=bench.get("gpu"),
        flops_per_call=flops.get("per_call"),
        flops_source=flops.get("source"),
        parameters=bench.get("parameters"),
        extra=dict(bench.get("extra") or {}),
        error=bench.get("error"),
        rounds_s=tuple(float(x) for x in data),
        paired_ratios=tuple(float(x) for x in ((bench.get("paired") or {}).get("ratios") or ())),
        median_s=(stats or {}).get("median"),
        iqr_s=(stats or {}).get("iqr"),
        mean_s=(stats or {}).get("mean"),
        min_s=(stats or {}).get("min"),
        iterations=(stats or {}).get("iterations"),
        source=source,
        counts=bench.get("counts"),
    )


def _plain_record(entry: Mapping[str, Any], source: str) -> Record:
    """A benchmark of a plain pytest-benchmark file, keyed by its full test name."""
    stats = entry.get("stats") or {}
    return Record(
        case=str(entry.get("fullname") or entry["name"]),
        family=str(entry.get("group") or ""),
        variant="benchmark",
        role=PLAIN,
        params={},
        device="cpu",
        mode=PLAIN,
        exact=True,
        rounds_s=tuple(float(x) for x in stats.get("data") or ()),
        median_s=stats.get("median"),
        iqr_s=stats.get("iqr"),
        mean_s=stats.get("mean"),
        min_s=stats.get("min"),
        iterations=stats.get("iterations"),
        source=source,
    )


def _plain_environment(machine: Mapping[str, Any]) -> dict[str, Any]:
    """pytest-benchmark's machine_info in the names the harness's environment uses."""
    cpu = machine.get("cpu") or {}
    return {
        "cpu_model": cpu.get("brand_raw"),
        "cpu_count": cpu.get("count"),
        "python": machine.get("python_version"),
        "platform": f"{machine.get('system', '')} {machine.get('release', '')}".strip() or None,
        "hostname": machine.get("node"),
    }


def load_run(path: str | Path) -> Run:
    """Read one JSON file; ResultsError says what is wrong with it and what to do."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ResultsError(f"cannot read results file {path}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ResultsError(f"{path} is not a pytest-benchmark results file (no 'benchmarks' list)")
    info = doc.get("bench")
    if info is None:
        return _plain_run(path, doc)
    if not isinstance(info, dict):
        raise ResultsError(f"{path} has a 'bench' section that is not an object")
    if info.get("schema") not in SUPPORTED_SCHEMAS:
        raise ResultsError(
            f"{path} has results schema {info.get('schema')!r}; this version reads {SUPPORTED_SCHEMAS}"
        )
    records, foreign = [], 0
    try:
        for entry in doc["benchmarks"]:
            bench = (entry.get("extra_info") or {}).get("bench")
            if bench is None:
                foreign += 1
                continue
            records.append(_record(bench, entry.get("stats"), str(path)))
        failures = [_record(f, None, str(path)) for f in info.get("failures", [])]
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ResultsError(f"{path} has a malformed benchmark record ({type(exc).__name__}: {exc})") from None
    return Run(str(path), str(doc.get("datetime", "")), info, tuple(records), tuple(failures), foreign)


def _plain_run(path: Path, doc: Mapping[str, Any]) -> Run:
    """A file that plain pytest-benchmark wrote (no harness data): its benchmarks as plain records."""
    try:
        records = tuple(_plain_record(entry, str(path)) for entry in doc["benchmarks"])
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ResultsError(f"{path} has a malformed benchmark entry ({type(exc).__name__}: {exc})") from None
    if not records:
        raise ResultsError(f"{path} holds no benchmarks")
    info = {"plain": True, "profile": PLAIN, "environment": _plain_environment(doc.get("machine_info") or {})}
    return Run(str(path), str(doc.get("datetime", "")), info, records, ())


def run_speedup(variant: Record, reference: Record) -> float | None:
    """A variant's speedup within one run: from its paired rounds when it has them."""
    if variant.paired_ratios:
        return float(statistics.median(variant.paired_ratios))
    if variant.median_s and reference.median_s:
        return reference.median_s / variant.median_s
    return None


def pool_runs(runs: Sequence[Run]) -> Run:
    """Several runs of the same selection as one: rounds and paired ratios pooled, per-run speedups kept.

    On a shared machine the run (process) is the unit that varies most: the same speedup moves by
    10-20 % from one process to the next. Pooled records keep each run's speedup, so the gate can
    compare runs with runs instead of rounds with rounds.
    """
    if not runs:
        raise ResultsError("no results files given")
    if len(runs) == 1:
        return runs[0]
    timed: dict[tuple[str, str, str, str], list[Record]] = {}
    speedups: dict[tuple[str, str, str, str], list[float]] = {}
    failures: dict[tuple[str, str, str, str], Record] = {}
    for run in runs:
        refs = {(r.case, r.point, r.device): r for r in run.records if r.variant == "reference"}
        for rec in run.records:
            timed.setdefault(rec.key, []).append(rec)
            ref = refs.get((rec.case, rec.point, rec.device))
            value = run_speedup(rec, ref) if ref is not None and rec.variant != "reference" else None
            if value is not None:
                speedups.setdefault(rec.key, []).append(value)
        for rec in run.failures:
            failures.setdefault(rec.key, rec)
    records = []
    for key, recs in timed.items():
        if key in failures:
            continue  # failed in some run: the pooled run reports the failure
        rounds = tuple(x for r in recs for x in r.rounds_s)
        records.append(
            replace(
                recs[0],
                rounds_s=rounds,
                paired_ratios=tuple(x for r in recs for x in r.paired_ratios),
                run_speedups=tuple(speedups.get(key, ())),
                median_s=float(statistics.median(rounds)) if rounds else recs[0].median_s,
                source=f"{len(recs)} runs",
            )
        )
    first = runs[0]
    return Run(
        path=f"{first.path} and {len(runs) - 1} more",
        datetime=first.datetime,
        info=first.info,
        records=tuple(records),
        failures=tuple(failures.values()),
        foreign=sum(r.foreign for r in runs),
    )


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    runs = [load_run(p) for p in paths]
    if not runs:
        raise ResultsError("no results files given")
    return runs


def frame(runs: Iterable[Run]) -> pd.DataFrame:
    """One row per record (timed and failed), params flattened to columns ``param.<name>``."""
    rows = []
    for run in runs:
        for rec in (*run.records, *run.failures):
            row = {
                "source": rec.source,
                "case": rec.case,
                "family": rec.family,
                "variant": rec.variant,
                "role": rec.role,
                "point": rec.point,
                "device": rec.device,
                "mode": rec.mode,
                "exact": rec.exact,
                "median_s": rec.median_s,
                "iqr_s": rec.iqr_s,
                "rounds": len(rec.rounds_s),
                "flops_per_call": rec.flops_per_call,
                "parameters": rec.parameters,
                "cpu_peak_rss_delta_bytes": (rec.memory or {}).get("cpu_peak_rss_delta_bytes"),
                "cuda_peak_allocated_bytes": (rec.memory or {}).get("cuda_peak_allocated_bytes"),
                "error": (rec.error or {}).get("kind"),
            }
            row.update({f"param.{k}": v for k, v in rec.params.items()})
            rows.append(row)
    return pd.DataFrame(rows)
