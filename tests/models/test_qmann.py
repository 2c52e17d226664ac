"""Tests of the QMANN family: memory semantics, PennyLane vs batched reads, model, techniques, data, DDP."""

from __future__ import annotations

import _thread
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import torch
import torch.nn.functional as F

from models.qmann import (
    TEST_CONFIG,
    CachedDataset,
    DistillationLoss,
    LaunchError,
    PennyLaneMemory,
    QMANNConfig,
    SequenceDataset,
    amplitude_vectors,
    build_model,
    compile_tape,
    config_for,
    content_vectors,
    distill,
    epoch_checksum,
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
    prune_magnitude,
    quantize_int8,
    run_process_group,
    run_tape,
    script_model,
    simulator,
    split,
    state_bytes,
    student_config,
    tape_counts,
    train_step,
)
from models.qmann.ddp_train import CommTimer

F64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # Small tensors: one thread is as fast, and immune to other processes' load on a shared machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _hidden(batch: int, steps: int, size: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.tanh(torch.randn(batch, steps, size, generator=gen, dtype=F64))  # (B, T, H)


def _assert_same_reads(hidden: torch.Tensor, n_slots: int, n_qubits: int, top_k: int = 3) -> None:
    ref = memory_read_pennylane(hidden, n_slots, n_qubits, top_k)
    fast = memory_read_batched(hidden, n_slots, n_qubits, top_k)
    assert torch.equal(ref.slots, fast.slots)
    torch.testing.assert_close(fast.weights, ref.weights, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(fast.values, ref.values, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------ encoding


def test_amplitude_vectors_pad_truncate_normalise_and_zero() -> None:
    h = torch.tensor([[3.0, 4.0], [0.0, 0.0]], dtype=F64)
    padded = amplitude_vectors(h, n_qubits=2)  # 4 amplitudes
    torch.testing.assert_close(padded[0], torch.tensor([0.6, 0.8, 0.0, 0.0], dtype=F64))
    torch.testing.assert_close(padded[1], torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=F64))  # |00>
    long = torch.tensor([1.0, 1.0, 5.0, 7.0], dtype=F64)
    torch.testing.assert_close(
        amplitude_vectors(long, n_qubits=1), torch.tensor([2**-0.5, 2**-0.5], dtype=F64)
    )
    assert content_vectors(torch.ones(4, dtype=F64), 6).tolist() == [1, 1, 1, 1, 0, 0]
    assert content_vectors(torch.arange(4.0), 2).tolist() == [0, 1]


def test_pennylane_state_is_the_amplitude_vector() -> None:
    memory = PennyLaneMemory(n_slots=2, n_qubits=3)
    h = _hidden(1, 1, 5)[0, 0]
    state = memory.encode(h)
    torch.testing.assert_close(state.real, amplitude_vectors(h, 3), rtol=1e-12, atol=1e-14)
    assert float(state.imag.abs().max()) == 0.0


# ------------------------------------------------------------ PennyLane vs batched reads


@pytest.mark.parametrize(
    ("batch", "steps", "size", "n_slots", "n_qubits", "top_k"),
    [
        (2, 10, 32, 16, 6, 3),  # the test size: 20 steps, memory full after 16
        (3, 4, 8, 5, 3, 3),  # ring buffer wraps twice
        (1, 4, 8, 16, 3, 3),  # never full; top-k larger than the first steps' memory
        (2, 3, 20, 4, 4, 2),  # hidden 20 > 2**4 amplitudes: truncated
        (4, 3, 6, 1, 3, 3),  # a single slot
    ],
)
def test_batched_read_matches_pennylane(
    batch: int, steps: int, size: int, n_slots: int, n_qubits: int, top_k: int
) -> None:
    _assert_same_reads(_hidden(batch, steps, size), n_slots, n_qubits, top_k)


def test_batched_read_matches_pennylane_on_ties_and_zero_states() -> None:
    hidden = _hidden(3, 4, 8, seed=1)
    hidden[1] = hidden[0]  # exact duplicates: equal fidelities, the older write goes first
    hidden[2, 1] = 0.0  # encodes as |0...0>
    _assert_same_reads(hidden, n_slots=6, n_qubits=3)
    read = memory_read_batched(hidden, n_slots=6, n_qubits=3)
    assert int(read.slots[1, 0, 0]) == 0  # step 4 (b=1, t=0) finds its duplicate: write 0, in slot 0


def test_memory_is_a_fifo_ring_buffer_when_full() -> None:
    basis = torch.eye(8, dtype=F64)
    stream = basis[[0, 1, 2, 3, 4, 5, 0]]  # step 6 repeats step 0's state
    hidden = stream[None]  # (1, 7, 8)
    small = memory_read_batched(hidden, n_slots=3, n_qubits=3)
    # Step 6 sees only writes 3, 4, 5 (slots 0, 1, 2): write 0 was overwritten, nothing matches.
    assert small.slots[0, 6].tolist() == [0, 1, 2]
    assert small.weights[0, 6].tolist() == [0.0, 0.0, 0.0]
    assert float(small.values[0, 6].abs().max()) == 0.0
    # With room for every write, step 6 retrieves write 0 with all the weight.
    large = memory_read_batched(hidden, n_slots=8, n_qubits=3)
    assert int(large.slots[0, 6, 0]) == 0 and float(large.weights[0, 6, 0]) == 1.0
    torch.testing.assert_close(large.values[0, 6], basis[0])
    # The first step reads an empty memory.
    assert small.slots[0, 0].tolist() == [-1, -1, -1] and float(small.values[0, 0].abs().max()) == 0.0
    _assert_same_reads(hidden, n_slots=3, n_qubits=3)


def test_pennylane_memory_writes_round_robin() -> None:
    memory = PennyLaneMemory(n_slots=3, n_qubits=2)
    states = [memory.encode(torch.tensor([1.0, float(i), 0.0, 0.0], dtype=F64)) for i in range(5)]
    assert [memory.write(s) for s in states] == [0, 1, 2, 0, 1]
    assert memory.written_at == [3, 4, 2] and memory.n_writes == 5


def test_memory_read_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        memory_read_batched([[1.0]], 4, 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch, time, hidden"):
        memory_read_batched(torch.zeros(3, 4), 4, 2)
    with pytest.raises(ValueError, match="n_slots"):
        memory_read_batched(torch.zeros(1, 2, 4), 0, 2)
    with pytest.raises(ValueError, match="top_k"):
        memory_read_pennylane(torch.zeros(1, 2, 4), 4, 2, top_k=0)
    with pytest.raises(ValueError, match="must not be empty"):
        memory_read_batched(torch.zeros(1, 0, 4), 4, 2)


# ------------------------------------------------------------------------------- model


def test_config_and_model_errors() -> None:
    with pytest.raises(ValueError, match="hidden_size"):
        QMANNConfig(hidden_size=0)
    with pytest.raises(ValueError, match="unknown size"):
        config_for("huge")
    with pytest.raises(ValueError, match="unknown memory read"):
        build_model(TEST_CONFIG, read="qiskit")
    model = build_model(TEST_CONFIG)
    with pytest.raises(ValueError, match=r"x must be \(batch, time, 10\)"):
        model(torch.zeros(2, 10, 20))
    assert student_config(config_for("default")).hidden_size == 128


def test_model_forward_pennylane_equals_batched_and_is_seeded() -> None:
    model = build_model(TEST_CONFIG, seed=0).eval()
    x = torch.randn(2, 10, 10, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x, read="pennylane")
        fast = model(x, read="batched")
        again = build_model(TEST_CONFIG, seed=0).eval()(x)
    assert ref.shape == (2, 3)
    torch.testing.assert_close(fast, ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(again, fast, rtol=0, atol=0)


def _step_setup(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor]:
    model = build_model(TEST_CONFIG, seed=seed)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 10, 10, generator=gen)
    return model, make_optimizer(model), x, torch.tensor([0, 2])


def test_train_step_pennylane_batched_and_checkpoint_agree() -> None:
    results = []
    for options in ({"read": "pennylane"}, {"read": "batched"}, {"checkpoint": True}):
        model, opt, x, y = _step_setup()
        loss = train_step(model, opt, x, y, **options)  # type: ignore[arg-type]
        results.append((loss, [p.detach().clone() for p in model.parameters()]))
    for loss, params in results[1:]:
        torch.testing.assert_close(loss, results[0][0], rtol=1e-6, atol=1e-7)
        for a, b in zip(params, results[0][1], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    model, opt, x, y = _step_setup()
    changed = train_step(model, opt, x, y, autocast_dtype=torch.bfloat16)
    assert abs(float(changed) - float(results[0][0])) < 0.05 * float(results[0][0])


def test_checkpointing_lowers_peak_tensor_bytes_of_a_long_sequence() -> None:
    config = QMANNConfig(input_size=8, hidden_size=32, num_layers=3, n_slots=4, n_qubits=5)
    x = torch.randn(8, 30, 8)
    peaks = []
    for ckpt in (False, True):
        model = build_model(config)
        peaks.append(peak_tensor_bytes(lambda m=model, c=ckpt: m(x, checkpoint=c).sum().backward()))
    assert peaks[1] < peaks[0]


def test_peak_tensor_bytes_counts_frees() -> None:
    def call() -> None:
        a = torch.ones(1000)  # 4000 bytes
        del a
        b = torch.ones(500)  # 2000 bytes, after a was freed
        c = b * 2  # 2000 more while b lives
        del b, c

    assert peak_tensor_bytes(call) == 4000


# -------------------------------------------------------------------------- techniques


def test_int8_pruning_script_and_student() -> None:
    model = build_model(TEST_CONFIG, seed=0).eval()
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.randn(8, 10, 10, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = model(x)
        int8 = quantize_int8(model)(x)
        pruned_model = prune_magnitude(model, 0.3)
        pruned = pruned_model(x)
        scripted = script_model(model, x)(x)
    torch.testing.assert_close(scripted, ref, rtol=1e-5, atol=1e-6)
    assert float((int8 - ref).abs().max()) < 0.05
    assert 0 < float((pruned - ref).abs().max()) < 1.0
    for name, param in pruned_model.named_parameters():
        zeros = float((param == 0).double().mean())
        if "weight" in name:
            assert abs(zeros - 0.3) < 0.01, name
        else:
            assert zeros == 0.0, name
    total, nonzero = parameter_counts(pruned_model)
    assert 0.28 < 1 - nonzero / total < 0.30
    for a, b in zip(model.parameters(), before, strict=True):  # the original is untouched
        assert torch.equal(a, b)
    assert state_bytes(quantize_int8(model)) < state_bytes(model)
    with pytest.raises(ValueError, match="amount"):
        prune_magnitude(model, 1.5)


def test_distillation_loss_and_training() -> None:
    student_logits = torch.tensor([[1.0, 0.0, -1.0]])
    teacher_logits = torch.tensor([[0.5, 0.5, 0.0]])
    target = torch.tensor([0])
    expected = 0.7 * F.kl_div(
        F.log_softmax(student_logits / 4, -1), F.softmax(teacher_logits / 4, -1), reduction="batchmean"
    ) + 0.3 * F.cross_entropy(student_logits, target)
    torch.testing.assert_close(DistillationLoss()(student_logits, teacher_logits, target), expected)
    with pytest.raises(ValueError, match="temperature"):
        DistillationLoss(temperature=0)
    teacher = build_model(TEST_CONFIG, seed=0)
    student = build_model(student_config(TEST_CONFIG), seed=1)
    x, y = make_sequences(64, n_features=10, seed=4)
    history = distill(teacher, student, make_loader(SequenceDataset(x, y), 16), epochs=2)
    assert len(history) == 2 and history[1] < history[0]


# -------------------------------------------------------------------------------- data


def test_sequences_are_seeded_balanced_and_checked() -> None:
    x, y = make_sequences(seed=0)
    assert x.shape == (1000, 10, 20) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.bincount(y).tolist() in ([334, 333, 333],)
    x2, y2 = make_sequences(seed=0)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(make_sequences(seed=1)[0], x)
    (xtr, _), (xev, _) = split(x, y)
    assert xtr.shape[0] == 800 and xev.shape[0] == 200
    with pytest.raises(ValueError, match="n_samples"):
        make_sequences(n_samples=0)
    with pytest.raises(ValueError, match="n_classes"):
        make_sequences(n_classes=1)
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(SequenceDataset(x, y), batch_size=0)
    with pytest.raises(ValueError, match="num_workers"):
        make_loader(SequenceDataset(x, y), persistent_workers=True)


def test_preprocess_cache_and_workers_give_the_same_epoch() -> None:
    x, y = make_sequences(96, seed=5)
    z = preprocess(x[0])
    assert z.shape == x[0].shape and float(z.abs().max()) <= 3.0
    plain = SequenceDataset(x, y, transform=preprocess)
    cached = CachedDataset(plain)
    first = epoch_checksum(make_loader(cached, 16, seed=0))
    assert len(cached.cache) == 96
    torch.testing.assert_close(epoch_checksum(make_loader(cached, 16, seed=0)), first)
    torch.testing.assert_close(epoch_checksum(make_loader(plain, 16, seed=0)), first)
    workers = make_loader(plain, 16, seed=0, num_workers=1, prefetch_factor=2, persistent_workers=True)
    torch.testing.assert_close(epoch_checksum(workers), first)
    assert first[2] == 96


# ------------------------------------------------------------------------------ circuits


def test_circuits_prepare_the_memory_states_and_compile_keeps_them() -> None:
    query, stored = _hidden(1, 2, 8, seed=6)[0]
    tape = memory_tape("encode", query, stored, 3)
    state = run_tape(tape, simulator(3))
    fidelity = torch.vdot(state, amplitude_vectors(query, 3).to(state.dtype)).abs() ** 2
    assert float(fidelity) == pytest.approx(1.0, abs=1e-12)
    overlap = run_tape(memory_tape("overlap", query, stored, 3), simulator(3))
    expected = float((amplitude_vectors(query, 3) @ amplitude_vectors(stored, 3)) ** 2)
    assert float(overlap[0]) == pytest.approx(expected, abs=1e-12)
    counts = tape_counts(tape)
    assert counts["depth"] > 0 and counts["cnots"] > 0
    n_ops = len(tape.operations)
    for pipeline in ("merge_rotations", "compile", "cancel_inverses", "commute_controlled"):
        compiled = compile_tape(tape, pipeline)
        assert len(tape.operations) == n_ops  # the input tape is not consumed
        out = run_tape(compiled, simulator(3))
        assert float(torch.vdot(state, out).abs() ** 2) == pytest.approx(1.0, abs=1e-10)
    with pytest.raises(ValueError, match="unknown pipeline"):
        compile_tape(tape, "qiskit")
    with pytest.raises(ValueError, match="unknown circuit"):
        memory_tape("swap", query, stored, 3)


# ----------------------------------------------------------------------------- DDP launch

_TREE = """
import subprocess, sys, time, pathlib
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
pathlib.Path(sys.argv[1]).write_text(f"{child.pid}")
time.sleep(300)
"""


def _dead(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_for(path: Path, timeout_s: float = 30.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written")


def test_process_tree_is_killed_on_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with pytest.raises(LaunchError, match="ran past"):
        run_process_group(
            [sys.executable, "-c", _TREE, str(pid_file)],
            timeout_s=3.0,
            log_path=tmp_path / "log",
            grace_s=2.0,
        )
    child = int(pid_file.read_text())  # started in its own session, like torchrun's workers
    assert _dead(child)


def test_process_tree_is_killed_on_interrupt(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    def interrupt_when_started() -> None:
        _wait_for(pid_file)
        _thread.interrupt_main()

    threading.Thread(target=interrupt_when_started, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_process_group(
            [sys.executable, "-c", _TREE, str(pid_file)],
            timeout_s=120.0,
            log_path=tmp_path / "log",
            grace_s=2.0,
        )
    assert _dead(int(pid_file.read_text()))


def test_comm_timer_merges_overlapping_intervals() -> None:
    timer = CommTimer(world_size=2)
    timer.intervals = [(0.0, 1.0), (0.5, 2.0), (3.0, 4.0), (3.2, 3.5)]
    assert timer.busy_s() == pytest.approx(3.0)


def test_launch_ddp_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="nproc"):
        launch_ddp(0)
    with pytest.raises(ValueError, match="timeout_s"):
        launch_ddp(1, timeout_s=0)


def _tagged(tag: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if tag in " ".join(proc.cmdline()) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


# Imported by every process of the launch; a torchrun worker (LOCAL_RANK set) leaves a file
# named for its rank if its interpreter runs its exit handlers, i.e. finalises.
_FINALISATION_PROBE = """
import atexit, os, pathlib
if "LOCAL_RANK" in os.environ:
    mark = pathlib.Path(os.environ["QMANN_TEST_PROBE"], os.environ["LOCAL_RANK"])
    atexit.register(mark.write_text, "finalised")
"""


@pytest.mark.slow
def test_ddp_two_processes_train_in_sync_and_failures_clean_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # torchrun's temporary folders go where TMPDIR says; the launch must leave none behind (torch's
    # compile cache, torchinductor_*, is a cache and may stay).
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    # And no worker may finalise its interpreter: one that finalises while a gloo thread still
    # releases the last collective's tensors aborts (SIGABRT, "terminate called without an active
    # exception"): the gloo thread asks for the GIL, finalisation ends it with pthread_exit, and
    # that unwinding terminates. It happens on a fraction of launches only, so the test checks the
    # cause, which every launch shows: a probe imported by every process marks a finalisation.
    site, probe = tmp_path / "site", tmp_path / "finalised"
    site.mkdir()
    probe.mkdir()
    (site / "sitecustomize.py").write_text(_FINALISATION_PROBE)
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("QMANN_TEST_PROBE", str(probe))
    result = launch_ddp(2, size="test", steps=2, warmup=0, batch_per_rank=8, timeout_s=240)
    assert sorted(p.name for p in probe.iterdir()) == []
    assert list(tmp_path.glob("torchelastic_*")) == []
    assert result["world_size"] == 2 and result["global_batch"] == 16
    assert result["replica_max_abs_diff"] == 0.0
    assert result["samples_per_s"] > 0 and 0 <= result["comm_share"] <= 1
    tag = f"qmann-test-fail-{time.monotonic_ns()}"
    with pytest.raises(LaunchError, match="exited with code"):
        launch_ddp(
            2,
            size="test",
            steps=2,
            warmup=0,
            batch_per_rank=8,
            timeout_s=240,
            extra_args=["--fail-rank", "1", "--tag", tag],
        )
    assert _tagged(tag) == []
    assert list(tmp_path.glob("torchelastic_*")) == []


@pytest.mark.slow
def test_ddp_launch_is_cleaned_up_on_interrupt() -> None:
    tag = f"qmann-test-hang-{time.monotonic_ns()}"

    def interrupt_when_workers_run() -> None:
        deadline = time.monotonic() + 120
        while len(_tagged(tag)) < 3 and time.monotonic() < deadline:  # torchrun and its 2 workers
            time.sleep(0.2)
        _thread.interrupt_main()

    threading.Thread(target=interrupt_when_workers_run, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        launch_ddp(2, size="test", steps=2, timeout_s=240, extra_args=["--hang", "--tag", tag])
    assert _tagged(tag) == []


def test_trained_weights_kept_on_disk_are_the_ones_training_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The workers of a run read the weights one of them trained: they must be the same bits as
    # training in the process, and a torn file must mean training again, not a failure.
    from models.qmann import fixtures

    def fresh(directory: Path | None) -> dict[str, torch.Tensor]:
        monkeypatch.setattr(fixtures, "WEIGHTS_DIR", directory)
        fixtures._trained_state.cache_clear()
        return fixtures._trained_state("test", "fp32")

    trained_here = fresh(None)
    assert not list(tmp_path.iterdir())
    written = fresh(tmp_path)
    (kept,) = tmp_path.iterdir()
    assert kept.name.startswith("model-test-fp32-")
    read_back = fresh(tmp_path)
    for state in (written, read_back):
        assert state.keys() == trained_here.keys()
        assert all(torch.equal(state[k], trained_here[k]) for k in state)
    kept.write_bytes(b"torn")
    again = fresh(tmp_path)
    assert all(torch.equal(again[k], trained_here[k]) for k in again)
    assert kept.stat().st_size > 100  # written again whole
    fixtures._trained_state.cache_clear()
