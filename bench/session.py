"""One pytest run of the harness: item specs, the reference cache, correctness, probes and timing."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import torch

# pytest's own -k / -m matching, to tell which cases -m alone left out (pytest has no public API).
from _pytest.mark import KeywordMatcher
from _pytest.mark.expression import Expression

from bench import __version__
from bench.calls import Arguments, Caller, Snapshot, arguments_for, check_inputs, parameter_count
from bench.case import REFERENCE, Case, MeasureContext, Variant, point_id
from bench.correctness import judge
from bench.device import DevicePlan, plan_devices, preserved_knobs, strict_fp32, time_limit
from bench.environment import describe, load_average
from bench.errors import BenchError, CaseTimeout, MismatchError
from bench.options import RunOptions
from bench.paired import paired_speedup
from bench.probes import count_flops, cpu_peak, cuda_peak, sample_gpu
from bench.profiling import record_trace, safe_name, trace_dir
from bench.results import SCHEMA, Record


@dataclass(frozen=True)
class ItemSpec:
    """One benchmark item: a case at one grid point on one device, for one implementation."""

    case: Case
    params: dict[str, Any]
    device: str
    variant: str
    impl: Variant

    @property
    def name(self) -> str:
        return f"{self.case.name}[{point_id(self.params)}-{self.device}-{self.variant}]"

    @property
    def run_params(self) -> dict[str, Any]:
        return {**self.params, **self.impl.params}


@dataclass
class _Baseline:
    """The reference's inputs and checked output for one (case, point, device), built once."""

    key: tuple[str, str, str]
    inputs: Mapping[str, Any] | None = None
    arguments: Arguments | None = None  # what the reference is called with (after its prepare)
    snapshot: Snapshot | None = None
    first_call_s: float | None = None
    error: str | None = None
    median_s: float | None = None  # the reference's timed median, once its item has run


class _Draft:
    """The record of the item running now, filled in as it runs: a failure keeps what was learnt
    (a mismatch its verdict, a crash in the probes the memory already measured)."""

    def __init__(self, record: Record) -> None:
        self.record = record

    def update(self, **fields: Any) -> None:
        self.record = replace(self.record, **fields)


def _median_of(benchmark: Any) -> float | None:
    """The median seconds per call pytest-benchmark just measured (None when benchmarking is off)."""
    stats: Any = getattr(getattr(benchmark, "stats", None), "stats", None)
    return float(stats.median) if stats is not None and stats.data else None


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, CaseTimeout):
        return "timeout"
    if isinstance(exc, MismatchError):
        return "mismatch"
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return "oom"
    text = str(exc).lower()
    if isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text):
        return "oom"
    return "exception"


def _dtype_of(inputs: Mapping[str, Any]) -> str | None:
    for value in inputs.values():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return str(value.dtype).removeprefix("torch.")
        if isinstance(value, torch.nn.Module):
            for param in value.parameters():
                return str(param.dtype).removeprefix("torch.")
    return None


