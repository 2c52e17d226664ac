"""Launching DDP training with torchrun as one call: its own process group, a timeout, cleanup.

torchrun starts each worker in a session of its own, so killing torchrun's process group does
not reach them. Cleanup therefore (1) marks every process of a launch with an environment
variable, (2) on timeout, error or interrupt sends SIGTERM to torchrun's group (torchrun then
stops its workers) and to every marked process, (3) after a grace period SIGKILLs whatever is
left. The workers also exit by themselves when their launcher disappears.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

REPO_ROOT = Path(__file__).resolve().parents[2]
LAUNCH_ENV = "QMANN_LAUNCH_ID"


class LaunchError(RuntimeError):
    """The launched processes failed (non-zero exit) or ran past their time limit."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launched_processes(launch_id: str) -> list[psutil.Process]:
    """Every live process carrying this launch's mark in its environment."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(LAUNCH_ENV) == launch_id:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def terminate(proc: subprocess.Popen[bytes], launch_id: str, grace_s: float = 5.0) -> None:
    """Stop the launched process group and every marked process: SIGTERM, wait, then SIGKILL."""
    targets: dict[int, psutil.Process] = {}
    try:
        targets.update((p.pid, p) for p in psutil.Process(proc.pid).children(recursive=True))
    except psutil.NoSuchProcess:
        pass
    targets.update((p.pid, p) for p in launched_processes(launch_id))
    targets.pop(os.getpid(), None)
    targets.pop(proc.pid, None)  # our own child: reaped by proc.wait, not by psutil
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        for target in targets.values():
            try:
                target.send_signal(sig)
            except psutil.NoSuchProcess:
                continue
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue
        _, alive = psutil.wait_procs(list(targets.values()), timeout=grace_s)
        if not alive:
            break
    proc.wait()


def run_process_group(
    cmd: Sequence[str],
    timeout_s: float,
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    grace_s: float = 5.0,
) -> int:
    """Run ``cmd`` in a new session with its output in ``log_path``; its exit code.

    On timeout (LaunchError), an exception or KeyboardInterrupt (re-raised) every process of
    the launch is stopped before this returns.
    """
    launch_id = uuid.uuid4().hex
    full_env = {**(os.environ if env is None else env), LAUNCH_ENV: launch_id}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            list(cmd), cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        terminate(proc, launch_id, grace_s)
        raise LaunchError(
            f"{cmd[0]} ... ran past {timeout_s:g} s and was stopped; log: {_tail(log_path)}"
        ) from None
    except BaseException:
        terminate(proc, launch_id, grace_s)
        raise
    leftovers = launched_processes(launch_id)
    if leftovers:  # a worker outlived torchrun: never leave it behind
        terminate(proc, launch_id, grace_s)
    return code


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return text[-chars:]


def launch_ddp(
    nproc: int,
    size: str = "default",
    steps: int = 20,
    warmup: int = 3,
    batch_per_rank: int = 32,
    timeout_s: float = 300.0,
    threads_per_proc: int = 1,
    extra_args: Sequence[str] = (),
) -> dict[str, Any]:
    """Train with ``nproc`` DDP processes via torchrun on this machine; the workers' JSON.

    Each process gets ``threads_per_proc`` intra-op threads (1 by default, so N processes use
    N cores and the comparison is between processes, not threads).
    """
    for name, value in (
        ("nproc", nproc),
        ("steps", steps),
        ("batch_per_rank", batch_per_rank),
        ("threads_per_proc", threads_per_proc),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    with tempfile.TemporaryDirectory(prefix="qmann-ddp-") as tmp:
        out, log = Path(tmp) / "result.json", Path(tmp) / "torchrun.log"
        cmd = [
            sys.executable, "-m", "torch.distributed.run",
            "--nnodes=1", f"--nproc-per-node={nproc}", "--max-restarts=0",
            "--master-addr=127.0.0.1", f"--master-port={free_port()}",
            # torchrun's own logs go here, deleted with the folder (by default it leaves a
            # torchelastic_* folder in the system's temporary folder on every launch).
            f"--log-dir={Path(tmp) / 'torchelastic'}",
            "-m", "models.qmann.ddp_train",
            "--size", size, "--steps", str(steps), "--warmup", str(warmup),
            "--batch-per-rank", str(batch_per_rank), "--out", str(out), *extra_args,
        ]  # fmt: skip
        env = dict(os.environ)
        env["OMP_NUM_THREADS"] = str(threads_per_proc)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        code = run_process_group(cmd, timeout_s, log, env=env, cwd=REPO_ROOT)
        if code != 0:
            raise LaunchError(f"torchrun with {nproc} processes exited with code {code}; log: {_tail(log)}")
        if not out.exists():
            raise LaunchError(f"torchrun exited cleanly but wrote no result; log: {_tail(log)}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result
