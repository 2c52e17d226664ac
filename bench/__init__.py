"""A benchmarking and profiling harness for PyTorch and PennyLane models."""

from __future__ import annotations

__version__ = "0.1.0"

from bench.case import Case, Claim, Grid, Tolerance, Variant
from bench.errors import BenchError
from bench.registry import register

__all__ = ["BenchError", "Case", "Claim", "Grid", "Tolerance", "Variant", "__version__", "register"]
