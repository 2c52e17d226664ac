"""The `bench` command: argument parsing, printing and exit codes (the only place that does either)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.case import PROFILES
from bench.counts import DEFAULT_LIMIT_S, ItemCount, count_items, merge_into, require_valgrind
from bench.errors import BenchError, ResultsError, SelectionError
from bench.options import DEVICE_CHOICES, RunOptions, add_cli_arguments
from bench.results import Run, load_runs, machine_kind, pool_runs

if TYPE_CHECKING:
    from bench.claims import ClaimResult
    from bench.compare import Comparison
    from bench.runner import Outcome

# The commands import what they need (torch, pytest, matplotlib, scipy) when they run: `bench gate`
# and `bench init` should not pay seconds of imports for `bench run`'s machinery.

OK, FAILURES, UNUSABLE, INTERRUPTED = 0, 1, 2, 130


def _console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, width=200)
    return console


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench",
        description="Check, time and compare reference and optimized implementations of ML models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def selection(p: argparse.ArgumentParser, command: str) -> None:
        p.add_argument("-k", dest="select", metavar="EXPR", help="pytest -k expression over item names")
        add_cli_arguments(p, command)  # --profile, --device, ...: declared once in bench.options
        p.add_argument(
            "-m",
            dest="markers",
            metavar="EXPR",
            help="pytest -m expression over markers (gpu, quantum, slow); default: 'not slow' for the "
            "quick profile, every case for full; -m '' takes every case",
        )

    p_init = sub.add_parser("init", help="write a commented suite file for your function, and declare it")
    p_init.add_argument(
        "path",
        nargs="?",
        type=Path,
        metavar="PATH",
        help="the suite file to write, or a folder for it (default: suites/<module>.py)",
    )
    p_init.add_argument(
        "--function",
        metavar="MODULE:CALLABLE",
        help="the function to benchmark, e.g. mymodel:forward (default: a small example to edit)",
    )
    p_init.add_argument("--force", action="store_true", help="overwrite the suite file if it exists")

    p_list = sub.add_parser("list", help="list the benchmark items a selection gives")
    selection(p_list, "list")

    p_run = sub.add_parser("run", help="check, probe and time the selected items; write JSON and a report")
    selection(p_run, "run")
    p_run.add_argument("--json", type=Path, help="results file (default: results/run-<time>.json)")
    p_run.add_argument("--report", type=Path, help="markdown report (default: the JSON path with .md)")
    p_run.add_argument(
        "--counts",
        action="store_true",
        help="also count each CPU item's instructions per call under valgrind's callgrind (deterministic; "
        "the gate's primary signal on CPU)",
    )
    p_run.add_argument(
        "--counts-cache",
        action="store_true",
        help="with --counts: callgrind's cache simulation too (cache misses per call; slower)",
    )
    p_run.add_argument(
        "--counts-limit",
        type=float,
        default=DEFAULT_LIMIT_S,
        metavar="SECONDS",
        help="with --counts: stop counting an item after this long under valgrind "
        f"(default {DEFAULT_LIMIT_S:g})",
    )

    p_report = sub.add_parser("report", help="write the markdown report of one or more results files")
    p_report.add_argument("results", nargs="+", type=Path, metavar="RESULTS.json")
    p_report.add_argument("-o", "--output", type=Path, help="write here instead of standard output")

    p_prof = sub.add_parser("profile", help="record torch.profiler traces of a case for TensorBoard/Perfetto")
    p_prof.add_argument("case", metavar="CASE", help="case name, e.g. paco2.pac_loss")
    p_prof.add_argument("--variant", help="only this implementation (default: reference and every variant)")
    p_prof.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    p_prof.add_argument("--profile", choices=PROFILES, default="quick", help="grid whose first point is used")
    p_prof.add_argument("--out", type=Path, default=Path("reports/traces"), help="default: reports/traces")

    p_hist = sub.add_parser("history", help="trend table and plots of every run in a folder")
    p_hist.add_argument("folder", type=Path, metavar="RESULTS_DIR")
    p_hist.add_argument("-o", "--output", type=Path, help="default: RESULTS_DIR/history.md")

    p_gate = sub.add_parser("gate", help="compare a run with a baseline; exit 1 on a regression")
    p_gate.add_argument(
        "current",
        type=Path,
        nargs="+",
        metavar="CURRENT.json",
        help="one run, or several runs of the same selection (each run's speedup then counts once)",
    )
    p_gate.add_argument(
        "--baseline",
        type=Path,
        required=True,
        metavar="BASELINE",
        help="a results file, or a folder of saved baselines (the one for this machine kind and profile)",
    )
    p_gate.add_argument("--rules", type=Path, metavar="FILE", help="TOML thresholds per case group")
    p_gate.add_argument("--json", type=Path, metavar="PATH", help="also write the verdicts as JSON")
    p_gate.add_argument(
        "--fail-on-improvement",
        action="store_true",
        help="exit 1 on improvements too (the baseline is stale)",
    )

    p_base = sub.add_parser("baseline", help="manage committed baselines")
    base_sub = p_base.add_subparsers(dest="baseline_command", required=True, metavar="ACTION")
    p_save = base_sub.add_parser("save", help="store a run as the baseline of its machine kind")
    p_save.add_argument(
        "results",
        type=Path,
        nargs="+",
        metavar="RESULTS.json",
        help="one run, or several of the same selection",
    )
    p_save.add_argument(
        "--dir", type=Path, default=Path("reports/baselines"), help="default: reports/baselines"
    )
    p_save.add_argument("--name", help="file name without .json (default: machine kind and profile)")
    return parser


def _selection_error(args: argparse.Namespace, outcome: Outcome, err: Console) -> int | None:
    if outcome.collection_errors:
        for error in outcome.collection_errors:
            err.print(f"[red]error:[/] could not load benchmark cases:\n{escape(error)}", highlight=False)
        return UNUSABLE
    if outcome.exit_code == 4:
        err.print("[red]error:[/] pytest rejected the arguments (see above)")
        return UNUSABLE
    if not outcome.suites:
        err.print(
            "[red]error:[/] this project declares no suites: add\n\n"
            + escape('  [tool.bench]\n  suites = ["suites"]\n\n')
            + "to its pyproject.toml (or run `bench init`), then put suite files in that folder."
        )
        return UNUSABLE
    if not outcome.items:
        options = RunOptions.from_namespace(args)
        what = " ".join(
            f"{flag} {value!r}"
            for flag, value in (("-k", options.keyword), ("-m", options.marker_expression))
            if value
        )
        err.print(
            f"[red]error:[/] {what or 'the suites'} selected no benchmark items. "
            "`bench list` shows what exists."
        )
        return UNUSABLE
    return None


def cmd_init(args: argparse.Namespace) -> int:
    from bench.scaffold import write_scaffold

    scaffold = write_scaffold(Path.cwd(), args.path, args.function, force=args.force)
    err = _console(stderr=True)
    err.print(f"wrote {escape(str(scaffold.suite_file))}")
    err.print(escape(scaffold.declaration))
    err.print(
        f"next: edit {escape(str(scaffold.suite_file))} (its comments say what to change), then\n"
        "  bench list\n  bench run\n  pytest --benchmark-only"
    )
    return OK


def cmd_list(args: argparse.Namespace) -> int:
    from bench.device import plan_devices
    from bench.runner import pytest_args, run_pytest

    err = _console(stderr=True)
    options = RunOptions.from_namespace(args)
    plan_devices(options.device)
    outcome = run_pytest(pytest_args(options, collect_only=True), None)
    problem = _selection_error(args, outcome, err)
    if problem is not None:
        return problem
    table = Table(
        title=f"{len(outcome.items)} benchmark items (profile {args.profile})", title_justify="left"
    )
    for column in ("Item", "Markers"):
        table.add_column(column)
    for item in outcome.items:
        markers = sorted({m.name for m in item.iter_markers()} - {"benchmark"})
        table.add_row(escape(item.name), ", ".join(markers))
    _console().print(table)
    return OK


def cmd_run(args: argparse.Namespace) -> int:
    from bench.claims import audit
    from bench.compare import compare_runs
    from bench.device import plan_devices
    from bench.render.console import print_results
    from bench.runner import pytest_args, run_pytest

    out, err = _console(), _console(stderr=True)
    options = RunOptions.from_namespace(args)
    plan = plan_devices(options.device)
    if args.counts or args.counts_cache:
        require_valgrind()  # before the timing, not after minutes of it
    for device, reason in plan.skipped:
        err.print(f"[yellow]note:[/] {device} items are skipped: {reason}")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path = args.json or Path("results") / f"run-{stamp}.json"
    if options.resume is not None:
        resumed = _resumed_args(options.resume, err)
        if resumed is None:
            return UNUSABLE
        run_args, json_path = resumed
    else:
        run_args = pytest_args(options, json_path=json_path)
    report_path = args.report or json_path.with_suffix(".md")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    outcome = run_pytest(run_args, err)
    problem = _selection_error(args, outcome, err)
    if problem is not None:
        return problem
    if not json_path.exists():
        err.print(
            f"[red]error:[/] no results were written to {json_path} (pytest exit code {outcome.exit_code})"
        )
        return FAILURES
    if args.counts or args.counts_cache:
        _count_pass(args, json_path, err)
    runs = load_runs([json_path])
    rows = compare_runs(runs)
    claims = [c for run in runs for c in audit(run)]
    print_results(out, rows, claims)
    command = "bench " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "bench run"
    _write_report(report_path, runs, rows, claims, command)
    err.print(f"results: {json_path}\nreport:  {report_path}")
    err.print(f"{outcome.passed} timed, {len(outcome.failed)} failed, {outcome.skipped} skipped")
    if outcome.interrupted:
        err.print("[yellow]interrupted:[/] the results above are the items finished before the interrupt")
        return INTERRUPTED
    return FAILURES if outcome.failed else OK


def _resumed_args(journal: Path, err: Console) -> tuple[list[str], Path] | None:
    """The cut-short run's pytest arguments (from its journal's header), resuming, and its JSON."""
    from bench.journal import read_journal

    header, groups, _ = read_journal(journal)
    args = [a for a in header["args"] if not a.startswith("--bench-resume")]
    json_arg = next((a for a in args if a.startswith("--benchmark-json=")), None)
    if json_arg is None:
        err.print(f"[red]error:[/] {journal} does not say where its run's JSON goes (no --benchmark-json)")
        return None
    err.print(f"resuming {journal}: {len(groups)} measured group(s) taken from it, the rest measured now")
    return [*args, f"--bench-resume={journal}"], Path(json_arg.split("=", 1)[1])


def _count_pass(args: argparse.Namespace, json_path: Path, err: Console) -> None:
    """Count the run's timed CPU items under callgrind and write the counts into its JSON."""
    from bench.runner import pytest_args

    doc = json.loads(json_path.read_text())
    nodeids = [
        entry["fullname"]
        for entry in doc.get("benchmarks", [])
        if ((entry.get("extra_info") or {}).get("bench") or {}).get("device") == "cpu"
    ]
    if not nodeids:
        err.print("[yellow]note:[/] no CPU item was timed, so none was counted")
        return
    err.print(
        f"counting instructions of {len(nodeids)} CPU items under callgrind (one process, ~20 s to start)"
    )
    done = 0

    def progress(count: ItemCount) -> None:
        nonlocal done
        done += 1
        what = (
            f"{count.instructions_per_call:,.0f} instructions"
            if count.instructions_per_call
            else count.reason
        )
        err.print(f"[{done}/{len(nodeids)}] {escape(count.nodeid.rsplit('::', 1)[-1])}: {escape(str(what))}")

    counts, context = count_items(
        nodeids,
        pytest_args(profile=args.profile, device="cpu", markers=args.markers, collect_only=True),
        limit_s=args.counts_limit,
        cache_sim=args.counts_cache,
        on_item=progress,
    )
    merged = merge_into(json_path, counts, context)
    err.print(f"counted {merged} of {len(nodeids)} items in {context['seconds']:.0f} s ({context['tool']})")


