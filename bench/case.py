"""What a case, a variant, a tolerance, a claim and a parameter grid are (validated on construction)."""

from __future__ import annotations

import inspect
import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from bench.errors import CaseDefinitionError

Params = Mapping[str, Any]

MODES = ("forward", "forward_backward", "train_step")
DEVICES = ("cpu", "cuda")
PROFILES = ("quick", "full")
REFERENCE = "reference"
# Claim metrics. "higher is better" decides which side of the claimed range is "understated".
CLAIM_METRICS: Mapping[str, bool] = MappingProxyType(
    {
        "speedup": True,  # baseline median / variant median, in one run
        "time_reduction": True,  # 1 - variant median / baseline median
        "time_increase": False,  # variant median / baseline median - 1 (a cost claim)
        "memory_reduction": True,  # 1 - variant peak / baseline peak
        "memory_increase": False,  # variant peak / baseline peak - 1
        "flops_reduction": True,  # 1 - variant FLOPs / baseline FLOPs
        "seconds": False,  # the variant's median per call (absolute)
        "throughput": True,  # the variant's work units per second (absolute)
        "parameters": False,  # the variant's parameter count (absolute)
        "extra": False,  # a number the case measured itself, named by Claim.extra
        "extra_ratio": True,  # baseline's extra value / variant's extra value
    }
)
# The metrics judged on peak memory (the memory probe keeps several passes for them).
MEMORY_METRICS = ("memory_reduction", "memory_increase")
# pytest-benchmark settings a case may fix for its own items (e.g. min_rounds=1 for a case whose
# every call launches processes); they override the command line's --benchmark-* options.
BENCHMARK_OPTIONS = frozenset(
    {"min_rounds", "max_time", "min_time", "warmup", "warmup_iterations", "disable_gc"}
)
_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
_VARIANT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_AXIS = re.compile(r"^[a-z][a-z0-9_]*$")


def _fail(where: str, message: str) -> CaseDefinitionError:
    return CaseDefinitionError(f"{where}: {message}")


def _takes(fn: Callable[..., Any], count: int) -> bool:
    """Whether ``fn`` accepts ``count`` positional arguments (True when Python cannot tell)."""
    try:
        inspect.signature(fn).bind(*range(count))
    except TypeError:
        return False
    except ValueError:  # some builtins have no signature
        return True
    return True


@dataclass(frozen=True)
class Tolerance:
    """How close an exact variant's outputs must be: |a - b| <= atol + rtol * |b|, elementwise."""

    rtol: float = 1e-5
    atol: float = 1e-6

    def __post_init__(self) -> None:
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise CaseDefinitionError(f"Tolerance.{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True, init=False)
class Grid:
    """Named parameter axes; the points are their Cartesian product, in declaration order."""

    axes: tuple[tuple[str, tuple[Any, ...]], ...]

    def __init__(self, **axes: Sequence[Any]) -> None:
        if not axes:
            raise CaseDefinitionError("Grid needs at least one axis, e.g. Grid(batch=[8])")
        checked = []
        for name, values in axes.items():
            if not _AXIS.match(name):
                raise CaseDefinitionError(f"Grid axis {name!r} must be lower_snake_case")
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
                raise CaseDefinitionError(f"Grid axis {name!r} needs a non-empty list of values")
            for value in values:
                if not isinstance(value, (int, float, str, bool)):
                    raise CaseDefinitionError(
                        f"Grid axis {name!r}: value {value!r} is not an int, float, str or bool"
                    )
            if len(set(values)) != len(values):
                raise CaseDefinitionError(f"Grid axis {name!r} repeats a value: {list(values)}")
            checked.append((name, tuple(values)))
        object.__setattr__(self, "axes", tuple(checked))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.axes)

    def points(self) -> list[dict[str, Any]]:
        values = [vals for _, vals in self.axes]
        return [dict(zip(self.names, combo, strict=True)) for combo in itertools.product(*values)]


