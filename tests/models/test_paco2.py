"""Behavioural tests for the PaCo-2 losses, matching solvers and training step."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from models.paco2 import (
    PaCoConfig,
    brute_force_assignment,
    build_training,
    cosine_cost,
    frobenius_sq,
    hungarian,
    image_batch,
    log_euclidean_sq,
    mahalanobis_cost,
    mahalanobis_pairs,
    mahalanobis_whitened,
    match_parts,
    negatives_pool,
    pac_loss,
    pac_loss_two_stage,
    pac_loss_whitened,
    part_covariance,
    part_features,
    pooled_covariance,
    soc_loss,
    soc_loss_frobenius,
    spd_log,
    stein_divergence,
    train_step,
    update_class_covariance,
)

F64 = torch.float64


def _features(
    batch: int = 4, parts: int = 3, dim: int = 8, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """z1, z2 (B, K, d) float64 leaves, labels (B,) and the ground-truth match (B, K)."""
    data = part_features(batch, parts, dim, seed=seed, dtype=F64)
    return data["z1"], data["z2"], data["labels"], data["perm"]


def _sigma(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    return pooled_covariance(part_covariance(z1), part_covariance(z2))  # (B, d, d)


def _random_spd(batch: int, dim: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(batch, dim, dim, generator=gen, dtype=F64)  # (B, d, d)
    return a @ a.transpose(1, 2) / dim + 0.5 * torch.eye(dim, dtype=F64)


# ----------------------------------------------------------------------------- covariance


def test_part_covariance_is_spd_and_matches_hand_loop() -> None:
    z1, _, _, _ = _features(batch=3, parts=4, dim=8)
    cov = part_covariance(z1, eps=1e-5)  # (B, d, d)
    assert cov.shape == (3, 8, 8)
    torch.testing.assert_close(cov, cov.transpose(1, 2), rtol=0, atol=1e-14)
    assert bool((torch.linalg.eigvalsh(cov) > 0).all())

    sample = z1[1].detach().numpy()  # (K, d)
    mean = sample.mean(axis=0)
    hand = np.zeros((8, 8))
    for row in sample:
        hand += np.outer(row - mean, row - mean)
    hand = hand / (sample.shape[0] - 1) + 1e-5 * np.eye(8)
    np.testing.assert_allclose(cov[1].detach().numpy(), hand, rtol=1e-12, atol=1e-14)


def test_pooled_covariance_formula() -> None:
    s1, s2 = _random_spd(2, 5, seed=1), _random_spd(2, 5, seed=2)
    pooled = pooled_covariance(s1, s2, tau=0.25)
    torch.testing.assert_close(pooled, 0.5 * (s1 + s2) + 0.25 * torch.eye(5, dtype=F64))


# ----------------------------------------------------------------------------- Mahalanobis


@pytest.mark.parametrize("source", ["random_spd", "part_covariance"])
def test_mahalanobis_reference_equals_whitened_and_explicit(source: str) -> None:
    z1, z2, _, _ = _features(batch=3, parts=3, dim=6, seed=3)
    anchors, candidates = z1.detach(), negatives_pool(z1, z2).detach()  # (B, K, d), (B, N, d)
    sigma = _random_spd(3, 6, seed=4) if source == "random_spd" else _sigma(z1, z2).detach()

    ref = mahalanobis_pairs(anchors, candidates, sigma)  # (B, K, N)
    fast = mahalanobis_whitened(anchors, candidates, sigma)  # (B, K, N)
    assert ref.shape == fast.shape == (3, 3, candidates.shape[1])
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=0)

    diff = anchors.unsqueeze(2) - candidates.unsqueeze(1)  # (B, K, N, d)
    inv = torch.linalg.inv(sigma)  # (B, d, d)
    explicit = torch.einsum("bknd,bde,bkne->bkn", diff, inv, diff).sqrt()  # (B, K, N)
    torch.testing.assert_close(ref, explicit, rtol=1e-9, atol=0)


def test_mahalanobis_whitened_gradient_is_finite_at_zero_distance() -> None:
    anchors = torch.randn(2, 2, 4, dtype=F64, requires_grad=True)
    candidates = torch.cat([anchors.detach(), torch.randn(2, 1, 4, dtype=F64)], dim=1)
    dist = mahalanobis_whitened(anchors, candidates, _random_spd(2, 4, seed=5))
    assert float(dist.detach()[0, 0, 0]) == pytest.approx(0.0, abs=1e-12)
    (grad,) = torch.autograd.grad(dist.sum(), anchors)
    assert bool(torch.isfinite(grad).all())


# ----------------------------------------------------------------------------- PaC loss


def _pac_inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Views that exercise every semi-hard branch under the parts' own sigma+.

    Samples 0-1: view 2 is a shuffled near-copy (every negative farther, semi-hard ==
    closest). Sample 2: independent view 2 (some negatives closer than the positive, so
    semi-hard != closest). Sample 3: view 2 scaled x20 (no negative farther: fallback).
    """
    gen = torch.Generator().manual_seed(seed)
    z1 = torch.randn(4, 3, 8, generator=gen, dtype=F64)  # (B, K, d)
    z2 = z1.flip(1) + 0.05 * torch.randn(4, 3, 8, generator=gen, dtype=F64)  # (B, K, d)
    z2[2] = torch.randn(3, 8, generator=gen, dtype=F64)
    z2[3] = 20.0 * torch.randn(3, 8, generator=gen, dtype=F64)
    z1.requires_grad_()
    z2.requires_grad_()
    perm = match_parts(z1, z2, _sigma(z1, z2), epoch=0)
    return z1, z2, perm


