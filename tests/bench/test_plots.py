"""Report figures: power-law fits, crossovers, and the files the report links to."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.compare import Comparison
from bench.render.plots import crossover, report_figures, scaling_fits


def _row(variant: str, batch: int, seconds: float, speedup: float | None = None) -> Comparison:
    return Comparison(
        case="fam.case",
        family="fam",
        params={"batch": batch, "dim": 8},
        device="cpu",
        variant=variant,
        role="reference" if variant == "reference" else "variant",
        exact=True,
        median_s=seconds,
        speedup=speedup,
        speedup_ci=(speedup * 0.9, speedup * 1.1) if speedup else None,
        peak_bytes=2**20 * batch,
    )


def _rows() -> list[Comparison]:
    rows = []
    for batch in (2, 4, 8, 16, 32):
        quadratic = 1e-3 * batch**2  # the per-pair reference grows with B^2 ...
        linear = 1e-2 * batch  # ... the whitened variant with B: they cross at B = 10
        rows += [_row("reference", batch, quadratic), _row("whitened", batch, linear, quadratic / linear)]
    return rows


def test_fits_recover_exponents_and_the_crossover() -> None:
    fits = {f.variant: f for f in scaling_fits(_rows(), "fam.case", "batch")}
    assert fits["reference"].exponent == pytest.approx(2.0)
    assert fits["whitened"].exponent == pytest.approx(1.0)
    assert crossover(fits["reference"], fits["whitened"]) == pytest.approx(10.0)


def test_no_fit_from_fewer_than_three_points() -> None:
    rows = [r for r in _rows() if r.params["batch"] in (2, 4)]
    assert scaling_fits(rows, "fam.case", "batch") == []


def test_report_figures_are_written(tmp_path: Path) -> None:
    figures = report_figures(_rows(), tmp_path)
    names = sorted(f.path.name for f in figures)
    assert names == ["fam-memory.png", "fam-speedup.png", "fam.case-batch-scaling.png"]
    for figure in figures:
        assert figure.path.stat().st_size > 5_000
        assert figure.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
