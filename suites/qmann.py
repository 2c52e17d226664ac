"""QMANN v2.0 (seed 003): the quantum memory read, the model, the guide's techniques (Q1-Q10) and DDP.

Sizes: "test" is input 10, hidden 32, 16 slots, 6 qubits, batch 2 (x of 2 x 10 x 10); "default"
is input 20, hidden 256, 64 slots, 8 qubits, batch 32, on the synthetic 1000 x 10 x 20 data set.
The quick profile runs the PennyLane reference at the test size only (it takes seconds per call
at the default size); the technique cases, whose baseline is the batched model, run at the
default size in both profiles.

Some measures depend on which implementation ran (peak tensor bytes of a step, the bytes of the
model it used). ``measures`` is not told the implementation, so every implementation here
records its name in the ``trace`` input when called, and ``measures`` reads it back.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

from bench import Case, Claim, Grid, Tolerance, Variant, register
from models.qmann import (
    CIRCUITS,
    CachedDataset,
    QMANNConfig,
    SequenceDataset,
    accuracy,
    build_model,
    compile_model,
    compile_tape,
    config_for,
    distill,
    epoch_checksum,
    fit,
    launch_ddp,
    make_loader,
    make_optimizer,
    make_sequences,
    memory_read_batched,
    memory_read_pennylane,
    memory_tape,
    parameter_counts,
    peak_tensor_bytes,
    preprocess,
    preprocess_all,
    prune_magnitude,
    quantize_int8,
    run_tape,
    script_model,
    simulator,
    split,
    state_bytes,
    student_config,
    tape_counts,
    train_step,
)

SEQ_LEN = 10
BATCH = {"test": 2, "default": 32}
TRAIN_EPOCHS = 3
TRAIN_LR = 3e-3
QUICK_TEST = Grid(size=["test"])
FULL_SIZES = Grid(size=["test", "default"])
QUICK_DEFAULT = Grid(size=["default"])
Inputs = Mapping[str, Any]


def _traced(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` that first records ``name`` in the ``trace`` input (read by ``measures``)."""

    def call(trace: dict[str, str], **inputs: Any) -> Any:
        trace["impl"] = name
        return fn(**inputs)

    call.__name__ = call.__qualname__ = f"{name}_{getattr(fn, '__name__', 'call')}"
    call.__doc__ = fn.__doc__
    return call


def _ran(inputs: Inputs) -> str:
    return inputs["trace"].get("impl", "reference")


@contextlib.contextmanager
def _training_context() -> Iterator[None]:
    """For the cached trainings: one thread (robust to other processes' load) and gradients on
    (a training may first be needed inside a forward-mode call, which runs under no_grad)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.enable_grad():
            yield
    finally:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------------------- data and models


@functools.lru_cache(maxsize=4)
def _data(size: str) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """((raw train x, y), (preprocessed eval x, y)) of the synthetic set for this size's input."""
    config = config_for(size)
    (xtr, ytr), (xev, yev) = split(*make_sequences(n_features=config.input_size, seed=0))
    return (xtr, ytr), (preprocess_all(xev), yev)


def _train_loader(size: str) -> Any:
    (xtr, ytr), _ = _data(size)
    return make_loader(SequenceDataset(preprocess_all(xtr), ytr), batch_size=BATCH["default"], seed=0)


@functools.lru_cache(maxsize=8)
def _trained_state(size: str, recipe: str = "fp32") -> dict[str, torch.Tensor]:
    """Weights after TRAIN_EPOCHS epochs with a recipe ("fp32", "bf16"); computed once per run."""
    model = build_model(config_for(size), seed=0)
    with _training_context():
        fit(
            model,
            _train_loader(size),
            TRAIN_EPOCHS,
            lr=TRAIN_LR,
            autocast_dtype=torch.bfloat16 if recipe == "bf16" else None,
        )
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@functools.lru_cache(maxsize=4)
def _student_state(size: str) -> dict[str, torch.Tensor]:
    """The distilled student's weights (half the hidden size), taught by the fp32 model."""
    teacher = _trained(size, "cpu")
    student = build_model(student_config(config_for(size)), seed=1)
    with _training_context():
        distill(teacher, student, _train_loader(size), TRAIN_EPOCHS, lr=TRAIN_LR)
    return {k: v.detach().clone() for k, v in student.state_dict().items()}


