"""The DCGAN suite's declarations: claims D1-D7 are declared, helpers compute what they say."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

import suites.dcgan as suite
from bench.case import Case
from models.dcgan import DCGANConfig, StepLosses, build_models, ema_bytes, ema_update_foreach
from tests.suites.harness import family, measured


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # Tiny models: a second thread only adds synchronisation, costly on a shared machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cases() -> dict[str, Case]:
    return family("dcgan")


def test_every_dcgan_claim_is_declared_once() -> None:
    claims = [claim for case in _cases().values() for claim in case.claims]
    ids = [claim.id for claim in claims]
    assert len(ids) == len(set(ids))
    assert {f"D{i}" for i in range(1, 8)} <= set(ids)
    d7 = next(c for c in claims if c.id == "D7")
    assert not d7.measurable and "Inception" in d7.reason
    assert set(_cases()) == {
        "dcgan.params",
        "dcgan.train_step",
        "dcgan.train_step_fast",
        "dcgan.train_step_compiled",
        "dcgan.ema",
        "dcgan.checkpoint",
    }
    assert "slow" in _cases()["dcgan.train_step_compiled"].markers


def test_ranges() -> None:
    assert suite.about(20.0, 0.1) == pytest.approx((18.0, 22.0))
    # 5-6 GB -> 7-9 GB is a growth between 7/6 - 1 and 9/5 - 1.
    assert suite._memory_range((5, 6), (7, 9)) == pytest.approx((1 / 6, 0.8))


def test_params_case_counts_without_weights() -> None:
    params = {"width": 64, "attention": False}
    inputs = suite.params_setup(params, "cpu")
    assert inputs["generator"].net[0][0].weight.is_meta
    ctx = measured(_cases()["dcgan.params"], "no_attention", inputs, params)
    assert ctx.output == {"g_params": 3_804_032, "d_params": 2_761_728}
    assert suite.params_measures(ctx)["total_params"] == 3_804_032 + 2_761_728


def test_ema_case_returns_copies_and_declares_its_bytes() -> None:
    inputs = suite.ema_setup({"width": 8}, "cpu")
    out = suite.ema_step(**inputs, update=ema_update_foreach)
    # numpy arrays, which the harness copies when it keeps an output; all of the EMA's tensors.
    assert all(isinstance(a, np.ndarray) for a in out)
    tensors = [*inputs["ema"].parameters(), *inputs["ema"].buffers()]
    assert len(out) == len(tensors)
    assert all(np.array_equal(a, t.numpy()) for a, t in zip(out, tensors, strict=True))
    assert suite.ema_gigabytes(8) * 1e9 == ema_bytes(build_models(DCGANConfig(width=8))[0])


def test_loss_error() -> None:
    ref = StepLosses(torch.tensor(2.0), torch.tensor(0.5))
    var = StepLosses(torch.tensor(2.1), torch.tensor(0.45))
    err = suite.loss_error(ref, var)
    assert err["loss_abs_err"] == pytest.approx(0.1) and err["g_loss_abs_err"] == pytest.approx(0.05)


def test_checkpoint_case_records_sizes() -> None:
    inputs = suite.checkpoint_setup({"width": 8}, "cpu")
    ctx = measured(_cases()["dcgan.checkpoint"], "reference", inputs, {"width": 8})
    assert ctx.output == inputs["path"].size_bytes() > 0  # the scratch file itself is the path
    extras = suite.checkpoint_measures(ctx)
    assert extras["checkpoint_mb"] == pytest.approx(ctx.output / 1e6)
    assert extras["g_d_weights_mb"] < extras["checkpoint_mb"]
