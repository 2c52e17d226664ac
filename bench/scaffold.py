"""`bench init`: a commented suite file for the user's function, and the project's [tool.bench] table."""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import SelectionError, SuiteError

_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
DEFAULT_FOLDER = "suites"


@dataclass(frozen=True)
class Scaffold:
    """What `bench init` did: the suite file it wrote and what it says about the declaration."""

    suite_file: Path
    declaration: str


@dataclass(frozen=True)
class _Target:
    """The function a suite is written for (None: the built-in example)."""

    module: str
    attribute: str
    arguments: tuple[str, ...]

    @property
    def callable_name(self) -> str:
        return self.attribute.rsplit(".", 1)[-1]


def project_root(start: Path) -> Path:
    """The nearest folder from ``start`` up that holds a pyproject.toml, else ``start`` itself."""
    start = start.resolve()
    return next((p for p in (start, *start.parents) if (p / "pyproject.toml").is_file()), start)


def write_scaffold(cwd: Path, path: Path | None, function: str | None, *, force: bool = False) -> Scaffold:
    """Write the suite file (refusing to overwrite unless ``force``) and declare its folder."""
    root = project_root(cwd)
    target = _target(function, root) if function else None
    stem = _snake(target.module.rsplit(".", 1)[-1]) if target else "example"
    if path is None:
        suite_file = root / DEFAULT_FOLDER / f"{stem}.py"
    else:
        given = path if path.is_absolute() else cwd / path
        suite_file = given / f"{stem}.py" if given.is_dir() or not given.suffix else given
    suite_file = suite_file.resolve()
    if suite_file.suffix != ".py":
        raise SuiteError(f"a suite file is a Python file ending in .py, got {suite_file}")
    if suite_file.name.startswith("_"):
        raise SuiteError(f"{suite_file.name}: suite files with a leading underscore are not collected")
    if not suite_file.is_relative_to(root):
        raise SuiteError(f"{suite_file} is outside the project ({root}); suites live inside it")
    if suite_file.exists() and not force:
        raise SuiteError(f"{suite_file} exists; pass --force to overwrite it, or name another PATH")
    suite_file.parent.mkdir(parents=True, exist_ok=True)
    suite_file.write_text(suite_source(target, stem))
    return Scaffold(suite_file, declare(root, suite_file.parent))


