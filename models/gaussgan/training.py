"""The GaussGAN training step: WGAN-GP critic updates, predictor updates, generator with killer term."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from models.gaussgan.nets import MLP, Generator, MLPGenerator
from models.gaussgan.noise import make_noise


@dataclass(frozen=True)
class GANConfig:
    """Hyper-parameters of a training step; the defaults are the note's (public config.yaml)."""

    gen_hidden: tuple[int, ...] = (256, 256)
    critic_hidden: tuple[int, ...] = (256, 256)
    predictor_hidden: tuple[int, ...] = (128, 128)
    n_critic: int = 5
    n_predictor: int = 5
    batch: int = 256
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.9)
    grad_penalty: float = 0.2
    killer: bool = True
    rl_weight: float = 100.0
    negative_factor: float = 5.0  # the killer term weighs points with x < 0 this much more
    z_dim: int = 4
    std_scale: float = 1.1
    min_std: float = 0.5

    def __post_init__(self) -> None:
        if self.n_critic < 1 or self.n_predictor < 0 or self.batch < 2:
            raise ValueError(
                f"need n_critic >= 1, n_predictor >= 0, batch >= 2; got {self.n_critic}, "
                f"{self.n_predictor}, {self.batch}"
            )
        if self.lr <= 0 or self.grad_penalty < 0:
            raise ValueError("lr must be positive and grad_penalty non-negative")

    @property
    def generator_calls(self) -> int:
        """Generator forward passes per step: one per critic update and one for its own loss."""
        return self.n_critic + 1


NOTE_CONFIG = GANConfig()
# The note's proposed changes, one at a time (G1, G2, G5) and all together (G12).
SMALL_NETS = {"gen_hidden": (64, 64), "critic_hidden": (64, 128)}
FEWER_UPDATES = {"n_critic": 3, "n_predictor": 3}
LARGE_BATCH = {"batch": 512}


def note_variant(**changes: object) -> GANConfig:
    return replace(NOTE_CONFIG, **changes)  # type: ignore[arg-type]


class GANTraining(nn.Module):
    """Networks, optimizers, training data and a seeded batch sampler: the state a step mutates."""

    data: torch.Tensor  # (N, 2) training points, a buffer

    def __init__(self, config: GANConfig, noise: nn.Module, data: torch.Tensor, *, seed: int = 0) -> None:
        super().__init__()
        if data.dim() != 2 or data.shape[1] != 2 or data.shape[0] < config.batch:
            raise ValueError(f"data must be (N, 2) with N >= batch {config.batch}, got {tuple(data.shape)}")
        self.config = config
        with torch.random.fork_rng():  # seeded initialisation without touching the caller's RNG
            torch.manual_seed(seed)
            self.generator = Generator(
                noise,
                MLPGenerator(
                    config.z_dim, config.gen_hidden, std_scale=config.std_scale, min_std=config.min_std
                ),
            )
            self.critic = MLP(config.critic_hidden)
            self.predictor = MLP(config.predictor_hidden)
        self.g_optim = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=config.betas)
        self.d_optim = torch.optim.Adam(self.critic.parameters(), lr=config.lr, betas=config.betas)
        self.p_optim = torch.optim.Adam(self.predictor.parameters(), lr=config.lr)  # default betas, as public
        self.register_buffer("data", data)
        self.rng = torch.Generator().manual_seed(seed + 1)

    def real_batch(self) -> torch.Tensor:
        idx = torch.randint(0, self.data.shape[0], (self.config.batch,), generator=self.rng)
        return self.data[idx]  # (B, 2)


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, rng: torch.Generator
) -> torch.Tensor:
    """Mean (‖∇_x D(x)‖ - 1)² at random interpolates of real and fake points."""
    eps = torch.rand(real.shape[0], 1, generator=rng)  # (B, 1)
    inter = (eps * real + (1 - eps) * fake).requires_grad_(True)  # (B, 2)
    (grad,) = torch.autograd.grad(critic(inter).sum(), inter, create_graph=True)  # (B, 2)
    return ((grad.norm(dim=1) - 1) ** 2).mean()


def critic_loss(t: GANTraining, real: torch.Tensor) -> torch.Tensor:
    fake = t.generator(real.shape[0]).detach()  # (B, 2)
    loss = t.critic(fake).mean() - t.critic(real).mean()
    return loss + t.config.grad_penalty * gradient_penalty(t.critic, real, fake, t.rng)