def point_id(params: Params) -> str:
    """A compact, stable id for a grid point: ``batch8-parts4-dim64``."""
    return "-".join(f"{key}{value}" for key, value in params.items())


@dataclass(frozen=True)
class Variant:
    """One implementation of a case: how it is called, prepared and judged.

    The implementation is called as ``fn(**arguments)``, where the arguments are setup's inputs,
    replaced by what ``prepare(inputs, params)`` returns when it is given, plus ``kwargs``.

    ``exact`` variants must reproduce the reference within the tolerance. Approximate ones give a
    ``quality`` function (reference output, variant output) -> {metric: value}; its first key is
    the headline metric. A variant with ``params`` overrides gets inputs built by ``setup`` with
    those parameters: an implementation switch (still exact) or a different workload such as a
    smaller configuration (declare ``exact=False``); ``note`` says what differs.

    ``kwargs`` are keyword arguments bound to ``fn`` (``Variant(train_step, kwargs={"read":
    "batched"})``); they must not share a name with an input. ``prepare`` is the one-time,
    untimed work of this implementation on its inputs (quantise or compile a model, build a
    loader, collate a batch): ``prepare(inputs, params) -> inputs`` gets read-only views of
    setup's inputs and of the run's parameters and returns the mapping ``fn`` is called with
    (a new one: the reference's inputs are shared with the variants). It runs once per item,
    before the checked call; its seconds are recorded as ``prepare_s``, apart from the timing.
    """

    fn: Callable[..., Any]
    exact: bool = True
    quality: Callable[[Any, Any], Mapping[str, float]] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    flops: Callable[[Params], float] | None = None
    tolerance: Tolerance | None = None
    note: str = ""
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    prepare: Callable[[Mapping[str, Any], Params], Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise CaseDefinitionError(f"Variant.fn must be callable, got {self.fn!r}")
        if self.quality is not None and not callable(self.quality):
            raise CaseDefinitionError("Variant.quality must be callable (ref_out, var_out) -> dict")
        if self.exact and self.quality is not None:
            raise CaseDefinitionError("an exact variant has a tolerance, not a quality metric")
        if self.flops is not None and not callable(self.flops):
            raise CaseDefinitionError("Variant.flops must be a callable params -> FLOPs per call")
        if self.prepare is not None and (not callable(self.prepare) or not _takes(self.prepare, 2)):
            raise CaseDefinitionError(
                f"Variant.prepare must be a callable (inputs, params) -> inputs, got {self.prepare!r}"
            )
        if not isinstance(self.kwargs, Mapping):
            raise CaseDefinitionError(
                f"Variant.kwargs must be a mapping of names to values, got {self.kwargs!r}"
            )
        bad = [k for k in self.kwargs if not isinstance(k, str) or not k.isidentifier()]
        if bad:
            raise CaseDefinitionError(f"Variant.kwargs names must be identifiers, got {bad!r}")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "kwargs", MappingProxyType(dict(self.kwargs)))


@dataclass(frozen=True)
class MeasureContext:
    """What ``Case.measures`` is told about the implementation it measures (after its checked call).

    ``inputs`` are what setup built; ``arguments`` what the implementation was called with
    (prepare's result plus kwargs); ``call`` runs it once more, in the case's mode (e.g. to
    measure a peak); ``output`` is the checked call's output, detached.
    """

    variant: str  # "reference" or the variant's name
    params: Params  # the grid point with the variant's overrides
    inputs: Mapping[str, Any]
    arguments: Mapping[str, Any]
    output: Any
    call: Callable[[], Any]

    @property
    def is_reference(self) -> bool:
        return self.variant == REFERENCE


