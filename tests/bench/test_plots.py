"""Report figures: scaling fits (power law or exponential), crossovers, and the files the report links to."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.compare import Comparison
from bench.render.plots import EXPONENTIAL, POWER, crossover, fit_scaling, report_figures, scaling_fits


def _row(
    variant: str, batch: int, seconds: float, speedup: float | None = None, axis: str = "batch"
) -> Comparison:
    return Comparison(
        case="fam.case",
        family="fam",
        params={axis: batch, "dim": 8},
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
    assert {f.model for f in fits.values()} == {POWER}
    assert fits["reference"].growth == pytest.approx(2.0)
    assert fits["whitened"].growth == pytest.approx(1.0)
    assert crossover(fits["reference"], fits["whitened"]) == pytest.approx(10.0)


# Deterministic multiplicative noise of a few per cent, as medians of a real run have.
_NOISE = (1.03, 0.97, 1.02, 0.99, 1.04, 0.96, 1.01)


def test_state_vector_times_against_qubits_fit_an_exponential() -> None:
    qubits = (4, 6, 8, 10, 12, 14, 16)
    times = [2e-5 * 1.9**n * e for n, e in zip(qubits, _NOISE, strict=True)]
    fit = fit_scaling("torch", qubits, times)
    assert fit.model == EXPONENTIAL
    assert fit.growth == pytest.approx(1.9, rel=0.01)
    assert fit.r2 > fit.rival_r2
    assert fit.describe("qubits") == "exponential: ×1.9 per qubit"


def test_times_against_batch_fit_a_power_law() -> None:
    batch = (2, 4, 8, 16, 32, 64, 128)
    times = [3e-4 * b**0.98 * e for b, e in zip(batch, _NOISE, strict=True)]
    fit = fit_scaling("reference", batch, times)
    assert fit.model == POWER
    assert fit.growth == pytest.approx(0.98, abs=0.02)
    assert fit.r2 > fit.rival_r2
    assert fit.describe("batch") == "power law: t ∝ batch^0.98"


def test_a_declared_model_overrides_the_fit() -> None:
    # lightning.qubit in gaussgan.qubit_scaling (the committed 2-core report): overhead dominates
    # these small circuits, so a power law fits better; a declaration keeps the physics.
    qubits = (4, 6, 8, 10, 12, 14)
    times = [12.2e-3, 16.3e-3, 29.5e-3, 23.9e-3, 27.1e-3, 39.3e-3]
    assert fit_scaling("ref", qubits, times).model == POWER
    declared = fit_scaling("ref", qubits, times, model=EXPONENTIAL)
    assert declared.model == EXPONENTIAL and declared.declared
    with pytest.raises(ValueError, match="unknown scaling model"):
        fit_scaling("ref", qubits, times, model="cubic")


def test_crossover_of_an_exponential_and_a_power_law() -> None:
    qubits = (4, 6, 8, 10, 12, 14)
    slow_start = fit_scaling("a", qubits, [1e-3 * n**1.0 for n in qubits], model=POWER)
    blows_up = fit_scaling("b", qubits, [1e-6 * 2.0**n for n in qubits], model=EXPONENTIAL)
    x = crossover(slow_start, blows_up)
    assert x is not None and 4 < x < 14
    assert slow_start.log_time(x) == pytest.approx(blows_up.log_time(x))


def test_report_figure_of_qubit_scaling_is_semi_log(tmp_path: Path) -> None:
    rows = [
        _row(v, n, 2e-5 * g**n * e, axis="qubits")
        for v, g in (("reference", 2.0), ("fused", 1.6))
        for n, e in zip((4, 6, 8, 10, 12), _NOISE[:5], strict=True)
    ]
    fits = scaling_fits(rows, "fam.case", "qubits")
    assert [(f.variant, f.model) for f in fits] == [("reference", EXPONENTIAL), ("fused", EXPONENTIAL)]
    assert [round(f.growth, 1) for f in fits] == [2.0, 1.6]
    names = [f.path.name for f in report_figures(rows, tmp_path)]
    assert "fam.case-qubits-scaling.png" in names


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
