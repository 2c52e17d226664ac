"""One DCGAN training step (D step, G step, EMA update) with eager, channels_last, autocast and compile."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from models.dcgan.data import image_loader
from models.dcgan.ema import ema_copy, ema_update_foreach
from models.dcgan.model import DCGANConfig, Discriminator, Generator, build_models

LOSSES = ("hinge", "nonsaturating")


@dataclass(frozen=True)
class TrainConfig:
    """The note's training set-up: Adam lr 1e-4 with L2 weight decay 1e-5, EMA 0.9999, batch 32.

    The note does not name its loss or Adam betas; this uses SAGAN's: hinge loss, betas (0, 0.9).
    """

    model: DCGANConfig = field(default_factory=DCGANConfig)
    batch_size: int = 32
    lr: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.9)
    weight_decay: float = 1e-5
    ema_decay: float = 0.9999
    loss: str = "hinge"
    num_images: int = 300
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if not 1 <= self.batch_size <= self.num_images:
            raise ValueError(
                f"batch_size must be in [1, num_images={self.num_images}], got {self.batch_size}"
            )
        if self.lr <= 0 or self.weight_decay < 0 or not 0 <= self.ema_decay <= 1:
            raise ValueError("need lr > 0, weight_decay >= 0 and ema_decay in [0, 1]")


@dataclass(frozen=True)
class StepOptions:
    """How a step runs: NCHW or channels_last, fp32 or autocast, eager or torch.compile.

    Autocast uses bfloat16 on CPU and float16 (with gradient scaling) on CUDA.
    """

    channels_last: bool = False
    autocast: bool = False
    compile: bool = False


EAGER = StepOptions()
CHANNELS_LAST = StepOptions(channels_last=True)
AUTOCAST = StepOptions(channels_last=True, autocast=True)
COMPILED = StepOptions(channels_last=True, autocast=True, compile=True)


class StepLosses(NamedTuple):
    """The two losses of one step, detached: D's before its update, G's after D's update."""

    d_loss: torch.Tensor
    g_loss: torch.Tensor


