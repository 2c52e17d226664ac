"""The SeqSetVAE suite's declarations: claims S1-S9 declared, seeded setups, helpers that compute."""

from __future__ import annotations

import math

import pytest
import torch

import suites.seqsetvae as suite
from bench.registry import REGISTRY
from models.seqsetvae import StepOutput


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small shapes: a second thread only spin-waits on a busy machine
    yield
    torch.set_num_threads(threads)


def _cases() -> dict[str, object]:
    return {case.name: case for case in REGISTRY.from_module("suites.seqsetvae")}


def test_every_claim_s1_to_s9_is_declared() -> None:
    cases = _cases()
    assert set(cases) == {
        f"seqsetvae.{n}"
        for n in (
            "forward",
            "train_step",
            "precision",
            "compile",
            "dataloader",
            "grad_accumulation",
            "seq_cap",
            "monitor",
            "combined",
        )
    }
    ids = [claim.id for case in cases.values() for claim in case.claims]  # type: ignore[attr-defined]
    assert len(ids) == len(set(ids))
    assert {f"S{i}" for i in range(1, 10)} <= {i.split(".")[0] for i in ids}
    target = next(c for c in cases["seqsetvae.train_step"].claims if c.id == "issue5")  # type: ignore[attr-defined]
    assert target.expected == (5.0, math.inf) and dict(target.at) == {"batch": 16}


def test_batching_setup_is_deterministic_and_consistent() -> None:
    a = suite._batching_setup({"size": "quick", "batch": 2}, "cpu")
    b = suite._batching_setup({"size": "quick", "batch": 2}, "cpu")
    assert [p.patient_id for p in a["patients"]] == [0, 1]
    assert torch.equal(a["batch"].var, b["batch"].var) and len(a["micro"]) == 2
    for p, q in zip(a["trainer"].model.parameters(), b["trainer"].model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_loader_specs_parse_and_reject_nonsense() -> None:
    settings = suite.loader_settings(4, "w8-pin-persistent-prefetch4")
    flags = (settings.workers, settings.pin_memory, settings.persistent, settings.prefetch)
    assert flags == (8, True, True, 4)
    assert suite.loader_settings(2, "w0").workers == 0
    with pytest.raises(ValueError, match="unknown flags"):
        suite.loader_settings(4, "w2-fast")
    with pytest.raises(ValueError, match="must start with"):
        suite.loader_settings(4, "two")


def test_quality_functions() -> None:
    ref = StepOutput(torch.tensor(2.0), (torch.tensor([1.0, 0.0]),))
    var = StepOutput(torch.tensor(2.2), (torch.tensor([1.0, 1.0]),))
    q = suite.step_quality(ref, var)
    assert q["loss_rel_diff"] == pytest.approx(0.1) and q["grad_cosine"] == pytest.approx(2**-0.5)
    cap = suite.cap_quality(
        {"loss": torch.tensor(4.0), "events": torch.tensor(100.0)},
        {"loss": torch.tensor(3.0), "events": torch.tensor(40.0)},
    )
    assert cap == {"events_kept": pytest.approx(0.4), "loss_rel_diff": pytest.approx(0.25)}


def test_counted_flops_sees_the_padding() -> None:
    # The padded step computes padded events too: more FLOPs than the per-set loops.
    params = {"size": "quick", "batch": 2}
    per_set = suite.counted_flops(suite._batching_setup, suite.forward_per_set, "forward")(params)
    padded = suite.counted_flops(suite._batching_setup, suite.forward_padded, "forward")(params)
    assert 0 < per_set < padded
