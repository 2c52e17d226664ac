"""Which cases exist: the one module-level registry, filled by the suites' ``register`` calls."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, ModuleType

from bench.case import Case
from bench.errors import BenchError, CaseDefinitionError, SelectionError, SuiteError


class Registry:
    """Cases by name, remembering which module (and file) declared each."""

    def __init__(self) -> None:
        self._cases: dict[str, Case] = {}
        self._modules: dict[str, str] = {}
        self._files: dict[str, Path | None] = {}

    def add(self, case: Case, module: str, file: str | Path | None = None) -> Case:
        if not isinstance(case, Case):
            raise CaseDefinitionError(f"register() takes a Case, got {type(case).__name__}")
        path = Path(file).resolve() if file else None
        owner, owner_file = self._modules.get(case.name), self._files.get(case.name)
        if owner is not None:
            # One file imported under two names (by path and as a package module) declares the
            # same cases twice; two files declaring one name is a mistake.
            same = owner == module if path is None or owner_file is None else owner_file == path
            if not same:
                raise CaseDefinitionError(
                    f"case {case.name!r} is declared twice: in {owner_file or owner} and in {path or module}"
                )
            if path is None and owner == module:
                path = owner_file
        self._cases[case.name] = case
        self._modules[case.name] = module
        self._files[case.name] = path
        return case

    def get(self, name: str) -> Case:
        try:
            return self._cases[name]
        except KeyError:
            known = ", ".join(sorted(self._cases)) or "none registered"
            raise SelectionError(f"no case named {name!r} (known: {known})") from None

    def from_module(self, module: str) -> list[Case]:
        return [self._cases[n] for n, m in self._modules.items() if m == module]

    def from_file(self, path: Path) -> list[Case]:
        path = path.resolve()
        return [self._cases[n] for n, f in self._files.items() if f == path]

    def importable_modules(self) -> list[str]:
        """The modules that declared cases and that another interpreter can import by name (not
        those imported by path under a name of their own, nor a script's ``__main__``)."""
        names = {m for m in self._modules.values() if m != "__main__" and not m.startswith(PATH_PREFIX)}
        return sorted(names)

    def __iter__(self) -> Iterator[Case]:
        return iter(list(self._cases.values()))

    def __len__(self) -> int:
        return len(self._cases)


REGISTRY = Registry()
# The module name of a suite imported by path (``_import``).
PATH_PREFIX = "bench_suite_"


def register(case: Case) -> Case:
    """Add a case to the registry; call it at the top level of a suite file.

    The case belongs to the module whose top-level code is running (the suite file being
    imported), even when a helper function of another module makes the call.
    """
    caller = sys._getframe(1)
    frame: FrameType | None = caller
    while frame is not None and frame.f_code.co_name != "<module>":
        frame = frame.f_back
    namespace = (frame or caller).f_globals
    return REGISTRY.add(case, namespace.get("__name__", "__main__"), namespace.get("__file__"))


def load_suite(path: Path, root: Path) -> list[Case]:
    """Import a suite file and return the cases it declares.

    A file already imported (by a test, or as a timer's module) is not imported again. A file
    inside a package importable from ``sys.path`` is imported by its dotted name, so relative
    imports and pickling by module name work; any other file is imported by path under a name of
    its own. The project root goes on ``sys.path`` (at the end) so that suites import its code.
    """
    path = path.resolve()
    if _loaded(path) is None:
        if str(root) not in sys.path and str(root.resolve()) not in sys.path:
            sys.path.append(str(root))
        try:
            _import(path)
        except BenchError:
            raise
        except Exception as exc:
            raise SuiteError(f"{_shown(path, root)} failed to import: {_describe(exc, path)}") from exc
    cases = REGISTRY.from_file(path)
    if not cases:
        raise SuiteError(
            f"{_shown(path, root)} registers no cases: a suite file calls bench.register(Case(...)) at "
            "its top level (name helper modules with a leading underscore to keep them out of collection)"
        )
    return cases


def _loaded(path: Path) -> ModuleType | None:
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and file.endswith(path.name) and Path(file).resolve() == path:
            return module
    return None


def _package_name(path: Path) -> str | None:
    """The dotted name of a file inside packages whose top folder's parent is on sys.path."""
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    if len(parts) == 1:
        return None
    entries = {Path(p or ".").resolve() for p in sys.path}
    return ".".join(parts) if folder in entries else None


def _import(path: Path) -> ModuleType:
    name = _package_name(path)
    if name is not None:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
                raise  # the suite's own import failed
        else:
            if Path(module.__file__ or "").resolve() == path:
                return module
            # Another package of that name shadows the project's: import the file by path.
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    unique = f"{PATH_PREFIX}{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(unique, path)
    if spec is None or spec.loader is None:
        raise SuiteError(f"{path} cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[unique]
        raise
    return module


def _shown(path: Path, root: Path) -> str:
    return str(path.relative_to(root.resolve())) if path.is_relative_to(root.resolve()) else str(path)


def _describe(exc: Exception, path: Path) -> str:
    """The error and the line of the suite file (or the innermost line) it came from."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = next((f for f in reversed(frames) if Path(f.filename).resolve() == path), None)
    where = where or (frames[-1] if frames else None)
    text = "".join(traceback.format_exception_only(exc)).strip()
    return f"{text}" + (f" (at {where.filename}:{where.lineno})" if where else "")
