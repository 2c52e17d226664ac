"""Seeded data sets and trained weights that several benchmarks share, each built once per process."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
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


@functools.lru_cache(maxsize=8)
def _trained_state(size: str, recipe: str) -> dict[str, torch.Tensor]:
    """Weights after TRAIN_EPOCHS epochs with a recipe ("fp32", "bf16")."""
    model = build_model(config_for(size), seed=0)
    with _training_context():
        autocast = torch.bfloat16 if recipe == "bf16" else None
        fit(model, train_loader(size), TRAIN_EPOCHS, lr=TRAIN_LR, autocast_dtype=autocast)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@functools.lru_cache(maxsize=4)
def _student_state(size: str) -> dict[str, torch.Tensor]:
    """The distilled student's weights (half the hidden size), taught by the fp32 model."""
    teacher = trained(size, "cpu")
    student = build_model(student_config(config_for(size)), seed=1)
    with _training_context():
        distill(teacher, student, train_loader(size), TRAIN_EPOCHS, lr=TRAIN_LR)
    return {k: v.detach().clone() for k, v in student.state_dict().items()}


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
