"""Loading pytest-benchmark JSON written by the harness into typed records and a pandas DataFrame."""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.case import point_id
from bench.errors import ResultsError

if TYPE_CHECKING:
    import pandas as pd  # imported where a frame is built: loading results needs no pandas

SCHEMA = 1  # what the writer writes, in each record and at run level
SUPPORTED_SCHEMAS = (1,)
PLAIN = "plain"  # the role of a benchmark that a plain pytest-benchmark run wrote

# Keys of a record's JSON that are written only when they hold something (older files lack them).
_OPTIONAL_KEYS = ("paired", "trace", "flops_error", "counts", "item", "aa")


@dataclass(frozen=True)
class Record:
    """One implementation of one case at one grid point on one device, timed or failed.

    The one record type of the harness: the writer (bench.session) builds one per item and stores
    ``to_json()`` as the benchmark's ``extra_info["bench"]`` (and, for a failed item, in the run's
    ``bench.failures``); the reader rebuilds it with ``from_json`` from that dict and
    pytest-benchmark's ``stats``. The timing fields (``rounds_s``, ``median_s``, ...) come from
    pytest-benchmark's statistics, ``source`` and ``run_speedups`` from loading; they are not part of
    the record's JSON.
    """

    case: str
    family: str
    variant: str
    role: str  # "reference", "variant", or PLAIN
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
    flops_source: str | None = None  # "counted" | "declared"
    parameters: int | None = None
    extra: Mapping[str, float] = field(default_factory=dict)
    error: Mapping[str, str] | None = None  # {kind, message}
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
    profile: str | None = None
    warmup_calls: int | None = None
    # The checked (untimed) first call, and the implementation's one-time prepare (None: none).
    first_call_s: float | None = None
    prepare_s: float | None = None
    # Calls per batch of the paired rounds: (reference, variant); None without paired rounds.
    paired_iterations: tuple[int, int] | None = None
    trace: str | None = None  # the folder of the item's profiler trace, when traces were asked for
    flops_error: str | None = None  # why FLOPs could not be counted
    item: str | None = None  # the item's name, on failed records
    # The speedup over the reference with its interval over the trials (bench.stats.Speedup's
    # dict); None for the reference, and for files written before trials.
    speedup: Mapping[str, Any] | None = None
    # The reference only: its A/A control, the reference timed again as if it were a variant.
    aa: Mapping[str, Any] | None = None
    # Seconds per call of every round, one tuple per trial (their concatenation is rounds_s).
    trials: tuple[tuple[float, ...], ...] = ()

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

    @classmethod
    def from_json(
        cls, bench: Mapping[str, Any], stats: Mapping[str, Any] | None = None, source: str = ""
    ) -> Record:
        """A record from its JSON (``extra_info["bench"]``) and pytest-benchmark's ``stats``.

        Raises KeyError, TypeError or ValueError where the JSON lacks a required key or holds a
        value of the wrong kind (load_run turns these into ResultsError); ResultsError for a schema
        this version cannot read.
        """
        schema = bench.get("schema", SCHEMA)
        if schema not in SUPPORTED_SCHEMAS:
            raise ResultsError(
                f"a benchmark record has schema {schema!r}; this version reads {SUPPORTED_SCHEMAS}"
            )
        work = bench.get("work") or {}
        flops = bench.get("flops") or {}
        paired = bench.get("paired") or {}
        stats = stats or {}
        ref_iterations, var_iterations = paired.get("reference_iterations"), paired.get("variant_iterations")
        return cls(
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
            paired_ratios=tuple(float(x) for x in paired.get("ratios") or ()),
            **_timing(stats),
            source=source,
            counts=bench.get("counts"),
            profile=bench.get("profile"),
            warmup_calls=bench.get("warmup_calls"),
            first_call_s=bench.get("first_call_s"),
            prepare_s=bench.get("prepare_s"),
            paired_iterations=(
                (int(ref_iterations), int(var_iterations))
                if ref_iterations is not None and var_iterations is not None
                else None
            ),
            trace=bench.get("trace"),
            flops_error=bench.get("flops_error"),
            item=bench.get("item"),
            speedup=bench.get("speedup"),
            aa=bench.get("aa"),
            trials=tuple(tuple(float(x) for x in t["rounds_s"]) for t in bench.get("trials") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        """The record as stored: the benchmark's ``extra_info["bench"]`` (DESIGN.md's schema 1).

        ``from_json(record.to_json(), stats)`` gives the record back, timing fields from ``stats``.
        """
        paired = None
        if self.paired_ratios:
            speedup = float(statistics.median(self.paired_ratios))  # as bench.paired.Paired has it
            paired = {"speedup": speedup, "ratios": list(self.paired_ratios)}
            if self.paired_iterations is not None:
                paired["reference_iterations"], paired["variant_iterations"] = self.paired_iterations
        doc: dict[str, Any] = {
            "schema": SCHEMA,
            "case": self.case,
            "family": self.family,
            "variant": self.variant,
            "role": self.role,
            "params": dict(self.params),
            "overrides": dict(self.overrides),
            "device": self.device,
            "dtype": self.dtype,
            "profile": self.profile,
            "mode": self.mode,
            "exact": self.exact,
            "note": self.note,
            "work": (
                {"unit": self.work_unit, "per_call": self.work_per_call}
                if self.work_unit is not None
                else None
            ),
            "correctness": _plain_data(self.correctness),
            "memory": _plain_data(self.memory),
            "gpu": _plain_data(self.gpu),
            "flops": (
                {"per_call": self.flops_per_call, "source": self.flops_source}
                if self.flops_per_call is not None
                else None
            ),
            "parameters": self.parameters,
            "extra": dict(self.extra),
            "warmup_calls": self.warmup_calls,
            "first_call_s": self.first_call_s,
            "prepare_s": self.prepare_s,
            "error": _plain_data(self.error),
            "speedup": _plain_data(self.speedup),
            "trials": [{"trial": i, "rounds_s": list(t)} for i, t in enumerate(self.trials)],
        }
        optional = {
            "paired": paired,
            "trace": self.trace,
            "flops_error": self.flops_error,
            "counts": _plain_data(self.counts),
            "item": self.item,
            "aa": _plain_data(self.aa),
        }
        doc.update({key: optional[key] for key in _OPTIONAL_KEYS if optional[key] is not None})
        return doc


def _plain_data(value: Any) -> Any:
    """A copy of nested mappings and sequences as dicts and lists (what json.dumps takes)."""
    if isinstance(value, Mapping):
        return {k: _plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_data(v) for v in value]
    return value


@dataclass(frozen=True)
class Run:
    """One results file (or several pooled): its records, failures and run-level data.

    ``load(path)`` reads one; ``frame()`` is the pandas view, for notebooks.
    """

    path: str
    datetime: str
    info: Mapping[str, Any]
    records: tuple[Record, ...]
    failures: tuple[Record, ...]
    foreign: int = 0  # benchmarks in the file that the harness did not write

    @property
    def environment(self) -> Mapping[str, Any]:
        environment: Mapping[str, Any] = self.info.get("environment", {})
        return environment

    @property
    def claims(self) -> list[Mapping[str, Any]]:
        return list(self.info.get("claims", []))

    @property
    def profile(self) -> str:
        return str(self.info.get("profile", "?"))

    def frame(self) -> pd.DataFrame:
        """One row per record, timed and failed (pandas), in the file's order; see ``frame``."""
        import pandas as pd

        return pd.DataFrame(list(_rows(self)))


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
        **_timing(stats),
        source=source,
    )


def _timing(stats: Mapping[str, Any]) -> dict[str, Any]:
    """The Record fields that pytest-benchmark's ``stats`` give, harness record or plain."""
    return {
        "rounds_s": tuple(float(x) for x in stats.get("data") or ()),
        "median_s": stats.get("median"),
        "iqr_s": stats.get("iqr"),
        "mean_s": stats.get("mean"),
        "min_s": stats.get("min"),
        "iterations": stats.get("iterations"),
    }


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


def load(path: str | Path) -> Run:
    """The run in one results file (pytest-benchmark JSON, the harness's or a plain one).

    ``bench.load("results/run-20261201-185323.json").frame()`` is its records as a DataFrame.
    Raises ResultsError (a BenchError) saying what is wrong with an unreadable or malformed file.
    """
    return load_run(path)


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
            records.append(Record.from_json(bench, entry.get("stats"), str(path)))
        failures = [Record.from_json(f, None, str(path)) for f in info.get("failures", [])]
    except ResultsError as exc:
        raise ResultsError(f"{path}: {exc}") from None
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
                # Every run's trials are independent processes: the pooled interval is over all of
                # them (each run's own speedup no longer applies).
                trials=tuple(t for r in recs for t in r.trials) if all(r.trials for r in recs) else (),
                speedup=None,
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
    """One row per record (timed and failed) of each run, records before failures.

    Columns: ``source`` (the file), ``case``, ``family``, ``variant``, ``role``, ``point`` (the grid
    point's id), ``device``, ``mode``, ``exact``, ``median_s`` and ``iqr_s`` (seconds per call),
    ``rounds``, ``flops_per_call``, ``parameters``, ``cpu_peak_rss_delta_bytes``,
    ``cuda_peak_allocated_bytes``, ``error`` (the failure's kind, else None), ``dtype``,
    ``work_unit``, ``work_per_call``, ``instructions_per_call``, ``first_call_s``, ``prepare_s``,
    then ``param.<name>`` for each grid parameter and ``extra.<name>`` for each case measure.
    """
    import pandas as pd

    return pd.DataFrame([row for run in runs for row in _rows(run)])


def _rows(run: Run) -> Iterator[dict[str, Any]]:
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
            "dtype": rec.dtype,
            "work_unit": rec.work_unit,
            "work_per_call": rec.work_per_call,
            "instructions_per_call": rec.instructions_per_call,
            "first_call_s": rec.first_call_s,
            "prepare_s": rec.prepare_s,
        }
        row.update({f"param.{k}": v for k, v in rec.params.items()})
        row.update({f"extra.{k}": v for k, v in rec.extra.items()})
        yield row


def machine_kind(env: dict[str, Any] | Any) -> str:
    """A file-name-safe name for the kind of machine a run came from (baselines are per kind)."""
    gpu = env.get("gpu")
    if gpu:
        raw = f"cuda-{gpu.get('name', 'gpu')}"
    else:
        raw = f"cpu-{env.get('cpu_count', '?')}core-{env.get('cpu_model', 'unknown')}"
    slug = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")
    return slug or "unknown"