@dataclass(frozen=True)
class Claim:
    """A number a source note claims, checked by measurement.

    ``expected`` is the claimed (low, high) range of ``metric`` for ``variant`` against
    ``baseline``. ``hardware`` names the hardware of an absolute figure (seconds, GB) that this
    machine is not; ``reason`` with ``measurable=False`` says why it cannot be measured here.
    ``at`` pins the grid point (a subset of its parameters) the claim is about.
    """

    id: str
    text: str
    metric: str
    variant: str = REFERENCE
    baseline: str = REFERENCE
    expected: tuple[float, float] | None = None
    at: Mapping[str, Any] = field(default_factory=dict)
    extra: str | None = None
    hardware: str | None = None
    measurable: bool = True
    reason: str = ""

    def __post_init__(self) -> None:
        where = f"Claim {self.id!r}"
        if not self.id or not self.text:
            raise _fail(where, "needs an id and the claim's text")
        if self.metric not in CLAIM_METRICS:
            raise _fail(where, f"unknown metric {self.metric!r}; one of {', '.join(CLAIM_METRICS)}")
        if self.metric in ("extra", "extra_ratio") and not self.extra:
            raise _fail(where, f"metric {self.metric!r} needs extra='<measured name>'")
        if not self.measurable:
            if not self.reason:
                raise _fail(where, "a claim that is not measurable here needs a reason")
        elif self.expected is None:
            raise _fail(where, "needs expected=(low, high)")
        if self.expected is not None:
            low, high = self.expected
            # An open-ended claim ("faster", "at least 2x") has high = math.inf.
            if not math.isfinite(low) or math.isnan(high) or low > high:
                raise _fail(
                    where, f"expected must be a (low, high) range with a finite low, got {self.expected}"
                )
        object.__setattr__(self, "at", MappingProxyType(dict(self.at)))

    @property
    def higher_is_better(self) -> bool:
        return CLAIM_METRICS[self.metric]


