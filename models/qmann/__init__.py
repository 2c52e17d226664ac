"""QMANN v2.0: an LSTM controller with a bounded quantum memory, and the guide's techniques on it.

PennyLane is imported only when circuits are built or run, so the DDP workers (which use the
batched memory) start without it.
"""

from __future__ import annotations

from models.qmann.circuits import (
    CIRCUITS,
    PIPELINES,
    compile_tape,
    memory_tape,
    run_tape,
    simulator,
    tape_counts,
)
from models.qmann.data import (
    CachedDataset,
    SequenceDataset,
    epoch_checksum,
    make_loader,
    make_sequences,
    preprocess,
    preprocess_all,
    split,
)
from models.qmann.fixtures import (
    BATCH,
    SEQ_LEN,
    eval_accuracy,
    eval_set,
    train_loader,
    train_set,
    trained,
    trained_student,
)
from models.qmann.launch import LaunchError, free_port, launch_ddp, run_process_group
from models.qmann.memory import MemoryRead, amplitude_vectors, content_vectors, memory_read_batched
from models.qmann.model import (
    DEFAULT_CONFIG,
    QMANN,
    SIZES,
    TEST_CONFIG,
    QMANNConfig,
    build_model,
    config_for,
    logits,
    read_memory,
    student_config,
)
from models.qmann.profiling import parameter_counts, peak_tensor_bytes, state_bytes
from models.qmann.quantum import PennyLaneMemory, memory_read_pennylane
from models.qmann.techniques import compile_model, prune_magnitude, quantize_int8, script_model
from models.qmann.train import DistillationLoss, accuracy, distill, fit, make_optimizer, predict, train_step

__all__ = [
    "BATCH",
    "CIRCUITS",
    "DEFAULT_CONFIG",
    "PIPELINES",
    "QMANN",
    "SEQ_LEN",
    "SIZES",
    "TEST_CONFIG",
    "CachedDataset",
    "DistillationLoss",
    "LaunchError",
    "MemoryRead",
    "PennyLaneMemory",
    "QMANNConfig",
    "SequenceDataset",
    "accuracy",
    "amplitude_vectors",
    "build_model",
    "compile_model",
    "compile_tape",
    "config_for",
    "content_vectors",
    "distill",
    "epoch_checksum",
    "eval_accuracy",
    "eval_set",
    "fit",
    "free_port",
    "launch_ddp",
    "logits",
    "make_loader",
    "make_optimizer",
    "make_sequences",
    "memory_read_batched",
    "memory_read_pennylane",
    "memory_tape",
    "parameter_counts",
    "peak_tensor_bytes",
    "predict",
    "preprocess",
    "preprocess_all",
    "prune_magnitude",
    "quantize_int8",
    "read_memory",
    "run_process_group",
    "run_tape",
    "script_model",
    "simulator",
    "split",
    "state_bytes",
    "student_config",
    "tape_counts",
    "train_loader",
    "train_set",
    "train_step",
    "trained",
    "trained_student",
]
