"""Which cases exist: the one module-level registry, filled by the suites' ``register`` calls."""

from __future__ import annotations

import sys
from collections.abc import Iterator

from bench.case import Case
from bench.errors import CaseDefinitionError, SelectionError


class Registry:
    """Cases by name, remembering which module declared each."""

    def __init__(self) -> None:
        self._cases: dict[str, Case] = {}
        self._modules: dict[str, str] = {}

    def add(self, case: Case, module: str) -> Case:
        if not isinstance(case, Case):
            raise CaseDefinitionError(f"register() takes a Case, got {type(case).__name__}")
        owner = self._modules.get(case.name)
        if owner is not None and owner != module:
            raise CaseDefinitionError(f"case {case.name!r} is declared twice: in {owner} and in {module}")
        self._cases[case.name] = case
        self._modules[case.name] = module
        return case

    def get(self, name: str) -> Case:
        try:
            return self._cases[name]
        except KeyError:
            known = ", ".join(sorted(self._cases)) or "none registered"
            raise SelectionError(f"no case named {name!r} (known: {known})") from None

    def from_module(self, module: str) -> list[Case]:
        return [self._cases[n] for n, m in self._modules.items() if m == module]

    def __iter__(self) -> Iterator[Case]:
        return iter(list(self._cases.values()))

    def __len__(self) -> int:
        return len(self._cases)


REGISTRY = Registry()


def register(case: Case) -> Case:
    """Add a case to the registry; call it at the top level of a module in ``suites/``."""
    module = sys._getframe(1).f_globals.get("__name__", "__main__")
    return REGISTRY.add(case, module)
