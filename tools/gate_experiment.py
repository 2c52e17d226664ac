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
import os
import platform
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
            extra=[
                f"suites/{family}.py",
                *([f"--bench-threads={args.threads}"] if args.threads else []),
                *([f"--bench-trials={args.trials}"] if args.trials is not None else []),
                *(["--bench-no-probes"] if args.no_probes else []),
            ],
        )
    )
    return int(code)


def _catches_planted(regressions: list[Any], args: argparse.Namespace) -> bool:
    return any(f.case == args.case and f.variant == args.variant for f in regressions)


def _stem(label: str) -> str:
    """File-name stem of a condition: "A/A" -> "AA", "+10%" -> "slow10" (`_label` reads it back)."""
    return label.replace("/", "").replace("+", "slow").replace("%", "")


def _print_trial(label: str, what: str, regressions: list[Any]) -> None:
    found = [(f.case, f.variant, f.rule, round(f.change or 0, 3)) for f in regressions]
    print(f"{label:6} {what}: {len(regressions)} regressions {found}", flush=True)


def _header(args: argparse.Namespace, design: str) -> dict[str, Any]:
    return {
        "selection": args.select,
        "planted_in": f"{args.case}/{args.variant}",
        "design": design,
        "trials": args.trials,
        "threads": args.threads,
        "rules": str(args.rules) if args.rules else "defaults",
    }


def _finish(results: dict[str, Any], out: Path, started: float) -> int:
    results["minutes"] = (time.time() - started) / 60
    print(json.dumps(results, indent=2))
    (out / "summary.json").write_text(json.dumps(results, indent=2))
    return 0


def _label(name: str) -> str:
    stem = name.rsplit("-", 1)[0]
    return "A/A" if stem == "AA" else f"+{stem.removeprefix('slow')}%"


def reanalyse(args: argparse.Namespace) -> int:
    """Gate the kept runs of an earlier experiment again, e.g. under other thresholds.

    With `--group K`, runs are gated K at a time (pooled, as `bench gate a.json b.json ...` does)
    against the experiment's own baseline runs (`--baseline-runs`), or, where it kept one, that run
    and its first K - 1 A/A runs. Groups are disjoint, so 20 runs per condition give 20 // K
    trials (fewer A/A ones in the second case).
    """
    from bench.gate import REGRESSION, gate, load_rules
    from bench.results import load_run, pool_runs

    rules = load_rules(args.rules)
    k = args.group
    by_label: dict[str, list[Any]] = {}
    for path in sorted(args.reanalyse.glob("*-[0-9][0-9].json")):
        if not path.stem.startswith("baseline"):  # baseline-01 ... are --baseline-runs, not a condition
            by_label.setdefault(_label(path.stem), []).append(load_run(path))
    aa = by_label.get("A/A", [])
    kept = sorted(args.reanalyse.glob("baseline*.json"))
    if len(kept) > 1:  # an experiment with --baseline-runs: its own baseline runs
        baseline = pool_runs([load_run(p) for p in kept])
    else:  # one baseline run, topped up with the first A/A runs to K runs
        baseline = pool_runs([load_run(kept[0]), *aa[: k - 1]])
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


def interleaved(
    args: argparse.Namespace, rules: Any, conditions: list, run: Any, out: Path, started: float
) -> int:
    """Baseline runs interleaved with the current ones: B C B C B ..., conditions in rotation.

    Each current run is gated against the two baseline runs around it, so both sides meet the
    same state of the machine: on a shared VM the speedup itself drifts over minutes (a neighbour
    contending for memory bandwidth slows a memory-bound reference more than a compute-bound
    variant), which paired rounds inside one run cannot cancel.
    """
    from bench.gate import REGRESSION, gate
    from bench.results import load_run, pool_runs

    counts = {label: [0, 0] for label, _ in conditions}
    before = load_run(run("B-000", 0.0))
    for i in range(args.runs * len(conditions)):
        label, plant = conditions[i % len(conditions)]
        trial = i // len(conditions)
        current = load_run(run(f"{_stem(label)}-{trial:02d}", plant))
        after = load_run(run(f"B-{i + 1:03d}", 0.0))
        regressions = gate(current, pool_runs([before, after]), rules).with_status(REGRESSION)
        counts[label][0] += bool(regressions)
        counts[label][1] += _catches_planted(regressions, args)
        _print_trial(label, f"trial {trial + 1:2}/{args.runs}", regressions)
        before = after
    results = _header(args, "interleaved: each run gated against the baseline runs just before and after it")
    results["trials"] = {
        label: {"runs": args.runs, "runs_with_any_regression": f, "runs_catching_the_planted_variant": c}
        for label, (f, c) in counts.items()
    }
    return _finish(results, out, started)


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
    parser.add_argument("--group", type=int, default=1, help="runs pooled per gate")
    parser.add_argument("--baseline-runs", type=int, default=1, help="runs pooled into the baseline")
    parser.add_argument(
        "--trials", type=int, help="trials (worker processes) per item (default: the profile's)"
    )
    parser.add_argument("--no-probes", action="store_true", help="skip the probe pass, as tools/self_gate.sh")
    parser.add_argument(
        "--interleave", action="store_true", help="fresh baseline runs between the runs under test"
    )
    parser.add_argument(
        "--fixed-layout", action="store_true", help="runs under `setarch -R` with PYTHONHASHSEED=0"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--plant", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.reanalyse:
        return reanalyse(args)

    from bench.gate import REGRESSION, gate, load_rules
    from bench.results import load_run, pool_runs

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
            *(["--trials", str(args.trials)] if args.trials is not None else []),
            *(["--no-probes"] if args.no_probes else []),
        ]
        env = None
        if args.fixed_layout:
            # Address-space randomisation off and a fixed hash seed: every run lays out memory alike.
            cmd = ["setarch", platform.machine(), "-R", *cmd]
            env = {**os.environ, "PYTHONHASHSEED": "0"}
        subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
        return path

    started = time.time()
    conditions = [("A/A", 0.0), *[(f"+{s:.0%}", s) for s in args.slowdowns]]
    if args.interleave:
        return interleaved(args, rules, conditions, run, out, started)
    names = ["baseline"] + [f"baseline-{i:02d}" for i in range(1, args.baseline_runs)]
    baseline = pool_runs([load_run(run(name, 0.0)) for name in names])
    results = _header(args, "against one baseline recorded first")
    results.update(runs_per_gate=args.group, baseline_runs=args.baseline_runs, trials={})
    for label, plant in conditions:
        flagged, planted_caught, gate_seconds = 0, 0, []
        for i in range(args.runs):
            group = range(i * args.group, (i + 1) * args.group)
            current = pool_runs([load_run(run(f"{_stem(label)}-{j:02d}", plant)) for j in group])
            t0 = time.perf_counter()
            result = gate(current, baseline, rules)
            gate_seconds.append(time.perf_counter() - t0)
            regressions = result.with_status(REGRESSION)
            flagged += bool(regressions)
            planted_caught += _catches_planted(regressions, args)
            _print_trial(label, f"run {i + 1:2}/{args.runs}", regressions)
        results["trials"][label] = {
            "runs": args.runs,
            "runs_with_any_regression": flagged,
            "runs_catching_the_planted_variant": planted_caught,
            "gate_seconds_max": max(gate_seconds),
        }
    return _finish(results, out, started)


if __name__ == "__main__":
    raise SystemExit(main())