def _trained(size: str, device: str, recipe: str = "fp32") -> torch.nn.Module:
    model = build_model(config_for(size), device=device)
    model.load_state_dict(_trained_state(size, recipe))
    return model.eval()


def _eval_accuracy(model: torch.nn.Module, size: str) -> float:
    _, (xev, yev) = _data(size)
    with torch.no_grad():
        return float(accuracy(model.eval()(xev), yev))


# -------------------------------------------------------------------------- qmann.memory_read


def memory_setup(params: Inputs, device: str) -> dict[str, Any]:
    config = config_for(params["size"])
    gen = torch.Generator().manual_seed(0)
    shape = (BATCH[params["size"]], SEQ_LEN, config.hidden_size)
    hidden = torch.tanh(
        torch.randn(*shape, generator=gen, dtype=torch.float64)
    )  # (B, T, H) like LSTM outputs
    return {
        "hidden": hidden.to(device),
        "n_slots": config.n_slots,
        "n_qubits": config.n_qubits,
        "top_k": config.top_k,
    }


register(
    Case(
        name="qmann.memory_read",
        description="memory reads of one call: per-step PennyLane circuits vs one batched (q~.m~)^2 product",
        setup=memory_setup,
        reference=memory_read_pennylane,
        variants={
            "batched": Variant(memory_read_batched, note="banded (N, S+L) fidelity products; same slots")
        },
        mode="forward",
        grids={"quick": QUICK_TEST, "full": FULL_SIZES},
        tolerance=Tolerance(rtol=1e-9, atol=1e-12),
        work=("steps", lambda p: BATCH[p["size"]] * SEQ_LEN),
        markers=("quantum",),
        time_limit_s=600,
    )
)


# ------------------------------------------------------------------- qmann.forward, train_step


def forward_setup(params: Inputs, device: str) -> dict[str, Any]:
    config = config_for(params["size"])
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH[params["size"]], SEQ_LEN, config.input_size, generator=gen)  # (B, T, F)
    return {"model": build_model(config, seed=0, device=device).eval(), "x": x.to(device)}


