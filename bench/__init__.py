"""A benchmarking and profiling harness for PyTorch and PennyLane models."""

from __future__ import annotations

__version__ = "0.1.0"

from bench.case import Case, Claim, Grid, MeasureContext, Tolerance, Variant
from bench.errors import BenchError
from bench.quality import agreement, max_abs_error, relative_error
from bench.registry import register

__all__ = [
    "BenchError",
    "Case",
    "Claim",
    "Grid",
    "MeasureContext",
    "Tolerance",
    "Variant",
    "__version__",
    "agreement",
    "max_abs_error",
    "register",
    "relative_error",
]
