"""Commands of the tests' runs, forked from a process that has imported torch, pytest and bench.

A fresh interpreter spends about 3 s of CPU importing torch, pytest and the harness before a
command does anything; the tests start some 70 of them (`bench run`, `pytest --benchmark-only`,
`bench list` on small projects). Here one server process (multiprocessing's forkserver, with
those modules preloaded) forks a child per command, and the child makes itself what a fresh
``python ARGS`` would be: the command's working directory, environment, ``sys.argv`` and
``sys.path`` (the interpreter's own path, ``PYTHONPATH`` and the script's folder, nothing of the
tests'), its stdout and stderr on files, its exit status as the process's. What it cannot undo
is what the preloaded modules read at their import (torch's thread settings from the
environment): a command whose point is a fresh interpreter (what importing the plugin imports)
is run as one, with ``fresh=True`` in ``run_in``.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

PRELOAD = ["torch", "pytest", "pytest_benchmark.plugin", "bench.plugin", "bench.session", "bench.cli"]


@functools.cache
def _context() -> multiprocessing.context.ForkServerContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


@functools.cache
def _base_path() -> tuple[str, ...]:
    """A fresh interpreter's sys.path after its first entry, without PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = "import json, sys; print(json.dumps(sys.path[1:]))"
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return tuple(json.loads(out.stdout))


def _child(
    args: Sequence[str], cwd: str, env: Mapping[str, str], path: Sequence[str], out: str, err: str
) -> None:
    for number, name in ((1, out), (2, err)):
        fd = os.open(name, os.O_WRONLY | os.O_TRUNC)
        os.dup2(fd, number)
        os.close(fd)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    # Nothing of the tests' own imports: a project's `suites` or `tests` is its own.
    for name in [m for m in sys.modules if m.split(".")[0] in ("tests", "suites", "models", "conftest")]:
        del sys.modules[name]
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    code = 0
    try:
        if args[0] == "-m":
            sys.path[:] = [cwd, *extra, *path]
            sys.argv = [args[1], *args[2:]]
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        elif args[0] == "-c":
            sys.path[:] = ["", *extra, *path]
            sys.argv = ["-c", *args[2:]]
            exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__"})
        else:
            sys.path[:] = [str(Path(args[0]).resolve().parent), *extra, *path]
            sys.argv = list(args)
            runpy.run_path(args[0], run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def launch(
    args: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in ``cwd`` with ``env`` (``-m MODULE ...``, ``-c CODE ...`` or ``SCRIPT ...``),
    as subprocess.run with capture_output and text would give it."""
    with tempfile.TemporaryDirectory(prefix="launch-") as tmp:
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        out.touch()
        err.touch()
        ctx = _context()
        process = ctx.Process(
            target=_child, args=(list(args), str(cwd), dict(env), _base_path(), str(out), str(err))
        )
        process.start()
        process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join()
            raise subprocess.TimeoutExpired(
                [sys.executable, *args], timeout, out.read_text(), err.read_text()
            )
        code = process.exitcode if process.exitcode is not None else -9
        return subprocess.CompletedProcess([sys.executable, *args], code, out.read_text(), err.read_text())