def d_loss_fn(kind: str, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    if kind == "hinge":
        return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()
    return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()


def g_loss_fn(kind: str, fake_scores: torch.Tensor) -> torch.Tensor:
    if kind == "hinge":
        return -fake_scores.mean()
    return F.softplus(-fake_scores).mean()


class GANTraining:
    """Everything one training run holds: G, D, the EMA generator, two Adams, data and noise."""

    def __init__(self, config: TrainConfig, device: torch.device | str = "cpu") -> None:
        self.config = config
        self.device = torch.device(device)
        self.generator: Generator
        self.discriminator: Discriminator
        self.generator, self.discriminator = build_models(config.model, config.seed, self.device)
        self.ema = ema_copy(self.generator)
        kwargs: dict[str, Any] = {"lr": config.lr, "betas": config.betas, "weight_decay": config.weight_decay}
        self.opt_g = torch.optim.Adam(self.generator.parameters(), **kwargs)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), **kwargs)
        self.loader: DataLoader[torch.Tensor] = image_loader(
            config.batch_size, count=config.num_images, channels=config.model.channels, seed=config.seed
        )
        self.noise = torch.Generator(device=self.device)
        self.noise.manual_seed(config.seed + 2)
        self.steps = 0
        self.options: StepOptions | None = None
        self._batches: Iterator[torch.Tensor] | None = None
        # Forward callables: the modules themselves, or their torch.compile wrappers.
        self.g_forward: Callable[[torch.Tensor], torch.Tensor] = self.generator
        self.d_forward: Callable[[torch.Tensor], torch.Tensor] = self.discriminator
        self._scalers: tuple[Any, Any] | None = None

    # -- inputs ---------------------------------------------------------------------------------

    def next_batch(self) -> torch.Tensor:
        """The next real batch (B, C, 64, 64); a new shuffled epoch starts when one runs out."""
        if self._batches is None:
            self._batches = iter(self.loader)
        try:
            batch = next(self._batches)
        except StopIteration:
            self._batches = iter(self.loader)
            batch = next(self._batches)
        batch = batch.to(self.device, non_blocking=True)  # (B, C, 64, 64)
        if self.options is not None and self.options.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def latent(self) -> torch.Tensor:
        shape = (self.config.batch_size, self.config.model.latent_dim, 1, 1)
        z = torch.randn(shape, generator=self.noise, device=self.device)  # (B, latent, 1, 1)
        if self.options is not None and self.options.channels_last:
            z = z.contiguous(memory_format=torch.channels_last)
        return z

    # -- execution options ----------------------------------------------------------------------

    def prepare(self, options: StepOptions) -> None:
        """Switch the run to ``options`` once, before its first step; later calls must agree."""
        if self.options == options:
            return
        if self.options is not None or self.steps:
            raise ValueError(
                f"this training run already ran with {self.options or EAGER}; it cannot switch to {options}"
            )
        if options.channels_last:
            for module in (self.generator, self.discriminator, self.ema):
                module.to(memory_format=torch.channels_last)
        if options.autocast and self.device.type == "cuda":
            # float16 needs loss scaling; bfloat16 (the CPU choice) does not.
            self._scalers = (torch.amp.GradScaler("cuda"), torch.amp.GradScaler("cuda"))
        if options.compile:
            self.g_forward = torch.compile(self.generator)
            self.d_forward = torch.compile(self.discriminator)
        self.options = options

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.options is None or not self.options.autocast:
            return contextlib.nullcontext()
        dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype)

    def _update(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, which: int) -> None:
        if self._scalers is None:
            loss.backward()
            optimizer.step()
            return
        scaler = self._scalers[which]
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    # -- checkpoints ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """What a resumable checkpoint holds: G, D, EMA-G, both optimizers, the step count."""
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "ema": self.ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "steps": self.steps,
            "model_config": asdict(self.config.model),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("model_config") != asdict(self.config.model):
            raise ValueError(
                f"checkpoint is for {state.get('model_config')}, this run is {asdict(self.config.model)}"
            )
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.ema.load_state_dict(state["ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.steps = int(state["steps"])


def build_training(config: TrainConfig, device: torch.device | str = "cpu") -> GANTraining:
    """A seeded training run; equal configs give identical models, batches and noise."""
    return GANTraining(config, device)


def train_step(training: GANTraining, options: StepOptions = EAGER) -> StepLosses:
    """One discriminator step, one generator step, one EMA update of the generator."""
    training.prepare(options)
    kind = training.config.loss
    real = training.next_batch()  # (B, C, 64, 64)

    training.opt_d.zero_grad(set_to_none=True)
    with training.autocast():
        with torch.no_grad():
            fake = training.g_forward(training.latent())  # (B, C, 64, 64)
        real_scores = training.d_forward(real).float()  # (B,)
        fake_scores = training.d_forward(fake).float()  # (B,)
        d_loss = d_loss_fn(kind, real_scores, fake_scores)
    training._update(d_loss, training.opt_d, 0)

    training.opt_g.zero_grad(set_to_none=True)
    with training.autocast():
        g_scores = training.d_forward(training.g_forward(training.latent())).float()  # (B,)
        g_loss = g_loss_fn(kind, g_scores)
    training._update(g_loss, training.opt_g, 1)

    ema_update_foreach(training.ema, training.generator, training.config.ema_decay)
    training.steps += 1
    return StepLosses(d_loss.detach(), g_loss.detach())


def step_function(options: StepOptions) -> Callable[[GANTraining], StepLosses]:
    """``train_step`` bound to one set of options, named for reports."""

    def step(training: GANTraining) -> StepLosses:
        return train_step(training, options)

    enabled = [name for name, on in asdict(options).items() if on]
    step.__name__ = step.__qualname__ = "_".join(["train_step", *enabled])
    return step
