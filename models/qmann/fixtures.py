"""Seeded data sets and trained weights that several benchmarks share, each built once per process;
the trained weights are also kept on disk, so that the worker processes of a run train them once."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.qmann.data import SequenceDataset, make_loader, make_sequences, preprocess_all, split
from models.qmann.model import build_model, config_for, student_config
from models.qmann.train import accuracy, distill, fit

SEQ_LEN = 10  # time steps of every synthetic sequence
BATCH = {"test": 2, "default": 32}  # sequences per call at each named size
TRAIN_EPOCHS = 3
TRAIN_LR = 3e-3

Pair = tuple[torch.Tensor, torch.Tensor]


@contextlib.contextmanager
def _training_context() -> Iterator[None]:
    """One thread (robust to other processes' load) and gradients on (a training may first be
    needed where the caller runs under no_grad)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.enable_grad():
            yield
    finally:
        torch.set_num_threads(threads)


@functools.lru_cache(maxsize=4)
def _sets(size: str) -> tuple[Pair, Pair]:
    config = config_for(size)
    (xtr, ytr), (xev, yev) = split(*make_sequences(n_features=config.input_size, seed=0))
    return (xtr, ytr), (preprocess_all(xev), yev)


def train_set(size: str) -> Pair:
    """The raw training sequences (x, y) of the synthetic set for this size's input width."""
    return _sets(size)[0]


def eval_set(size: str) -> Pair:
    """The preprocessed held-out sequences (x, y): 200 of them."""
    return _sets(size)[1]


def train_loader(size: str) -> Any:
    """The preprocessed training set in seeded batches of 32."""
    xtr, ytr = train_set(size)
    return make_loader(SequenceDataset(preprocess_all(xtr), ytr), batch_size=BATCH["default"], seed=0)


State = dict[str, torch.Tensor]
# Where trained weights are kept between processes (None: not kept; tests set it).
WEIGHTS_DIR: Path | None = Path(tempfile.gettempdir()) / "qmann-weights"


def _code_key() -> str:
    """What the trained weights depend on: this package's code and torch's version."""
    digest = hashlib.sha256(torch.__version__.encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _kept(name: str, train: Callable[[], State]) -> State:
    """``train()``'s weights, read from WEIGHTS_DIR where a process of the same code wrote them.

    Seeded single-thread training gives the same bits in every process, so reading them back is
    training again without the seconds (qmann.inference's workers each trained two models, about
    8 s of every worker). The key covers this package's code and torch's version."""
    if WEIGHTS_DIR is None:
        return train()
    path = WEIGHTS_DIR / f"{name}-{_code_key()}.pt"
    if path.exists():
        with contextlib.suppress(Exception):  # a torn or foreign file: train instead
            return dict(torch.load(path, weights_only=True))
    state = train()
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=path.name, dir=WEIGHTS_DIR)
    os.close(fd)
    try:
        torch.save(state, staging)
        os.replace(staging, path)  # atomic: concurrent writers of the same weights race harmlessly
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
    return state


@functools.lru_cache(maxsize=8)
def _trained_state(size: str, recipe: str) -> State:
    """Weights after TRAIN_EPOCHS epochs with a recipe ("fp32", "bf16")."""

    def train() -> State:
        model = build_model(config_for(size), seed=0)
        with _training_context():
            autocast = torch.bfloat16 if recipe == "bf16" else None
            fit(model, train_loader(size), TRAIN_EPOCHS, lr=TRAIN_LR, autocast_dtype=autocast)
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    return _kept(f"model-{size}-{recipe}", train)


@functools.lru_cache(maxsize=4)
def _student_state(size: str) -> State:
    """The distilled student's weights (half the hidden size), taught by the fp32 model."""

    def train() -> State:
        teacher = trained(size, "cpu")
        student = build_model(student_config(config_for(size)), seed=1)
        with _training_context():
            distill(teacher, student, train_loader(size), TRAIN_EPOCHS, lr=TRAIN_LR)
        return {k: v.detach().clone() for k, v in student.state_dict().items()}

    return _kept(f"student-{size}", train)


def trained(size: str, device: torch.device | str, recipe: str = "fp32") -> nn.Module:
    """A fresh model (eval mode) with the recipe's trained weights; training runs once per process."""
    model = build_model(config_for(size), device=str(device))
    model.load_state_dict(_trained_state(size, recipe))
    return model.eval()


def trained_student(size: str, device: torch.device | str) -> nn.Module:
    """A fresh distilled student (eval mode)."""
    student = build_model(student_config(config_for(size)), device=str(device))
    student.load_state_dict(_student_state(size))
    return student.eval()


def eval_accuracy(model: nn.Module, size: str) -> float:
    """Accuracy on the held-out set (CPU)."""
    xev, yev = eval_set(size)
    with torch.no_grad():
        return float(accuracy(model.eval()(xev), yev))
