"""What a worker process does with one item: inputs, correctness, probes, a trace, and ready callers.

Everything here runs an implementation, so it runs only in a worker (bench.trials) or in the
instruction-count process (bench.counts), never in the pytest process that collects and records.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from bench.calls import Arguments, Caller, Snapshot, arguments_for, check_inputs, parameter_count
from bench.case import REFERENCE, Case, MeasureContext, Variant, point_id
from bench.correctness import judge
from bench.device import strict_fp32
from bench.errors import BenchError, CaseTimeout, MismatchError
from bench.options import RunOptions
from bench.probes import count_flops, cpu_peak, cuda_peak, sample_gpu
from bench.profiling import record_trace, safe_name, trace_dir
from bench.results import Record


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

    @property
    def group(self) -> tuple[str, str, str]:
        """What is measured together in the same workers: the case at one point on one device."""
        return self.case.name, point_id(self.params), self.device

    def sibling(self, variant: str) -> ItemSpec:
        """Another implementation of the same case, point and device."""
        return ItemSpec(self.case, self.params, self.device, variant, self.case.implementation(variant))


@dataclass(frozen=True)
class Checked:
    """An implementation that passed its check: its caller, and what the case's measures see."""

    spec: ItemSpec
    caller: Caller
    ran: MeasureContext
    warm_s: float | None = None  # the last warm-up call's seconds (None: the case warms up none)


@dataclass
class Baseline:
    """The reference's inputs and checked output for one (case, point, device), built once."""

    inputs: Mapping[str, Any] | None = None
    arguments: Arguments | None = None  # what the reference is called with (after its prepare)
    snapshot: Snapshot | None = None
    first_call_s: float | None = None
    error: str | None = None


class Draft:
    """The record of the item running now, filled in as it runs: a failure keeps what was learnt
    (a mismatch its verdict, a crash in the probes the memory already measured)."""

    def __init__(self, record: Record) -> None:
        self.record = record

    def update(self, **fields: Any) -> None:
        self.record = replace(self.record, **fields)


def error_kind(exc: BaseException) -> str:
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


def new_record(spec: ItemSpec, profile: str) -> Record:
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
        profile=profile,
        mode=case.mode,
        exact=spec.impl.exact,
        note=spec.impl.note,
        work_unit=unit,
        work_per_call=float(per_call(spec.run_params)) if per_call is not None else None,
        warmup_calls=case.warmup_calls,
    )