class BenchSession:
    """State of one pytest run of the harness: options, the reference cache, failures."""

    def __init__(self, config: pytest.Config, options: RunOptions | None = None) -> None:
        self.config = config
        self.options = options if options is not None else RunOptions.from_config(config)
        self.profile: str = self.options.profile
        self.device_choice: str = self.options.device
        self.time_limit_s: float | None = self.options.time_limit_s
        self.probes: bool = self.options.probes
        paired = self.options.paired_budget_s
        # Paired rounds get as long as pytest-benchmark's rounds of one item, unless told otherwise.
        self.paired_budget_s: float = float(
            config.getoption("benchmark_max_time") if paired is None else paired
        )
        if self.options.threads is not None:
            torch.set_num_threads(self.options.threads)
        self.traces: Path | None = self.options.traces
        self.plan: DevicePlan = plan_devices(self.device_choice)
        self.cases: dict[str, Case] = {}
        self.left_out: dict[str, list[str]] = {}
        self.deselected: list[pytest.Item] = []
        self.failures: list[Record] = []
        self.skipped: list[dict[str, Any]] = []
        self.interrupted = False
        self.item_cases: dict[str, Case] = {}
        self.started = time.time()
        self.load_at_start = load_average()
        self._baseline: _Baseline | None = None
        self._warmed = False
        self._timing: Any = None  # the benchmark fixture whose rounds are running, until they end

    # -- collection ---------------------------------------------------------------------------

    def items_for(self, case: Case) -> Iterator[tuple[ItemSpec, str | None]]:
        """Every item of a case with, for devices this run skips, the reason."""
        skipped = dict(self.plan.skipped)
        for params in case.points(self.profile):
            for device in case.devices:
                if device not in self.plan.run and device not in skipped:
                    continue
                for vname, impl in case.implementations():
                    yield ItemSpec(case, params, device, vname, impl), skipped.get(device)

    # -- running ------------------------------------------------------------------------------

    def _record(self, spec: ItemSpec) -> Record:
        """The item's record before it runs: what its case and options say."""
        case = spec.case
        unit, per_call = case.work if case.work is not None else (None, None)
        return Record(
            case=case.name,
            family=case.family,
            variant=spec.variant,
            role="reference" if spec.variant == REFERENCE else "variant",
            params=dict(spec.params),
            overrides=dict(spec.impl.params),
            device=spec.device,
            profile=self.profile,
            mode=case.mode,
            exact=spec.impl.exact,
            note=spec.impl.note,
            work_unit=unit,
            work_per_call=float(per_call(spec.run_params)) if per_call is not None else None,
            warmup_calls=case.warmup_calls,
        )

    def _setup(self, spec: ItemSpec, params: Mapping[str, Any]) -> Mapping[str, Any]:
        torch.manual_seed(0)
        return check_inputs(spec.case.setup(dict(params), spec.device), spec.case.name)

    def _arguments(
        self, spec: ItemSpec, name: str, impl: Variant, inputs: Mapping[str, Any], params: Mapping[str, Any]
    ) -> Arguments:
        where = f"Case {spec.case.name!r}, {'the reference' if name == REFERENCE else f'variant {name!r}'}"
        return arguments_for(impl, inputs, params, spec.device, where)

    def _caller(self, spec: ItemSpec, impl: Variant, arguments: Arguments) -> Caller:
        return Caller(impl.fn, arguments.values, spec.case.mode, spec.device, spec.case.objective)

    def implementation_caller(self, spec: ItemSpec) -> Caller:
        """The item's implementation, prepared and with its kwargs, on freshly built, seeded inputs:
        what a measuring process outside this run's timing (the instruction-count pass,
        bench.counts) calls, so it measures what the timing times."""
        inputs = self._setup(spec, spec.run_params)
        arguments = self._arguments(spec, spec.variant, spec.impl, inputs, spec.run_params)
        return self._caller(spec, spec.impl, arguments)

    def baseline(self, spec: ItemSpec) -> _Baseline:
        key = (spec.case.name, point_id(spec.params), spec.device)
        if self._baseline is not None and self._baseline.key == key:
            return self._baseline
        self._baseline = None  # free the previous point's tensors before building new ones
        base = _Baseline(key)
        try:
            base.inputs = self._setup(spec, spec.params)
            reference = spec.case.implementation(REFERENCE)
            base.arguments = self._arguments(spec, REFERENCE, reference, base.inputs, spec.params)
            started = time.perf_counter()
            with strict_fp32(spec.device):
                base.snapshot = self._caller(spec, reference, base.arguments).snapshot()
            base.first_call_s = time.perf_counter() - started
        except (CaseTimeout, KeyboardInterrupt):
            raise
        except Exception as exc:  # the reference's failure is reported on every item of this point
            base.error = f"{type(exc).__name__}: {exc}"
            base.inputs = base.arguments = base.snapshot = None
        self._baseline = base
        return base

    def _warm_imports(self) -> None:
        # FlopCounterMode imports sympy on first use (seconds on a loaded machine). Doing that
        # inside an item would count against its time limit, and a timeout that interrupts an
        # import leaves the module half-initialised for the rest of the run.
        if not self._warmed:
            count_flops(lambda: torch.ones(2, 2) @ torch.ones(2, 2))
            self._warmed = True

    def run(self, spec: ItemSpec, benchmark: Any) -> None:
        self._warm_imports()
        record = _Draft(self._record(spec))
        limit = self.time_limit_s or spec.case.time_limit_s
        try:
            with preserved_knobs(), time_limit(limit, spec.name):
                self._execute(spec, benchmark, record)
        except Exception as exc:
            kind = _error_kind(exc)
            record.update(error={"kind": kind, "message": f"{type(exc).__name__}: {exc}"}, item=spec.name)
            self.failures.append(record.record)
            if "bench" in benchmark.extra_info:  # it failed after its rounds: its entry says so too
                benchmark.extra_info["bench"] = record.record.to_json()
            pytest.fail(f"{spec.name}: {kind}: {exc}", pytrace=False)

    def _execute(self, spec: ItemSpec, benchmark: Any, record: _Draft) -> None:
        case, impl = spec.case, spec.impl
        base = self.baseline(spec)
        if base.error is not None:
            raise BenchError(f"the reference failed at {spec.params} on {spec.device}: {base.error}")
        assert base.inputs is not None and base.arguments is not None and base.snapshot is not None
        if spec.variant == REFERENCE:
            inputs, arguments = base.inputs, base.arguments
            caller = self._caller(spec, impl, arguments)
            output = base.snapshot.output
            record.update(first_call_s=base.first_call_s)
        else:
            fresh = bool(impl.params) or case.mode == "train_step"
            inputs = self._setup(spec, spec.run_params) if fresh else base.inputs
            arguments = self._arguments(spec, spec.variant, impl, inputs, spec.run_params)
            caller = self._caller(spec, impl, arguments)
            started = time.perf_counter()
            with strict_fp32(spec.device):
                snapshot = caller.snapshot()
            record.update(first_call_s=time.perf_counter() - started)
            output = snapshot.output
            verdict = judge(base.snapshot, snapshot, impl, case.tolerance)
            record.update(correctness=verdict.as_dict())
            if not verdict.passed:
                raise MismatchError(
                    f"{case.name} at {spec.params} on {spec.device}: variant {spec.variant!r} does not "
                    f"match the reference: {verdict.describe()}. It was not timed."
                )
        record.update(prepare_s=arguments.prepare_s, dtype=_dtype_of(inputs))
        for _ in range(case.warmup_calls):
            caller()
        if self.probes:
            ran = MeasureContext(spec.variant, spec.run_params, inputs, arguments.values, output, caller)
            self._probe(spec, caller, ran, record)
        # Stored before the rounds, so an interrupt after them leaves the entry its record.
        benchmark.extra_info["bench"] = record.record.to_json()
        timed, context = caller.timed()
        with context:
            self._timing = benchmark
            benchmark(timed)
            self._timing = None
            median = _median_of(benchmark)
            if spec.variant == REFERENCE:
                base.median_s = median
            elif self.paired_budget_s > 0:
                self._pair(spec, base, timed, median, record)
        if self.traces is not None:
            # After timing, so the profiler's overhead never touches the timed rounds.
            directory = trace_dir(self.traces, case.name, spec.variant)
            worker = safe_name(f"{point_id(spec.params)}-{spec.device}")
            record.update(trace=str(record_trace(caller, directory, worker=worker).directory))
        benchmark.extra_info["bench"] = record.record.to_json()

    def _pair(
        self, spec: ItemSpec, base: _Baseline, timed: Any, median_s: float | None, record: _Draft
    ) -> None:
        """Reference and variant in alternating batches (bench.paired), inside the timing context."""
        assert base.arguments is not None
        reference, _ = self._caller(spec, spec.case.implementation(REFERENCE), base.arguments).timed()
        paired = paired_speedup(
            reference,
            timed,
            self.paired_budget_s,
            cap_s=max(PAIRED_CAP_S, 4 * self.paired_budget_s),
            estimates=(base.median_s, median_s) if base.median_s and median_s else None,
        )
        if paired is not None:
            record.update(
                paired_ratios=paired.ratios,
                paired_iterations=(paired.reference_iterations, paired.variant_iterations),
            )

    def _probe(self, spec: ItemSpec, caller: Caller, ran: MeasureContext, record: _Draft) -> None:
        case, impl = spec.case, spec.impl
        host = cpu_peak(caller)
        memory: dict[str, Any] = {
            "cpu_peak_rss_bytes": host.peak_bytes,
            "cpu_peak_rss_delta_bytes": host.delta_bytes,
            "cpu_method": host.method,
            "cuda_peak_allocated_bytes": None,
            "cuda_peak_reserved_bytes": None,
            "cuda_peak_allocated_delta_bytes": None,
        }
        if spec.device == "cuda":
            dev = cuda_peak(caller, spec.device)
            memory["cuda_peak_allocated_bytes"] = dev.allocated_bytes
            memory["cuda_peak_reserved_bytes"] = dev.reserved_bytes
            memory["cuda_peak_allocated_delta_bytes"] = dev.allocated_delta_bytes
            record.update(gpu=sample_gpu(caller, spec.device))
        record.update(memory=memory)
        declared = impl.flops or case.flops
        if declared is not None:
            record.update(flops_per_call=float(declared(spec.run_params)), flops_source="declared")
        else:
            try:
                counted = count_flops(caller)
            except RuntimeError as exc:
                # FlopCounterMode's dispatch mode trips some autograd uses (e.g. torch.autograd.grad
                # for a gradient penalty); no count is better than a failed item.
                record.update(flops_error=f"{type(exc).__name__}: {exc}"[:300])
                counted = 0
            if counted:
                record.update(flops_per_call=float(counted), flops_source="counted")
        # Setup's modules: what the case is about, whatever an implementation's prepare made of them.
        record.update(parameters=parameter_count(ran.inputs))
        if case.measures is not None:
            record.update(extra={k: float(v) for k, v in case.measures(ran).items()})

    # -- hooks of this run (the session is registered as a plugin) ----------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and report.when in ("setup", "call") and report.nodeid in self.item_cases:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            reason = reason.removeprefix("Skipped: ")
            self.skipped.append({"item": report.nodeid.rsplit("::", 1)[-1], "reason": reason})

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # Only the cases that kept an item after -k / -m selection belong to this run (and its
        # claims audit).
        self.cases = {}
        for item in session.items:
            case = self.item_cases.get(item.nodeid)
            if case is not None:
                self.cases.setdefault(case.name, case)
        self.left_out = {}
        left_out_by_markers = _marker_filter(self.config, self.options.marker_expression)
        for item in self.deselected:
            case = self.item_cases.get(item.nodeid)
            if case is not None and case.name not in self.cases and left_out_by_markers(item):
                self.left_out[case.name] = sorted(case.markers)

    def pytest_deselected(self, items: Sequence[pytest.Item]) -> None:
        self.deselected.extend(items)

    def pytest_keyboard_interrupt(self, excinfo: Any) -> None:
        self.interrupted = True

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Iterator[None]:
        """Before pytest-benchmark saves: drop the item whose rounds an interrupt cut short.

        Its statistics would be those of a partial timing, or none at all, and with none
        pytest-benchmark fails inside its own JSON writer and the whole file is lost.
        """
        # A wrapper, first in line: pytest-benchmark saves in its own wrapper, before plain hooks.
        bs = getattr(session.config, "_benchmarksession", None)
        if bs is not None and self._timing is not None:
            bs.benchmarks[:] = [b for b in bs.benchmarks if getattr(b, "fixture", None) is not self._timing]
        yield

    # -- the run's JSON -----------------------------------------------------------------------

    def timing_options(self) -> dict[str, Any]:
        opt = self.config.getoption
        return {
            "min_rounds": opt("benchmark_min_rounds"),
            "min_time_s": opt("benchmark_min_time"),
            "max_time_s": opt("benchmark_max_time"),
            "warmup": str(opt("benchmark_warmup")),
            "disable_gc": opt("benchmark_disable_gc"),
            "timer": str(opt("benchmark_timer")),
        }

    def run_info(self) -> dict[str, Any]:
        claims = []
        # The claims of cases -m left out are recorded too: the audit lists them as not run.
        left_out = {c.name: c for c in self.item_cases.values() if c.name in self.left_out}
        for case in [*self.cases.values(), *left_out.values()]:
            for claim in case.claims:
                claims.append(
                    {
                        "case": case.name,
                        "id": claim.id,
                        "text": claim.text,
                        "metric": claim.metric,
                        "variant": claim.variant,
                        "baseline": claim.baseline,
                        # Standard JSON has no infinity: an open upper end is stored as null.
                        "expected": (
                            [claim.expected[0], None if math.isinf(claim.expected[1]) else claim.expected[1]]
                            if claim.expected
                            else None
                        ),
                        "at": dict(claim.at),
                        "extra": claim.extra,
                        "hardware": claim.hardware,
                        "measurable": claim.measurable,
                        "reason": claim.reason,
                    }
                )
        return {
            "schema": SCHEMA,
            "harness_version": __version__,
            "profile": self.profile,
            "devices": {
                "requested": self.device_choice,
                "run": list(self.plan.run),
                "skipped": [{"device": d, "reason": r} for d, r in self.plan.skipped],
            },
            "environment": {
                **describe(self.plan.run, measure=True, cwd=self.config.rootpath),
                "load_average": {"start": self.load_at_start, "end": load_average()},
            },
            "timing": self.timing_options(),
            "selection": {
                "keyword": self.options.keyword,
                "markers": self.options.marker_expression or None,
                # Cases that -k selects but -m keeps out of this run (by default the quick
                # profile's `slow` cases), with their markers.
                "left_out": self.left_out,
            },
            "time_limit_s": self.time_limit_s,
            "started": self.started,
            "finished": time.time(),
            "interrupted": self.interrupted,
            "cases": {
                name: {
                    "family": case.family,
                    "mode": case.mode,
                    "description": case.description,
                    "work_unit": case.work[0] if case.work else None,
                    "variants": {
                        vname: {"exact": impl.exact, "note": impl.note, "overrides": dict(impl.params)}
                        for vname, impl in case.implementations()
                    },
                }
                for name, case in self.cases.items()
            },
            "claims": claims,
            "failures": [record.to_json() for record in self.failures],
            "skipped": self.skipped,
        }


def _marker_filter(config: pytest.Config, markexpr: str) -> Callable[[pytest.Item], bool]:
    """A test of whether -k would keep an item and -m alone deselects it (expressions compiled once)."""
    keyword = config.getoption("keyword")
    keyword_expr = Expression.compile(keyword) if keyword else None
    marker_expr = Expression.compile(markexpr) if markexpr else None

    def left_out(item: pytest.Item) -> bool:
        if marker_expr is None:
            return False
        if keyword_expr is not None and not keyword_expr.evaluate(KeywordMatcher.from_item(item)):
            return False
        names = {marker.name for marker in item.iter_markers()}

        def has(name: str, /, **_: str | int | bool | None) -> bool:
            return name in names

        return not marker_expr.evaluate(has)

    return left_out


# Paired rounds are skipped where their minimum number would take longer than this (or 4 budgets).
PAIRED_CAP_S = 1.5