def _semi_hard_branches(z1: torch.Tensor, z2: torch.Tensor, perm: torch.Tensor) -> tuple[int, int]:
    """(anchors with no farther negative, anchors whose semi-hard pick is not the closest)."""
    with torch.no_grad():
        sigma = _sigma(z1, z2)
        positives = z2.gather(1, perm.unsqueeze(-1).expand(-1, -1, z2.shape[2]))  # (B, K, d)
        d_pos = mahalanobis_whitened(z1, positives, sigma).diagonal(dim1=1, dim2=2)  # (B, K)
        d_neg = mahalanobis_whitened(z1, negatives_pool(z1, z2), sigma)  # (B, K, N)
        farther = d_neg > d_pos.unsqueeze(-1)  # (B, K, N)
        none_farther = int((~farther.any(-1)).sum())
        closest_is_nearer = int(
            (farther.any(-1) & ~farther.gather(-1, d_neg.argmin(-1, keepdim=True)).squeeze(-1)).sum()
        )
    return none_farther, closest_is_nearer


MARGIN = 0.2
# sigma+ mixes O(100) variances with the 1e-5 eps floor (condition ~1e7), and the Cholesky
# backward amplifies float64 round-off by about that much, hence 1e-7 rather than 1e-12.
GRAD_RTOL = 1e-7


@pytest.mark.parametrize("seed", [0, 1])
def test_pac_whitened_equals_reference_loss_index_and_gradients(seed: int) -> None:
    z1, z2, perm = _pac_inputs(seed)
    none_farther, closest_is_nearer = _semi_hard_branches(z1, z2, perm)
    assert none_farther > 0 and closest_is_nearer > 0
    ref = pac_loss(z1, z2, perm, _sigma(z1, z2), MARGIN)
    fast = pac_loss_whitened(z1, z2, perm, _sigma(z1, z2), MARGIN)
    assert ref.loss.item() > 0.0
    torch.testing.assert_close(fast.loss, ref.loss, rtol=1e-12, atol=0)
    assert torch.equal(fast.negative_index, ref.negative_index)
    assert fast.negative_index.dtype == torch.long and fast.negative_index.shape == (4, 3)

    ref_grads = torch.autograd.grad(ref.loss, (z1, z2))
    fast_grads = torch.autograd.grad(fast.loss, (z1, z2))
    for r, f in zip(ref_grads, fast_grads, strict=True):
        assert float(r.abs().max()) > 0.0
        torch.testing.assert_close(f, r, rtol=GRAD_RTOL, atol=1e-9 * float(r.abs().max()))


