"""How the gate's instruction-count rule behaves: A/A false alarms and planted regressions.

Starts from a results file with counts (by default this machine kind's committed self-gate
baseline, which `tools/self_gate.sh --save` writes) and:

1. **A/A**: counts every CPU item of that file again in ``--runs`` independent counting passes
   (each its own process under callgrind) and gates each pass against the file.
2. **Planted regressions**: wraps one implementation so that every call also does extra,
   deterministic work (a Python loop of integer arithmetic: real instructions, not a busy-wait;
   the output is unchanged), sized once to each ``--fractions`` share of that implementation's
   own instructions, and gates ``--runs`` independent passes of it.

    python tools/count_experiment.py [--runs 20] [--parallel 2] [--target NODEID] [--fractions 0.03 0.01]

Counts do not depend on the machine's load, so passes may run side by side (``--parallel``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.counts import ItemCount, count_items, merge_into  # noqa: E402
from bench.gate import REGRESSION, gate, load_rules  # noqa: E402
from bench.results import load_run, machine_kind  # noqa: E402
from bench.runner import pytest_args  # noqa: E402

DEFAULT_TARGET = "suites/paco2.py::paco2.mahalanobis[batch8-parts4-dim64-cpu-whitened]"
# The counting process's collection exactly as `bench run --counts --profile quick` gives it: other
# options would change what the counting process did before forking, and so its heap.
COLLECTION = pytest_args(profile="quick", device="cpu", collect_only=True)

# A pytest plugin, loaded into the counting process, that plants the extra work in one item.
PLANT = '''
"""Planted by tools/count_experiment.py: extra deterministic work in one implementation."""
import dataclasses
import os

from bench.plugin import SPEC_KEY

TARGET = os.environ["BENCH_PLANT_ITEM"]
ITERATIONS = int(os.environ["BENCH_PLANT_ITERATIONS"])


def extra_work(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        if item.nodeid != TARGET:
            continue
        spec = item.stash[SPEC_KEY]
        fn = spec.impl.fn

        def planted(*args, **kwargs):
            extra_work(ITERATIONS)
            return fn(*args, **kwargs)

        item.stash[SPEC_KEY] = dataclasses.replace(spec, impl=dataclasses.replace(spec.impl, fn=planted))
'''


def _baseline_path() -> Path:
    from bench.environment import describe

    kind = machine_kind(describe(("cpu",), measure=False))
    return ROOT / "reports" / "baselines" / f"{kind}-quick.json"


def _cpu_ids(path: Path) -> list[str]:
    doc = json.loads(path.read_text())
    return [
        e["fullname"]
        for e in doc["benchmarks"]
        if ((e.get("extra_info") or {}).get("bench") or {}).get("device") == "cpu"
    ]


def _count(
    ids: Sequence[str], plant: tuple[str, int] | None, plant_dir: Path
) -> tuple[list[ItemCount], dict]:
    env: dict[str, str] = {}
    args = list(COLLECTION)
    if plant is not None:
        env = {
            "PYTHONPATH": str(plant_dir),
            "BENCH_PLANT_ITEM": plant[0],
            "BENCH_PLANT_ITERATIONS": str(plant[1]),
        }
        args += ["-p", "bench_plant"]
    return count_items(ids, args, rootdir=ROOT, env=env, limit_s=300)


def _as_run(template: Path, counts: list[ItemCount], context: dict, target: Path) -> Path:
    """The template's records with these counts in place of theirs (the others keep theirs)."""
    shutil.copyfile(template, target)
    merge_into(target, counts, context)
    return target