class Executor:
    """Builds and checks the implementations of one (case, point, device) inside a worker."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self._baseline: tuple[tuple[str, str, str], Baseline] | None = None
        self._warmed = False

    def setup(self, spec: ItemSpec, params: Mapping[str, Any]) -> Mapping[str, Any]:
        torch.manual_seed(0)
        return check_inputs(spec.case.setup(dict(params), spec.device), spec.case.name)

    def _arguments(self, spec: ItemSpec, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> Arguments:
        where = f"Case {spec.case.name!r}, " + (
            "the reference" if spec.variant == REFERENCE else f"variant {spec.variant!r}"
        )
        return arguments_for(spec.impl, inputs, params, spec.device, where)

    def _caller(self, spec: ItemSpec, arguments: Arguments) -> Caller:
        return Caller(spec.impl.fn, arguments.values, spec.case.mode, spec.device, spec.case.objective)

    def _fresh_inputs(self, spec: ItemSpec) -> bool:
        # A variant with its own parameters, or one that trains, must not share the reference's state.
        return spec.variant != REFERENCE and (bool(spec.impl.params) or spec.case.mode == "train_step")

    def implementation_caller(self, spec: ItemSpec) -> Caller:
        """The item's implementation, prepared and with its kwargs, on freshly built, seeded inputs:
        what the instruction-count pass (bench.counts) calls, so it measures what the timing times."""
        inputs = self.setup(spec, spec.run_params)
        return self._caller(spec, self._arguments(spec, inputs, spec.run_params))

    def baseline(self, spec: ItemSpec, output: bool = True) -> Baseline:
        """The reference's inputs, arguments and checked output at this item's point (built once).

        ``output=False``: inputs and arguments only, without the reference's checked call (a trial
        worker compares nothing; that call would be one more reference call per trial)."""
        if self._baseline is not None and self._baseline[0] == spec.group:
            base = self._baseline[1]
            if base.snapshot is not None or base.error is not None or not output:
                return base
        else:
            self._baseline = None  # free the previous point's tensors before building new ones
            base = Baseline()
        reference = spec.sibling(REFERENCE)
        try:
            if base.inputs is None or base.arguments is None:
                base.inputs = self.setup(reference, reference.params)
                base.arguments = self._arguments(reference, base.inputs, reference.params)
            if output:
                started = time.perf_counter()
                with strict_fp32(spec.device):
                    base.snapshot = self._caller(reference, base.arguments).snapshot()
                base.first_call_s = time.perf_counter() - started
        except (CaseTimeout, KeyboardInterrupt):
            raise
        except Exception as exc:  # the reference's failure is reported on every item of this point
            base.error = f"{type(exc).__name__}: {exc}"
            base.inputs = base.arguments = base.snapshot = None
        self._baseline = (spec.group, base)
        return base

    def timing_caller(self, spec: ItemSpec) -> Caller:
        """A caller ready for timed rounds (the reference on the baseline's inputs), warmed up."""
        base = self.baseline(spec, output=False)
        if base.error is not None:
            raise BenchError(f"the reference failed at {spec.params} on {spec.device}: {base.error}")
        assert base.inputs is not None and base.arguments is not None
        if self._fresh_inputs(spec):
            inputs = self.setup(spec, spec.run_params)
            arguments = self._arguments(spec, inputs, spec.run_params)
        elif spec.variant == REFERENCE:
            inputs, arguments = base.inputs, base.arguments
        else:
            inputs = base.inputs
            arguments = self._arguments(spec, inputs, spec.run_params)
        caller = self._caller(spec, arguments)
        caller()  # the first call (lazy initialisation, caches) is never a timed one
        for _ in range(spec.case.warmup_calls):
            caller()
        return caller

    def _warm_imports(self) -> None:
        # FlopCounterMode imports sympy on first use (seconds on a loaded machine): outside any
        # item's measurements.
        if not self._warmed and self.options.probes:
            count_flops(lambda: torch.ones(2, 2) @ torch.ones(2, 2))
            self._warmed = True

    def check(self, spec: ItemSpec, draft: Draft) -> Checked:
        """Correctness, warm-up and trace of one implementation: ready to calibrate, probe and time.

        Raises MismatchError (the variant is then not timed) or whatever the implementation
        raised; ``draft`` keeps what was learnt before. The probes come after (``probe``, then
        ``probe_memory``), so that a worker can calibrate every implementation first.
        """
        self._warm_imports()
        case = spec.case
        base = self.baseline(spec)
        if base.error is not None:
            raise BenchError(f"the reference failed at {spec.params} on {spec.device}: {base.error}")
        assert base.inputs is not None and base.arguments is not None and base.snapshot is not None
        if spec.variant == REFERENCE:
            inputs, arguments = base.inputs, base.arguments
            caller = self._caller(spec, arguments)
            output = base.snapshot.output
            draft.update(first_call_s=base.first_call_s)
        else:
            inputs = self.setup(spec, spec.run_params) if self._fresh_inputs(spec) else base.inputs
            arguments = self._arguments(spec, inputs, spec.run_params)
            caller = self._caller(spec, arguments)
            started = time.perf_counter()
            with strict_fp32(spec.device):
                snapshot = caller.snapshot()
            draft.update(first_call_s=time.perf_counter() - started)
            output = snapshot.output
            verdict = judge(base.snapshot, snapshot, spec.impl, case.tolerance)
            draft.update(correctness=verdict.as_dict())
            if not verdict.passed:
                raise MismatchError(
                    f"{case.name} at {spec.params} on {spec.device}: variant {spec.variant!r} does not "
                    f"match the reference: {verdict.describe()}. It was not timed."
                )
        draft.update(prepare_s=arguments.prepare_s, dtype=_dtype_of(inputs))
        warm_s = None
        for _ in range(case.warmup_calls):
            started = time.perf_counter()
            caller()
            warm_s = time.perf_counter() - started
        if self.options.traces is not None:
            directory = trace_dir(self.options.traces, case.name, spec.variant)
            worker = safe_name(f"{point_id(spec.params)}-{spec.device}")
            draft.update(trace=str(record_trace(caller, directory, worker=worker).directory))
        ran = MeasureContext(spec.variant, spec.run_params, inputs, arguments.values, output, caller)
        return Checked(spec, caller, ran, warm_s)

    def probe_memory(self, checked: Checked, draft: Draft, settle: bool = False) -> None:
        """Peak memory of one call: CPU resident-set growth, and the CUDA allocator's peaks.

        A worker pins glibc's malloc (``bench.probes.memory.pin_malloc``) before this; the other
        probes and the calibration run before that, in the allocator's default behaviour, which
        is the one the trials time in (pinned, every large block is mapped and unmapped: slower).
        Called again for the same implementation (one call per pass of a worker's memory probes),
        the resident-set growth of every pass is kept in ``cpu_peak_rss_delta_samples`` and the
        record's growth is their median. ``settle``: the call is made and nothing is kept (the
        pass that lets the pinned allocator settle): that pass is the one that counts the FLOPs
        (``probe_flops``), its call made under FlopCounterMode, so a counted case pays no call for
        it.
        """
        spec, caller = checked.spec, checked.caller
        if settle:
            if not self.probe_flops(checked, draft):
                caller()
            return
        host = cpu_peak(caller)
        before = draft.record.memory or {}
        samples = [*before.get("cpu_peak_rss_delta_samples", ()), host.delta_bytes]
        memory: dict[str, Any] = {
            "cpu_peak_rss_bytes": max(host.peak_bytes, before.get("cpu_peak_rss_bytes") or 0),
            "cpu_peak_rss_delta_bytes": int(statistics.median(samples)),
            "cpu_peak_rss_delta_samples": samples,
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
        draft.update(memory=memory)

    def probe_flops(self, checked: Checked, draft: Draft) -> bool:
        """FLOPs per call: the case's or variant's declared count, else counted over one call under
        FlopCounterMode. True when a call completed (the count's), False when none was made."""
        spec = checked.spec
        declared = spec.impl.flops or spec.case.flops
        if declared is not None:
            draft.update(flops_per_call=float(declared(spec.run_params)), flops_source="declared")
            return False
        try:
            counted = count_flops(checked.caller)
        except RuntimeError as exc:
            # FlopCounterMode's dispatch mode trips some autograd uses (e.g. torch.autograd.grad
            # for a gradient penalty); no count is better than a failed item.
            draft.update(flops_error=f"{type(exc).__name__}: {exc}"[:300])
            return False
        if counted:
            draft.update(flops_per_call=float(counted), flops_source="counted")
        return True

    def probe(self, checked: Checked, draft: Draft) -> None:
        """GPU utilisation, parameters and the case's own measures (FLOPs and memory: ``probe_memory``)."""
        spec, caller, ran = checked.spec, checked.caller, checked.ran
        case = spec.case
        if spec.device == "cuda":
            draft.update(gpu=sample_gpu(caller, spec.device))
        # Setup's modules: what the case is about, whatever an implementation's prepare made of them.
        draft.update(parameters=parameter_count(ran.inputs))
        if case.measures is not None:
            draft.update(extra={k: float(v) for k, v in case.measures(ran).items()})
