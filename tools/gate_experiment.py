"""How often the gate raises false alarms and how often it catches planted slowdowns.

Runs a selection of the quick profile once as the baseline, then N times unchanged (an A/A test)
and N times with one optimized variant slowed down by a planted fraction, gating every run against
the baseline with the default rules. Each run is a separate process.

    python tools/gate_experiment.py [-k EXPR] [--case C --variant V] [--runs 20] [--slowdowns 0.10 0.25]

The slowdown is planted by wrapping the variant's function: after each call it busy-waits for the
given fraction of that call's own duration, so the variant does the same work and takes longer.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_SELECTION = "paco2.mahalanobis or paco2.soc_distance or paco2.covariance"


def _slowed(fn: Any, fraction: float) -> Any:
    def run(**kwargs: Any) -> Any:
        start = time.perf_counter()
        out = fn(**kwargs)
        deadline = time.perf_counter() + fraction * (time.perf_counter() - start)
        while time.perf_counter() < deadline:
            pass
        return out

    return run


def child(args: argparse.Namespace) -> int:
    """One harness run in this process, with the planted slowdown if asked."""
    import pytest

    from bench.case import Variant
    from bench.registry import REGISTRY
    from bench.runner import pytest_args

    if args.plant:
        importlib.import_module(f"suites.{args.case.split('.')[0]}")
        case = REGISTRY.get(args.case)
        variant = case.variants[args.variant]
        assert isinstance(variant, Variant)
        slowed = dataclasses.replace(variant, fn=_slowed(variant.fn, args.plant))
        patched = dataclasses.replace(case, variants={**case.variants, args.variant: slowed})
        REGISTRY.add(patched, REGISTRY._modules[case.name])
    # Only the planted family's suite is collected: the others would add import time to every run.
    family = args.case.split(".")[0]
    code = pytest.main(
        pytest_args(
            profile="quick",
            device="cpu",
            select=args.select,
            json_path=args.json,
            extra=[f"suites/{family}.py", *([f"--bench-threads={args.threads}"] if args.threads else [])],
        )
    )
    return int(code)


def _catches_planted(regressions: list[Any], args: argparse.Namespace) -> bool:
    return any(f.case == args.case and f.variant == args.variant for f in regressions)


def _label(name: str) -> str:
    stem = name.rsplit("-", 1)[0]
    return "A/A" if stem == "AA" else f"+{stem.removeprefix('slow')}%"


def reanalyse(args: argparse.Namespace) -> int:
    """Gate the kept runs of an earlier experiment again, e.g. under other thresholds.

    With `--group K`, runs are gated K at a time (pooled, as `bench gate a.json b.json ...` does)
    against a baseline of K runs: the experiment's baseline and its first K - 1 A/A runs. Groups
    are disjoint, so 20 runs per condition give 20 // K trials (fewer A/A ones).
    """
    from bench.gate import REGRESSION, gate, load_rules
    from bench.results import load_run, pool_runs

    rules = load_rules(args.rules)
    k = args.group
    by_label: dict[str, list[Any]] = {}
    for path in sorted(args.reanalyse.glob("*-[0-9][0-9].json")):
        by_label.setdefault(_label(path.stem), []).append(load_run(path))
    aa = by_label.get("A/A", [])
    baseline = pool_runs([load_run(args.reanalyse / "baseline.json"), *aa[: k - 1]])
    by_label["A/A"] = aa[k - 1 :]
    for label, runs in by_label.items():
        groups = [runs[i : i + k] for i in range(0, len(runs) - k + 1, k)]
        flagged = caught = 0
        for group in groups:
            regressions = gate(pool_runs(group), baseline, rules).with_status(REGRESSION)
            flagged += bool(regressions)
            caught += _catches_planted(regressions, args)
        print(
            f"{label:6} {len(groups):2} trials of {k} run(s): {flagged:2} with any regression, "
            f"{caught:2} catching {args.case}/{args.variant}"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", dest="select", default=DEFAULT_SELECTION)
    parser.add_argument("--case", default="paco2.mahalanobis")
    parser.add_argument("--variant", default="whitened")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--slowdowns", type=float, nargs="*", default=[0.10, 0.25])
    parser.add_argument(
        "--threads", type=int, help="torch intra-op threads in every run (bench run --threads)"
    )
    parser.add_argument("--out", type=Path, default=None, help="keep the JSON files here")
    parser.add_argument("--rules", type=Path, help="TOML rules file for the gate (default: its defaults)")
    parser.add_argument(
        "--reanalyse",
        type=Path,
        metavar="DIR",
        help="no new runs: gate the JSON files an earlier experiment kept in DIR (with --rules)",
    )
    parser.add_argument("--group", type=int, default=1, help="with --reanalyse: runs per gate (pooled)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--plant", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.reanalyse:
        return reanalyse(args)

    from bench.gate import REGRESSION, gate, load_rules
    from bench.results import load_run

    rules = load_rules(args.rules)

    out = args.out or Path(tempfile.mkdtemp(prefix="gate-experiment-"))
    out.mkdir(parents=True, exist_ok=True)

    def run(name: str, plant: float) -> Path:
        path = out / f"{name}.json"
        cmd = [
            sys.executable,
            __file__,
            "--child",
            "-k",
            args.select,
            "--case",
            args.case,
            "--variant",
            args.variant,
            "--plant",
            str(plant),
            "--json",
            str(path),
            *(["--threads", str(args.threads)] if args.threads else []),
        ]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        return path

    started = time.time()
    baseline = load_run(run("baseline", 0.0))
    results: dict[str, Any] = {
        "selection": args.select,
        "planted_in": f"{args.case}/{args.variant}",
        "trials": {},
    }
    for label, plant in [("A/A", 0.0), *[(f"+{s:.0%}", s) for s in args.slowdowns]]:
        flagged, planted_caught, gate_seconds = 0, 0, []
        for i in range(args.runs):
            current = load_run(
                run(f"{label.replace('/', '').replace('+', 'slow').replace('%', '')}-{i:02d}", plant)
            )
            t0 = time.perf_counter()
            result = gate(current, baseline, rules)
            gate_seconds.append(time.perf_counter() - t0)
            regressions = result.with_status(REGRESSION)
            flagged += bool(regressions)
            planted_caught += _catches_planted(regressions, args)
            print(
                f"{label:6} run {i + 1:2}/{args.runs}: {len(regressions)} regressions "
                f"{[(f.case, f.variant, f.rule, round(f.change or 0, 3)) for f in regressions]}",
                flush=True,
            )
        results["trials"][label] = {
            "runs": args.runs,
            "runs_with_any_regression": flagged,
            "runs_catching_the_planted_variant": planted_caught,
            "gate_seconds_max": max(gate_seconds),
        }
    results["minutes"] = (time.time() - started) / 60
    print(json.dumps(results, indent=2))
    (out / "summary.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
