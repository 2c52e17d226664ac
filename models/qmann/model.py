"""QMANN: a 2-layer LSTM controller with a bounded quantum memory, fused by Linear(2H -> H)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as checkpoint_fn

from models.qmann.memory import MemoryRead, memory_read_batched

READS = ("batched", "pennylane")


@dataclass(frozen=True)
class QMANNConfig:
    """Sizes of the model. The defaults are the public code's (hidden 256, 64 slots); 8 qubits
    hold a 256-value hidden state without truncation."""

    input_size: int = 20
    hidden_size: int = 256
    num_layers: int = 2
    n_slots: int = 64
    n_qubits: int = 8
    top_k: int = 3
    n_classes: int = 3

    def __post_init__(self) -> None:
        for name in ("input_size", "hidden_size", "num_layers", "n_slots", "n_qubits", "top_k", "n_classes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"QMANNConfig.{name} must be a positive int, got {value!r}")
        if self.n_classes < 2:
            raise ValueError(f"QMANNConfig.n_classes must be at least 2, got {self.n_classes}")
        if self.n_qubits > 20:
            raise ValueError(f"QMANNConfig.n_qubits must be at most 20, got {self.n_qubits}")


TEST_CONFIG = QMANNConfig(input_size=10, hidden_size=32, n_slots=16, n_qubits=6)
DEFAULT_CONFIG = QMANNConfig()
SIZES = {"test": TEST_CONFIG, "default": DEFAULT_CONFIG}


def config_for(size: str) -> QMANNConfig:
    """The named sizes: "test" (hidden 32, 16 slots, 6 qubits) and "default" (256, 64, 8)."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; one of {', '.join(SIZES)}")
    return SIZES[size]


def student_config(config: QMANNConfig) -> QMANNConfig:
    """The distilled student: half the hidden size, one qubit fewer, same memory slots."""
    hidden = max(1, config.hidden_size // 2)
    return QMANNConfig(
        input_size=config.input_size,
        hidden_size=hidden,
        num_layers=config.num_layers,
        n_slots=config.n_slots,
        n_qubits=max(1, config.n_qubits - 1),
        top_k=config.top_k,
        n_classes=config.n_classes,
    )


def read_memory(hidden: torch.Tensor, config: QMANNConfig, read: str) -> MemoryRead:
    """One call's memory reads with the chosen implementation."""
    if read == "batched":
        return memory_read_batched(hidden, config.n_slots, config.n_qubits, config.top_k)
    if read == "pennylane":
        from models.qmann.quantum import memory_read_pennylane

        return memory_read_pennylane(hidden, config.n_slots, config.n_qubits, config.top_k)
    raise ValueError(f"unknown memory read {read!r}; one of {', '.join(READS)}")


class QMANN(nn.Module):
    """LSTM controller -> memory read per step -> Linear(2H -> H) fusion -> mean over time -> classes.

    The LSTM layers are separate modules so gradient checkpointing can recompute them one at a
    time; stacked they compute what ``nn.LSTM(num_layers=2)`` computes.
    """

    def __init__(self, config: QMANNConfig, read: str = "batched") -> None:
        super().__init__()
        if read not in READS:
            raise ValueError(f"unknown memory read {read!r}; one of {', '.join(READS)}")
        self.config = config
        self.read = read
        sizes = [config.input_size] + [config.hidden_size] * (config.num_layers - 1)
        self.layers = nn.ModuleList(nn.LSTM(size, config.hidden_size, batch_first=True) for size in sizes)
        self.fuse = nn.Linear(2 * config.hidden_size, config.hidden_size)
        self.head = nn.Linear(config.hidden_size, config.n_classes)

    def controller(self, x: torch.Tensor, checkpoint: bool = False) -> torch.Tensor:
        out = x
        for layer in self.layers:
            if checkpoint and torch.is_grad_enabled():
                out = checkpoint_fn(_lstm_output, layer, out, use_reentrant=False)
            else:
                out = layer(out)[0]  # (B, T, H)
        return out

    def forward(self, x: torch.Tensor, read: str | None = None, checkpoint: bool = False) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.config.input_size:
            raise ValueError(f"x must be (batch, time, {self.config.input_size}), got shape {tuple(x.shape)}")
        out = self.controller(x, checkpoint)  # (B, T, H)
        memory = read_memory(out, self.config, read or self.read)
        values = memory.values.to(dtype=out.dtype, device=out.device)  # (B, T, H)
        fused = F.relu(self.fuse(torch.cat([out, values], dim=-1)))  # (B, T, H)
        return self.head(fused.mean(dim=1))  # (B, C)


def logits(model: nn.Module, x: torch.Tensor, read: str | None = None) -> torch.Tensor:
    """The model's logits (B, C) for x (B, T, F), with the memory read ``read`` (default: the model's)."""
    if read is None:
        return model(x)  # any module: a quantized, pruned or TorchScript model takes x alone
    return model(x, read=read)


def _lstm_output(layer: nn.LSTM, x: torch.Tensor) -> torch.Tensor:
    return layer(x)[0]


def build_model(config: QMANNConfig, seed: int = 0, read: str = "batched", device: str = "cpu") -> QMANN:
    """A freshly initialised model; the same seed gives the same weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = QMANN(config, read=read)
    return model.to(device)
