"""Are the trial intervals honest? Consecutive runs of a case whose variants are the reference's code.

Writes a small project whose case has variants identical to its reference (the same `x @ x`, the
same Python loop), runs it ``--runs`` times in a row with `bench run` (each run its own process,
with its trials in worker processes), and counts, per variant, the runs whose 95 % speedup
interval contains 1. A calibrated interval contains 1 in about 19 of 20 runs; the issue's bar is
at least 19 of 20 for each variant.

    python tools/aa_trials.py [--runs 20] [--trials N] [--threads N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = """
import torch

from bench import Case, Grid, register


def matmul_inputs(params, device):
    return {"x": torch.randn(params["n"], params["n"], device=device)}


def matmul(x):
    return x @ x


def python_inputs(params, device):
    return {"n": params["n"]}


def python_loop(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


for name, setup, fn, sizes in (
    ("identical.matmul", matmul_inputs, matmul, [64, 256]),
    ("identical.python", python_inputs, python_loop, [200]),
):
    register(
        Case(
            name=name,
            setup=setup,
            reference=fn,
            variants={"copy_a": fn, "copy_b": fn},
            mode="forward",
            grids={"quick": Grid(n=sizes), "full": Grid(n=sizes)},
        )
    )
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--trials", type=int, help="trials per item (default: the quick profile's)")
    parser.add_argument("--threads", type=int, help="torch threads in the workers (default: the harness's)")
    parser.add_argument("--out", type=Path, help="keep the runs' JSON here (default: a temporary folder)")
    args = parser.parse_args()
    project = Path(tempfile.mkdtemp(prefix="bench-aa-"))
    (project / "suites").mkdir()
    (project / "suites" / "identical.py").write_text(SUITE)
    (project / "pyproject.toml").write_text('[tool.bench]\nsuites = ["suites"]\n')
    out = args.out.resolve() if args.out else project / "runs"
    out.mkdir(parents=True, exist_ok=True)
    contains: dict[str, list[bool]] = {}
    widths: list[float] = []
    started = time.perf_counter()
    for run in range(1, args.runs + 1):
        target = out / f"run-{run:02d}.json"
        command = [
            sys.executable,
            "-m",
            "bench.cli",
            "run",
            "--device",
            "cpu",
            "--no-probes",
            "--json",
            str(target),
        ]
        command += ["--trials", str(args.trials)] if args.trials else []
        command += ["--threads", str(args.threads)] if args.threads else []
        proc = subprocess.run(command, cwd=project, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stdout + proc.stderr, file=sys.stderr)
            print(f"run {run} failed (exit {proc.returncode})", file=sys.stderr)
            return 2
        doc = json.loads(target.read_text())
        line = []
        for entry in doc["benchmarks"]:
            bench = entry["extra_info"]["bench"]
            found = bench.get("speedup") or (bench.get("aa") if bench["role"] == "reference" else None)
            if not found:
                continue
            label = entry["name"] if bench["role"] != "reference" else entry["name"] + " (A/A)"
            inside = found["low"] <= 1.0 <= found["high"]
            contains.setdefault(label, []).append(inside)
            widths.append((found["high"] - found["low"]) / 2 / found["estimate"])
            line.append(f"{'.' if inside else 'x'}")
        print(f"run {run:2d}: {''.join(line)}  ({time.perf_counter() - started:.0f} s)", flush=True)
    print()
    worst = min(sum(v) for v in contains.values())
    for label, values in sorted(contains.items()):
        print(f"{label:45s} interval contains 1 in {sum(values):2d} of {len(values)}")
    widths.sort()
    print(f"median interval half-width {100 * widths[len(widths) // 2]:.2f} % of the estimate")
    print(
        f"worst: {worst} of {args.runs} (bar: at least {args.runs - args.runs // 20} of {args.runs}); "
        f"runs in {out}"
    )
    return 0 if worst >= args.runs - args.runs // 20 else 1


if __name__ == "__main__":
    raise SystemExit(main())