def cmd_report(args: argparse.Namespace) -> int:
    from bench.claims import audit
    from bench.compare import compare_runs
    from bench.render.report import render_report

    runs = load_runs(args.results)
    rows = compare_runs(runs)
    claims = [c for run in runs for c in audit(run)]
    command = "bench report " + " ".join(shlex.quote(str(p)) for p in args.results)
    if args.output:
        _write_report(args.output, runs, rows, claims, command)
        _console(stderr=True).print(f"report: {args.output}")
    else:
        sys.stdout.write(render_report(runs, rows, claims, command=command) + "\n")
    return OK


def _write_report(
    path: Path, runs: list[Run], rows: list[Comparison], claims: list[ClaimResult], command: str
) -> None:
    """The markdown report with its figures in ``<stem>-figures/`` beside it."""
    from bench.render.plots import report_figures
    from bench.render.report import render_report

    path.parent.mkdir(parents=True, exist_ok=True)
    figures = report_figures(rows, path.parent / f"{path.stem}-figures")
    links = [(f.title, f.path.relative_to(path.parent).as_posix()) for f in figures]
    path.write_text(render_report(runs, rows, claims, command=command, figures=links))


def cmd_profile(args: argparse.Namespace) -> int:
    from bench.device import plan_devices
    from bench.profiling import profile_case
    from bench.registry import REGISTRY
    from bench.render import format as fmt
    from bench.runner import pytest_args, run_pytest

    out, err = _console(), _console(stderr=True)
    plan = plan_devices(args.device)
    outcome = run_pytest(pytest_args(profile=args.profile, device=args.device, collect_only=True), None)
    if outcome.collection_errors:
        return _selection_error(args, outcome, err) or UNUSABLE
    case = REGISTRY.get(args.case)
    device = next((d for d in plan.run if d in case.devices), None)
    if device is None:
        raise SelectionError(
            f"{case.name} runs on {', '.join(case.devices)}; this run has {', '.join(plan.run)}"
        )
    results = profile_case(case, variant=args.variant, device=device, profile_name=args.profile, out=args.out)
    for name, result in results:
        table = Table(
            title=escape(f"{case.name} / {name} on {device}: top operators by self time"),
            title_justify="left",
        )
        for column in ("Operator", "Calls", "Self CPU", "Self CUDA", "CPU mem"):
            table.add_column(column, justify="left" if column == "Operator" else "right")
        for row in result.top:
            table.add_row(
                escape(row.name),
                str(row.calls),
                fmt.seconds(row.self_cpu_s),
                fmt.seconds(row.self_cuda_s) if row.self_cuda_s else fmt.DASH,
                fmt.nbytes(row.cpu_memory_bytes),
            )
        out.print(table)
        for path in result.files:
            err.print(f"trace: {path}")
    err.print(
        f"view: tensorboard --logdir {args.out}   (or open a .pt.trace.json in https://ui.perfetto.dev)"
    )
    return OK


