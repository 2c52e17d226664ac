"""One source of run options: the CLI and pytest build the same RunOptions, and apply the same profile."""

from __future__ import annotations

import argparse
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.cli import _parser
from bench.errors import SelectionError, SuiteError
from bench.options import OPTIONS, PROFILE_TIMING, RunOptions, declared_suites, flags_in, profile_values
from tests.bench.conftest import run_in

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]

CLI_RUNS = [
    ["run"],
    ["run", "--profile", "full", "--device", "cpu", "-k", "n8 and cpu"],
    ["run", "-m", "", "--threads", "2", "--time-limit", "5", "--no-probes", "--trials", "3"],
    ["run", "--profile-traces", "-m", "not quantum"],
    ["run", "--profile-traces", "out/traces", "--memory-limit", "512"],
    ["list", "--profile", "full", "-k", "paco2"],
]


@pytest.mark.parametrize("argv", CLI_RUNS, ids=lambda a: " ".join(a) or "run")
def test_the_cli_and_pytest_build_the_same_options(argv: list[str], pytester: pytest.Pytester) -> None:
    from_cli = RunOptions.from_namespace(_parser().parse_args(argv))
    config = pytester.parseconfig(*from_cli.pytest_args())
    assert RunOptions.from_config(config) == from_cli


def test_every_option_is_declared_once_for_both() -> None:
    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    run_flags = {flag for action in commands.choices["run"]._actions for flag in action.option_strings}
    for option in OPTIONS:
        assert f"--{option.cli_flag or option.flag}" in run_flags
        assert option.pytest_flag == f"--bench-{option.flag}"
    assert {f.name for f in RunOptions.__dataclass_fields__.values()} >= {o.name for o in OPTIONS}


def test_marker_expression_is_the_profiles_unless_given() -> None:
    assert RunOptions().marker_expression == "not slow"
    assert RunOptions(profile="full").marker_expression == ""
    assert RunOptions(markers="").marker_expression == ""
    assert RunOptions(markers="quantum").marker_expression == "quantum"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"threads": 0}, "--threads must be at least 1"),
        ({"time_limit_s": 0.0}, "--time-limit must be more than 0"),
        ({"trials": 1}, "--trials must be at least 2"),
        ({"memory_limit_mb": 0.0}, "--memory-limit must be more than 0"),
        ({"profile": "huge"}, "unknown profile 'huge'"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"malloc": "jemalloc"}, "unknown --malloc .jemalloc.; choose one of steady, default"),
    ],
)
def test_bad_values_are_selection_errors(values: dict, message: str) -> None:
    with pytest.raises(SelectionError, match=message):
        RunOptions(**values)


def test_pytest_rejects_bad_values_with_the_same_message(toy_project: Path) -> None:
    proc = run_in(toy_project, "-m", "pytest", "--benchmark-only", "--bench-threads=0")
    assert proc.returncode == 4 and "--threads must be at least 1" in proc.stderr


def test_the_profile_sets_timing_only_where_the_user_did_not(pytester: pytest.Pytester) -> None:
    quick = PROFILE_TIMING["quick"].pytest_values()
    config = pytester.parseconfig()
    assert profile_values(config, RunOptions.from_config(config)) == quick
    config = pytester.parseconfig("--benchmark-max-time=1.0", "--bench-profile=full")
    values = profile_values(config, RunOptions.from_config(config))
    assert values == {"benchmark_min_rounds": 10, "benchmark_min_time": "0.0005"}
    assert flags_in(["-mslow", "-k", "x", "--benchmark-min-rounds=3", "--", "--bench-profile"]) == {
        "-m",
        "-k",
        "--benchmark-min-rounds",
    }


def test_declared_suites(tmp_path: Path) -> None:
    assert declared_suites(tmp_path, []) == []
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert declared_suites(tmp_path, []) == []
    (tmp_path / "pyproject.toml").write_text('[tool.bench]\nsuites = ["a", "b/c"]\n')
    assert declared_suites(tmp_path, []) == [tmp_path / "a", tmp_path / "b" / "c"]
    assert declared_suites(tmp_path, [tmp_path / "ini"]) == [tmp_path / "ini"]  # the ini option wins
    (tmp_path / "pyproject.toml").write_text("[tool.bench]\nsuites = []\n")
    with pytest.raises(SuiteError, match=r"\[tool.bench\] needs suites"):
        declared_suites(tmp_path, [])
    (tmp_path / "pyproject.toml").write_text("[tool.bench\n")
    with pytest.raises(SuiteError, match="cannot be read"):
        declared_suites(tmp_path, [])


