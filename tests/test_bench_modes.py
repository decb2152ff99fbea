"""bench/modes.py runs end to end at a tiny size (its figures are for people, not assertions)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from .conftest import require_tool

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux benchmark")
ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_modes_bench_runs_on_a_tiny_target(tmp_path: pathlib.Path) -> None:
    require_tool("gcc")
    require_tool("gcore")
    markdown = tmp_path / "performance.md"
    markdown.write_text("# Performance\n<!-- modes -->\nstale table\n<!-- /modes -->\ntail\n")
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "modes.py"), "--size", "16", "--normal-size",
         "16", "--runs", "1", "--markdown", str(markdown)], capture_output=True, text=True,
        timeout=900, env={**os.environ, "BENCH_DIR": str(tmp_path)}, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    for row in ("NORMAL dump, stack-only capture", "FULL dump, pre-copy", "| gcore |",
                "| precopy |", "| normal (stacks) |"):
        assert row in result.stdout, row
    assert "n/a" not in result.stdout
    text = markdown.read_text()
    assert text.startswith("# Performance\n<!-- modes -->\nMedians of 1 run(s)")
    assert "stale table" not in text and text.endswith("<!-- /modes -->\ntail\n")
