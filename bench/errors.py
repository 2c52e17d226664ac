"""The harness's error tree: every error a user can cause is a BenchError with a clear message."""

from __future__ import annotations


class BenchError(Exception):
    """Base of every error the harness raises on purpose."""


class CaseDefinitionError(BenchError):
    """A case, variant, grid, tolerance or claim was declared wrongly."""


class SelectionError(BenchError):
    """A selection (case name, -k expression, profile, variant) matched nothing or is unknown."""


class DeviceUnavailableError(BenchError):
    """A device was asked for explicitly but is not usable on this machine."""


class ResultsError(BenchError):
    """A results file is unreadable, malformed, or of an unknown schema."""


class CaseTimeout(BenchError):
    """A benchmark item ran past its case's time limit."""


class MismatchError(BenchError):
    """A variant's output does not match its reference within tolerance."""


class RulesError(BenchError):
    """A gate rules file is unreadable or declares unknown or invalid settings."""


class SuiteError(BenchError):
    """A project's declared suites cannot be used: a bad declaration, a missing folder, a suite
    file that fails to import or registers no case."""
