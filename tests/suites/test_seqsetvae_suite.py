"""The SeqSetVAE suite's declarations: claims S1-S9 declared, seeded setups, helpers that compute."""

from __future__ import annotations

import math

import pytest
import torch

import suites.seqsetvae as suite
import suites.seqsetvae_training as training
from models.seqsetvae import StepOutput, counted_flops, loader_settings, loss_padded, loss_reference
from tests.suites.harness import family, measured


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small shapes: a second thread only spin-waits on a busy machine
    yield
    torch.set_num_threads(threads)


def _cases() -> dict[str, object]:
    return family("seqsetvae")


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
    params = {"size": "quick", "batch": 2}
    a = suite._patients_setup(params, "cpu")
    b = suite._patients_setup(params, "cpu")
    assert [p.patient_id for p in a["patients"]] == [0, 1]
    assert torch.equal(suite.padded(a, params)["batch"].var, suite.padded(b, params)["batch"].var)
    assert len(suite.micro1(a, params)["batches"]) == 2
    for p, q in zip(a["trainer"].model.parameters(), b["trainer"].model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_loader_specs_parse_and_reject_nonsense() -> None:
    settings = loader_settings(4, "w8-pin-persistent-prefetch4")
    flags = (settings.workers, settings.pin_memory, settings.persistent, settings.prefetch)
    assert flags == (8, True, True, 4)
    assert loader_settings(2, "w0").workers == 0
    with pytest.raises(ValueError, match="unknown flags"):
        loader_settings(4, "w2-fast")
    with pytest.raises(ValueError, match="must start with"):
        loader_settings(4, "two")


def test_quality_functions() -> None:
    ref = StepOutput(torch.tensor(2.0), (torch.tensor([1.0, 0.0]),))
    var = StepOutput(torch.tensor(2.2), (torch.tensor([1.0, 1.0]),))
    q = suite.step_quality(ref, var)
    assert q["loss_rel_diff"] == pytest.approx(0.1) and q["grad_cosine"] == pytest.approx(2**-0.5)
    cap = training.cap_quality(
        {"loss": torch.tensor(4.0), "events": torch.tensor(100.0)},
        {"loss": torch.tensor(3.0), "events": torch.tensor(40.0)},
    )
    assert cap == {"events_kept": pytest.approx(0.4), "loss_rel_diff": pytest.approx(0.25)}


def test_counted_flops_sees_the_padding() -> None:
    # The padded step computes padded events too: more FLOPs than the per-set loops.
    params = {"size": "quick", "batch": 2}
    per_set = counted_flops(suite._patients_setup, loss_reference, "forward")(params)
    padded = counted_flops(suite._patients_setup, loss_padded, "forward", prepare=suite.padded)(params)
    assert 0 < per_set < padded


def test_monitor_frequency_comes_from_prepare_and_is_measured() -> None:
    params = {"size": "quick", "batch": 2, "steps": 4, "scale": 20}
    case = _cases()["seqsetvae.monitor"]
    ran = measured(case, "reference", training._monitor_setup(params, "cpu"), params)  # type: ignore[arg-type]
    assert ran.arguments["monitor"].cfg.update_every == 2  # 50 // 20
    assert training._monitor_measures(ran)["updates_per_call"] == 2.0
    off = measured(case, "off", training._monitor_setup(params, "cpu"), params)  # type: ignore[arg-type]
    assert training._monitor_measures(off) == {"updates_per_call": 0.0, "plots_per_call": 0.0}
    # The monitor only observes: the same steps give the same losses.
    assert torch.allclose(ran.output, off.output, rtol=1e-5, atol=1e-5)