def forward_pennylane(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits with the memory read step by step through PennyLane circuits."""
    return model(x, read="pennylane")


def forward_batched(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits with the batched memory read."""
    return model(x, read="batched")


register(
    Case(
        name="qmann.forward",
        description="QMANN forward (LSTM, memory, fusion, head): PennyLane memory vs batched memory",
        setup=forward_setup,
        reference=forward_pennylane,
        variants={"batched_memory": forward_batched},
        mode="forward",
        grids={"quick": QUICK_TEST, "full": FULL_SIZES},
        tolerance=Tolerance(rtol=1e-5, atol=1e-6),
        work=("samples", lambda p: BATCH[p["size"]]),
        markers=("quantum",),
        time_limit_s=600,
    )
)


def step_setup(params: Inputs, device: str) -> dict[str, Any]:
    config = config_for(params["size"])
    gen = torch.Generator().manual_seed(2)
    batch = BATCH[params["size"]]
    model = build_model(config, seed=0, device=device)
    return {
        "model": model,
        "optimizer": make_optimizer(model),
        "x": torch.randn(batch, SEQ_LEN, config.input_size, generator=gen).to(device),  # (B, T, F)
        "y": torch.randint(0, config.n_classes, (batch,), generator=gen).to(device),  # (B,)
    }


def step_pennylane(model: Any, optimizer: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One Adam step with the PennyLane memory; the loss."""
    return train_step(model, optimizer, x, y, read="pennylane")


def step_batched(model: Any, optimizer: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One Adam step with the batched memory; the loss."""
    return train_step(model, optimizer, x, y, read="batched")


register(
    Case(
        name="qmann.train_step",
        description="one training step (forward, cross-entropy, backward, Adam): PennyLane vs batched memory",
        setup=step_setup,
        reference=step_pennylane,
        variants={"batched_memory": step_batched},
        mode="train_step",
        grids={"quick": QUICK_TEST, "full": FULL_SIZES},
        tolerance=Tolerance(rtol=1e-5, atol=1e-6),
        work=("samples", lambda p: BATCH[p["size"]]),
        markers=("quantum",),
        time_limit_s=900,
    )
)


# ------------------------------------------------------ qmann.train_techniques (Q1 and Q2)


def technique_step_setup(params: Inputs, device: str) -> dict[str, Any]:
    size = params["size"]
    model = build_model(config_for(size), seed=0, device=device)
    xb, yb = next(iter(_train_loader(size)))
    return {
        "model": model,
        "optimizer": make_optimizer(model),
        "x": xb.to(device),
        "y": yb.to(device),
        "trace": {},
    }


def step_fp32(model: Any, optimizer: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One float32 step (batched memory)."""
    return train_step(model, optimizer, x, y)


def step_checkpoint(model: Any, optimizer: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One step recomputing each LSTM layer in backward (gradient checkpointing)."""
    return train_step(model, optimizer, x, y, checkpoint=True)


def step_bf16(model: Any, optimizer: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One step with the forward under bfloat16 autocast."""
    return train_step(model, optimizer, x, y, autocast_dtype=torch.bfloat16)


TRAIN_IMPLS: dict[str, Callable[..., Any]] = {
    "reference": step_fp32,
    "checkpoint": step_checkpoint,
    "bf16_autocast": step_bf16,
}
TRAIN_RECIPES = {"reference": "fp32", "checkpoint": "fp32", "bf16_autocast": "bf16"}


def loss_difference(ref: Any, var: Any) -> dict[str, float]:
    a, b = float(ref), float(var)
    return {"loss_rel_err": abs(a - b) / max(abs(a), 1e-12), "loss_abs_err": abs(a - b)}


def technique_step_measures(inputs: Inputs, output: Any, params: Inputs) -> dict[str, float]:
    name = _ran(inputs)
    step = TRAIN_IMPLS[name]
    args = {k: v for k, v in inputs.items() if k != "trace"}
    peak = peak_tensor_bytes(lambda: step(**args))
    size = params["size"]
    base = _eval_accuracy(_trained(size, "cpu"), size)
    # Checkpointing recomputes the same numbers (tested), so it trains like float32.
    acc = _eval_accuracy(_trained(size, "cpu", TRAIN_RECIPES[name]), size)
    return {"peak_tensor_bytes": peak, "accuracy_pct": 100 * acc, "accuracy_drop_pct": 100 * (base - acc)}


register(
    Case(
        name="qmann.train_techniques",
        description="a training step on the batched model: float32 vs checkpointing vs bf16 autocast",
        setup=technique_step_setup,
        reference=_traced("reference", step_fp32),
        variants={
            "checkpoint": Variant(_traced("checkpoint", step_checkpoint), note="each LSTM layer recomputed"),
            "bf16_autocast": Variant(
                _traced("bf16_autocast", step_bf16),
                exact=False,
                quality=loss_difference,
                note="torch.autocast(bfloat16); accuracy after 3 epochs in extras",
            ),
        },
        mode="train_step",
        grids={"quick": QUICK_DEFAULT, "full": FULL_SIZES},
        tolerance=Tolerance(rtol=1e-5, atol=1e-6),
        work=("samples", lambda p: BATCH["default"]),
        measures=technique_step_measures,
        claims=[
            Claim(
                "Q1",
                "gradient checkpointing: ~5 % slower",
                metric="time_increase",
                variant="checkpoint",
                expected=(0.0, 0.10),
                at={"size": "default"},
            ),
            Claim(
                "Q1.memory",
                "gradient checkpointing: -30-40 % memory (peak tensor bytes of a step)",
                metric="extra_ratio",
                extra="peak_tensor_bytes",
                variant="checkpoint",
                expected=(1 / 0.7, 1 / 0.6),
                at={"size": "default"},
            ),
            Claim(
                "Q2",
                "mixed precision: 1.5-2x faster",
                metric="speedup",
                variant="bf16_autocast",
                expected=(1.5, 2.0),
                at={"size": "default"},
            ),
            Claim(
                "Q2.memory",
                "mixed precision: -40-50 % memory (peak tensor bytes of a step)",
                metric="extra_ratio",
                extra="peak_tensor_bytes",
                variant="bf16_autocast",
                expected=(1 / 0.6, 1 / 0.5),
                at={"size": "default"},
            ),
            Claim(
                "Q2.accuracy",
                "mixed precision: -0.1 % accuracy (drop in points after training; at most 0.1)",
                metric="extra",
                extra="accuracy_drop_pct",
                variant="bf16_autocast",
                expected=(-100.0, 0.1),
                at={"size": "default"},
            ),
        ],
        time_limit_s=600,
    )
)


# ------------------------------------------------------------ qmann.inference (Q3 to Q6)

_DERIVED: dict[str, weakref.WeakKeyDictionary[torch.nn.Module, Any]] = {}


def _derived(kind: str, model: torch.nn.Module, build: Callable[[], Any]) -> Any:
    """The transformed model for ``model``, built on first use (the checked call) and reused."""
    cache = _DERIVED.setdefault(kind, weakref.WeakKeyDictionary())
    if model not in cache:
        cache[model] = build()
    return cache[model]


INFER_BATCH = 32  # sequences per timed call; accuracy is measured on all 200 held-out ones


def infer_setup(params: Inputs, device: str) -> dict[str, Any]:
    size = params["size"]
    _, (xev, _) = _data(size)
    return {"model": _trained(size, device), "x": xev[:INFER_BATCH].to(device), "size": size, "trace": {}}


def _student(model: Any, size: str) -> torch.nn.Module:
    config = student_config(config_for(size))
    student = build_model(config, device=next(model.parameters()).device)
    student.load_state_dict(_student_state(size))
    return student.eval()


def _model_for(name: str, model: Any, x: torch.Tensor, size: str) -> Any:
    """The model an implementation runs (TorchScript is traced for this input's shape)."""
    builders: dict[str, tuple[str, Callable[[], Any]]] = {
        "reference": ("", lambda: model),
        "int8_dynamic": ("int8", lambda: quantize_int8(model)),
        "pruned30": ("pruned30", lambda: prune_magnitude(model, 0.3)),
        "student": ("student", lambda: _student(model, size)),
        "torchscript": (f"torchscript{tuple(x.shape)}", lambda: script_model(model, x)),
    }
    kind, build = builders[name]
    return model if not kind else _derived(kind, model, build)


def infer_eager(model: Any, x: torch.Tensor, size: str) -> torch.Tensor:
    """Logits of the trained float32 model (batched memory)."""
    return model(x)


def infer_int8(model: Any, x: torch.Tensor, size: str) -> torch.Tensor:
    """Dynamic int8 quantization of the Linear and LSTM layers."""
    return _model_for("int8_dynamic", model, x, size)(x)


def infer_pruned(model: Any, x: torch.Tensor, size: str) -> torch.Tensor:
    """30 % L1 magnitude pruning of every weight matrix, dense storage, no fine-tuning."""
    return _model_for("pruned30", model, x, size)(x)


def infer_student(model: Any, x: torch.Tensor, size: str) -> torch.Tensor:
    """The distilled student (hidden / 2), instead of the model."""
    return _model_for("student", model, x, size)(x)


def infer_script(model: Any, x: torch.Tensor, size: str) -> torch.Tensor:
    """TorchScript: traced, frozen, optimize_for_inference."""
    return _model_for("torchscript", model, x, size)(x)


INFER_IMPLS: dict[str, Callable[..., Any]] = {
    "reference": infer_eager,
    "int8_dynamic": infer_int8,
    "pruned30": infer_pruned,
    "student": infer_student,
    "torchscript": infer_script,
}


def prediction_quality(ref: Any, var: Any) -> dict[str, float]:
    return {
        "agreement": float((ref.argmax(-1) == var.argmax(-1)).double().mean()),
        "max_abs_logit_err": float((ref.float() - var.float()).abs().max()),
    }


def infer_measures(inputs: Inputs, output: Any, params: Inputs) -> dict[str, float]:
    name, model, size = _ran(inputs), inputs["model"], inputs["size"]
    args = {k: v for k, v in inputs.items() if k != "trace"}
    _, (xev, yev) = _data(size)
    xev = xev.to(inputs["x"].device)
    with torch.no_grad():
        peak = peak_tensor_bytes(lambda: INFER_IMPLS[name](**args))
        base = float(accuracy(model(xev), yev.to(xev.device)))
        acc = float(accuracy(_model_for(name, model, xev, size)(xev), yev.to(xev.device)))
    used = _model_for(name, model, inputs["x"], size)
    values = {
        "model_bytes": float(state_bytes(used)),
        "peak_tensor_bytes": float(peak),
        "accuracy_pct": 100 * acc,
        "accuracy_drop_pct": 100 * (base - acc),
    }
    if not isinstance(used, torch.jit.ScriptModule) and any(True for _ in used.parameters()):
        _, nonzero = parameter_counts(used)
        full, _ = parameter_counts(model)
        values.update(nonzero_parameters=float(nonzero), parameter_reduction=1 - nonzero / full)
    return values


def _approx(fn: Callable[..., Any], note: str) -> Variant:
    return Variant(fn, exact=False, quality=prediction_quality, note=note)


register(
    Case(
        name="qmann.inference",
        description="the trained model on 32 held-out sequences: float32 eager vs inference techniques",
        setup=infer_setup,
        reference=_traced("reference", infer_eager),
        variants={
            "int8_dynamic": _approx(
                _traced("int8_dynamic", infer_int8), "quantize_dynamic(Linear, LSTM), qint8"
            ),
            "pruned30": _approx(_traced("pruned30", infer_pruned), "30 % L1 unstructured, dense kernels"),
            "student": _approx(
                _traced("student", infer_student), "distilled, hidden/2, T=4, 0.7 KD + 0.3 CE"
            ),
            "torchscript": Variant(
                _traced("torchscript", infer_script), note="trace + freeze + optimize_for_inference"
            ),
        },
        mode="forward",
        grids={"quick": QUICK_DEFAULT, "full": FULL_SIZES},
        tolerance=Tolerance(rtol=1e-4, atol=1e-5),
        work=("samples", lambda p: INFER_BATCH),
        measures=infer_measures,
        devices=("cpu",),
        claims=[
            Claim(
                "Q3",
                "dynamic int8 quantization: 2-4x faster",
                metric="speedup",
                variant="int8_dynamic",
                expected=(2.0, 4.0),
                at={"size": "default"},
            ),
            Claim(
                "Q3.memory",
                "dynamic int8 quantization: -75 % memory (serialized model bytes)",
                metric="extra_ratio",
                extra="model_bytes",
                variant="int8_dynamic",
                expected=(1 / 0.3, 1 / 0.2),
                at={"size": "default"},
            ),
            Claim(
                "Q3.accuracy",
                "dynamic int8 quantization: -1 % accuracy (drop in points; at most 1)",
                metric="extra",
                extra="accuracy_drop_pct",
                variant="int8_dynamic",
                expected=(-100.0, 1.0),
                at={"size": "default"},
            ),
            Claim(
                "Q4",
                "30 % pruning: 1.2-1.5x faster",
                metric="speedup",
                variant="pruned30",
                expected=(1.2, 1.5),
                at={"size": "default"},
            ),
            Claim(
                "Q4.parameters",
                "30 % pruning: -30 % parameters (nonzero parameters)",
                metric="extra",
                extra="parameter_reduction",
                variant="pruned30",
                expected=(0.28, 0.32),
                at={"size": "default"},
            ),
            Claim(
                "Q4.accuracy",
                "30 % pruning: -0.5 % accuracy (drop in points; at most 0.5)",
                metric="extra",
                extra="accuracy_drop_pct",
                variant="pruned30",
                expected=(-100.0, 0.5),
                at={"size": "default"},
            ),
            Claim(
                "Q5",
                "knowledge distillation: 2-3x faster student",
                metric="speedup",
                variant="student",
                expected=(2.0, 3.0),
                at={"size": "default"},
            ),
            Claim(
                "Q5.memory",
                "knowledge distillation: -50 % memory (serialized model bytes)",
                metric="extra_ratio",
                extra="model_bytes",
                variant="student",
                expected=(1 / 0.55, 1 / 0.45),
                at={"size": "default"},
            ),
            Claim(
                "Q5.accuracy",
                "knowledge distillation: < 1 % accuracy drop (points)",
                metric="extra",
                extra="accuracy_drop_pct",
                variant="student",
                expected=(-100.0, 1.0),
                at={"size": "default"},
            ),
            Claim(
                "Q6",
                "TorchScript / operator fusion: 1.5-2x faster",
                metric="speedup",
                variant="torchscript",
                expected=(1.5, 2.0),
                at={"size": "default"},
            ),
        ],
        time_limit_s=600,
    )
)


# ------------------------------------------------------------------ qmann.compile (Q6, compile)


def infer_compiled(model: Any, x: torch.Tensor, size: str) -> torch.Tensor:
    """torch.compile (inductor), compiled in the checked call."""
    return _derived("compiled", model, lambda: compile_model(model))(x)


def compile_setup(params: Inputs, device: str) -> dict[str, Any]:
    inputs = infer_setup(params, device)
    inputs.pop("trace")
    return inputs


register(
    Case(
        name="qmann.compile",
        description="the trained model on 32 held-out sequences: eager vs torch.compile (inductor)",
        setup=compile_setup,
        reference=infer_eager,
        variants={
            "compiled": Variant(infer_compiled, note="torch.compile, default mode; compile time not timed")
        },
        mode="forward",
        grids={"quick": QUICK_DEFAULT, "full": FULL_SIZES},
        tolerance=Tolerance(rtol=1e-4, atol=1e-5),
        work=("samples", lambda p: INFER_BATCH),
        claims=[
            Claim(
                "Q6.compile",
                "operator fusion (torch.compile): 1.5-2x faster",
                metric="speedup",
                variant="compiled",
                expected=(1.5, 2.0),
                at={"size": "default"},
            ),
        ],
        markers=("slow",),
        time_limit_s=600,
    )
)


# ------------------------------------------------------------- qmann.data_loading (Q7, Q8)

_LOADERS: dict[str, weakref.WeakKeyDictionary[SequenceDataset, Any]] = {}


def _loader(kind: str, dataset: SequenceDataset, build: Callable[[], Any]) -> Any:
    cache = _LOADERS.setdefault(kind, weakref.WeakKeyDictionary())
    if dataset not in cache:
        cache[dataset] = build()
    return cache[dataset]


def data_setup(params: Inputs, device: str) -> dict[str, Any]:
    (xtr, ytr), _ = _data("default")
    return {"dataset": SequenceDataset(xtr, ytr, transform=preprocess), "batch_size": params["batch"]}


def epoch_plain(dataset: SequenceDataset, batch_size: int) -> torch.Tensor:
    """One epoch, preprocessing every sample on access in this process (num_workers=0)."""
    return epoch_checksum(_loader("plain", dataset, lambda: make_loader(dataset, batch_size, seed=0)))


def epoch_workers(dataset: SequenceDataset, batch_size: int) -> torch.Tensor:
    """The guide's loader: 2 workers, pin_memory (with CUDA), prefetch 2, persistent workers."""
    return epoch_checksum(
        _loader(
            "workers",
            dataset,
            lambda: make_loader(
                dataset,
                batch_size,
                seed=0,
                num_workers=2,
                pin_memory=torch.cuda.is_available(),
                prefetch_factor=2,
                persistent_workers=True,
            ),
        )
    )


def epoch_cached(dataset: SequenceDataset, batch_size: int) -> torch.Tensor:
    """Preprocessed items kept after their first access (repeated epochs hit the cache)."""
    return epoch_checksum(
        _loader("cached", dataset, lambda: make_loader(CachedDataset(dataset), batch_size, seed=0))
    )


register(
    Case(
        name="qmann.data_loading",
        description="one epoch of the 800 training sequences, preprocessed per sample, through a DataLoader",
        setup=data_setup,
        reference=epoch_plain,
        variants={
            "workers": Variant(
                epoch_workers, note="num_workers=2, prefetch_factor=2, persistent, pin_memory if CUDA"
            ),
            "cached": Variant(epoch_cached, note="in-memory cache of preprocessed items, num_workers=0"),
        },
        mode="forward",
        grids={"quick": Grid(batch=[32]), "full": Grid(batch=[32])},
        tolerance=Tolerance(rtol=1e-9, atol=1e-6),
        work=("samples", lambda p: 800),
        devices=("cpu",),
        claims=[
            Claim(
                "Q7",
                "DataLoader workers + pin_memory + prefetch + persistent workers: 2-3x faster",
                metric="speedup",
                variant="workers",
                expected=(2.0, 3.0),
            ),
            Claim(
                "Q8",
                "preprocessing cache: 5-10x faster for repeated data",
                metric="speedup",
                variant="cached",
                expected=(5.0, 10.0),
            ),
        ],
        time_limit_s=300,
    )
)


# ------------------------------------------------------------------------ qmann.ddp (Q9)

DDP_WARMUP = 3
DDP_TIMEOUT_S = 240.0


def ddp_setup(params: Inputs, device: str) -> dict[str, Any]:
    return {"nproc": params["nproc"], "size": params["size"], "steps": params["steps"]}


def ddp_train(nproc: int, size: str, steps: int) -> dict[str, float]:
    """Launch torchrun with ``nproc`` gloo processes (1 thread each), wait, return their figures."""
    result = launch_ddp(
        nproc,
        size=size,
        steps=steps,
        warmup=DDP_WARMUP,
        batch_per_rank=BATCH["default"],
        timeout_s=DDP_TIMEOUT_S,
    )
    return {k: float(v) for k, v in result.items()}


def scaling(ref: Any, var: Any) -> dict[str, float]:
    speedup = var["samples_per_s"] / ref["samples_per_s"]
    return {
        "scaling_efficiency": speedup / var["world_size"],
        "throughput_speedup": speedup,
        "replica_max_abs_diff": var["replica_max_abs_diff"],
    }


def ddp_measures(inputs: Inputs, output: Any, params: Inputs) -> dict[str, float]:
    return {
        "samples_per_s": output["samples_per_s"],
        "s_per_sample": 1.0 / output["samples_per_s"],
        "step_ms_median": output["step_ms_median"],
        "comm_ms_median": output["comm_ms_median"],
        "comm_share": output["comm_share"],
    }


def _training_flops(config: QMANNConfig, samples: int) -> float:
    """Forward + backward (3x forward) FLOPs of the dense layers for ``samples`` sequences."""
    h, t = config.hidden_size, SEQ_LEN
    sizes = [config.input_size] + [h] * (config.num_layers - 1)
    macs = sum(t * 4 * h * (size + h) for size in sizes) + t * 2 * h * h + h * config.n_classes
    return 3.0 * 2.0 * macs * samples


register(
    Case(
        name="qmann.ddp",
        description="DistributedDataParallel training (gloo, torchrun) on this machine: 1 vs 2 processes",
        setup=ddp_setup,
        reference=ddp_train,
        variants={
            "ddp2": Variant(
                ddp_train,
                exact=False,
                params={"nproc": 2},
                quality=scaling,
                note="2 processes x 1 thread, per-rank batch 32 (global 64)",
            )
        },
        mode="forward",
        grids={
            "quick": Grid(nproc=[1], size=["default"], steps=[10]),
            "full": Grid(nproc=[1], size=["default"], steps=[50]),
        },
        work=("samples", lambda p: p["nproc"] * BATCH["default"] * (p["steps"] + DDP_WARMUP)),
        # Declared, so the probe pass does not launch torchrun once more just to count nothing.
        flops=lambda p: _training_flops(
            config_for(p["size"]), p["nproc"] * BATCH["default"] * (p["steps"] + DDP_WARMUP)
        ),
        measures=ddp_measures,
        devices=("cpu",),
        # Every call launches processes (seconds of start-up): one timed round is enough, the
        # throughput measured inside the workers is the figure.
        markers=("slow",),
        benchmark={"min_rounds": 1, "max_time": 0.0},
        warmup_calls=0,
        claims=[
            Claim(
                "Q9",
                "DDP over 4 GPUs: 3.5-4x (here: 2 CPU processes; throughput ratio measured in the workers)",
                metric="extra_ratio",
                extra="s_per_sample",
                variant="ddp2",
                expected=(3.5, 4.0),
                hardware="4 GPUs",
            ),
            Claim(
                "Q9.dataparallel",
                "DataParallel over 4 GPUs: 3-4x",
                metric="speedup",
                variant="ddp2",
                expected=(3.0, 4.0),
                measurable=False,
                reason="DataParallel replicates over CUDA devices in one process; this machine has no GPU",
            ),
        ],
        time_limit_s=600,
    )
)


# -------------------------------------------------------------------- qmann.circuit_depth (Q10)


def circuit_setup(params: Inputs, device: str) -> dict[str, Any]:
    config = config_for(params["size"])
    gen = torch.Generator().manual_seed(3)
    query, stored = torch.tanh(torch.randn(2, config.hidden_size, generator=gen, dtype=torch.float64))
    tape = memory_tape(params["circuit"], query, stored, config.n_qubits)
    return {"tape": compile_tape(tape, params["pipeline"]), "device": simulator(config.n_qubits)}


def run_circuit(tape: Any, device: Any) -> torch.Tensor:
    """Simulate the (compiled) circuit on default.qubit."""
    return run_tape(tape, device)


def same_state(ref: Any, var: Any) -> dict[str, float]:
    if ref.is_complex():
        fidelity = float(torch.vdot(ref, var).abs() ** 2)
        phase = torch.vdot(var, ref) / max(float(torch.vdot(var, ref).abs()), 1e-300)
        return {"fidelity": fidelity, "max_abs_err": float((ref - phase * var).abs().max())}
    overlap = float(torch.sqrt(ref.clamp_min(0) * var.clamp_min(0)).sum() ** 2)
    return {"fidelity": overlap, "max_abs_err": float((ref - var).abs().max())}


SINGLE_TRANSFORMS = ("cancel_inverses", "merge_rotations", "commute_controlled")


def circuit_measures(inputs: Inputs, output: Any, params: Inputs) -> dict[str, float]:
    tape = inputs["tape"]
    values = {k: float(v) for k, v in tape_counts(tape).items()}
    if params["pipeline"] == "none":  # each transform of the pipeline alone, counted without timing
        for name in SINGLE_TRANSFORMS:
            values[f"depth_after_{name}"] = float(tape_counts(compile_tape(tape, name))["depth"])
    return values


register(
    Case(
        name="qmann.circuit_depth",
        description="the memory's circuits (RY/RZ/CNOT) before and after PennyLane's compile transforms",
        setup=circuit_setup,
        reference=run_circuit,
        variants={
            "compile": Variant(
                run_circuit,
                exact=False,
                params={"pipeline": "compile"},
                quality=same_state,
                note="qml.compile (commute, cancel, merge); each transform alone in extras",
            ),
        },
        mode="forward",
        grids={
            "quick": Grid(size=["test"], circuit=list(CIRCUITS), pipeline=["none"]),
            "full": Grid(size=["test", "default"], circuit=list(CIRCUITS), pipeline=["none"]),
        },
        work=("circuits", lambda p: 1),
        measures=circuit_measures,
        markers=("quantum",),
        devices=("cpu",),
        claims=[
            Claim(
                "Q10",
                "circuit optimization: -30-50 % depth (the encoding circuit)",
                metric="extra_ratio",
                extra="depth",
                variant="compile",
                expected=(1 / 0.7, 1 / 0.5),
                at={"circuit": "encode"},
            ),
            Claim(
                "Q10.overlap",
                "circuit optimization: -30-50 % depth (the fidelity/overlap circuit)",
                metric="extra_ratio",
                extra="depth",
                variant="compile",
                expected=(1 / 0.7, 1 / 0.5),
                at={"circuit": "overlap"},
            ),
        ],
        time_limit_s=300,
    )
)
