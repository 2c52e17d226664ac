"""Behavioural tests for GaussGAN: circuit simulators, shadows, data, metrics, training, overheads."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pennylane as qml
import pytest
import torch
from scipy.stats import multivariate_normal, wasserstein_distance

from models.gaussgan import (
    FEWER_UPDATES,
    NOTE_CONFIG,
    TARGET,
    CircuitSpec,
    GANConfig,
    Mixture,
    QuantumNoise,
    apply_circuit,
    build_target_cache,
    build_training,
    cached_metrics,
    encoding_angles,
    epoch_overheads,
    expvals_broadcast,
    expvals_fused,
    expvals_per_sample,
    expvals_torch,
    fused_state,
    generated_points,
    histogram_kl,
    init_weights,
    kde_kl,
    make_noise,
    mixture_points,
    note_variant,
    pauli_expvals_exact,
    random_pauli_words,
    reference_metrics,
    shadow_expvals_batched,
    shadow_expvals_per_sample,
    shadow_variance,
    simulate,
    split_dataset,
    train_samples,
    train_step,
    uniform_latents,
    write_csv,
    write_npy,
)
from models.gaussgan.metrics import METRICS
from models.gaussgan.statevector import ry_matrix, rz_matrix
from models.gaussgan.training import GANTraining, gradient_penalty, killer_term

F64 = torch.float64
SWEEP = [4, 6, 8, 10, 12, 14, 16]  # the qubit counts of gaussgan.qubit_scaling (quick and full)


def _inputs(qubits: int, batch: int, seed: int = 0, layers: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    spec = CircuitSpec(qubits, layers)
    return init_weights(spec, seed=seed), uniform_latents(batch, seed=seed + 100)


# -- circuit and simulators ---------------------------------------------------------------------


@pytest.mark.parametrize("theta", [-2.7, -0.3, 0.0, 1.1, 3.0])
def test_gate_conventions_match_pennylane(theta: float) -> None:
    angle = torch.tensor(theta, dtype=F64)
    assert torch.allclose(
        ry_matrix(angle).to(torch.complex128), torch.tensor(qml.RY(theta, 0).matrix()), atol=1e-15
    )
    assert torch.allclose(rz_matrix(angle), torch.tensor(qml.RZ(theta, 0).matrix()), atol=1e-15)


@pytest.mark.parametrize("qubits", SWEEP)
def test_torch_simulators_match_default_qubit_at_every_sweep_size(qubits: int) -> None:
    batch = 2 if qubits < 14 else 1  # default.qubit needs seconds per state at 16 qubits
    weights, z = _inputs(qubits, batch=batch, seed=qubits)
    expected = expvals_broadcast(weights, z)  # default.qubit, float64
    assert expected.dtype == F64 and expected.shape == (batch, qubits)
    for simulator in (expvals_torch, expvals_fused):
        got = simulator(weights, z)
        assert got.dtype == F64
        assert torch.allclose(got, expected, rtol=0, atol=1e-6), simulator.__name__
        assert (got - expected).abs().max() < 1e-12, simulator.__name__


def test_states_match_pennylane_amplitudes() -> None:
    spec = CircuitSpec(5, 3)
    weights, z = init_weights(spec, seed=3), uniform_latents(4, seed=4)

    @qml.qnode(qml.device("default.qubit", wires=spec.qubits), interface="torch")
    def state(w: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        apply_circuit(spec, w, a, b)
        return qml.state()

    expected = state(weights, *encoding_angles(z))  # (B, 2**q)
    assert torch.allclose(simulate(weights, z), expected, atol=1e-12)
    assert torch.allclose(fused_state(weights, z, final_phases=True), expected, atol=1e-12)
    # Without the last layer's phases the amplitudes differ, the Z-basis probabilities do not.
    partial = fused_state(weights, z)
    assert not torch.allclose(partial, expected, atol=1e-6)
    assert torch.allclose(partial.abs(), expected.abs(), atol=1e-12)


def test_pennylane_paths_agree_per_sample_broadcast_lightning() -> None:
    weights, z = _inputs(4, batch=5, seed=2)
    per_sample = expvals_per_sample(weights, z)
    assert torch.allclose(expvals_broadcast(weights, z), per_sample, atol=1e-12)
    lightning = expvals_broadcast(weights, z, device_name="lightning.qubit", diff_method="adjoint")
    assert lightning.dtype == F64
    assert torch.allclose(lightning, per_sample, atol=1e-6)


def test_single_sample_batch_keeps_its_shape() -> None:
    weights, z = _inputs(3, batch=1)
    assert expvals_broadcast(weights, z).shape == (1, 3)
    assert expvals_fused(weights, z).shape == (1, 3)


def test_gradients_agree_with_backprop_and_adjoint() -> None:
    weights, z = _inputs(5, batch=3, seed=5)
    grads = {}
    runs = {
        "backprop": lambda w: expvals_per_sample(w, z),
        "broadcast": lambda w: expvals_broadcast(w, z),
        "adjoint": lambda w: expvals_broadcast(w, z, device_name="lightning.qubit", diff_method="adjoint"),
        "torch": lambda w: expvals_torch(w, z),
        "fused": lambda w: expvals_fused(w, z),
    }
    for name, run in runs.items():
        w = weights.clone().requires_grad_(True)
        (run(w) * torch.arange(1.0, 6.0, dtype=F64)).sum().backward()
        grads[name] = w.grad
    for name, grad in grads.items():
        assert torch.allclose(grad, grads["backprop"], atol=1e-9), name
    # The last layer's ZZ angles cannot change any ⟨Z_i⟩: their gradient is zero.
    assert grads["fused"][-1, 5:].abs().max() == 0
    assert grads["backprop"][-1, 5:].abs().max() < 1e-12


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: CircuitSpec(1, 2), "qubits"),
        (lambda: CircuitSpec(4, 0), "layers"),
        (lambda: expvals_fused(torch.zeros(2, 6, dtype=F64), torch.zeros(3, 2, dtype=F64)), "odd width"),
        (
            lambda: expvals_torch(
                torch.zeros(2, 7, dtype=F64),
                torch.zeros(3),
            ),
            "z must be a",
        ),
        (
            lambda: expvals_fused(torch.zeros(2, 7, dtype=F64), torch.full((3, 2), 1.5, dtype=F64)),
            r"\[-1, 1\]",
        ),
        (
            lambda: expvals_broadcast(
                torch.zeros(2, 7, dtype=F64),
                torch.zeros(2, 2, dtype=F64),
                device_name="lightning.qubit",
                diff_method="backprop",
            ),
            "adjoint",
        ),
        (
            lambda: expvals_broadcast(
                torch.zeros(2, 7, dtype=F64), torch.zeros(2, 2, dtype=F64), device_name="qiskit.aer"
            ),
            "device_name",
        ),
    ],
)
def test_bad_circuit_inputs_raise_clear_errors(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


# -- classical shadows ---------------------------------------------------------------------------


def test_random_pauli_words_follow_the_public_pattern() -> None:
    words = random_pauli_words(6, 3, seed=0)
    assert words == random_pauli_words(6, 3, seed=0)
    assert words != random_pauli_words(6, 3, seed=1)
    assert all(len(w) == 6 and w[0] == "I" and set(w[1:]) <= set("XYZ") for w in words)


def test_exact_pauli_expectations_match_pennylane() -> None:
    weights, z = _inputs(3, batch=4, seed=3)
    words = ("IXY", "ZZI", "XYZ")

    @qml.qnode(qml.device("default.qubit", wires=3), interface="torch")
    def circuit(w: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> list[object]:
        apply_circuit(CircuitSpec(3, 2), w, a, b)
        return [qml.expval(qml.pauli.string_to_pauli_word(word)) for word in words]

    expected = torch.stack(circuit(weights, *encoding_angles(z)), dim=1)
    assert torch.allclose(pauli_expvals_exact(weights, z, words), expected, atol=1e-12)


def test_batched_shadow_sampler_has_the_estimators_mean_and_variance() -> None:
    # One circuit, 40,000 single-shot estimates: their mean is ⟨P⟩ and their variance 3^|P| - ⟨P⟩².
    weights, z = _inputs(3, batch=1, seed=3)
    words = ("IXY", "ZZI", "XYZ")
    exact = pauli_expvals_exact(weights, z, words)[0]  # (W,)
    shots = shadow_expvals_batched(weights, z.expand(40_000, 2), words, shots=1, seed=11)  # (N, W)
    per_shot_var = shadow_variance(exact, words, 1)
    standard_error = (per_shot_var / shots.shape[0]).sqrt()
    assert ((shots.mean(0) - exact).abs() < 4.5 * standard_error).all()
    assert torch.allclose(shots.var(0), per_shot_var, rtol=0.06)
    # Single shots take the values 0 and ±3^|P| only.
    assert set(shots[:, 2].unique().tolist()) <= {-27.0, 0.0, 27.0}


def test_pennylane_shadow_reference_is_unbiased_and_seeded() -> None:
    weights, z = _inputs(3, batch=2, seed=4)
    words = ("IXY", "IZZ")
    exact = pauli_expvals_exact(weights, z, words)
    estimate = shadow_expvals_per_sample(weights, z, words, shots=4000, seed=5)
    standard_error = shadow_variance(exact, words, 4000).sqrt()
    assert ((estimate - exact).abs() < 4.5 * standard_error).all()
    assert torch.equal(estimate, shadow_expvals_per_sample(weights, z, words, shots=4000, seed=5))


def test_batched_and_per_sample_shadows_have_the_same_law() -> None:
    weights, z = _inputs(6, batch=48, seed=6)
    words = random_pauli_words(6, 3, seed=0)
    ref = shadow_expvals_per_sample(weights, z, words, shots=100, seed=1)
    var = shadow_expvals_batched(weights, z, words, shots=100, seed=2)
    assert ref.shape == var.shape == (48, 3)
    # Values are multiples of 3^5 / 100 (a shot counts only when all five bases match).
    assert torch.allclose(torch.round(var * 100 / 243), var * 100 / 243, atol=1e-9)
    assert 0.4 < float(var.var() / ref.var()) < 2.5
    assert abs(float((var - ref).mean())) < 4.5 * float((var - ref).std()) / math.sqrt(ref.numel())


@pytest.mark.parametrize(
    ("words", "shots", "message"),
    [(("IXY",), 0, "shots"), (("IX",), 10, "3 characters"), ("IXY", 10, "sequence"), (("IQY",), 10, "IXYZ")],
)
def test_bad_shadow_inputs_raise(words: object, shots: int, message: str) -> None:
    weights, z = _inputs(3, batch=2)
    with pytest.raises(ValueError, match=message):
        shadow_expvals_batched(weights, z, words, shots=shots)  # type: ignore[arg-type]


# -- data and metrics ---------------------------------------------------------------------------


def test_mixture_data_and_split() -> None:
    points, labels = mixture_points(10_000, seed=0)
    assert points.shape == (20_000, 2) and points.dtype == torch.float32
    for k, mean in enumerate(TARGET.means):
        assert torch.allclose(points[labels == k].double().mean(0), torch.tensor(mean, dtype=F64), atol=0.05)
    split = split_dataset(points, labels)
    assert (len(split.train), len(split.val), len(split.test)) == (16_000, 2_000, 2_000)
    assert torch.equal(mixture_points(10, seed=3)[0], mixture_points(10, seed=3)[0])


def test_mixture_log_density_matches_scipy() -> None:
    x = np.random.default_rng(0).normal(size=(50, 2)) * 4 + [0, 5]
    expected = np.log(0.5 * multivariate_normal([-5, 5]).pdf(x) + 0.5 * multivariate_normal([5, 5]).pdf(x))
    assert np.allclose(TARGET.log_density(x), expected, atol=1e-10)
    with pytest.raises(ValueError, match="sum to 1"):
        Mixture(weights=(0.5, 0.6))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        TARGET.log_density(np.zeros((3, 3)))


def _metric_inputs(targets: int = 400, samples: int = 150) -> tuple[torch.Tensor, torch.Tensor]:
    all_points, _ = mixture_points(2_000, seed=0)
    return generated_points(samples, seed=1), all_points[
        torch.randperm(4_000, generator=torch.Generator().manual_seed(0))[:targets]
    ]


def test_cached_metrics_equal_the_reference_definitions() -> None:
    points, targets = _metric_inputs()
    expected = reference_metrics(points, targets, TARGET)
    assert tuple(expected) == METRICS
    for chunk in (64, 10_000):
        got = cached_metrics(points, build_target_cache(targets, chunk=chunk), TARGET)
        for name in METRICS:
            assert math.isclose(got[name], expected[name], rel_tol=1e-5, abs_tol=1e-7), (name, chunk)


def test_metrics_mean_what_their_docstrings_say() -> None:
    points, targets = _metric_inputs()
    x = np.array([[-1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [3.0, 3.0]])
    assert reference_metrics(torch.tensor(x), targets, TARGET, names=("IsPositive",)) == {"IsPositive": 0.5}
    ours = reference_metrics(points, targets, TARGET)
    assert math.isclose(
        ours["WassersteinDistance"],
        np.mean([wasserstein_distance(targets[:, d].numpy(), points[:, d].numpy()) for d in range(2)]),
    )
    # On the target's own samples every metric is better than on the wrong fit. The KDE "KL" is
    # biased upwards (Scott's bandwidth smooths across the two modes), so it can exceed 0 there.
    same = reference_metrics(targets[:150], targets[150:], TARGET)
    assert same["KLDivergence"] > ours["KLDivergence"]
    assert same["WassersteinDistance"] < ours["WassersteinDistance"]
    assert same["MMDDistance"] < ours["MMDDistance"] and same["MMDivergence"] < ours["MMDivergence"]
    assert same["LogLikelihood"] > ours["LogLikelihood"]


def test_histogram_kl_is_close_to_the_monte_carlo_truth() -> None:
    # -KL(P_gen || Q) of generated_points' mixture is about -0.43 (Monte Carlo, 200k points); the
    # histogram estimate lands near it, the KDE (oversmoothed across the two modes) well above it.
    points = generated_points(500, seed=1).numpy()
    assert -0.55 < histogram_kl(points, TARGET) < -0.3
    assert kde_kl(points, TARGET) > -0.3
    with pytest.raises(ValueError, match="bins"):
        histogram_kl(points, TARGET, bins=0)


def test_bad_metric_inputs_raise() -> None:
    points, targets = _metric_inputs()
    with pytest.raises(ValueError, match="subset"):
        reference_metrics(points, targets, TARGET, names=("FID",))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        reference_metrics(points[:, :1], targets, TARGET)
    with pytest.raises(ValueError, match="kl must be"):
        cached_metrics(points, build_target_cache(targets), TARGET, kl="knn")


# -- networks and training ----------------------------------------------------------------------


def _data() -> torch.Tensor:
    points, labels = mixture_points(500, seed=0)
    return split_dataset(points, labels).train  # (800, 2)


def test_gradient_penalty_of_a_linear_critic() -> None:
    critic = torch.nn.Linear(2, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[1.2, 1.6]]))  # gradient norm 2 everywhere
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    penalty = gradient_penalty(critic, real, fake, torch.Generator()).detach()
    assert math.isclose(float(penalty), 1.0, rel_tol=1e-6)


def test_killer_term_weighs_negative_points_five_times() -> None:
    training = build_training(note_variant(batch=4), "classical_normal", _data())
    with torch.no_grad():
        training.predictor.net[-1].bias.fill_(0.0)
        training.predictor.net[-1].weight.zero_()  # p(x > 0) = 0.5 everywhere
    mixed = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])
    with torch.no_grad():
        assert math.isclose(float(killer_term(training, mixed)), -0.5 * 100 * 5 - 0.5 * 100)
        assert math.isclose(float(killer_term(training, mixed.abs())), -0.5 * 100)


def test_train_step_updates_every_network_and_is_seeded() -> None:
    config = note_variant(gen_hidden=(16, 16), critic_hidden=(16, 16), predictor_hidden=(8,), batch=32)
    a, b = (
        build_training(config, "classical_normal", _data()),
        build_training(config, "classical_normal", _data()),
    )
    before = {name: p.detach().clone() for name, p in a.named_parameters()}
    torch.manual_seed(0)
    losses_a = train_step(a, a.real_batch())
    torch.manual_seed(0)
    losses_b = train_step(b, b.real_batch())
    assert losses_a.shape == (3,) and torch.isfinite(losses_a).all()
    assert torch.equal(losses_a, losses_b)
    for name, p in a.named_parameters():
        # The critic's output bias cancels in mean D(fake) - mean D(real): its gradient is zero.
        assert torch.equal(p, before[name]) == (name == "critic.net.4.bias"), name
    assert config.generator_calls == 6


def test_public_quantum_noise_never_trains_its_circuit() -> None:
    config = note_variant(
        gen_hidden=(8,), critic_hidden=(8,), predictor_hidden=(8,), batch=8, **FEWER_UPDATES
    )
    training = build_training(config, "quantum_basic_fused", _data())
    noise = training.generator.noise
    assert isinstance(noise, QuantumNoise) and not noise.trainable_circuit
    weights = noise.weights.detach().clone()
    train_samples(training, 8)
    assert torch.equal(noise.weights, weights)  # no gradient ever reaches the circuit
    assert noise.projection.weight.grad is not None
    trainable = QuantumNoise(CircuitSpec(4, 2), backend="fused", trainable_circuit=True)
    trainable(4).sum().backward()
    assert trainable.weights.grad is not None and trainable.weights.grad.abs().sum() > 0


def test_quantum_backends_produce_the_same_noise() -> None:
    outputs = []
    for backend in ("per_sample", "broadcast", "torch", "fused"):
        torch.manual_seed(0)
        outputs.append(QuantumNoise(CircuitSpec(4, 2), backend=backend, seed=3)(5))
    for out in outputs[1:]:
        assert torch.allclose(out, outputs[0], atol=1e-6)


@pytest.mark.parametrize(
    "source", ["classical_normal", "classical_uniform", "quantum_basic_fused", "quantum_shadow_batched"]
)
def test_noise_sources_give_batch_by_z_dim(source: str) -> None:
    assert make_noise(source, 4)(7).shape == (7, 4)


def test_bad_training_inputs_raise() -> None:
    with pytest.raises(ValueError, match="n_critic"):
        GANConfig(n_critic=0)
    with pytest.raises(ValueError, match="unknown noise source"):
        make_noise("quantum_magic")
    with pytest.raises(ValueError, match="batch"):
        GANTraining(NOTE_CONFIG, make_noise("classical_normal"), torch.zeros(10, 2))
    with pytest.raises(ValueError, match="at least one batch"):
        train_samples(build_training(note_variant(batch=64), "classical_normal", _data()), 32)


# -- end-of-epoch overheads ---------------------------------------------------------------------


def test_artifacts_round_trip_and_npy_is_smaller(tmp_path: Path) -> None:
    points = generated_points(500, seed=2)
    csv_bytes = write_csv(points, tmp_path / "a.csv")
    npy_bytes = write_npy(points, tmp_path / "a.npy")
    lines = (tmp_path / "a.csv").read_text().splitlines()
    assert lines[0] == "x,y" and len(lines) == 501
    parsed = torch.tensor([[float(v) for v in line.split(",")] for line in lines[1:]])
    assert torch.equal(parsed, points)
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "a.npy")), points)
    assert csv_bytes > 3 * npy_bytes


def test_epoch_overheads_draw_every_kth_epoch(tmp_path: Path) -> None:
    history = [generated_points(50, seed=e) for e in range(5)]
    out = epoch_overheads(history, tmp_path, epochs=5, figure_every=5, artifact="npy", dpi=20)
    assert out["figures"] == 1 and out["figure_bytes"] > 0
    assert len(list(tmp_path.glob("*.npy"))) == 5 and (tmp_path / "training.png").exists()
    none = epoch_overheads(history, tmp_path, epochs=2, figure_every=None, artifact=None)
    assert none == {"figures": 0.0, "figure_bytes": 0.0, "artifact_bytes": 0.0}
    with pytest.raises(ValueError, match="artifact"):
        epoch_overheads(history, tmp_path, artifact="parquet")
    with pytest.raises(ValueError, match="epochs"):
        epoch_overheads(history, tmp_path, epochs=6)
