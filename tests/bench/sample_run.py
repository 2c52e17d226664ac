"""A hand-built results document with known numbers, for tests of loading, comparison and rendering."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from bench.results import Record

# The reference's record; the variants' records are variations of it.
_BASE = Record(
    case="toy.square",
    family="toy",
    variant="reference",
    role="reference",
    params={"n": 8},
    device="cpu",
    mode="forward",
    exact=True,
    dtype="float64",
    profile="quick",
    work_unit="rows",
    work_per_call=8.0,
    memory={"cpu_peak_rss_bytes": 300 * 2**20, "cpu_peak_rss_delta_bytes": 8 * 2**20},
    flops_per_call=2e9,
    flops_source="declared",
    warmup_calls=1,
    first_call_s=0.1,
)


def _bench(variant: str, role: str, **fields: Any) -> dict[str, Any]:
    """A record's JSON, as the writer stores it (Record.to_json)."""
    return replace(_BASE, variant=variant, role=role, **fields).to_json()


def _entry(name: str, bench: dict[str, Any], seconds: float) -> dict[str, Any]:
    # Deterministic rounds: a small symmetric spread around the median.
    data = [seconds * (1 + 0.01 * ((i % 5) - 2)) for i in range(20)]
    return {
        "name": name,
        "fullname": f"suites/toy.py::{name}",
        "params": None,
        "group": None,
        "extra_info": {"bench": bench},
        "options": {},
        "stats": {
            "min": min(data),
            "max": max(data),
            "mean": seconds,
            "stddev": 0.0,
            "rounds": 20,
            "median": seconds,
            "iqr": seconds * 0.02,
            "q1": seconds * 0.99,
            "q3": seconds * 1.01,
            "iqr_outliers": 0,
            "stddev_outliers": 0,
            "outliers": "0;0",
            "ld15iqr": min(data),
            "hd15iqr": max(data),
            "ops": 1 / seconds,
            "total": seconds * 20,
            "iterations": 1,
            "data": data,
        },
    }


