"""The QMANN suites' declarations: every claim Q1-Q10 is declared, setups are seeded, helpers compute."""

from __future__ import annotations

import pytest
import torch

import suites.qmann as suite
import suites.qmann_techniques as techniques
import suites.qmann_workloads as workloads
from models.qmann import logits, train_step
from tests.suites.harness import family


def _cases() -> dict[str, object]:
    return family("qmann")


def test_every_qmann_claim_is_declared_once_with_a_verdict_path() -> None:
    claims = [claim for case in _cases().values() for claim in case.claims]  # type: ignore[attr-defined]
    ids = [claim.id for claim in claims]
    assert len(ids) == len(set(ids))
    assert {f"Q{i}" for i in range(1, 11)} <= set(ids)
    q9 = next(c for c in claims if c.id == "Q9")
    assert q9.hardware == "4 GPUs"  # an absolute 4-GPU figure: "other hardware", measured value shown


def test_cases_and_the_ddp_timing_override() -> None:
    cases = _cases()
    assert {"qmann.memory_read", "qmann.forward", "qmann.train_step", "qmann.ddp"} <= set(cases)
    ddp = cases["qmann.ddp"]
    assert ddp.benchmark["min_rounds"] == 1  # type: ignore[attr-defined]
    assert ddp.flops({"size": "default", "nproc": 1, "steps": 10}) > 0  # type: ignore[attr-defined]


def test_setups_are_deterministic() -> None:
    a = suite.memory_setup({"size": "test"}, "cpu")
    b = suite.memory_setup({"size": "test"}, "cpu")
    assert torch.equal(a["hidden"], b["hidden"]) and a["hidden"].shape == (2, 10, 32)
    f1, f2 = suite.forward_setup({"size": "test"}, "cpu"), suite.forward_setup({"size": "test"}, "cpu")
    assert torch.equal(f1["x"], f2["x"])
    for p1, p2 in zip(f1["model"].parameters(), f2["model"].parameters(), strict=True):
        assert torch.equal(p1, p2)


def test_implementations_bind_what_the_adapters_did() -> None:
    # The reference and variant of the memory cases differ only in the read they bind.
    cases = _cases()
    for name, fn in (("qmann.forward", logits), ("qmann.train_step", train_step)):
        case = cases[name]
        assert case.reference.fn is fn and dict(case.reference.kwargs) == {"read": "pennylane"}  # type: ignore[attr-defined]
        assert dict(case.variants["batched_memory"].kwargs) == {"read": "batched"}  # type: ignore[attr-defined]
    steps = cases["qmann.train_techniques"].variants  # type: ignore[attr-defined]
    assert dict(steps["bf16_autocast"].kwargs) == {"autocast_dtype": torch.bfloat16}


def test_prepare_replaces_the_model_and_leaves_the_inputs_alone() -> None:
    model = torch.nn.Linear(3, 2)
    inputs = {"model": model, "x": torch.ones(4, 3)}
    prepare = techniques.with_model(lambda m, x, size: torch.nn.Sequential(m, torch.nn.ReLU()))
    prepared = prepare(inputs, {"size": "test"})
    assert isinstance(prepared["model"], torch.nn.Sequential) and prepared["x"] is inputs["x"]
    assert inputs["model"] is model


def test_loaders_are_built_by_prepare() -> None:
    inputs = workloads.data_setup({"batch": 100}, "cpu")
    plain = workloads.with_loader()(inputs, {"batch": 100})["loader"]
    cached = workloads.with_loader(cached=True)(inputs, {"batch": 100})["loader"]
    assert plain.batch_size == cached.batch_size == 100
    assert type(cached.dataset).__name__ == "CachedDataset" and plain.dataset is inputs["dataset"]


def test_quality_functions() -> None:
    ref = {"samples_per_s": 100.0, "world_size": 1.0, "replica_max_abs_diff": 0.0}
    var = {"samples_per_s": 150.0, "world_size": 2.0, "replica_max_abs_diff": 0.0}
    assert workloads.scaling(ref, var)["scaling_efficiency"] == pytest.approx(0.75)
    state = torch.tensor([0.6, 0.8j], dtype=torch.complex128)
    same = workloads.same_state(state, state * torch.exp(torch.tensor(0.3j, dtype=torch.complex128)))
    assert same["fidelity"] == pytest.approx(1.0) and same["max_abs_err"] < 1e-12
    logits_ = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert techniques.prediction_quality(logits_, logits_.flip(0))["agreement"] == 0.0
    loss = techniques.loss_difference(torch.tensor(2.0), torch.tensor(2.5))
    assert loss == {"loss_rel_err": pytest.approx(0.25), "loss_abs_err": pytest.approx(0.5)}