def test_two_stage_with_full_shortlist_equals_reference() -> None:
    z1, z2, perm = _pac_inputs(seed=2)
    pool_size = negatives_pool(z1, z2).shape[1]
    ref = pac_loss(z1, z2, perm, _sigma(z1, z2), MARGIN)
    ref_grads = torch.autograd.grad(ref.loss, (z1, z2))
    for top_m in (pool_size, 10 * pool_size):
        two = pac_loss_two_stage(z1, z2, perm, _sigma(z1, z2), MARGIN, top_m=top_m)
        torch.testing.assert_close(two.loss, ref.loss, rtol=1e-12, atol=0)
        assert torch.equal(two.negative_index, ref.negative_index)
        for r, g in zip(ref_grads, torch.autograd.grad(two.loss, (z1, z2)), strict=True):
            torch.testing.assert_close(g, r, rtol=GRAD_RTOL, atol=1e-9 * float(r.abs().max()))


def test_two_stage_small_shortlist_picks_from_cosine_shortlist() -> None:
    z1, z2, perm = _pac_inputs(seed=4)
    sigma = _sigma(z1, z2)
    pool = negatives_pool(z1, z2).detach()  # (B, N, d)
    top_m = 3
    two = pac_loss_two_stage(z1, z2, perm, sigma, MARGIN, top_m=top_m)
    ref = pac_loss(z1, z2, perm, sigma, MARGIN)
    idx = two.negative_index  # (B, K)
    assert idx.dtype == torch.long and idx.shape == ref.negative_index.shape
    assert bool(((idx >= 0) & (idx < pool.shape[1])).all())
    assert torch.isfinite(two.loss)

    cos_dist = 1 - F.normalize(z1.detach(), dim=-1) @ F.normalize(pool, dim=-1).transpose(1, 2)
    shortlist = cos_dist.topk(top_m, dim=-1, largest=False).indices  # (B, K, M)
    assert bool((shortlist == idx.unsqueeze(-1)).any(-1).all())

    agreement = float((idx == ref.negative_index).double().mean())
    assert 0.0 <= agreement <= 1.0


def _naive_semi_hard_terms(
    z1: torch.Tensor, z2: torch.Tensor, perm: torch.Tensor, margin: float
) -> tuple[list[list[float]], list[list[int]]]:
    """Per-anchor Euclidean semi-hard hinge terms and choices, written from the rule."""
    batch, parts, _ = z1.shape
    terms, chosen = [], []
    for b in range(batch):
        pool = [p for o in range(batch) if o != b for p in (*z1[o], *z2[o])]
        term_row, pick_row = [], []
        for k in range(parts):
            d_pos = float(torch.dist(z1[b, k], z2[b, perm[b, k]]))
            d_neg = [float(torch.dist(z1[b, k], p)) for p in pool]
            farther = [(d, i) for i, d in enumerate(d_neg) if d > d_pos]
            pick = min(farther)[1] if farther else min((d, i) for i, d in enumerate(d_neg))[1]
            pick_row.append(pick)
            term_row.append(max(0.0, d_pos - d_neg[pick] + margin))
        terms.append(term_row)
        chosen.append(pick_row)
    return terms, chosen