def predictor_loss(t: GANTraining, real: torch.Tensor) -> torch.Tensor:
    """BCE of sigmoid(predictor(x)) against the label x > 0."""
    prob = torch.sigmoid(t.predictor(real))  # (B, 1)
    return F.binary_cross_entropy(prob, (real[:, :1] > 0).float())


def killer_term(t: GANTraining, fake: torch.Tensor) -> torch.Tensor:
    """-rl * mean p(x > 0) over points, five times heavier for points with x < 0 (public code)."""
    prob = torch.sigmoid(t.predictor(fake)).squeeze(1)  # (B,)
    negative = fake[:, 0] < 0  # (B,)
    rl = t.config.rl_weight
    if not bool(negative.any()):
        return -prob.mean() * rl
    loss = -prob[negative].mean() * rl * t.config.negative_factor
    if bool((~negative).any()):
        loss = loss - prob[~negative].mean() * rl
    return loss


def generator_loss(t: GANTraining) -> torch.Tensor:
    fake = t.generator(t.config.batch)  # (B, 2)
    loss = -t.critic(fake).mean()
    return loss + killer_term(t, fake) if t.config.killer else loss


def train_step(t: GANTraining, real: torch.Tensor) -> torch.Tensor:
    """One step: n_critic critic updates, n_predictor predictor updates, one generator update.

    Returns the mean critic loss, the last predictor loss and the generator loss: (3,).
    """
    t.generator.train()
    d_total = torch.zeros(())
    for _ in range(t.config.n_critic):
        t.d_optim.zero_grad()
        d_loss = critic_loss(t, real)
        d_loss.backward()
        t.d_optim.step()
        d_total = d_total + d_loss.detach()
    p_loss = torch.zeros(())
    if t.config.killer:
        for _ in range(t.config.n_predictor):
            t.p_optim.zero_grad()
            p_loss = predictor_loss(t, real)
            p_loss.backward()
            t.p_optim.step()
    t.g_optim.zero_grad()
    g_loss = generator_loss(t)
    g_loss.backward()
    t.g_optim.step()
    return torch.stack([d_total / t.config.n_critic, p_loss.detach(), g_loss.detach()])


def train_samples(training: GANTraining, samples: int) -> torch.Tensor:
    """Steps over ``samples`` training points (samples // batch steps): a fixed slice of an epoch,
    so configurations with different batch sizes are compared per epoch, not per step."""
    steps = samples // training.config.batch
    if steps < 1:
        raise ValueError(f"samples ({samples}) must be at least one batch ({training.config.batch})")
    losses = torch.zeros(3)
    for _ in range(steps):
        losses = train_step(training, training.real_batch())
    return losses


def mlp_flops(sizes: tuple[int, ...]) -> int:
    """Forward multiply-add FLOPs of one sample through Linear layers of the given widths."""
    return sum(2 * a * b for a, b in itertools.pairwise(sizes))


def step_flops(config: GANConfig) -> float:
    """Estimated FLOPs of one training step's networks (noise source excluded).

    Backward counts twice the forward; the gradient penalty (a forward, an input gradient with
    create_graph and the backward through both) counts six critic forwards.
    """
    gen = mlp_flops((config.z_dim, *config.gen_hidden)) + 2 * mlp_flops((config.gen_hidden[-1], 2))
    critic = mlp_flops((2, *config.critic_hidden, 1))
    predictor = mlp_flops((2, *config.predictor_hidden, 1))
    critic_update = gen + 3 * 2 * critic + 6 * critic
    predictor_update = 3 * predictor if config.killer else 0
    generator_update = 3 * (gen + critic + (predictor if config.killer else 0))
    per_sample = config.n_critic * critic_update + config.n_predictor * predictor_update + generator_update
    return float(config.batch * per_sample)


def build_training(config: GANConfig, source: str, data: torch.Tensor, *, seed: int = 0) -> GANTraining:
    """A ready-to-step training state for a named noise source (see ``noise.SOURCES``)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed + 2)  # the projection layer of a quantum source
        noise = make_noise(source, config.z_dim, seed=seed)
    return GANTraining(config, noise, data, seed=seed)
