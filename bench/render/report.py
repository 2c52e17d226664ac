"""The markdown performance report: environment, method, per-family tables, claims, failures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bench.claims import VERDICTS, ClaimResult
from bench.compare import Comparison
from bench.environment import CONTENDED_STEAL, is_busy
from bench.render import format as fmt
from bench.render.markdown import claims_table, comparison_tables, escape, table
from bench.results import Run


def _gpu(gpu: Mapping[str, Any] | None) -> str:
    if not gpu:
        return "none"
    driver = gpu.get("driver") or "?"
    return f"{gpu['name']} ×{gpu['count']}, {fmt.nbytes(gpu['memory_bytes'])}, driver {driver}"


def _threads(run: Run) -> str:
    trials = run.info.get("trials") or {}
    if trials.get("threads"):
        malloc = f", glibc malloc {trials['malloc']} (`--malloc`)" if trials.get("malloc") else ""
        pools = trials.get("thread_pools")
        if pools:
            return f"threads {trials['threads']} in the workers, in each pool ({', '.join(pools)}){malloc}"
        # Runs before the pools were named limited torch's alone.
        return f"torch threads {trials['threads']} in the workers{malloc}"
    return f"torch threads {run.environment.get('threads', '?')}"


def _environment(run: Run) -> list[str]:
    env: Mapping[str, Any] = run.environment
    gpu = env.get("gpu")
    git = env.get("git") or {}
    commit = (git.get("id") or "unknown")[:10] + (" (uncommitted changes)" if git.get("dirty") else "")
    end = git.get("at_end")
    if end:  # the tree moved while the run went on: the commit above is the one it started from
        moved = (end.get("id") or "unknown")[:10] + (" with uncommitted changes" if end.get("dirty") else "")
        commit += f" at the start (the tree was at {moved} when it ended)"
    lines = [
        f"- **Run**: `{run.path}`, {run.datetime or 'unknown time'}, profile `{run.profile}`",
        f"- **CPU**: {env.get('cpu_model', '?')}, {env.get('cpu_count', '?')} logical cores, "
        f"{_threads(run)}",
        f"- **GPU**: {_gpu(gpu)}",
        f"- **Software**: Python {env.get('python', '?')}, torch {env.get('torch', '?')} "
        f"(CUDA {env.get('cuda') or 'none'}), PennyLane {env.get('pennylane') or 'not installed'}, "
        f"pytest-benchmark {env.get('pytest_benchmark', '?')}, {env.get('platform', '?')}",
        f"- **Commit**: {commit}",
    ]
    for device, peak in (env.get("peak") or {}).items():
        lines.append(_limits(device, peak))
    load = env.get("load_average") or {}
    others = env.get("cpu_others")
    if any(v is not None for v in load.values()) or others is not None:
        start, end = (fmt.number(load.get(k)) for k in ("start", "end"))
        line = (
            f"- **Load average** (1 min): {start} at the start, {end} at the end "
            "(this run's own threads included)"
        )
        if others is not None:
            line += (
                f"; other processes used {fmt.number(100 * others, 2)} % of the cores' time during "
                "the run (the machine's busy time in /proc/stat less this run's own processes)"
            )
        cores = int(env.get("cpu_count") or 0)
        threads = int((run.info.get("trials") or {}).get("threads") or env.get("threads") or 1)
        if is_busy(load, threads, cores, others):
            line += (
                f" — **busy machine**: other processes kept more than half of its {cores} cores busy, "
                "so absolute times are inflated and noisy (ratios less so)"
            )
        lines.append(line)
    steal = env.get("cpu_steal")
    if steal is not None:
        line = (
            f"- **CPU steal**: {fmt.number(100 * steal, 2)} % of the cores' time during the run went to "
            "the host's other guests"
        )
        if steal > CONTENDED_STEAL:
            line += (
                " — **contended host**: a virtual machine's cores were taken away while it ran (its "
                "load average does not show it), so times are inflated and intervals wider than idle"
            )
        lines.append(line)
    selection = run.info.get("selection") or {}
    chosen = [
        f"{flag} `{selection[key]}`"
        for flag, key in (("-k", "keyword"), ("-m", "markers"))
        if selection.get(key)
    ]
    left_out = selection.get("left_out") or {}
    if chosen or left_out:
        line = f"- **Selection**: {', '.join(chosen) or 'every case'}"
        if left_out:
            line += (
                f"; left out by the marker expression ({len(left_out)} case(s); `-m ''` or "
                f"`--profile full` runs them): {', '.join(f'`{name}`' for name in sorted(left_out))}"
            )
        lines.append(line)
    skipped = run.info.get("devices", {}).get("skipped", [])
    for entry in skipped:
        lines.append(f"- **Not run on {entry['device']}**: {entry['reason']}")
    return lines


def _limits(device: str, peak: Mapping[str, Any]) -> str:
    """The measured roofs of one device, with what each was measured on."""
    if "memory_gbs" not in peak:  # a run from before the STREAM measurement: one copy rate
        return (
            f"- **Measured peak ({device})**: {peak['gflops_fp32']:.1f} GFLOP/s fp32 matmul, "
            f"{peak['copy_gbs']:.1f} GB/s copy (read + write)"
        )
    stream = peak.get("stream") or {}
    kernels = stream.get("kernels_gbs") or {}
    best = max(kernels, key=kernels.__getitem__) if kernels else "?"
    line = (
        f"- **Measured limits ({device})**: {peak['gflops_fp32']:.1f} GFLOP/s fp32 matmul; memory "
        f"bandwidth {peak['memory_gbs']:.1f} GB/s (the best STREAM kernel, {best}: "
        + ", ".join(f"{name} {gbs:.1f}" for name, gbs in kernels.items())
        + f" GB/s; 3 arrays of {fmt.nbytes(stream.get('array_bytes'))}, {stream.get('threads', '?')} threads)"
    )
    if peak.get("cache_gbs"):
        cache = peak.get("cache_stream") or {}
        line += (
            f"; cache bandwidth {peak['cache_gbs']:.1f} GB/s (3 arrays of "
            f"{fmt.nbytes(cache.get('array_bytes'))} inside the {fmt.nbytes(peak.get('llc_bytes'))} "
            "last-level cache)"
        )
    return line


def _method(run: Run) -> list[str]:
    timing = run.info.get("timing", {})
    return [
        "- Each implementation is first run once on the reference's inputs and compared with the "
        "reference (outputs, and gradients of every input and parameter for forward + backward); a "
        "mismatch fails the variant and it is not timed. On CUDA this check runs in full float32 (TF32 "
        "off for matmuls and cuDNN convolutions); the timed calls keep torch's defaults. Approximate "
        "variants report a quality metric instead; variants with changed parameters run a different "
        "workload and are not compared.",
        "- Then warm-up calls, then a separate probe pass (peak memory, FLOPs, GPU sampling), so the "
        "probes do not perturb the timings.",
        *_timing_method(run, timing),
        "- Peak mem Δ: growth of the resident set during one call (Linux VmHWM reset through "
        "/proc/self/clear_refs; sampled elsewhere; glibc's mmap and trim thresholds pinned in the "
        "probing worker, so that freed large blocks do not stay resident and the growth does not "
        "follow what ran before) on CPU, CUDA allocator peak growth on CUDA.",
        "- FLOPs: counted by torch's FlopCounterMode (matmul/conv family), or declared by the case "
        "where linear algebra dominates; % peak is against the measured fp32 matmul peak above.",
        "- Limits are measured at the run's start on all cores, best of several: the fp32 matmul "
        "peak, the memory bandwidth as STREAM measures it (copy, scale, add, triad, and STREAM2's "
        "in-place daxpy, on arrays 4× the last-level cache; bytes counted as STREAM does, without "
        "write-allocate traffic) and the same kernels inside the cache. An achieved bandwidth (a "
        "case whose work is bytes moved) is shown against the memory bandwidth; above it only a call "
        "whose bytes fit in the last-level cache can be, and that is marked cache-resident and shown "
        "against the cache bandwidth; a rate above every limit that applies reads 'over the limit' (the "
        "byte count or the limit is wrong), and a FLOP rate above the matmul peak 'over peak' (the "
        "FLOP count or the peak is wrong): never more than 100 %.",
    ]


def _claims_section(claims: Sequence[ClaimResult]) -> list[str]:
    if not claims:
        return ["No claims are declared by the selected cases."]
    counts = {v: sum(1 for c in claims if c.verdict == v) for v in VERDICTS}
    summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    return [
        f"{len(claims)} claims: {summary}. Verdicts: **holds** (the estimate lies inside the claimed "
        "range), **understated** / **refuted** (the whole 95 % interval lies beyond the range: better / "
        "worse than claimed), **inconclusive** (the estimate lies outside the range but the interval "
        "reaches into it; the note says what precision would decide), **other hardware** (an absolute "
        "figure for hardware not present; the measured value is still shown), **not measurable here** "
        "(with the reason), **not run** (the marker expression left the case out, or the run was "
        "interrupted before it finished the case; the note gives the command that runs it). A claim "
        "without an interval is judged on its estimate, and its note says so.",
        "",
        claims_table(claims),
    ]


def _timing_method(run: Run, timing: Mapping[str, Any]) -> list[str]:
    trials = run.info.get("trials") or {}
    per_round = (
        f"rounds of at least {timing.get('min_time_s', '?')} s (calibrated calls per round), timer "
        f"`{timing.get('timer', '?')}`, GC {'disabled' if timing.get('disable_gc') else 'enabled'}. "
        "CUDA calls end with a synchronisation."
    )
    if not trials:
        return [
            f"- Timing by pytest-benchmark in the run's own process: at least "
            f"{timing.get('min_rounds', '?')} rounds and up to {timing.get('max_time_s', '?')} s per item, "
            + per_round,
            "- Speedup = reference median ÷ variant median, with a 95 % percentile-bootstrap interval "
            "over the rounds of that one process.",
        ]
    return [
        "- The run's process only collects, records and reports: every implementation runs in worker "
        "processes. The check and probes above run in one worker per case and grid point; then "
        f"{trials.get('per_item', '?')} **trials**, each a fresh worker (started by "
        f"{_starts(trials)}; {trials.get('threads', '?')} torch thread(s)), time the case's "
        "implementations in cycles of one round each, the order shuffled and mirrored (reversed in "
        "the next cycle and in the next trial), so no "
        "implementation is always first or always after the same one. Per trial: at least "
        f"{trials.get('min_cycles', '?')} cycles (the {timing.get('min_rounds', '?')} rounds of "
        f"pytest-benchmark's minimum shared out over the trials, two at least) and about "
        f"{timing.get('max_time_s', '?')} s ÷ {trials.get('per_item', '?')} of rounds per "
        "implementation" + _own_timing(run) + "; " + per_round,
        "- Median and IQR: over every round of every trial. **Speedup**: per trial, the median ratio of "
        "the reference's and the variant's rounds of the same cycle; the estimate is the geometric "
        "mean over trials, its 95 % interval a hierarchical bootstrap (trials, then the pairs within "
        "them) widened by Student's t for the number of trials, so it spans what varies between "
        "processes. Claims, the gate and history use the same interval.",
        "- **A/A control**: in every trial the reference is timed once more as if it were a variant; "
        "its speedup should be 1 and its interval should contain 1 (see the A/A section).",
        *_run_cost(run),
    ]


def _run_cost(run: Run) -> list[str]:
    """Where the run's time went, from the workers' seconds (none for runs that did not keep them)."""
    trials = run.info.get("trials") or {}
    workers = trials.get("workers") or {}
    groups = workers.get("groups") or {}
    if not groups:
        return []
    check, trial, ahead = workers.get("check") or {}, workers.get("trial") or {}, trials.get("checks_ahead")
    started, finished = run.info.get("started"), run.info.get("finished")
    total = f"{finished - started:.0f} s in all; " if started and finished else ""
    side = f" ({ahead['width']} at a time, {ahead['wall_s']:.0f} s of wall time)" if ahead else ""
    width = trials.get("ready_width")
    ready = f", building and warming up {width} at a time, timing alone" if width else ""
    costliest = ", ".join(
        f"`{name}` {cost['check_s'] + cost['trial_s']:.0f} s" for name, cost in list(groups.items())[:5]
    )
    checks, trials_n = check.get("count", 0), trial.get("count", 0)
    return [
        f"- **Where the time went**: {total}{checks} check worker{'s' * (checks != 1)}, "
        f"{check.get('total_s', 0):.0f} s{side}; {trials_n} trial worker{'s' * (trials_n != 1)}, "
        f"{trial.get('total_s', 0):.0f} s{ready}. The costliest groups, check and trials: {costliest} "
        "(all of them: `trials.workers.groups` in the JSON)."
    ]


def _own_timing(run: Run) -> str:
    """The cases that fix their own pytest-benchmark settings, as "case (setting=value)"."""
    own = {
        name: info["benchmark"]
        for name, info in sorted((run.info.get("cases") or {}).items())
        if isinstance(info, Mapping) and info.get("benchmark")
    }
    if not own:
        return ""
    listed = ", ".join(
        f"`{name}` ({', '.join(f'{k}={v}' for k, v in sorted(values.items()))})"
        for name, values in own.items()
    )
    return f" (cases that fix their own settings, shared out the same way: {listed})"


def _aa_section(rows: Sequence[Comparison]) -> list[str]:
    controls = [r for r in rows if r.aa is not None]
    if not controls:
        return ["No A/A controls in this run (it was not measured in trials)."]
    bad = [r for r in controls if not r.aa.contains(1.0)]  # type: ignore[union-attr]
    lines = [
        f"The reference against itself, timed as a variant in the same trials: {len(controls) - len(bad)} "
        f"of {len(controls)} intervals contain 1"
        + (" — the intervals of this run can be trusted as far as this control tells." if not bad else "."),
        "",
    ]
    if bad:
        lines += [
            "**Where the A/A interval excludes 1, this machine's intervals were not trustworthy for that "
            "case and point in this run** (something varied that the trials did not spread over: a "
            "neighbour's burst, frequency changes); read their speedups with that in mind:",
            "",
            table(
                ("Case", "Point", "Device", "A/A speedup [95% CI]"),
                [
                    (
                        f"`{r.case}`",
                        fmt.params(dict(r.params)),
                        r.device,
                        f"{r.aa.estimate:.3f}× [{r.aa.low:.3f}, {r.aa.high:.3f}]",  # type: ignore[union-attr]
                    )
                    for r in bad
                ],
                right={"A/A speedup [95% CI]"},
            ),
        ]
    return lines


def render_report(
    runs: Sequence[Run],
    rows: Sequence[Comparison],
    claims: Sequence[ClaimResult],
    command: str = "",
    now: datetime | None = None,
    figures: Sequence[tuple[str, str]] = (),
) -> str:
    """The whole report as markdown text (plain text; the caller writes it).

    ``figures`` are (title, link relative to the report) pairs, already written."""
    now = now or datetime.now(UTC)
    out = ["# Performance report", ""]
    out.append(f"Generated {now:%Y-%m-%d %H:%M} UTC" + (f" by `{command}`" if command else "") + ".")
    out.append("")
    out += ["## Environment", ""]
    for run in runs:
        out += _environment(run)
        out.append("")
    out += ["## Method", "", *_method(runs[0]), ""]
    out += ["## Results", ""]
    tables = comparison_tables(rows)
    families: dict[str, list[str]] = {}
    for row in rows:
        families.setdefault(row.family, [])
        if row.case not in families[row.family]:
            families[row.family].append(row.case)
    case_info: dict[str, Mapping[str, Any]] = {}
    for run in runs:
        case_info.update(run.info.get("cases", {}))
    for family, cases in families.items():
        out += [f"### {family}", ""]
        for case in cases:
            info = case_info.get(case, {})
            out.append(f"#### `{case}` ({info.get('mode', '?')})")
            out.append("")
            if info.get("description"):
                out += [escape(info["description"]), ""]
            notes = [
                f"`{v}`: {meta['note']}" for v, meta in info.get("variants", {}).items() if meta.get("note")
            ]
            if notes:
                out += ["Variants: " + "; ".join(notes) + ".", ""]
            out += [tables[case], ""]
    out += ["## A/A control", "", *_aa_section(rows), ""]
    if figures:
        out += ["## Figures", ""]
        for title, link in figures:
            out += [f"### {escape(title)}", "", f"![{escape(title)}]({link})", ""]
    out += ["## Claims audit", "", *_claims_section(claims), ""]
    failures = [r for r in rows if r.error]
    out += ["## Failures", ""]
    if failures:
        out.append(
            table(
                ("Item", "Error"),
                [
                    (f"`{r.case}` {fmt.params(dict(r.params))} {r.device} `{r.variant}`", r.error or "")
                    for r in failures
                ],
            )
        )
    else:
        out.append("None: every selected implementation ran, matched its reference and was timed.")
    out.append("")
    skipped = [s for run in runs for s in run.info.get("skipped", [])]
    if skipped:
        noun = "item was" if len(skipped) == 1 else "items were"
        out += ["## Skipped", "", f"{len(skipped)} {noun} skipped:", ""]
        reasons: dict[str, int] = {}
        for s in skipped:
            reasons[s["reason"]] = reasons.get(s["reason"], 0) + 1
        out += [f"- {n} × {reason}" for reason, n in reasons.items()]
        out.append("")
    if any(run.info.get("interrupted") for run in runs):
        out += ["> The run was interrupted; the tables hold the items finished before that.", ""]
    return "\n".join(out)


def _starts(trials: dict[str, Any]) -> str:
    """How the workers started, per device (runs before 2026-12-04 recorded the option alone)."""
    starts = trials.get("starts") or {}
    shown = {"fork": "fork", "forkserver": "a fork server per trial", "spawn": "spawn"}
    if not starts:
        return f"`--worker-start {trials.get('start', '?')}`; how each device's started is not recorded"
    return ", ".join(f"{shown.get(how, how)} on {'CPU' if device == 'cpu' else 'CUDA'}"
                     for device, how in starts.items())