@pytest.mark.parametrize("impl", ["reference", "whitened", "two_stage"])
def test_semi_hard_rule_on_hand_built_case(impl: str) -> None:
    # Sample 0, anchor 0 at the origin with positive at distance 1; its pool (sample 1, order
    # z1[1,0], z1[1,1], z2[1,0], z2[1,1]) sits at distances 0.5, 3, 1.5, 2 -> semi-hard is
    # index 2. Anchor 1's positive is ~28 away, farther than every negative -> closest, index 1.
    z1 = torch.tensor([[[0.0, 0.0], [10.0, 10.0]], [[0.5, 0.0], [0.0, 3.0]]], dtype=F64, requires_grad=True)
    z2 = torch.tensor([[[1.0, 0.0], [30.0, 30.0]], [[0.0, -1.5], [2.0, 0.0]]], dtype=F64, requires_grad=True)
    perm = torch.tensor([[0, 1], [0, 1]])
    sigma = torch.eye(2, dtype=F64).expand(2, 2, 2)  # identity: Mahalanobis == Euclidean
    margin = 0.2
    if impl == "reference":
        result = pac_loss(z1, z2, perm, sigma, margin)
    elif impl == "whitened":
        result = pac_loss_whitened(z1, z2, perm, sigma, margin)
    else:
        result = pac_loss_two_stage(z1, z2, perm, sigma, margin, top_m=4)

    assert result.negative_index[0].tolist() == [2, 1]
    terms, chosen = _naive_semi_hard_terms(z1.detach(), z2.detach(), perm, margin)
    # By hand: anchor 0's hinge is inactive (1 - 1.5 + 0.2 < 0); anchor 1's is active
    # against the closest negative (0, 3) at distance hypot(10, 7).
    assert terms[0][0] == 0.0
    assert terms[0][1] == pytest.approx(math.hypot(20, 20) - math.hypot(10, 7) + margin)
    assert result.negative_index.tolist() == chosen
    assert result.loss.item() == pytest.approx(float(np.mean(terms)), rel=1e-12)


# ----------------------------------------------------------------------------- matching


@pytest.mark.parametrize("parts", [3, 4, 5, 6])
def test_hungarian_agrees_with_brute_force(parts: int) -> None:
    gen = torch.Generator().manual_seed(parts)
    cost = torch.rand(4, parts, parts, generator=gen, dtype=F64)  # (B, K, K)
    perm_h = hungarian(cost)
    perm_b = brute_force_assignment(cost)
    assert perm_h.dtype == torch.long and perm_h.shape == (4, parts)
    assert torch.equal(perm_h, perm_b)
    assert torch.equal(perm_h.sort(dim=-1).values, torch.arange(parts).expand(4, parts))
    # Optimality: no random permutation beats the returned one.
    best = cost.gather(2, perm_h.unsqueeze(-1)).sum(dim=(1, 2))  # (B,)
    rows = torch.arange(parts)
    for _ in range(20):
        other = torch.randperm(parts, generator=gen)
        assert bool((cost[:, rows, other].sum(-1) >= best - 1e-12).all())


def test_match_parts_recovers_ground_truth_in_both_regimes() -> None:
    z1, z2, _, truth = _features(batch=4, parts=5, dim=12, seed=7)
    sigma = _sigma(z1, z2)
    assert not torch.equal(truth, torch.arange(5).expand(4, 5))  # matching is non-trivial
    for epoch in (0, 3):
        for solver in (hungarian, brute_force_assignment):
            perm = match_parts(z1, z2, sigma, epoch, warmup_epochs=3, solver=solver)
            assert torch.equal(perm, truth)
    assert cosine_cost(z1, z2).shape == mahalanobis_cost(z1, z2, sigma).shape == (4, 5, 5)


# ----------------------------------------------------------------------------- SoC


def test_log_euclidean_matches_scipy_logm() -> None:
    a, b = _random_spd(3, 5, seed=8), _random_spd(3, 5, seed=9)
    ours = log_euclidean_sq(a, b)  # (3,)
    for i in range(3):
        la = scipy.linalg.logm(a[i].numpy()).real
        lb = scipy.linalg.logm(b[i].numpy()).real
        np.testing.assert_allclose(spd_log(a[i]).numpy(), la, rtol=1e-9, atol=1e-11)
        assert float(ours[i]) == pytest.approx(float(np.sum((la - lb) ** 2)), rel=1e-9)
    assert not torch.allclose(ours, frobenius_sq(a, b), rtol=1e-3)


def test_spd_log_gradient_is_correct_with_repeated_eigenvalues() -> None:
    gen = torch.Generator().manual_seed(10)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=gen, dtype=F64))
    repeated = q @ torch.diag(torch.tensor([0.5, 0.5, 0.5, 2.0], dtype=F64)) @ q.T
    distinct = _random_spd(1, 4, seed=11)[0]
    for mat in (repeated, distinct):
        assert torch.autograd.gradcheck(spd_log, (mat.clone().requires_grad_(),))