@dataclass(frozen=True)
class Case:
    """A reference implementation, its variants, and how to build inputs and judge them.

    ``reference`` is a callable or a ``Variant`` (for its ``kwargs``, ``prepare`` and ``flops``, which
    take precedence over ``Case.flops``); it is stored as a Variant. ``measures(ctx)`` gets a
    ``MeasureContext`` for each implementation.
    """

    name: str
    setup: Callable[[Params, str], Mapping[str, Any]]
    reference: Callable[..., Any] | Variant
    variants: Mapping[str, Callable[..., Any] | Variant]
    grids: Mapping[str, Grid]
    mode: str = "forward"
    tolerance: Tolerance = field(default_factory=Tolerance)
    work: tuple[str, Callable[[Params], float]] | None = None
    flops: Callable[[Params], float] | None = None
    objective: Callable[[Any], Any] | None = None
    measures: Callable[[MeasureContext], Mapping[str, float]] | None = None
    claims: Sequence[Claim] = ()
    devices: tuple[str, ...] = DEVICES
    markers: tuple[str, ...] = ()
    time_limit_s: float = 300.0
    warmup_calls: int = 1
    benchmark: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        where = f"Case {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise _fail(where, "name must look like 'family.case' (lower_snake_case parts)")
        if self.reference is None:
            raise _fail(where, "has no reference implementation (reference=...)")
        if isinstance(self.reference, Variant):
            ref = self.reference
            if not ref.exact or ref.quality or ref.params or ref.tolerance:
                raise _fail(
                    where,
                    "reference=Variant(...) takes fn, kwargs, prepare, flops and note only (it is what "
                    "the variants are judged against: no quality, tolerance or parameter overrides)",
                )
        elif not callable(self.reference):
            raise _fail(where, f"reference must be callable or a Variant, got {self.reference!r}")
        else:
            object.__setattr__(self, "reference", Variant(fn=self.reference))
        if not callable(self.setup):
            raise _fail(where, "setup must be a callable (params, device) -> inputs")
        if self.mode not in MODES:
            raise _fail(where, f"unknown mode {self.mode!r}; one of {', '.join(MODES)}")
        missing = [p for p in PROFILES if p not in self.grids]
        if missing:
            raise _fail(where, f"needs a grid for every profile; missing {', '.join(missing)}")
        for profile, grid in self.grids.items():
            if not isinstance(grid, Grid):
                raise _fail(where, f"grids[{profile!r}] must be a Grid")
        axes = {name for grid in self.grids.values() for name in grid.names}
        variants: dict[str, Variant] = {}
        for vname, value in self.variants.items():
            if vname == REFERENCE or not _VARIANT.match(vname):
                raise _fail(where, f"variant name {vname!r} must be an identifier other than 'reference'")
            variant = value if isinstance(value, Variant) else Variant(fn=value)
            unknown = set(variant.params) - axes
            if unknown:
                raise _fail(where, f"variant {vname!r} overrides unknown parameters {sorted(unknown)}")
            variants[vname] = variant
        object.__setattr__(self, "variants", MappingProxyType(variants))
        if not isinstance(self.tolerance, Tolerance):
            raise _fail(where, "tolerance must be a Tolerance")
        if self.work is not None:
            if len(self.work) != 2 or not isinstance(self.work[0], str) or not callable(self.work[1]):
                raise _fail(where, "work must be (unit, params -> units per call)")
        for name in ("flops", "objective", "measures"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise _fail(where, f"{name} must be callable")
        if self.measures is not None and not _takes(self.measures, 1):
            raise _fail(
                where, "measures takes one argument, a MeasureContext: measures(ctx) -> {name: number}"
            )
        bad_devices = set(self.devices) - set(DEVICES)
        if not self.devices or bad_devices:
            raise _fail(where, f"devices must be a non-empty subset of {DEVICES}")
        if not (self.time_limit_s > 0):
            raise _fail(where, "time_limit_s must be > 0")
        if self.warmup_calls < 0:
            raise _fail(where, "warmup_calls must be >= 0")
        unknown_timing = set(self.benchmark) - BENCHMARK_OPTIONS
        if unknown_timing:
            known = ", ".join(sorted(BENCHMARK_OPTIONS))
            raise _fail(where, f"benchmark options {sorted(unknown_timing)} are unknown; use {known}")
        object.__setattr__(self, "benchmark", MappingProxyType(dict(self.benchmark)))
        names = {REFERENCE, *variants}
        seen: set[str] = set()
        for claim in self.claims:
            if not isinstance(claim, Claim):
                raise _fail(where, f"claims must be Claim objects, got {claim!r}")
            if claim.id in seen:
                raise _fail(where, f"claim id {claim.id!r} is declared twice")
            seen.add(claim.id)
            for role in (claim.variant, claim.baseline):
                if role not in names:
                    raise _fail(where, f"claim {claim.id!r} names unknown variant {role!r}")
            unknown_at = set(claim.at) - axes
            if unknown_at:
                raise _fail(where, f"claim {claim.id!r} pins unknown parameters {sorted(unknown_at)}")
        object.__setattr__(self, "claims", tuple(self.claims))
        object.__setattr__(self, "devices", tuple(self.devices))
        object.__setattr__(self, "markers", tuple(self.markers))

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    def implementations(self) -> list[tuple[str, Variant]]:
        """Reference first, then the variants in declaration order."""
        # __post_init__ turned every plain callable into a Variant.
        variants = [(name, v) for name, v in self.variants.items() if isinstance(v, Variant)]
        return [(REFERENCE, self.implementation(REFERENCE)), *variants]

    def implementation(self, name: str) -> Variant:
        """The reference (as a Variant) or the named variant."""
        if name == REFERENCE:
            # __post_init__ made the reference a Variant.
            return self.reference if isinstance(self.reference, Variant) else Variant(fn=self.reference)
        variant = self.variants.get(name)
        if not isinstance(variant, Variant):
            known = ", ".join(name for name, _ in self.implementations())
            raise CaseDefinitionError(f"Case {self.name!r} has no variant {name!r} (known: {known})")
        return variant

    def points(self, profile: str) -> list[dict[str, Any]]:
        if profile not in self.grids:
            raise CaseDefinitionError(f"Case {self.name!r} has no {profile!r} grid")
        return self.grids[profile].points()
