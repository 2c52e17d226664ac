"""Behavioural tests for SeqSetVAE: data, padded vs per-set equality, losses, monitor, loaders."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest
import torch

from models.seqsetvae import (
    OPTIMIZED,
    ORIGINAL,
    CohortSpec,
    LoaderSettings,
    ModelConfig,
    MonitorConfig,
    PatientDataset,
    PosteriorCollapseMonitor,
    Recipe,
    SeqSetVAE,
    auprc,
    auroc,
    build_trainer,
    cap_events,
    chamfer_loss,
    cohort_dir,
    collapse_stats,
    collate_padded,
    concat_parts,
    draw_seeds,
    evaluate,
    kl_free_bits,
    load_patients,
    loader_epochs,
    loss_padded,
    loss_reference,
    pad_seeds,
    train_batches,
    train_epoch,
    train_monitored,
    train_step_amp,
    train_step_micro,
    train_step_padded,
    train_step_reference,
)
from models.seqsetvae.model import LossParts

SPEC = CohortSpec(patients=6, min_sets=2, max_sets=5, max_events=8, vocab=32, embed_dim=24, seed=3)
CFG = ModelConfig(
    input_dim=24,
    reduced_dim=16,
    latent_dim=16,
    levels=2,
    set_heads=2,
    inducing=4,
    seq_layers=1,
    seq_heads=2,
    ff_dim=32,
    beta_warmup_steps=10,
)
TOL = {"rtol": 1e-4, "atol": 1e-5}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> object:
    # These shapes are tiny: a second intra-op thread only adds spin-waiting, which on a shared,
    # busy 2-core machine turns seconds into minutes.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cohort_dir(SPEC, cache_root=tmp_path_factory.mktemp("cohorts"))


@pytest.fixture(scope="module")
def patients(root: Path) -> list:
    dataset = PatientDataset(root)
    return [dataset[i] for i in range(len(dataset))]


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, **TOL)


# ---------------------------------------------------------------------------------------------
# data


def test_cohort_is_seeded_and_patients_do_not_depend_on_cohort_size(root: Path, tmp_path: Path) -> None:
    other = cohort_dir(replace(SPEC, patients=3), cache_root=tmp_path)
    for name in ("p000000.parquet", "p000002.parquet"):
        assert pq.read_table(root / "patients" / name).equals(pq.read_table(other / "patients" / name))
    assert cohort_dir(SPEC, cache_root=root.parent) == root  # cached, not rewritten


def test_dataset_embeds_and_z_scores_the_raw_parquet(root: Path, patients: list) -> None:
    variables = pq.read_table(root / "variables.parquet").to_pandas().set_index("variable")
    raw = pq.read_table(root / "patients" / "p000001.parquet").to_pandas()
    record = patients[1]
    expected_val = (
        raw["value"].to_numpy() - variables.loc[raw["variable"], "mean"].to_numpy()
    ) / variables.loc[raw["variable"], "std"].to_numpy()
    np.testing.assert_allclose(record.val.numpy(), expected_val, rtol=1e-5, atol=1e-5)
    expected_emb = np.stack(variables.loc[raw["variable"], "embedding"].to_list())
    np.testing.assert_array_equal(record.var.numpy(), expected_emb.astype(np.float32))
    assert record.set_sizes.tolist() == raw.groupby("set_index").size().tolist()
    assert record.n_sets >= SPEC.min_sets and int(record.set_sizes.max()) <= SPEC.max_events
    assert torch.all(record.minutes.diff() > 0)  # one timestamp per set, increasing


def test_collate_padded_places_every_event_and_masks_the_rest(patients: list) -> None:
    batch = collate_padded(patients[:3])
    n_sets = sum(p.n_sets for p in patients[:3])
    assert batch.var.shape[0] == n_sets and batch.event_mask.sum() == sum(p.n_events for p in patients[:3])
    assert torch.equal(batch.var[batch.event_mask], torch.cat([p.var for p in patients[:3]]))
    assert torch.all(batch.var[~batch.event_mask] == 0)
    assert batch.set_mask.sum(1).tolist() == [p.n_sets for p in patients[:3]]
    second = patients[1]
    rows = batch.set_patient == 1
    assert torch.equal(batch.set_pos[rows], torch.arange(second.n_sets))
    assert torch.equal(batch.minutes[1, : second.n_sets], second.minutes)


def test_cap_events_keeps_the_newest_whole_sets(patients: list) -> None:
    record = max(patients, key=lambda p: p.n_events)
    cap = record.n_events - 1
    capped = cap_events(record, cap)
    assert capped.n_events <= cap and capped.n_sets < record.n_sets
    assert torch.equal(capped.minutes, record.minutes[-capped.n_sets :])
    assert torch.equal(capped.var, record.var[-capped.n_events :])
    # A cap below the last set's size still keeps that set.
    assert cap_events(record, 1).n_sets == 1
    assert cap_events(record, None) is record


def test_bad_inputs_raise_clear_errors(tmp_path: Path, patients: list) -> None:
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(latent_dim=30, seq_heads=4)
    with pytest.raises(ValueError, match="min_sets"):
        CohortSpec(min_sets=10, max_sets=5)
    with pytest.raises(ValueError, match="distinct variables"):
        CohortSpec(vocab=10, max_events=50)
    with pytest.raises(ValueError, match="empty"):
        collate_padded([])
    with pytest.raises(FileNotFoundError, match="no cohort"):
        PatientDataset(tmp_path)
    with pytest.raises(ValueError, match="not in a cohort"):
        load_patients(SPEC, SPEC.patients + 1)
    with pytest.raises(ValueError, match="persistent"):
        LoaderSettings(workers=0, persistent=True)
    with pytest.raises(ValueError, match="batch=1"):
        Recipe(batch=4, padded=False)
    with pytest.raises(ValueError, match="positive int"):
        MonitorConfig(update_every=0)
    with pytest.raises(ValueError, match="at least one patient"):
        train_step_reference(build_trainer(CFG), [])


# ---------------------------------------------------------------------------------------------
# per-set reference vs padded


def _assert_parts_close(a: LossParts, b: LossParts) -> None:
    for name, x, y in zip(LossParts._fields, a, b, strict=True):
        assert x.shape == y.shape, name
        assert close(x, y), f"{name}: max abs err {(x - y).abs().max():.3g}"


def test_padded_forward_equals_the_per_set_loops(patients: list) -> None:
    trainer = build_trainer(CFG)
    with torch.no_grad():
        reference = loss_reference(trainer, patients[:4])
        padded = loss_padded(trainer, collate_padded(patients[:4]))
        micro = concat_parts([loss_padded(trainer, collate_padded([p])) for p in patients[:4]])
    _assert_parts_close(padded, reference)
    _assert_parts_close(micro, reference)


def test_padded_train_step_has_the_reference_loss_and_gradients(patients: list) -> None:
    ref = train_step_reference(build_trainer(CFG), patients[:4])
    padded = train_step_padded(build_trainer(CFG), collate_padded(patients[:4]))
    micro = train_step_micro(build_trainer(CFG), [collate_padded([p]) for p in patients[:4]])
    for out in (padded, micro):
        assert close(out.loss, ref.loss)
        for g, r in zip(out.grads, ref.grads, strict=True):
            assert close(g, r), f"max abs err {(g - r).abs().max():.3g}"
    assert any(g.abs().sum() > 0 for g in ref.grads[-4:])  # the classifier is trained too


def test_the_padded_loss_ignores_what_sits_in_the_padding(patients: list) -> None:
    trainer = build_trainer(CFG)
    batch = collate_padded(patients[:3])
    noisy = replace(
        batch,
        var=torch.where(batch.event_mask.unsqueeze(-1), batch.var, 7.0),
        val=torch.where(batch.event_mask, batch.val, -3.0),
    )
    with torch.no_grad():
        _assert_parts_close(loss_padded(trainer, noisy), loss_padded(trainer, batch))


def test_a_patients_loss_does_not_depend_on_its_batch(patients: list) -> None:
    trainer = build_trainer(CFG)
    with torch.no_grad():
        alone = loss_padded(trainer, collate_padded([patients[2]]))
        together = loss_padded(trainer, collate_padded(patients[:4]))
    assert close(together.recon[2], alone.recon[0]) and close(together.logits[2], alone.logits[0])


def test_noise_is_per_patient_and_step(patients: list) -> None:
    a = draw_seeds([5, 6], [3, 4], 0, CFG, "cpu")
    b = draw_seeds([6], [4], 0, CFG, "cpu")
    assert torch.equal(a[1], b[0])
    assert not torch.equal(draw_seeds([6], [4], 1, CFG, "cpu")[0], b[0])
    batch = collate_padded(patients[:2])
    seeds = draw_seeds(batch.patient_ids, batch.events_per_patient, 0, CFG, "cpu")
    padded = pad_seeds(seeds, batch.event_mask)
    assert padded.shape == (CFG.levels, *batch.event_mask.shape, CFG.latent_dim)
    assert torch.all(padded[:, ~batch.event_mask] == 0)


# ---------------------------------------------------------------------------------------------
# losses and the time bias


def test_chamfer_is_permutation_invariant_and_masks_agree() -> None:
    gen = torch.Generator().manual_seed(0)
    recon, target = torch.randn(2, 5, 4, generator=gen), torch.randn(2, 5, 4, generator=gen)
    loss = chamfer_loss(recon, target, None, CFG)
    shuffled = chamfer_loss(recon[:, torch.randperm(5, generator=gen)], target, None, CFG)
    assert close(loss, shuffled)
    no_spread = replace(CFG, recon_variance=0.0)
    assert torch.allclose(chamfer_loss(target, target, None, no_spread), torch.zeros(2), atol=1e-5)
    padded_r = torch.cat([recon, torch.full((2, 3, 4), 9.0)], dim=1)
    padded_t = torch.cat([target, torch.full((2, 3, 4), -9.0)], dim=1)
    mask = torch.arange(8).expand(2, 8) < 5
    assert close(chamfer_loss(padded_r, padded_t, mask, CFG), loss)


def test_kl_free_bits_floors_each_dimension() -> None:
    mu, logvar = torch.zeros(2, 3, 4), torch.zeros(2, 3, 4)  # the prior itself: KL 0
    assert torch.allclose(kl_free_bits(mu, logvar, 0.03), torch.full((3,), 4 * 0.03))
    mu[..., 0] = 2.0  # KL 2 on one dimension
    assert torch.allclose(kl_free_bits(mu, logvar, 0.03), torch.full((3,), 2.0 + 3 * 0.03))


def test_time_bias_decays_with_elapsed_time_on_past_sets_only() -> None:
    model = SeqSetVAE(CFG)
    minutes = torch.tensor([[0.0, 10.0, 1000.0, 1000.0]])
    mask = torch.tensor([[True, True, True, False]])
    bias = model.sequence.time_bias(minutes, mask)[0, 0]  # (S, S)
    assert torch.isinf(bias[0, 1]) and torch.isinf(bias[1, 3])  # future and padded keys blocked
    assert bias[1, 1] == 0 and bias[2, 0] < bias[2, 1] < 0  # older sets are down-weighted more


# ---------------------------------------------------------------------------------------------
# training variants


def test_accumulating_two_batches_matches_one_batch_of_both(patients: list) -> None:
    a, b = build_trainer(CFG), build_trainer(CFG)
    # SGD: AdamW's first step is nearly sign(gradient), which turns float noise on ~0 gradients
    # into full-size differences.
    a.optimizer = torch.optim.SGD(a.model.parameters(), lr=0.1)
    b.optimizer = torch.optim.SGD(b.model.parameters(), lr=0.1)
    train_batches(a, [collate_padded(patients[:2]), collate_padded(patients[2:4])], accumulate=2)
    train_step_padded(b, collate_padded(patients[:4]))
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert close(p, q)
    assert a.step == b.step == 1


def test_mixed_precision_step_stays_close_to_float32(patients: list) -> None:
    batch = collate_padded(patients[:3])
    ref = train_step_padded(build_trainer(CFG), batch)
    amp = train_step_amp(build_trainer(CFG), batch)
    assert amp.loss.dtype == torch.float32
    assert abs(float(amp.loss - ref.loss)) / float(ref.loss) < 0.05
    flat = [torch.cat([g.flatten().float() for g in out.grads]) for out in (amp, ref)]
    assert torch.nn.functional.cosine_similarity(*flat, dim=0) > 0.9


def test_training_improves_the_loss_and_evaluation_gives_auroc(patients: list) -> None:
    trainer = build_trainer(replace(CFG, lr=3e-3))
    batches = [collate_padded(patients[:3]), collate_padded(patients[3:])]
    first = float(train_batches(trainer, batches))
    for _ in range(4):
        last = float(train_batches(trainer, batches))
    assert last < first
    labels = torch.stack([p.label for p in patients])
    if 0 < labels.sum() < len(labels):
        scores = evaluate(trainer, batches)
        assert 0.0 <= scores["auroc"] <= 1.0 and 0.0 < scores["auprc"] <= 1.0


# ---------------------------------------------------------------------------------------------
# metrics


def test_auroc_and_auprc_on_known_cases() -> None:
    labels = [0, 0, 1, 1]
    assert auroc([0.1, 0.4, 0.35, 0.8], labels) == pytest.approx(0.75)
    assert auroc([0.5, 0.5, 0.5, 0.5], labels) == pytest.approx(0.5)  # ties count one half
    assert auroc([0.9, 0.8, 0.2, 0.1], labels) == pytest.approx(0.0)
    # Ranked 0.8 (+), 0.4 (-), 0.35 (+), 0.1 (-): precision 1 at recall 1/2, 2/3 at recall 1.
    assert auprc([0.1, 0.4, 0.35, 0.8], labels) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert auprc([0.5, 0.5, 0.5, 0.5], labels) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="both a positive and a negative"):
        auroc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="0 or 1"):
        auprc([0.1, 0.2], [0, 2])


# ---------------------------------------------------------------------------------------------
# posterior-collapse monitor


def _parts(mu: torch.Tensor, logvar: torch.Tensor) -> LossParts:
    z = torch.zeros(1)
    return LossParts(z[0], z, z, z, z, mu, logvar)


def test_public_and_burda_active_units_measure_different_things() -> None:
    cfg = MonitorConfig()
    # Posterior means identical for every set (collapsed) but wide posteriors: the public
    # statistic calls every unit active, Burda et al.'s calls none.
    collapsed = collapse_stats(_parts(torch.zeros(2, 10, 8), torch.zeros(2, 10, 8)), 1, cfg)
    assert collapsed.active_units_public == 1.0 and collapsed.active_units_burda == 0.0
    assert collapsed.kl == pytest.approx(0.0) and any("Burda" in w for w in collapsed.warnings)
    # Means that follow the data in half the units, with tight posteriors.
    mu = torch.zeros(2, 10, 8)
    mu[:, :, :4] = torch.linspace(-2, 2, 10).view(1, 10, 1)
    used = collapse_stats(_parts(mu, torch.full((2, 10, 8), -6.0)), 1, cfg)
    assert used.active_units_burda == 0.5 and used.active_units_public == 0.0


def test_monitor_updates_and_plots_on_schedule(patients: list, tmp_path: Path) -> None:
    monitor = PosteriorCollapseMonitor(MonitorConfig(update_every=2, plot_every=4), out_dir=tmp_path)
    trainer = build_trainer(CFG)
    train_monitored(trainer, [collate_padded(patients[:2])], 8, monitor)
    assert monitor.updates == 4 and monitor.plots == 2
    plots = sorted(p.name for p in tmp_path.glob("*.png"))
    assert plots == ["monitor_step0000004.png", "monitor_step0000008.png"]
    assert [s.step for s in monitor.history] == [2, 4, 6, 8]


# ---------------------------------------------------------------------------------------------
# DataLoader and whole epochs


def _children() -> set[int]:
    return {c.pid for c in psutil.Process().children(recursive=True)}


def test_worker_settings_deliver_the_same_data_and_leave_no_workers(root: Path) -> None:
    dataset = PatientDataset(root)
    before = _children()
    plain = loader_epochs(dataset, LoaderSettings(batch=2), 2)
    workers = loader_epochs(dataset, LoaderSettings(batch=2, workers=2, persistent=True, prefetch=3), 2)
    assert torch.equal(plain, workers)
    assert plain.shape == (2, 4) and plain[0, 0] == sum(dataset[i].n_events for i in range(len(dataset)))
    assert _children() <= before
    trainer = build_trainer(CFG)
    trained = loader_epochs(dataset, LoaderSettings(batch=3), 1, trainer=trainer)
    assert torch.equal(trained[0], plain[0]) and trainer.step == 2  # 6 patients, batches of 3


def test_epochs_run_under_the_original_and_optimized_recipes(root: Path) -> None:
    in_process = {"workers": 0, "persistent": False, "prefetch": None}
    for recipe in (replace(ORIGINAL, **in_process), replace(OPTIMIZED, **in_process)):
        loss = train_epoch(build_trainer(CFG), root, replace(recipe, monitor_every=2, plot_every=100))
        assert math.isfinite(float(loss))