def cmd_history(args: argparse.Namespace) -> int:
    from bench.history import load_history
    from bench.render.history import render_history

    history = load_history(args.folder)
    output = args.output or args.folder / "history.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_history(history, output))
    steps, same = len(history.steps()), len(history.same_code_steps())
    between = f" ({same} between runs of the same code: the machine, not the code)" if same else ""
    summary = f"history of {len(history.runs)} runs, {steps} step changes{between}: {output}"
    _console(stderr=True).print(summary)
    return OK


def baseline_name(run: Run) -> str:
    """The name a saved baseline has, and the one the gate looks for: machine kind and profile."""
    return f"{machine_kind(run.environment)}-{run.profile}"


def baseline_for(current: Run, where: Path) -> tuple[list[Path], str]:
    """The baseline runs and, when they come from another kind of machine, a note saying so.

    ``where`` is a results file, or a folder of saved baselines: ``<kind>-<profile>.json`` (one
    run) or ``<kind>-<profile>/`` (several). The folder's baseline for this machine kind is taken;
    failing that, one of the same profile from another machine (the same device type and core
    count first): the gate then applies the rules that hold across machines and lists the others
    as not comparable. Only a folder with nothing for this profile is unusable.
    """
    if not where.is_dir():
        return [where], ""
    saved: dict[str, list[Path]] = {}
    for entry in sorted(where.iterdir()):
        if entry.is_dir() and sorted(entry.glob("*.json")):
            saved[entry.name] = sorted(entry.glob("*.json"))
        elif entry.suffix == ".json":
            saved[entry.stem] = [entry]
    name = baseline_name(current)
    if name in saved:
        return saved[name], ""
    profile = f"-{current.profile}"
    same_profile = [n for n in saved if n.endswith(profile)]
    if not same_profile:
        raise ResultsError(
            f"{where} has no baseline for the {current.profile!r} profile (present: "
            f"{', '.join(saved) or 'none'}). Save one with `bench baseline save RESULTS.json --dir {where}`, "
            "or name a file."
        )
    kind = name.removesuffix(profile)
    device, cores = kind.split("-")[0], kind.split("-")[1] if kind.count("-") else ""
    chosen = min(
        same_profile,
        key=lambda n: (not n.startswith(f"{device}-"), not n.startswith(f"{device}-{cores}-"), n),
    )
    return saved[chosen], (
        f"no baseline for this machine ({name}) in {where}; using {chosen}, from another machine"
    )