def _gate(current: Path, baseline: Path, rules: Any) -> tuple[list[Any], list[Any]]:
    result = gate(load_run(current), load_run(baseline), rules)
    counted = [f for f in result.findings if f.rule == "instructions" and f.change is not None]
    return [f for f in result.findings if f.status == REGRESSION], counted


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="results file with counts (default: the committed one)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=2, help="counting passes at once")
    parser.add_argument("--target", default=DEFAULT_TARGET, help="the node id to plant the regression in")
    parser.add_argument("--fractions", type=float, nargs="*", default=[0.03, 0.01])
    parser.add_argument("--rules", type=Path, default=ROOT / "reports" / "baselines" / "ci-rules.toml")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "count-experiment")
    parser.add_argument("--skip-aa", action="store_true", help="only the planted regressions")
    args = parser.parse_args(argv)
    baseline = args.baseline or _baseline_path()
    if not baseline.exists():
        print(f"error: no baseline {baseline}; run tools/self_gate.sh --save first", file=sys.stderr)
        return 2
    rules = load_rules(args.rules)
    args.out.mkdir(parents=True, exist_ok=True)
    plant_dir = args.out / "plant"  # a fixed path: its text is in the counting process's sys.path
    plant_dir.mkdir(exist_ok=True)
    (plant_dir / "bench_plant.py").write_text(PLANT)
    ids = _cpu_ids(baseline)
    summary: dict[str, Any] = {"baseline": str(baseline), "items": len(ids), "runs": args.runs}
    started = time.perf_counter()

    def aa(i: int) -> dict[str, Any]:
        counts, context = _count(ids, None, plant_dir)
        run = _as_run(baseline, counts, context, args.out / f"aa-{i:02d}.json")
        regressions, counted = _gate(run, baseline, rules)
        changes = [abs(f.change) for f in counted]
        print(
            f"A/A {i:2d}: {len(regressions)} regressions, {len(counted)} counts compared, "
            f"largest |change| {max(changes, default=0):.4%} ({context['seconds']:.0f} s)",
            flush=True,
        )
        return {
            "regressions": len(regressions),
            "compared": len(counted),
            "max_abs_change": max(changes, default=0),
        }

    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        if not args.skip_aa:
            summary["aa"] = list(pool.map(aa, range(1, args.runs + 1)))

        # Size the plant: the target's own count, and the cost of one loop iteration.
        reference_ids = [args.target]
        (plain,), _ = _count(reference_ids, ("none", 0), plant_dir)
        (probe,), _ = _count(reference_ids, (args.target, 20_000), plant_dir)
        if plain.instructions_per_call is None or probe.instructions_per_call is None:
            print(f"error: the target could not be counted: {plain.reason or probe.reason}", file=sys.stderr)
            return 2
        per_iteration = (probe.instructions_per_call - plain.instructions_per_call) / 20_000
        summary["target"] = {
            "nodeid": args.target,
            "instructions_per_call": plain.instructions_per_call,
            "per_iteration": per_iteration,
        }
        for fraction in args.fractions:
            iterations = round(fraction * plain.instructions_per_call / per_iteration)

            def planted(i: int, fraction: float = fraction, iterations: int = iterations) -> dict[str, Any]:
                counts, context = _count(reference_ids, (args.target, iterations), plant_dir)
                run = _as_run(baseline, counts, context, args.out / f"plant{fraction:g}-{i:02d}.json")
                regressions, counted = _gate(run, baseline, rules)
                mine = next((f for f in counted if f.case in args.target and f.variant in args.target), None)
                caught = any(f.case in args.target and f.variant in args.target for f in regressions)
                change = mine.change if mine is not None else None
                print(f"plant {fraction:.0%} {i:2d}: caught={caught} change={change}", flush=True)
                return {"caught": caught, "change": change}

            results = list(pool.map(planted, range(1, args.runs + 1)))
            summary[f"plant_{fraction:g}"] = {"iterations": iterations, "results": results}
    summary["seconds"] = time.perf_counter() - started
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print()
    if "aa" in summary:
        false_alarms = sum(r["regressions"] > 0 for r in summary["aa"])
        worst = max(r["max_abs_change"] for r in summary["aa"])
        print(f"A/A: {false_alarms} of {args.runs} gates raised a regression; largest |change| {worst:.4%}")
    for fraction in args.fractions:
        block = summary[f"plant_{fraction:g}"]
        caught = sum(r["caught"] for r in block["results"])
        changes = [r["change"] for r in block["results"] if r["change"] is not None]
        median = statistics.median(changes) if changes else float("nan")
        print(
            f"planted {fraction:.0%} ({block['iterations']} loop iterations per call): caught in {caught} of "
            f"{args.runs}; measured change median {median:+.3%}"
        )
    print(f"({summary['seconds']:.0f} s; runs and summary in {args.out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
