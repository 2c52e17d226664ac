"""A benchmarking and profiling harness for PyTorch and PennyLane models."""

from __future__ import annotations

__version__ = "0.1.0"

# The public API: declaring cases (Case ... register, the quality helpers) and reading their
# results (load, Run, Record). Everything else lives in modules that may change. None of these
# imports torch, pandas, matplotlib or pennylane: the pytest plugin imports this package in every
# pytest run of an environment it is installed in.
from bench.case import Case, Claim, Grid, MeasureContext, Tolerance, Variant
from bench.errors import BenchError, ResultsError
from bench.quality import agreement, max_abs_error, relative_error
from bench.registry import register
from bench.results import Record, Run, load

__all__ = [
    "BenchError",
    "Case",
    "Claim",
    "Grid",
    "MeasureContext",
    "Record",
    "ResultsError",
    "Run",
    "Tolerance",
    "Variant",
    "__version__",
    "agreement",
    "load",
    "max_abs_error",
    "register",
    "relative_error",
]