def _target(spec: str, root: Path) -> _Target:
    if not _SPEC.match(spec):
        raise SelectionError(f"--function takes MODULE:CALLABLE, e.g. mymodel:forward; got {spec!r}")
    module_name, attribute = spec.split(":", 1)
    added = str(root) not in sys.path
    if added:
        sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise SelectionError(
            f"cannot import {module_name!r} ({type(exc).__name__}: {exc}); bench init imports it to read "
            f"the function's arguments: run it from the project folder, with the module importable there"
        ) from None
    finally:
        if added:
            sys.path.remove(str(root))
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise SelectionError(f"{module_name} has no {attribute!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise SelectionError(f"{spec} is not callable")
    return _Target(module_name, attribute, _required_arguments(obj))


def _required_arguments(fn: Callable[..., Any]) -> tuple[str, ...]:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return ()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(
        name
        for name, p in signature.parameters.items()
        if p.kind in kinds and p.default is inspect.Parameter.empty
    )


def _snake(text: str) -> str:
    text = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", text).lower()
    text = re.sub(r"[^a-z0-9_]+", "_", text).strip("_")
    return text if text[:1].isalpha() else f"m_{text}"


def declare(root: Path, folder: Path) -> str:
    """Add ``[tool.bench] suites`` for ``folder`` to the project's pyproject.toml where it has none;
    otherwise say what the user has to add. Returns what to tell the user."""
    relative = folder.relative_to(root).as_posix()
    pyproject = root / "pyproject.toml"
    table = f'[tool.bench]\nsuites = ["{relative}"]\n'
    if not pyproject.exists():
        pyproject.write_text(table)
        return f"created {pyproject} declaring the suites folder:\n\n{table}"
    text = pyproject.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{pyproject} is not valid TOML ({exc}); fix it, then add:\n\n{table}") from None
    bench_table = data.get("tool", {}).get("bench")
    ini = data.get("tool", {}).get("pytest", {}).get("ini_options", {}).get("bench_suites")
    declared = bench_table.get("suites") if isinstance(bench_table, dict) else None
    if declared is None and ini is None and bench_table is None:
        separator = "" if text.endswith("\n\n") or not text else ("\n" if text.endswith("\n") else "\n\n")
        pyproject.write_text(text + separator + table)
        return f"added to {pyproject}:\n\n{table}"
    folders = [declared] if isinstance(declared, str) else list(declared or ini or [])
    if any(folder.is_relative_to((root / str(f)).resolve()) for f in folders):
        return f"{pyproject} already declares {relative} among its suites"
    where = "[tool.bench] suites" if bench_table is not None else "[tool.pytest.ini_options] bench_suites"
    return f"add {relative!r} to {where} in {pyproject}, or the file will not be collected"


_HEADER = '''"""Benchmark cases for {what} (written by `bench init`; edit it to fit).

`bench list` shows the items these cases give, `bench run` checks and times them and writes the
results and a report, `pytest --benchmark-only` runs the same items under pytest.
"""

from __future__ import annotations

import torch

from bench import Case, Grid, Tolerance, register
'''

_CASE = """

register(
    Case(
        # "family.case" in lower_snake_case; items are named like {name}[batch8-dim64-cpu-reference]
        name="{name}",
        setup=setup,
        reference={reference},  # what every variant is checked against and compared with
        # name -> implementation; add as many as you like. Each is called as fn(**setup's dict).
        variants={{"{variant}": {variant_fn}}},
        # "forward" times calls under no_grad; "forward_backward" also backpropagates the output
        # (its sum; give setup's tensors requires_grad); "train_step" times the call as it is.
        mode="forward",
        # One item per combination of the grid's values; --profile chooses the grid (default: quick).
        grids={{
            "quick": Grid(batch=[8], dim=[64]),  # small: the whole suite in minutes, for CI
            "full": Grid(batch=[8, 64], dim=[64, 256]),  # the sizes you care about
        }},
        # An exact variant must match the reference within |a - b| <= atol + rtol * |b|, else it
        # fails and is not timed.
        tolerance=Tolerance(rtol=1e-5, atol=1e-6),
        # The throughput unit and how many of them one call processes (shown in the tables).
        work=("samples", lambda p: p["batch"]),
        # CUDA items are listed as skipped where CUDA is not usable.
        devices=("cpu", "cuda"),
    )
)
"""


def suite_source(target: _Target | None, stem: str) -> str:
    """The text of a suite file for ``target`` (or the self-contained example)."""
    if target is None:
        return _example_source()
    fn = target.callable_name
    arguments = target.arguments or ("x",)
    lines = ",\n".join(
        f'        "{a}": torch.randn(params["batch"], params["dim"], device=device)' for a in arguments
    )
    signature = ", ".join(arguments)
    name = f"{stem}.{_snake(fn)}"
    imported = target.attribute.split(".", 1)[0]
    reference = target.attribute if "." in target.attribute else fn
    return (
        _HEADER.format(what=f"{target.module}.{target.attribute}")
        + f"from {target.module} import {imported}\n"
        + f'''

def setup(params, device):
    """The inputs for one grid point on one device: {reference}'s arguments, by name.

    Called once per (grid point, device) after torch.manual_seed(0): the reference and every
    variant get the same inputs. ``params`` is one point of the grids below, e.g. {{"batch": 8, "dim": 64}}.
    """
    # TODO: build what {reference} really takes (shapes, dtypes, a model built here and passed in).
    return {{
{lines},
    }}


def {fn}_fast({signature}):
    """TODO: your optimized version. It is checked against {reference} before it is timed."""
    return {reference}({", ".join(f"{a}={a}" for a in arguments)})
'''
        + _CASE.format(name=name, reference=reference, variant="fast", variant_fn=f"{fn}_fast")
    )


def _example_source() -> str:
    return (
        _HEADER.format(what="an example: a matrix product two ways")
        + '''

def setup(params, device):
    """The inputs for one grid point on one device: the implementations' arguments, by name.

    Called once per (grid point, device) after torch.manual_seed(0): the reference and every
    variant get the same inputs. ``params`` is one point of the grids below.
    """
    return {
        "x": torch.randn(params["batch"], params["dim"], device=device),
        "w": torch.randn(params["dim"], params["dim"], device=device),
    }


def reference(x, w):
    """TODO: replace with your function (import it: `from mypackage import forward`)."""
    return torch.relu(x @ w)


def fused(x, w):
    """TODO: your optimized version. It is checked against the reference before it is timed."""
    return torch.clamp_min(torch.mm(x, w), 0)
'''
        + _CASE.format(name="example.relu_matmul", reference="reference", variant="fused", variant_fn="fused")
    )