# -- a profile means the same under `bench` and plain pytest --------------------------------------


def _names_listed(stdout: str) -> set[str]:
    return set(re.findall(r"│ (\S+\[\S+\]) ", stdout))


def test_bench_list_and_pytest_collect_the_same_items_here() -> None:
    commands = [
        ("-m", "bench.cli", "list", "--profile", "quick"),
        ("-m", "pytest", "--collect-only", "-q", "--benchmark-only", "--bench-profile", "quick"),
    ]
    # Two collections of the real suites (pennylane and all), independent: side by side.
    with ThreadPoolExecutor(len(commands)) as pool:
        listed, collected = pool.map(lambda args: run_in(REPO, *args, timeout=600), commands)
    assert listed.returncode == 0, listed.stderr
    assert collected.returncode == 0, collected.stdout + collected.stderr
    from_pytest = {line.rsplit("::", 1)[-1] for line in collected.stdout.splitlines() if "::" in line}
    from_bench = _names_listed(listed.stdout)
    assert from_bench and from_bench == from_pytest
    assert not any("compile" in name and "dcgan" in name for name in from_pytest)  # `slow` left out


def test_bench_run_and_pytest_time_and_select_the_same_way(toy_project: Path) -> None:
    select = "n8 and cpu and (reference or same)"
    commands = [
        ("-m", "bench.cli", "run", "-k", select, "--json", "cli.json"),
        (
            "-m",
            "pytest",
            "--benchmark-only",
            "--bench-profile",
            "quick",
            "-k",
            select,
            "--benchmark-json=plain.json",
        ),
    ]
    # The two runs write different files and are compared by their options, not their timings:
    # side by side, one per core.
    with ThreadPoolExecutor(len(commands)) as pool:
        by_bench, by_pytest = pool.map(
            lambda args: run_in(toy_project, *args, behaviour="slow_case"), commands
        )
    assert by_bench.returncode == 0, by_bench.stderr
    assert by_pytest.returncode == 0, by_pytest.stdout + by_pytest.stderr
    cli, plain = (json.loads((toy_project / name).read_text()) for name in ("cli.json", "plain.json"))
    assert cli["bench"]["timing"] == plain["bench"]["timing"]
    quick = PROFILE_TIMING["quick"]
    assert cli["bench"]["timing"]["min_rounds"] == quick.min_rounds
    assert float(cli["bench"]["timing"]["max_time_s"]) == quick.max_time_s
    assert cli["bench"]["selection"] == plain["bench"]["selection"]
    assert plain["bench"]["selection"]["left_out"] == {"toy.heavy": ["slow"]}
    names = [{b["name"] for b in doc["benchmarks"]} for doc in (cli, plain)]
    assert names[0] == names[1] == {"toy.square[n8-cpu-reference]", "toy.square[n8-cpu-same]"}


def test_explicit_benchmark_options_and_markers_win(toy_project: Path) -> None:
    proc = run_in(
        toy_project,
        "-m",
        "pytest",
        "--benchmark-only",
        "-k",
        "n8 and cpu and reference",
        "-m",
        "",
        "--benchmark-min-rounds=7",
        "--benchmark-max-time=0.01",
        "--benchmark-json=given.json",
        behaviour="slow_case",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((toy_project / "given.json").read_text())
    assert doc["bench"]["timing"]["min_rounds"] == 7
    assert float(doc["bench"]["timing"]["max_time_s"]) == 0.01
    assert float(doc["bench"]["timing"]["min_time_s"]) == PROFILE_TIMING["quick"].min_time_s
    assert {b["extra_info"]["bench"]["case"] for b in doc["benchmarks"]} == {"toy.square", "toy.heavy"}
