"""Profiler traces: safe paths from hostile names, Chrome-trace JSON that torch-tb-profiler parses."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch

from bench.calls import Caller
from bench.errors import SelectionError
from bench.profiling import record_trace, safe_name, trace_dir


@pytest.mark.parametrize(
    "hostile",
    ["../../etc/passwd", "..", "a/b\\c", "/absolute", "....//x", "名前 with spaces", ".hidden", "a\x00b"],
)
def test_hostile_names_stay_inside_the_root(tmp_path: Path, hostile: str) -> None:
    try:
        target = trace_dir(tmp_path, hostile, hostile)
    except SelectionError:
        return  # refusing is fine too
    assert tmp_path.resolve() in target.parents
    for part in target.relative_to(tmp_path.resolve()).parts:
        assert part not in (".", "..") and "/" not in part and "\\" not in part and not part.startswith(".")


def test_names_that_clean_to_nothing_are_refused() -> None:
    with pytest.raises(SelectionError, match="no usable file name"):
        safe_name("../..")
    assert safe_name("paco2.pac_loss") == "paco2.pac_loss"


def test_trace_is_chrome_json_and_loads_in_torch_tb_profiler(tmp_path: Path) -> None:
    x = torch.randn(64, 64, requires_grad=True)
    caller = Caller(lambda x: (x @ x).relu().sum(), {"x": x}, "forward_backward", "cpu")
    result = record_trace(caller, tmp_path / "case" / "variant", worker="n64-cpu")
    assert len(result.files) == 1
    trace = json.loads(result.files[0].read_text())
    assert trace["traceEvents"]  # Chrome trace format: what Perfetto and chrome://tracing open
    assert any(row.name == "aten::mm" for row in result.top)

    from torch_tb_profiler.profiler.data import RunProfileData
    from torch_tb_profiler.profiler.run_generator import RunGenerator

    with tempfile.TemporaryDirectory() as cache:
        data = RunProfileData.parse("n64-cpu", None, str(result.files[0]), cache)
        profile = RunGenerator("n64-cpu", None, data).generate_run_profile()
    assert profile.views  # the plugin built its overview/operator views from our trace
