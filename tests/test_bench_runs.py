"""The benchmark runs end to end at a tiny size (its figures are for people, not assertions)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from .conftest import require_tool

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux benchmark")
ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_bench_runs_on_a_tiny_target(tmp_path: pathlib.Path) -> None:
    require_tool("gcc")
    require_tool("gcore")
    markdown = tmp_path / "performance.md"
    markdown.write_text("# Performance\n<!-- bench -->\nold table\n")
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "pause.py"), "--sizes", "8", "--runs", "1",
         "--markdown", str(markdown)], capture_output=True, text=True, timeout=600,
        env={**os.environ, "BENCH_DIR": str(tmp_path)}, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| 8 MiB |" in result.stdout and "n/a" not in result.stdout.split("| 8 MiB |")[1]
    text = markdown.read_text()
    assert text.startswith("# Performance\n<!-- bench -->\nMedians of 1 run(s)")
    assert "old table" not in text and "| 8 MiB |" in text
