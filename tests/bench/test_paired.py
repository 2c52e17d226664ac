"""Paired rounds: alternating batches of reference and variant, on a virtual clock."""

from __future__ import annotations

import pytest

from bench.paired import paired_speedup


class Clock:
    """A virtual clock; `speed` scales what each call costs (a machine speeding up or slowing down)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.speed = 1.0
        self.calls: list[str] = []

    def __call__(self) -> float:
        return self.now

    def work(self, name: str, cost: float):
        def fn() -> None:
            self.calls.append(name)
            self.now += cost / self.speed

        return fn


def test_speedup_is_the_cost_ratio_and_batches_alternate() -> None:
    clock = Clock()
    result = paired_speedup(
        clock.work("ref", 0.004), clock.work("var", 0.001), budget_s=0.5, batch_s=0.005, timer=clock
    )
    assert result is not None
    assert result.speedup == pytest.approx(4.0)
    # Both batches span the same window: 5 ms, so 2 reference calls and 5 variant calls.
    assert result.reference_iterations == 2 and result.variant_iterations == 5
    assert 5 <= len(result.ratios) <= 200
    # After the two calibration calls: R R V V V V V, then V V V V V R R, and so on.
    body = "".join("r" if c == "ref" else "v" for c in clock.calls[2:])
    assert body.startswith("rrvvvvv" + "vvvvvrr" + "rrvvvvv")


def test_batches_match_the_slower_sides_call() -> None:
    clock = Clock()
    result = paired_speedup(clock.work("ref", 0.1), clock.work("var", 0.001), budget_s=0.0, timer=clock)
    assert result is not None
    # A 100 ms reference call: the variant's batch also lasts 100 ms.
    assert result.reference_iterations == 1 and result.variant_iterations == 100
    assert result.speedup == pytest.approx(100.0)


def test_a_drifting_machine_cancels_within_pairs() -> None:
    clock = Clock()
    ref, var = clock.work("ref", 0.004), clock.work("var", 0.001)

    def slowing_ref() -> None:
        clock.speed *= 0.97  # the machine gets 3 % slower at every reference call
        ref()

    result = paired_speedup(slowing_ref, var, budget_s=0.2, batch_s=0.004, timer=clock)
    assert result is not None
    # Each pair sees nearly the same speed on both sides, so each ratio stays near 4 even though
    # the machine ends up several times slower than it started.
    assert clock.speed < 0.6
    assert result.speedup == pytest.approx(4.0, rel=0.05)


def test_minimum_pairs_and_cap() -> None:
    clock = Clock()
    result = paired_speedup(clock.work("ref", 1.0), clock.work("var", 0.5), budget_s=0.0, timer=clock)
    assert result is not None and len(result.ratios) == 5
    # Five pairs of 1.5 s would take 7.5 s: past a 5 s cap, so nothing is paired.
    assert (
        paired_speedup(clock.work("ref", 1.0), clock.work("var", 0.5), budget_s=0.0, cap_s=5.0, timer=clock)
        is None
    )


@pytest.mark.parametrize("kwargs", [{"budget_s": -1.0}, {"budget_s": 1.0, "min_pairs": 0}])
def test_bad_arguments_are_rejected(kwargs) -> None:
    with pytest.raises(ValueError, match="paired_speedup needs"):
        paired_speedup(lambda: None, lambda: None, **kwargs)


def test_known_medians_replace_the_calibration_calls() -> None:
    clock = Clock()
    ref, var = clock.work("ref", 2.0), clock.work("var", 0.2)
    # Past the cap: with the medians known, not a single call is spent finding that out.
    assert paired_speedup(ref, var, budget_s=0.0, cap_s=1.5, timer=clock, estimates=(2.0, 0.2)) is None
    assert clock.calls == []
    fast_ref, fast_var = clock.work("ref", 0.004), clock.work("var", 0.001)
    result = paired_speedup(fast_ref, fast_var, budget_s=0.0, timer=clock, estimates=(0.004, 0.001))
    assert result is not None and result.speedup == pytest.approx(4.0)
    assert "".join("r" if c == "ref" else "v" for c in clock.calls).startswith("rrvvvvv")
