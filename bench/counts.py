"""Instruction counts of one call under valgrind's callgrind, in a measuring process of its own.

Time is noisy on a shared machine; the number of instructions a call executes is not. The
counting pass starts one process under callgrind with one thread, a fixed hash seed and a fixed
address layout (``setarch -R``). That process collects the requested items once (pytest's
collection, so the same cases and grid points as the timed run), then forks a child per item:
the child builds the item's inputs, makes warm-up calls, and counts ``calls`` calls with
instrumentation switched on only around them (callgrind's client requests, from a small library
compiled for the pass; torch's collect toggle where no C compiler is at hand). Forking keeps one
import of torch (about 20 s under valgrind) for the whole pass, and every child starts from the
server's state, so an item's count hardly depends on which items ran before it.

Under valgrind the code sees valgrind's CPU, not the host's (its CPUID answer is a model of its
own, without AVX-512), and the environment pins ATen's vector capability, oneDNN's ISA and MKL's
reproducibility branch, so Intel and AMD hosts run the same kernels. What ran is recorded as the
record's ``code_path``; the gate compares counts only with like.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError

# The environment of the counting process: what makes a count repeatable and CPU-independent.
PINNED_ENV: Mapping[str, str] = {
    "PYTHONHASHSEED": "0",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "AVX2",
    # glibc picks memcpy/memset strategies from the cache sizes it reads off the CPU: fixed
    # thresholds make the same choice on every machine. And malloc's own state-dependent choices
    # are switched off: a fixed mmap threshold (by default it moves up as large blocks are
    # freed) and no trimming of the heap's top (else a call can shrink and regrow it, or not,
    # depending on where the top lay when the child was forked): measured, a 180,000-instruction
    # call moved by 4.7 % per call between two passes without these.
    "GLIBC_TUNABLES": "glibc.cpu.x86_non_temporal_threshold=0x300000:glibc.cpu.x86_rep_movsb_threshold=0x800"
    ":glibc.cpu.x86_rep_stosb_threshold=0x800:glibc.malloc.mmap_threshold=0x400000"
    ":glibc.malloc.trim_threshold=0x40000000:glibc.malloc.top_pad=0x1000000",
}
# The variables that name a code path; the record keeps their values as the count ran them.
CODE_PATH_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "GLIBC_TUNABLES")
DEFAULT_WARMUP = 2
DEFAULT_LIMIT_S = 120.0
# A small call is counted many times and the count divided: one-off costs inside the counted
# region (an allocator growing its heap, a dictionary resizing), which depend on the state the
# child inherited, are then a share of many calls. Measured on a 180,000-instruction call:
# ±2 % between passes with one call.
TARGET_INSTRUCTIONS = 2e7
MAX_CALLS = 1000
INSTALL_HINT = (
    "instruction counts need valgrind (callgrind): install it with `apt-get install -y valgrind` "
    "(Debian/Ubuntu; run `apt-get update` first) or your system's package manager"
)


# Callgrind's client requests, for the counting process: starting instrumentation only around the
# counted calls lets imports and warm-up run at valgrind's uninstrumented speed (several times
# faster than instrumented). Compiled once per pass with the system's C compiler and valgrind's
# own header; without them, torch's collect toggle is used and everything runs instrumented.
_CLIENT_SOURCE = """
#include <string.h>
#include <valgrind/callgrind.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
void bench_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; }
void bench_stop(void) { CALLGRIND_DUMP_STATS; CALLGRIND_STOP_INSTRUMENTATION; }
/* The CPU the code under valgrind sees: valgrind answers CPUID with a model of its own choosing. */
const char *bench_cpu(void) {
    static char brand[49];
#if defined(__x86_64__) || defined(__i386__)
    unsigned int r[4];
    for (unsigned int i = 0; i < 3; i++) {
        if (!__get_cpuid(0x80000002u + i, &r[0], &r[1], &r[2], &r[3])) return "";
        memcpy(brand + 16 * i, r, 16);
    }
#endif
    return brand;
}
"""
CLIENT_LIBRARY_ENV = "BENCH_CALLGRIND_CLIENT"


def build_client(directory: Path) -> Path | None:
    """The client-request library, or None where there is no C compiler or valgrind header."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    source, library = directory / "client.c", directory / "libbenchcg.so"
    source.write_text(_CLIENT_SOURCE)
    try:
        done = subprocess.run(
            [compiler, "-shared", "-fPIC", "-O1", "-o", str(library), str(source)],
            capture_output=True,
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return library if done.returncode == 0 and library.exists() else None


class CountsUnavailable(BenchError):
    """valgrind is not installed (or not usable), so nothing can be counted."""


@dataclass(frozen=True)
class CountRequest:
    """What the counting process is asked to do; written to a file it reads."""

    nodeids: tuple[str, ...]
    pytest_args: tuple[str, ...]  # options that make collection select the same items as the run
    calls: int = 0  # 0: as many as make TARGET_INSTRUCTIONS (a probe call decides), at most MAX_CALLS
    warmup: int = DEFAULT_WARMUP
    limit_s: float = DEFAULT_LIMIT_S  # per item, under valgrind
    rootdir: str = ""


@dataclass(frozen=True)
class ItemCount:
    """One item's count, or why it has none."""

    nodeid: str
    instructions_per_call: float | None
    calls: int
    reason: str | None = None
    events: Mapping[str, float] = field(default_factory=dict)  # per call; more than Ir with --cache-sim
    seconds: Mapping[str, float] = field(default_factory=dict)  # under valgrind: setup, warmup, counted

    def as_record(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """The record's ``counts`` entry: the count and the tool and code path it came from."""
        cache = {k: v for k, v in self.events.items() if k != "Ir"} or None
        return {
            "instructions_per_call": self.instructions_per_call,
            "calls": self.calls,
            "reason": self.reason,
            "cache": cache,
            **context,
        }


def counting_env(base: Mapping[str, str], overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The counting process's environment: the pins, except that a code-path variable the user
    set (say ATEN_CPU_CAPABILITY=default) is kept, and recorded; explicit overrides win."""
    env = dict(base)
    for key, value in PINNED_ENV.items():
        if key in CODE_PATH_ENV:
            env.setdefault(key, value)
        else:
            env[key] = value
    env.update(overrides or {})
    return env


def valgrind_version(which: Callable[[str], str | None] | None = None) -> str | None:
    """'3.19.0' where valgrind is installed and runs, else None."""
    exe = (which or shutil.which)("valgrind")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"valgrind-(\S+)", out)
    return match.group(1) if match else None


def require_valgrind(which: Callable[[str], str | None] | None = None) -> str:
    version = valgrind_version(which)
    if version is None:
        raise CountsUnavailable(INSTALL_HINT)
    return version


def parse_callgrind(path: Path) -> dict[str, float]:
    """The totals of one callgrind output file, by event name (Ir, and the cache events)."""
    return _parse_callgrind_text(path.read_text(errors="replace"), str(path))


def _parse_callgrind_text(text: str, where: str) -> dict[str, float]:
    events: list[str] = []
    totals: list[float] = []
    for line in text.splitlines():
        if line.startswith("events:"):
            events = line.split(":", 1)[1].split()
        elif line.startswith(("summary:", "totals:")):
            totals = [float(x) for x in line.split(":", 1)[1].split()]
    if not events or not totals:
        raise BenchError(f"{where} is not a callgrind output file (no events or totals line)")
    # Trailing zero events may be left out of the totals line.
    return {name: totals[i] if i < len(totals) else 0.0 for i, name in enumerate(events)}


def _command(request_path: Path, out_dir: Path, cache_sim: bool, fast_start: bool) -> list[str]:
    # Fast start: nothing is instrumented until the child asks (and collection follows it).
    # Otherwise everything is instrumented and only collection is toggled around the calls.
    start = ["--instr-atstart=no", "--collect-atstart=yes"] if fast_start else ["--collect-atstart=no"]
    valgrind = [
        "valgrind",
        "--tool=callgrind",
        *start,
        # Absolute: processes the call starts (traced, to be detected) begin in other folders.
        f"--callgrind-out-file={out_dir}/cg.%p",
        "--trace-children=yes",
        # Tools that collection runs (pytest-benchmark's git, platform's `file`) need no tracing.
        "--trace-children-skip=*/git,*/file,*/uname",
        f"--cache-sim={'yes' if cache_sim else 'no'}",
        # -P: the working directory (this pass's scratch folder) stays off sys.path.
        sys.executable,
        "-P",
        "-m",
        "bench.counts",
        request_path.name,
    ]
    setarch = shutil.which("setarch")
    # A fixed address layout: hashing and allocation decisions that depend on addresses repeat.
    return [setarch, platform.machine(), "-R", *valgrind] if setarch else valgrind


def count_items(
    nodeids: Sequence[str],
    pytest_args: Sequence[str],
    *,
    calls: int = 0,
    warmup: int = DEFAULT_WARMUP,
    limit_s: float = DEFAULT_LIMIT_S,
    cache_sim: bool = False,
    rootdir: Path | None = None,
    env: Mapping[str, str] | None = None,
    on_item: Callable[[ItemCount], None] | None = None,
) -> tuple[list[ItemCount], dict[str, Any]]:
    """Count every item under callgrind in one measuring process; returns the counts and the
    run-level context (tool, code path, CPU) every record's ``counts`` shares."""
    if calls < 0 or warmup < 0 or not limit_s > 0:
        raise BenchError("counts need calls >= 0 (0: chosen per item), warm-up >= 0 and a positive limit")
    version = require_valgrind()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-counts-") as tmp:
        out_dir = Path(tmp)
        request = CountRequest(
            tuple(nodeids),
            tuple(pytest_args),
            calls,
            warmup,
            limit_s,
            str((rootdir or Path.cwd()).resolve()),
        )
        request_path = out_dir / "request.json"
        request_path.write_text(json.dumps(asdict(request)))
        child_env = counting_env(os.environ, env)
        client = build_client(out_dir)
        if client is not None:
            child_env[CLIENT_LIBRARY_ENV] = f"./{client.name}"
        log = out_dir / "valgrind.log"
        budget = 300 + limit_s * (len(nodeids) + 1)
        with log.open("w") as fh:
            # The scratch folder's name is random: the counting process starts in it, names its
            # files relative to it and then works in the project root, so that it holds no path
            # naming the folder (the content of a path string moves the count: string hashing,
            # allocation sizes, pytest's caches keyed on its working directory).
            proc = subprocess.Popen(
                _command(request_path, out_dir, cache_sim, client is not None),
                cwd=out_dir,
                env=child_env,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
            results = _follow(proc, out_dir, nodeids, budget, on_item)
        context = _context(out_dir, version, child_env)
        # The two ways of starting count slightly differently (0.4 % seen): part of the code path.
        start = "instrumentation around the calls" if client else "collection toggled by torch"
        context["code_path"]["start"] = start
        if proc.returncode not in (0, None) and len(results) < len(nodeids):
            tail = log.read_text(errors="replace")[-2000:]
            raise BenchError(f"the counting process failed (exit {proc.returncode}):\n{tail}")
    context["seconds"] = time.perf_counter() - started
    done = {r.nodeid for r in results}
    for nodeid in nodeids:
        if nodeid not in done:
            results.append(ItemCount(nodeid, None, calls, "not collected by the counting process"))
    return results, context


def _follow(
    proc: subprocess.Popen[bytes],
    out_dir: Path,
    nodeids: Sequence[str],
    budget_s: float,
    on_item: Callable[[ItemCount], None] | None,
) -> list[ItemCount]:
    """Read the counting process's results as it writes them (one file per item)."""
    results: list[ItemCount] = []
    deadline = time.monotonic() + budget_s
    seen: set[str] = set()
    while True:
        finished = proc.poll() is not None
        for path in sorted(out_dir.glob("result-*.json")):
            if path.name in seen:
                continue
            seen.add(path.name)
            result = _item_result(json.loads(path.read_text()), out_dir)
            results.append(result)
            if on_item is not None:
                on_item(result)
        if finished:
            return results
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            return results
        time.sleep(0.2)


def _item_result(raw: Mapping[str, Any], out_dir: Path) -> ItemCount:
    nodeid, calls = str(raw["nodeid"]), int(raw["calls"])
    if raw.get("reason"):
        return ItemCount(nodeid, None, calls, str(raw["reason"]))
    pid = int(raw["pid"])
    if raw.get("spawned"):
        return ItemCount(
            nodeid,
            None,
            calls,
            "the call starts other processes, whose instructions a per-call count cannot include",
        )
    dump = out_dir / str(raw.get("dump") or f"cg.{pid}.1")
    if not dump.exists():
        return ItemCount(nodeid, None, calls, "callgrind wrote no counts for the call")
    per_call = {name: value / calls for name, value in parse_callgrind(dump).items()}
    return ItemCount(nodeid, per_call.get("Ir"), calls, None, per_call, dict(raw.get("seconds") or {}))


def _context(out_dir: Path, version: str, env: Mapping[str, str]) -> dict[str, Any]:
    info_path = out_dir / "context.json"
    info: dict[str, Any] = json.loads(info_path.read_text()) if info_path.exists() else {}
    code_path = {
        "cpu_capability": info.get("cpu_capability"),
        # Under valgrind the code sees valgrind's CPU, not the host's: this, not the host's
        # model, decides which kernels MKL, oneDNN and glibc pick.
        "guest_cpu": info.get("guest_cpu"),
        "torch": info.get("torch"),
        "torch_git": info.get("torch_git"),
        "python": info.get("python"),
        "tool": f"callgrind {version}",
        **{key.lower(): env.get(key) for key in CODE_PATH_ENV},
    }
    return {
        "tool": f"callgrind {version}",
        "code_path": code_path,
        "cpu_model": info.get("cpu_model"),
        "warmup_calls": info.get("warmup"),
    }


# -- inside the counting process (under valgrind) ------------------------------------------------


class _Collector:
    """A pytest plugin keeping the collected items."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.errors: list[str] = []

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.errors.append(f"{report.nodeid}: {report.longreprtext.strip()}"[-1500:])

    def pytest_collection_finish(self, session: Any) -> None:
        self.items = list(session.items)


class _Expired(Exception):
    """The per-item limit passed while the counting child ran."""


def _expire(signum: int, frame: Any) -> None:
    raise _Expired


def _wait(pid: int, limit_s: float) -> str | None:
    """Wait for a child; None when it exited cleanly, else why not.

    A blocking wait under a timer, not a polling loop: how many times a loop ran would depend on
    timing, and the server's heap after it, which the next child inherits, with it.
    """
    previous = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    try:
        _, status = os.waitpid(pid, 0)
    except _Expired:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return f"past the per-item limit of {limit_s:g} s under valgrind (about 50x slower than native)"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if os.WIFSIGNALED(status):
        return f"crashed under valgrind (signal {signal.Signals(os.WTERMSIG(status)).name})"
    code = os.WEXITSTATUS(status)
    return None if code == 0 else f"the counting child exited with status {code}"


@dataclass(frozen=True)
class _Client:
    """How the counting child starts and stops counting, and what CPU it is shown."""

    start: Callable[[], None]
    stop: Callable[[], None]
    guest_cpu: str | None


def _load_client() -> _Client:
    """The compiled client requests where the pass built them, else torch's collect toggle."""
    library = os.environ.get(CLIENT_LIBRARY_ENV)
    if library:
        import ctypes

        lib = ctypes.CDLL(library)
        lib.bench_cpu.restype = ctypes.c_char_p
        cpu = (lib.bench_cpu() or b"").decode(errors="replace").strip() or None
        return _Client(lib.bench_start, lib.bench_stop, cpu)
    import torch

    return _Client(torch._C._valgrind_toggle, torch._C._valgrind_toggle_and_dump_stats, None)


class _Scratch:
    """The pass's scratch folder, held open by descriptor.

    The counting process starts in it (so valgrind names its files there) and then works in the
    project's root, so that no path it holds names the folder: the folder's random name would
    otherwise move the counts (pytest keys caches on its working directory).
    """

    def __init__(self) -> None:
        self.fd = os.open(".", os.O_RDONLY)

    def write(self, name: str, text: str) -> None:
        fd = os.open(f"{name}.part", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=self.fd)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.rename(f"{name}.part", name, src_dir_fd=self.fd, dst_dir_fd=self.fd)  # whole or not at all

    def read(self, name: str) -> str | None:
        try:
            fd = os.open(name, os.O_RDONLY, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        with os.fdopen(fd) as fh:
            return fh.read()

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)

    def pids(self) -> set[int]:
        """The processes that have written callgrind output so far (``cg.<pid>[.<dump>]``)."""
        heads = (name.split(".")[1] for name in os.listdir(self.fd) if name.startswith("cg."))
        return {int(head) for head in heads if head.isdigit()}


def _count_in_child(
    item: Any, session: Any, spec: Any, request: CountRequest, client: _Client, scratch: _Scratch, name: str
) -> None:
    """Runs in the forked child: inputs, warm-up, then the counted calls between client requests."""
    clock = [time.perf_counter()]
    before = scratch.pids()
    caller = session.implementation_caller(spec)
    call, context = caller.timed()
    clock.append(time.perf_counter())
    with context:
        for _ in range(request.warmup):
            call()
        started = sorted(scratch.pids() - before - {os.getpid()})
        if started:
            # The set-up or the warm-up started processes: no count can be per call, so none is
            # made (each process started under valgrind costs seconds: 80 calls that fork one
            # each took 22 s to count for nothing).
            raw = {"nodeid": item.nodeid, "calls": request.calls, "pid": os.getpid(), "spawned": started}
            scratch.write(name, json.dumps(raw))
            return
        gc.collect()
        gc.disable()  # a collection inside the counted calls would depend on what ran before
        clock.append(time.perf_counter())
        calls, dumps = request.calls, 1
        if calls == 0:  # one probe call tells how many calls make the target
            client.start()
            call()
            client.stop()
            probe = _parse_callgrind_text(scratch.read(f"cg.{os.getpid()}.1") or "", "the probe").get("Ir", 0)
            calls = min(MAX_CALLS, max(1, math.ceil(TARGET_INSTRUCTIONS / max(probe, 1.0))))
            dumps = 2 if calls > 1 else 1
        if dumps == 2 or request.calls:
            client.start()
            for _ in range(calls):
                call()
            client.stop()
        clock.append(time.perf_counter())
    phases = dict(
        zip(("setup", "warmup", "counted"), (b - a for a, b in itertools.pairwise(clock)), strict=True)
    )
    raw = {
        "nodeid": item.nodeid,
        "calls": calls,
        "dump": f"cg.{os.getpid()}.{dumps}",
        "pid": os.getpid(),
        "spawned": [],
        "seconds": phases,
    }
    scratch.write(name, json.dumps(raw))


def worker(request_name: str) -> int:
    """The counting process: collect the items, then count each in a forked child."""
    scratch = _Scratch()
    request = CountRequest(**json.loads(scratch.read(request_name) or "{}"))
    client = _load_client()  # a relative path to the library: before leaving the scratch folder
    os.chdir(request.rootdir)
    import pytest
    import torch

    from bench.environment import cpu_model
    from bench.plugin import SPEC_KEY, session_of

    torch.set_num_threads(1)
    collector = _Collector()
    args = [
        *request.pytest_args,
        f"--rootdir={request.rootdir}",
        "--collect-only",
        "-p",
        "no:terminal",
        "-p",
        "no:cacheprovider",
        # The files, not the node ids: pytest stops at the first id it cannot find, and one stale
        # id must not cost the others their counts.
        *dict.fromkeys(nodeid.split("::", 1)[0] for nodeid in request.nodeids),
    ]
    status = pytest.main(args, plugins=[collector])
    items = {item.nodeid: item for item in collector.items}
    if not items and not collector.errors:
        collector.errors.append(f"pytest's collection exited with status {int(status)}, collecting nothing")
    context = {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "torch_git": torch.version.git_version,
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "guest_cpu": client.guest_cpu,
        "warmup": request.warmup,
    }
    scratch.write("context.json", json.dumps(context))
    known = {os.getpid()}
    for index, nodeid in enumerate(request.nodeids):
        name, tmp = f"result-{index:05d}.json", f"child-{index:05d}.json"
        item = items.get(nodeid)
        if item is None:
            why = "; ".join(collector.errors) or "no such item in this selection"
            _write(scratch, name, nodeid, request.calls, f"not collected by the counting process: {why}")
            continue
        spec = item.stash.get(SPEC_KEY, None)
        if spec is None or spec.device != "cpu":
            _write(scratch, name, nodeid, request.calls, "only CPU items can be counted")
            continue
        sys.stdout.flush()
        known.update(scratch.pids())  # whatever ran before this item (collection's own tools)
        pid = os.fork()
        if pid == 0:  # the child: count, write, and leave without pytest's or torch's exit handlers
            try:
                _count_in_child(item, session_of(item.config), spec, request, client, scratch, tmp)
            except BaseException as exc:
                _write(scratch, tmp, nodeid, request.calls, f"{type(exc).__name__}: {exc}"[:500])
            os._exit(0)
        known.add(pid)
        reason = _wait(pid, request.limit_s)
        spawned = sorted(scratch.pids() - known)
        known.update(spawned)
        text = scratch.read(tmp)
        scratch.remove(tmp)
        if reason is None and text is not None:
            raw = json.loads(text)
            raw["spawned"] = spawned
            scratch.write(name, json.dumps(raw))
        else:
            _write(scratch, name, nodeid, request.calls, reason or "the counting child wrote no result")
    return 0


def _write(scratch: _Scratch, name: str, nodeid: str, calls: int, reason: str) -> None:
    scratch.write(name, json.dumps({"nodeid": nodeid, "calls": calls, "reason": reason}))


def merge_into(json_path: Path, counts: Sequence[ItemCount], context: Mapping[str, Any]) -> int:
    """Write each item's count into its record (``extra_info["bench"]["counts"]``) and the pass's
    context at run level (``bench.counts``); returns how many records got a count."""
    doc = json.loads(json_path.read_text())
    by_id = {c.nodeid: c for c in counts}
    shared = {k: context[k] for k in ("tool", "code_path", "cpu_model", "warmup_calls") if k in context}
    merged = 0
    for entry in doc.get("benchmarks", []):
        bench = (entry.get("extra_info") or {}).get("bench")
        count = by_id.get(entry.get("fullname", ""))
        if bench is None:
            continue
        if count is None and bench.get("device", "cpu") != "cpu":
            bench["counts"] = {
                "instructions_per_call": None,
                "reason": "CUDA: callgrind counts CPU instructions, not GPU kernels",
            }
        elif count is not None:
            bench["counts"] = count.as_record(shared)
            merged += count.instructions_per_call is not None
    info = doc.setdefault("bench", {})
    info["counts"] = {
        **shared,
        "seconds": context.get("seconds"),
        "requested": len(counts),
        "counted": merged,
    }
    json_path.write_text(json.dumps(doc, indent=2, default=str))
    return merged


if __name__ == "__main__":
    raise SystemExit(worker(sys.argv[1]))