def test_stein_divergence_zero_on_equal_and_positive_otherwise() -> None:
    a, b = _random_spd(3, 5, seed=12), _random_spd(3, 5, seed=13)
    torch.testing.assert_close(stein_divergence(a, a), torch.zeros(3, dtype=F64), atol=1e-12, rtol=0)
    assert bool((stein_divergence(a, b) > 0).all())
    torch.testing.assert_close(stein_divergence(a, b), stein_divergence(b, a))


def test_soc_frobenius_optimized_equals_reference_and_is_pure() -> None:
    z1, z2, labels, _ = _features(batch=4, parts=3, dim=6, seed=14)
    s1, s2 = part_covariance(z1), part_covariance(z2)
    class_cov = _random_spd(4, 6, seed=15)
    before = class_cov.clone()
    ref = soc_loss(s1, s2, labels, class_cov, distance="frobenius", weight=0.05)
    fast = soc_loss_frobenius(s1, s2, labels, class_cov, weight=0.05)
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=0)
    assert torch.equal(class_cov, before)

    expected = frobenius_sq(s1, s2) + 0.05 * frobenius_sq(0.5 * (s1 + s2), class_cov[labels])
    torch.testing.assert_close(ref, expected.mean())
    assert ref.item() > 0
    for distance in ("log_euclidean", "stein"):
        value = soc_loss(s1, s2, labels, class_cov, distance=distance)
        assert torch.isfinite(value) and value.item() > 0
        (grad,) = torch.autograd.grad(value, z1, retain_graph=True)
        assert bool(torch.isfinite(grad).all())


def test_update_class_covariance_ema() -> None:
    s1, s2 = _random_spd(3, 4, seed=16), _random_spd(3, 4, seed=17)
    labels = torch.tensor([0, 2, 0])
    class_cov = torch.eye(4, dtype=F64).expand(3, 4, 4).clone()
    new = update_class_covariance(class_cov, s1, s2, labels, momentum=0.9)
    mean0 = 0.5 * (s1[[0, 2]] + s2[[0, 2]]).mean(0)
    torch.testing.assert_close(new[0], 0.9 * torch.eye(4, dtype=F64) + 0.1 * mean0)
    torch.testing.assert_close(new[2], 0.9 * torch.eye(4, dtype=F64) + 0.1 * 0.5 * (s1[1] + s2[1]))
    assert torch.equal(new[1], torch.eye(4, dtype=F64))  # absent class untouched
    assert torch.equal(class_cov, torch.eye(4, dtype=F64).expand(3, 4, 4))  # input untouched


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_value_errors() -> None:
    z1, z2, labels, perm = _features(batch=3, parts=3, dim=4)
    sigma = _sigma(z1, z2)
    with pytest.raises(ValueError, match="same shape"):
        pac_loss_whitened(z1, z2[:, :2], perm, sigma)
    with pytest.raises(ValueError, match="same shape"):
        cosine_cost(z1, z2[:, :, :3])
    with pytest.raises(ValueError, match="at least K=2"):
        part_covariance(z1[:, :1])
    with pytest.raises(ValueError, match="at least K=2"):
        pac_loss(z1[:, :1], z2[:, :1], perm[:, :1], sigma)
    with pytest.raises(ValueError, match="at least 2 samples"):
        negatives_pool(z1[:1], z2[:1])
    with pytest.raises(ValueError, match="perm must have shape"):
        pac_loss(z1, z2, perm[:, :2], sigma)
    with pytest.raises(ValueError, match="sigma_plus must have shape"):
        pac_loss_two_stage(z1, z2, perm, sigma[:, :3, :3])
    with pytest.raises(ValueError, match="top_m"):
        pac_loss_two_stage(z1, z2, perm, sigma, top_m=0)
    with pytest.raises(ValueError, match="K <= 8"):
        brute_force_assignment(torch.rand(1, 9, 9))
    with pytest.raises(ValueError, match="distance must be one of"):
        soc_loss(part_covariance(z1), part_covariance(z2), labels, sigma, distance="riemann")
    with pytest.raises(ValueError, match="pac must be one of"):
        PaCoConfig(pac="fast")
    with pytest.raises(ValueError, match="parts must be at least 2"):
        PaCoConfig(parts=1)


