"""Harness timings agree with timeit in the same process (loosely here; tools/fidelity.py is strict)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / "tools" / "fidelity.py"


def test_harness_median_is_close_to_timeit() -> None:
    proc = subprocess.run(
        [sys.executable, str(TOOL), "--tolerance", "0.25", "--max-time", "0.5"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fidelity.matmul" in proc.stdout and "fidelity.python" in proc.stdout