def sample_document() -> dict[str, Any]:
    correct = {
        "exact": True,
        "passed": True,
        "max_abs_err": 1e-12,
        "max_rel_err": 2e-13,
        "tolerance": {"rtol": 1e-9, "atol": 1e-9},
        "where": "output[0]",
    }
    fast = _bench(
        "fast",
        "variant",
        correctness=correct,
        memory={"cpu_peak_rss_bytes": 290 * 2**20, "cpu_peak_rss_delta_bytes": 2 * 2**20},
    )
    small = _bench(
        "small",
        "variant",
        exact=False,
        overrides={"n": 4},
        note="smaller",
        correctness={
            "exact": False,
            "passed": True,
            "quality_metric": None,
            "value": None,
            "details": {},
            "note": "smaller",
        },
        flops_per_call=1e9,
    )
    broken = _bench(
        "broken",
        "variant",
        memory=None,
        flops_per_call=None,
        flops_source=None,
        correctness={
            "exact": True,
            "passed": False,
            "max_abs_err": 1.0,
            "max_rel_err": 0.5,
            "tolerance": {"rtol": 1e-9, "atol": 1e-9},
            "where": "output[0]",
        },
        error={"kind": "mismatch", "message": "MismatchError: off by one"},
        item="toy.square[n8-cpu-broken]",
    )
    return {
        "machine_info": {},
        "commit_info": {},
        "datetime": "2026-11-22T12:00:00+00:00",
        "version": "5.3.1",
        "benchmarks": [
            _entry("toy.square[n8-cpu-reference]", _bench("reference", "reference"), 0.04),
            _entry("toy.square[n8-cpu-fast]", fast, 0.01),
            _entry("toy.square[n8-cpu-small]", small, 0.02),
        ],
        "bench": {
            "schema": 1,
            "harness_version": "0.1.0",
            "profile": "quick",
            "devices": {
                "requested": "auto",
                "run": ["cpu"],
                "skipped": [{"device": "cuda", "reason": "no CUDA device is visible"}],
            },
            "environment": {
                "python": "3.11.7",
                "platform": "Linux-x86_64",
                "cpu_model": "Test CPU",
                "cpu_count": 2,
                "threads": 2,
                "torch": "2.13.0+cpu",
                "cuda": None,
                "gpu": None,
                "pennylane": "0.45.1",
                "pytest_benchmark": "5.3.1",
                "git": {"id": "0123456789abcdef", "dirty": False},
                "peak": {
                    "cpu": {
                        "gflops_fp32": 100.0,
                        "memory_gbs": 12.0,
                        "copy_gbs": 10.0,
                        "stream": {
                            "kernels_gbs": {
                                "copy": 10.0,
                                "scale": 9.5,
                                "add": 11.0,
                                "triad": 11.5,
                                "daxpy": 12.0,
                            },
                            "array_bytes": 128 * 2**20,
                            "threads": 2,
                        },
                        "cache_gbs": 200.0,
                        "cache_stream": {
                            "kernels_gbs": {
                                "copy": 150.0,
                                "scale": 150.0,
                                "add": 180.0,
                                "triad": 180.0,
                                "daxpy": 200.0,
                            },
                            "array_bytes": 4 * 2**20,
                            "threads": 2,
                        },
                        "llc_bytes": 32 * 2**20,
                    }
                },
            },
            "timing": {
                "min_rounds": 5,
                "min_time_s": 0.0002,
                "max_time_s": 0.25,
                "warmup": "False",
                "disable_gc": False,
                "timer": "time.perf_counter",
            },
            "selection": {"keyword": None, "markers": "not slow", "left_out": {"toy.heavy": ["slow"]}},
            "cases": {
                "toy.square": {
                    "family": "toy",
                    "mode": "forward",
                    "description": "a toy",
                    "work_unit": "rows",
                    "variants": {
                        "reference": {"exact": True, "note": "", "overrides": {}},
                        "fast": {"exact": True, "note": "", "overrides": {}},
                        "small": {"exact": False, "note": "smaller", "overrides": {"n": 4}},
                        "broken": {"exact": True, "note": "", "overrides": {}},
                    },
                }
            },
            "claims": [
                {
                    "case": "toy.square",
                    "id": "C1",
                    "text": "fast is 3-5x faster",
                    "metric": "speedup",
                    "variant": "fast",
                    "baseline": "reference",
                    "expected": [3, 5],
                    "at": {},
                    "extra": None,
                    "hardware": None,
                    "measurable": True,
                    "reason": "",
                },
                {
                    "case": "toy.square",
                    "id": "C2",
                    "text": "fast is 10x faster",
                    "metric": "speedup",
                    "variant": "fast",
                    "baseline": "reference",
                    "expected": [10, None],
                    "at": {},
                    "extra": None,
                    "hardware": None,
                    "measurable": True,
                    "reason": "",
                },
                {
                    "case": "toy.square",
                    "id": "C3",
                    "text": "fast halves memory at most",
                    "metric": "memory_reduction",
                    "variant": "fast",
                    "baseline": "reference",
                    "expected": [0.4, 0.5],
                    "at": {},
                    "extra": None,
                    "hardware": None,
                    "measurable": True,
                    "reason": "",
                },
                {
                    "case": "toy.square",
                    "id": "C4",
                    "text": "the reference takes 1 s on a T4",
                    "metric": "seconds",
                    "variant": "reference",
                    "baseline": "reference",
                    "expected": [1, 1],
                    "at": {"n": 64},
                    "extra": None,
                    "hardware": "a T4",
                    "measurable": True,
                    "reason": "",
                },
                {
                    "case": "toy.square",
                    "id": "C5",
                    "text": "FID improves",
                    "metric": "seconds",
                    "variant": "reference",
                    "baseline": "reference",
                    "expected": None,
                    "at": {},
                    "extra": None,
                    "hardware": None,
                    "measurable": False,
                    "reason": "no Inception weights",
                },
                {
                    "case": "toy.square",
                    "id": "C6",
                    "text": "broken is faster",
                    "metric": "speedup",
                    "variant": "broken",
                    "baseline": "reference",
                    "expected": [1, None],
                    "at": {},
                    "extra": None,
                    "hardware": None,
                    "measurable": True,
                    "reason": "",
                },
                {
                    "case": "toy.square",
                    "id": "C8",
                    "text": "fast is 4.05-6x faster",
                    "metric": "speedup",
                    "variant": "fast",
                    "baseline": "reference",
                    "expected": [4.05, 6],
                    "at": {},
                    "extra": None,
                    "hardware": None,
                    "measurable": True,
                    "reason": "",
                },
                {
                    "case": "toy.heavy",
                    "id": "C9",
                    "text": "heavy's variant is 2x faster",
                    "metric": "speedup",
                    "variant": "same",
                    "baseline": "reference",
                    "expected": [2, None],
                    "at": {},
                    "extra": None,
                    "hardware": None,
                    "measurable": True,
                    "reason": "",
                },
                {
                    "case": "toy.square",
                    "id": "C7",
                    "text": "small halves the FLOPs",
                    "metric": "flops_reduction",
                    "variant": "small",
                    "baseline": "reference",
                    "expected": [0.5, 0.5],
                    "at": {},
                    "extra": None,
                    "hardware": None,
                    "measurable": True,
                    "reason": "",
                },
            ],
            "failures": [broken],
            "skipped": [
                {"item": "toy.square[n8-cuda-reference]", "reason": "cuda: no CUDA device is visible"}
            ],
            "interrupted": False,
        },
    }


def document_copy() -> dict[str, Any]:
    return copy.deepcopy(sample_document())


def with_trials(doc: dict[str, Any], variant: str, trial_speedups: list[float]) -> dict[str, Any]:
    """The document with its reference and ``variant`` measured in trials: one trial per entry of
    ``trial_speedups``, 20 rounds each (the reference 4 ms a call), the variant's stored speedup
    computed from them as the writer does."""
    from bench.stats import trial_speedup

    timed: dict[str, list[list[float]]] = {}
    for entry in doc["benchmarks"]:
        bench = entry["extra_info"]["bench"]
        if bench["variant"] not in ("reference", variant):
            continue
        trials = [[0.004 if bench["variant"] == "reference" else 0.004 / s] * 20 for s in trial_speedups]
        timed[bench["variant"]] = trials
        bench["trials"] = [{"trial": i, "rounds_s": t} for i, t in enumerate(trials)]
        rounds = sorted(x for t in trials for x in t)
        entry["stats"]["data"] = rounds
        entry["stats"]["median"] = rounds[len(rounds) // 2]
    for entry in doc["benchmarks"]:
        bench = entry["extra_info"]["bench"]
        if bench["variant"] == variant:
            found = trial_speedup(timed["reference"], timed[variant])
            assert found is not None
            bench["speedup"] = found.as_dict()
    return doc