# ----------------------------------------------------------------------------- data and model


def test_synthetic_data_is_seeded() -> None:
    a, b = part_features(3, 4, 8, seed=5), part_features(3, 4, 8, seed=5)
    c = part_features(3, 4, 8, seed=6)
    assert torch.equal(a["z1"], b["z1"]) and torch.equal(a["z2"], b["z2"])
    assert not torch.equal(a["z1"], c["z1"])
    assert a["z1"].requires_grad and a["z1"].dtype == torch.float32
    imgs, again = image_batch(4, seed=1), image_batch(4, seed=1)
    assert imgs["x1"].shape == imgs["x2"].shape == (4, 3, 32, 32)
    assert torch.equal(imgs["x1"], again["x1"]) and not torch.equal(imgs["x1"], imgs["x2"])


def _tiny_config(**overrides: object) -> PaCoConfig:
    base = {"parts": 3, "dim": 8, "width": 8, "num_classes": 4, "top_m": 4}
    base.update(overrides)
    return PaCoConfig(**base)  # type: ignore[arg-type]


def test_build_training_is_deterministic() -> None:
    config = _tiny_config(pac="whitened")
    runs = []
    for _ in range(2):
        setup = build_training(config, batch=3, seed=3, dtype=F64)
        batch = setup["batch"]
        runs.append(setup["model"].losses(batch["x1"], batch["x2"], batch["labels"]))
    for key in ("total", "ce", "pac", "soc"):
        assert torch.equal(runs[0][key], runs[1][key])


def test_train_step_reference_and_whitened_agree_on_first_step() -> None:
    # A margin near the initial distance scale keeps PaC hinges active so its gradients count.
    results = {}
    for pac in ("reference", "whitened", "two_stage"):
        setup = build_training(_tiny_config(pac=pac, margin=8.0, top_m=100), 3, dtype=F64)
        model, batch = setup["model"], setup["batch"]
        pac_value = model.losses(batch["x1"], batch["x2"], batch["labels"])["pac"]
        loss = train_step(model, setup["optimizer"], batch)
        grads = {name: p.grad.clone() for name, p in model.named_parameters()}
        results[pac] = (pac_value, loss, grads, model.class_cov.clone())
    ref_pac, ref_loss, ref_grads, ref_cov = results["reference"]
    assert ref_pac.item() > 0.0
    assert not torch.equal(ref_cov, torch.eye(8, dtype=F64).expand_as(ref_cov))  # EMA ran
    for pac in ("whitened", "two_stage"):
        pac_value, loss, grads, cov = results[pac]
        torch.testing.assert_close(pac_value, ref_pac, rtol=1e-10, atol=0)
        torch.testing.assert_close(loss, ref_loss, rtol=1e-10, atol=0)
        torch.testing.assert_close(cov, ref_cov, rtol=1e-10, atol=1e-12)
        # Some bias gradients are exactly zero in theory and ~1e-16 in practice, so the
        # absolute tolerance is scaled by the largest gradient of the whole model.
        scale = max(float(g.abs().max()) for g in ref_grads.values())
        for name, ref_grad in ref_grads.items():
            torch.testing.assert_close(grads[name], ref_grad, rtol=1e-7, atol=1e-10 * scale)


@pytest.mark.parametrize(
    ("pac", "soc_distance"),
    [
        ("whitened", "log_euclidean"),
        ("whitened", "stein"),
        ("whitened", "frobenius"),
        ("two_stage", "log_euclidean"),
    ],
)
def test_training_loss_is_finite_and_decreases(pac: str, soc_distance: str) -> None:
    # float32 and top_m=4 < pool size 18, so the default dtype and the pruned path both run.
    setup = build_training(_tiny_config(pac=pac, soc_distance=soc_distance), 4)
    model, optimizer, batch = setup["model"], setup["optimizer"], setup["batch"]
    # Epochs 2..4 cross the warm-up boundary, so both matching costs are exercised.
    losses = [float(train_step(model, optimizer, batch, epoch=e)) for e in (2, 3, 4)]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