def cmd_gate(args: argparse.Namespace) -> int:
    from bench.gate import gate, load_rules
    from bench.render.gate import render_gate

    currents = load_runs(args.current)
    baseline_paths, note = baseline_for(currents[0], args.baseline)
    current, baseline = pool_runs(currents), pool_runs(load_runs(baseline_paths))
    result = gate(current, baseline, load_rules(args.rules))
    text = render_gate(result, _describe(args.current), _describe(baseline_paths), note)
    sys.stdout.write(text + "\n")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.as_dict(), indent=2))
    return result.exit_code(args.fail_on_improvement)


def _describe(paths: Sequence[Path]) -> str:
    return str(paths[0]) if len(paths) == 1 else f"{len(paths)} runs ({paths[0]}, ...)"


def cmd_baseline(args: argparse.Namespace) -> int:
    runs = load_runs(args.results)
    name = args.name or baseline_name(runs[0])
    single, folder = args.dir / f"{name}.json", args.dir / name
    # One form per name: a new baseline replaces the old one, whichever form that had.
    single.unlink(missing_ok=True)
    if folder.is_dir():
        shutil.rmtree(folder)
    if len(args.results) == 1:
        targets = [single]
    else:
        targets = [folder / f"run-{i:02d}.json" for i in range(1, len(args.results) + 1)]
    for source, target in zip(args.results, targets, strict=True):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    where = single if len(targets) == 1 else f"{folder}/ ({len(targets)} runs)"
    _console(stderr=True).print(f"baseline: {where}")
    return OK


COMMANDS = {
    "init": cmd_init,
    "list": cmd_list,
    "run": cmd_run,
    "report": cmd_report,
    "profile": cmd_profile,
    "history": cmd_history,
    "gate": cmd_gate,
    "baseline": cmd_baseline,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BenchError as exc:
        _console(stderr=True).print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return UNUSABLE
    except KeyboardInterrupt:
        _console(stderr=True).print("[yellow]interrupted[/]")
        return INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
