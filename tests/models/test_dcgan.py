"""Behavioural tests for the DCGAN width family: counts, attention, data, EMA, training steps, checkpoints."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import pytest
import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from models.dcgan import (
    AUTOCAST,
    CHANNELS_LAST,
    EAGER,
    DCGANConfig,
    Discriminator,
    GANTraining,
    Generator,
    ScratchFile,
    SelfAttention,
    StepOptions,
    TrainConfig,
    build_generator,
    build_models,
    build_training,
    checkpoint_roundtrip,
    ema_bytes,
    ema_copy,
    ema_roundtrip,
    ema_update_flat,
    ema_update_foreach,
    ema_update_foreach_mul_add,
    ema_update_loop,
    ema_update_loop_lerp,
    flatten_parameters,
    image_loader,
    load_checkpoint,
    materialize_optimizer_state,
    parameter_count,
    save_checkpoint,
    step_function,
    synthetic_images,
    train_step,
)

SMALL = 8  # a width whose steps take milliseconds; attention still has C // 8 >= 1 channels


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # The models here are tiny: a second thread only adds synchronisation, which on a shared
    # machine (spin-waiting OpenMP threads) costs seconds.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _attention_params(c: int) -> int:
    # query and key: C x C/8 weights + C/8 biases each; value: C x C + C; gamma: 1.
    return 2 * (c * (c // 8) + c // 8) + (c * c + c) + 1


def _formula_counts(width: int, attention: bool, latent: int = 128, channels: int = 1) -> tuple[int, int]:
    """Per-layer count written out independently of the model code (4x4 kernels, no conv bias)."""
    w = width
    g_convs = [(latent, 8 * w), (8 * w, 4 * w), (4 * w, 2 * w), (2 * w, w), (w, channels)]
    g = sum(cin * cout * 16 for cin, cout in g_convs)
    g += 2 * (8 * w + 4 * w + 2 * w + w)  # BatchNorm weight and bias
    d_convs = [(channels, w), (w, 2 * w), (2 * w, 4 * w), (4 * w, 8 * w), (8 * w, 1)]
    d = sum(cin * cout * 16 for cin, cout in d_convs)
    if attention:
        g += _attention_params(2 * w) + _attention_params(w)
        d += _attention_params(4 * w) + _attention_params(8 * w)
    return g, d


# -- models -----------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [16, 64, 80, 96, 128])
@pytest.mark.parametrize("attention", [True, False])
def test_parameter_counts_match_the_per_layer_formula(width: int, attention: bool) -> None:
    # Counts need shapes only; spectral norm adds no parameter (checked below) and is slow on meta.
    config = DCGANConfig(width=width, attention=attention, sn_generator=False, sn_discriminator=False)
    with torch.device("meta"):
        generator, discriminator = Generator(config), Discriminator(config)
    counted = (
        sum(p.numel() for p in generator.parameters()),
        sum(p.numel() for p in discriminator.parameters()),
    )
    assert counted == _formula_counts(width, attention)
    assert parameter_count(generator) == counted[0]


def test_spectral_norm_adds_no_parameters() -> None:
    g_sn, d_sn = build_models(DCGANConfig(width=SMALL))
    g, d = build_models(DCGANConfig(width=SMALL, sn_generator=False, sn_discriminator=False))
    assert (parameter_count(g_sn), parameter_count(d_sn)) == (parameter_count(g), parameter_count(d))
    assert (parameter_count(g), parameter_count(d)) == _formula_counts(SMALL, attention=True)


def test_plain_counts_are_the_seed_findings() -> None:
    # SEEDS.md: G ~3.80 M and D ~2.76 M at w = 64, 7.77 M / 6.21 M at 96, 24.1 M total at 128.
    g64, d64 = _formula_counts(64, attention=False)
    assert (round(g64 / 1e6, 2), round(d64 / 1e6, 2)) == (3.80, 2.76)
    g96, d96 = _formula_counts(96, attention=False)
    assert (round(g96 / 1e6, 2), round(d96 / 1e6, 2)) == (7.77, 6.21)
    assert round(sum(_formula_counts(128, attention=False)) / 1e6, 1) == 24.1


def test_generator_and_discriminator_shapes() -> None:
    generator, discriminator = build_models(DCGANConfig(width=SMALL))
    z = torch.randn(3, 128)
    images = generator(z)
    assert images.shape == (3, 1, 64, 64)
    assert images.abs().max() <= 1.0
    assert discriminator(images).shape == (3,)


def test_models_are_seeded() -> None:
    a, _ = build_models(DCGANConfig(width=SMALL), seed=3)
    b, _ = build_models(DCGANConfig(width=SMALL), seed=3)
    c, _ = build_models(DCGANConfig(width=SMALL), seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    # The generator alone is build_models' generator, spectral-norm vectors included.
    alone = build_generator(DCGANConfig(width=SMALL), seed=3).state_dict()
    assert alone.keys() == sa.keys() and all(torch.equal(sa[k], alone[k]) for k in sa)


def test_bad_inputs_raise_clear_errors() -> None:
    generator, discriminator = build_models(DCGANConfig(width=SMALL))
    with pytest.raises(ValueError, match="Generator expects z"):
        generator(torch.randn(2, 64))
    with pytest.raises(ValueError, match="Discriminator expects images"):
        discriminator(torch.randn(2, 3, 64, 64))
    with pytest.raises(ValueError, match="positive int"):
        DCGANConfig(width=0)
    with pytest.raises(ValueError, match="divisible"):
        DCGANConfig(width=20)
    with pytest.raises(ValueError, match="divisible"):
        SelfAttention(12, ratio=8)


def test_self_attention_starts_as_identity_and_matches_the_formula() -> None:
    torch.manual_seed(0)
    block = SelfAttention(16, ratio=8, sn=False)
    assert block.query.out_channels == 2 and block.key.out_channels == 2 and block.value.out_channels == 16
    assert block.gamma.item() == 0.0
    x = torch.randn(2, 16, 4, 4)
    assert torch.equal(block(x), x)
    with torch.no_grad():
        block.gamma.fill_(0.7)
    flat = x.flatten(2)  # (B, C, N)
    q = torch.einsum("oc,bcn->bon", block.query.weight[:, :, 0, 0], flat) + block.query.bias[:, None]
    k = torch.einsum("oc,bcn->bon", block.key.weight[:, :, 0, 0], flat) + block.key.bias[:, None]
    v = torch.einsum("oc,bcn->bon", block.value.weight[:, :, 0, 0], flat) + block.value.bias[:, None]
    attn = torch.softmax(torch.einsum("bci,bcj->bij", q, k), dim=-1)  # (B, N, N)
    expected = flat + 0.7 * torch.einsum("bcj,bij->bci", v, attn)
    torch.testing.assert_close(block(x), expected.reshape_as(x), rtol=1e-5, atol=1e-6)


def test_spectral_norm_placement_and_effect() -> None:
    generator, discriminator = build_models(DCGANConfig(width=SMALL))
    convs = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)
    for module in (generator, discriminator):
        for conv in (m for m in module.modules() if isinstance(m, convs)):
            assert parametrize.is_parametrized(conv, "weight")
    plain_g, plain_d = build_models(DCGANConfig(width=SMALL, sn_generator=False, sn_discriminator=False))
    for module in (plain_g, plain_d):
        assert not any(parametrize.is_parametrized(m) for m in module.modules() if isinstance(m, convs))
    # Each access in training mode runs one power iteration; then the largest singular value is 1.
    conv = discriminator.net[1][0]
    for _ in range(50):
        conv.weight  # noqa: B018
    sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
    assert sigma.item() == pytest.approx(1.0, rel=1e-2)  # N(0, 0.02) init gives ~0.4


# -- data -------------------------------------------------------------------------------------


def test_synthetic_images_are_seeded_and_in_range() -> None:
    a = synthetic_images(10, seed=5)
    assert a.shape == (10, 1, 64, 64)
    assert a.min().item() == pytest.approx(-1.0) and a.max().item() == pytest.approx(1.0)
    assert torch.equal(a, synthetic_images(10, seed=5))
    assert not torch.equal(a, synthetic_images(10, seed=6))
    with pytest.raises(ValueError, match="count"):
        synthetic_images(0)


def test_loader_serves_300_images_in_seeded_batches() -> None:
    first = [b.clone() for b in image_loader(32)]
    assert len(first) == 300 // 32 and first[0].shape == (32, 1, 64, 64)
    second = [b.clone() for b in image_loader(32)]
    assert all(torch.equal(x, y) for x, y in zip(first, second, strict=True))
    with pytest.raises(ValueError, match="batch_size"):
        image_loader(301)


# -- EMA --------------------------------------------------------------------------------------


def _ema_pair(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    model, _ = build_models(DCGANConfig(width=SMALL), seed=seed)
    model(torch.randn(2, 128))  # moves BatchNorm statistics and spectral-norm vectors
    ema = ema_copy(build_models(DCGANConfig(width=SMALL), seed=seed + 1)[0])
    return ema, model


@pytest.mark.parametrize("update", [ema_update_loop_lerp, ema_update_foreach_mul_add, ema_update_foreach])
def test_ema_variants_match_the_loop(update: Callable[[nn.Module, nn.Module, float], None]) -> None:
    ema_ref, model = _ema_pair()
    ema_var = copy.deepcopy(ema_ref)
    for _ in range(3):
        ema_update_loop(ema_ref, model, 0.9)
        update(ema_var, model, 0.9)
    for a, b in zip(ema_ref.state_dict().values(), ema_var.state_dict().values(), strict=True):
        if update is ema_update_foreach_mul_add:
            assert torch.equal(a, b)  # same arithmetic, so bitwise equal
        else:
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)


def test_flat_ema_matches_the_loop_and_training_still_works() -> None:
    ema_ref, model = _ema_pair()
    ema_var = copy.deepcopy(ema_ref)
    ema_flat, model_flat = flatten_parameters(ema_var), flatten_parameters(model)
    assert ema_flat.numel() == parameter_count(model)
    for _ in range(3):
        ema_update_loop(ema_ref, model, 0.9)
        ema_update_flat(ema_var, model, 0.9, ema_flat, model_flat)
    for a, b in zip(ema_ref.state_dict().values(), ema_var.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)
    # The weights are views of the buffer: an optimizer step shows up in it.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.randn(2, 128)).mean().backward()
    before = model_flat.clone()
    optimizer.step()
    assert not torch.equal(before, model_flat)
    with pytest.raises(ValueError, match="flatten_parameters"):
        ema_update_flat(ema_var, model, 0.9, model_flat, model_flat)


def test_ema_update_moves_towards_the_model_and_copies_buffers() -> None:
    ema, model = _ema_pair()
    before = [p.clone() for p in ema.parameters()]
    ema_update_foreach(ema, model, 0.75)
    for e, b, p in zip(ema.parameters(), before, model.parameters(), strict=True):
        torch.testing.assert_close(e, 0.75 * b + 0.25 * p, rtol=1e-5, atol=1e-7)
    for eb, b in zip(ema.buffers(), model.buffers(), strict=True):
        assert torch.equal(eb, b)


def test_ema_rejects_bad_decay_and_mismatched_models() -> None:
    ema, model = _ema_pair()
    with pytest.raises(ValueError, match="decay"):
        ema_update_foreach(ema, model, 1.5)
    other, _ = build_models(DCGANConfig(width=SMALL, attention=False))
    with pytest.raises(ValueError, match="not a copy"):
        ema_update_loop(ema, other, 0.9)


def test_ema_bytes_counts_three_passes_over_parameters() -> None:
    model, _ = build_models(DCGANConfig(width=SMALL))
    params = parameter_count(model)
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    assert ema_bytes(model) == 3 * 4 * params + 2 * buffers


# -- training step ----------------------------------------------------------------------------


def _training(**kwargs: str) -> GANTraining:
    return build_training(TrainConfig(model=DCGANConfig(width=SMALL), batch_size=2, **kwargs))


def _close_fraction(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-6) -> float:
    return ((a - b).abs() <= atol + rtol * b.abs()).double().mean().item()


def test_train_step_is_seeded_and_updates_everything() -> None:
    a, b = _training(), _training()
    g_before = [p.clone() for p in a.generator.parameters()]
    ema_before = [p.clone() for p in a.ema.parameters()]
    losses_a = [train_step(a) for _ in range(2)]
    losses_b = [train_step(b) for _ in range(2)]
    assert all(
        torch.equal(x.d_loss, y.d_loss) and torch.equal(x.g_loss, y.g_loss)
        for x, y in zip(losses_a, losses_b, strict=True)
    )
    assert all(torch.isfinite(x.d_loss) and torch.isfinite(x.g_loss) for x in losses_a)
    assert a.steps == 2
    assert any(not torch.equal(p, q) for p, q in zip(a.generator.parameters(), g_before, strict=True))
    assert any(not torch.equal(p, q) for p, q in zip(a.ema.parameters(), ema_before, strict=True))


def test_hinge_loss_at_initialisation_is_near_two() -> None:
    # D's scores start near 0, so hinge gives relu(1 - 0) + relu(1 + 0) = 2.
    losses = train_step(_training())
    assert losses.d_loss.item() == pytest.approx(2.0, abs=0.1)


def test_nonsaturating_loss_runs() -> None:
    losses = train_step(_training(loss="nonsaturating"))
    assert losses.d_loss.item() == pytest.approx(2 * torch.log(torch.tensor(2.0)).item(), abs=0.1)


def test_channels_last_step_matches_eager() -> None:
    eager, fast = _training(), _training()
    for _ in range(2):
        ref, var = train_step(eager, EAGER), train_step(fast, CHANNELS_LAST)
        torch.testing.assert_close(var.d_loss, ref.d_loss, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(var.g_loss, ref.g_loss, rtol=1e-4, atol=1e-5)
    assert fast.generator.net[1][0].parametrizations.weight.original.is_contiguous(
        memory_format=torch.channels_last
    )
    # Adam divides by the gradient's running RMS, so where a gradient is ~0 a rounding-level
    # difference can flip an update: allow a few elements to differ by up to one step (lr) per step.
    for p, q in zip(eager.generator.parameters(), fast.generator.parameters(), strict=True):
        assert _close_fraction(q, p) > 0.999
        assert (q - p).abs().max().item() <= 2 * 2 * eager.config.lr


def test_autocast_step_is_close_to_float32() -> None:
    ref = train_step(_training())
    var = step_function(AUTOCAST)(_training())
    assert abs(var.d_loss.item() - ref.d_loss.item()) < 0.05
    assert abs(var.g_loss.item() - ref.g_loss.item()) < 0.05


def test_options_cannot_change_mid_run() -> None:
    training = _training()
    train_step(training, CHANNELS_LAST)
    with pytest.raises(ValueError, match="cannot switch"):
        train_step(training, EAGER)
    with pytest.raises(ValueError, match="loss must be"):
        TrainConfig(loss="wasserstein")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)


def test_step_function_names() -> None:
    assert step_function(EAGER).__name__ == "train_step"
    assert step_function(StepOptions(channels_last=True, compile=True)).__name__ == (
        "train_step_channels_last_compile"
    )


# -- checkpoints ------------------------------------------------------------------------------


def test_checkpoint_roundtrip_restores_the_run() -> None:
    training = _training()
    materialize_optimizer_state(training)
    assert len(training.opt_g.state) == len(list(training.generator.parameters()))
    scratch = ScratchFile()
    saved = {k: v.clone() for k, v in training.generator.state_dict().items()}
    size = save_checkpoint(training, scratch.path)
    # Weights, EMA and Adam's two moments: at least 4 float32 copies of G and 3 of D.
    g, d = parameter_count(training.generator), parameter_count(training.discriminator)
    assert size > 4 * (4 * g + 3 * d)
    with torch.no_grad():
        for p in training.generator.parameters():
            p.add_(1.0)
    load_checkpoint(training, scratch.path)
    assert all(torch.equal(saved[k], v) for k, v in training.generator.state_dict().items())
    assert checkpoint_roundtrip(training, scratch.path) == size
    assert ema_roundtrip(training, scratch.path) < size
    scratch.remove()
    assert not scratch.path.exists()


def test_checkpoint_of_another_width_is_refused() -> None:
    scratch = ScratchFile()
    save_checkpoint(_training(), scratch.path)
    other = build_training(TrainConfig(model=DCGANConfig(width=2 * SMALL), batch_size=2))
    with pytest.raises(ValueError, match="checkpoint is for"):
        load_checkpoint(other, scratch.path)
