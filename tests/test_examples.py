"""Each example in examples/ runs, against real processes, and does what it says."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from .support import TARGETS, Target, obj2yaml

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux examples")
EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
ENV = {**os.environ, "PYTHONPATH": str(EXAMPLES.parent)}


def run(name: str, *args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                          text=True, cwd=cwd, env=ENV, timeout=300, check=False)


def test_dump_hung_subprocess(tmp_path: pathlib.Path) -> None:
    result = run("dump_hung_subprocess.py", "0.5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "hung for 0.5s: dumped" in result.stdout and "exit status -9" in result.stdout
    obj2yaml(tmp_path / "hung.dmp")


def test_crash_reporter(tmp_path: pathlib.Path) -> None:
    result = run("crash_reporter.py", cwd=tmp_path)
    assert result.returncode == 1
    assert "crashed with RuntimeError: something went wrong; wrote" in result.stderr
    [dump] = list(tmp_path.glob("crash_*.dmp"))
    obj2yaml(dump)
    raw = dump.read_bytes()
    start = raw.index(b'{"type": "RuntimeError"')
    report = json.loads(raw[start:raw.index(b"}", raw.index(b'"traceback"')) + 1])
    assert report["message"] == "something went wrong"


def test_filter_modules_and_compare_snapshots(tmp_path: pathlib.Path) -> None:
    target = Target([sys.executable, str(TARGETS / "target.py")])
    try:
        result = run("filter_modules.py", str(target.pid), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert " 1 module(s)" in result.stdout
        obj2yaml(tmp_path / f"filtered_{target.pid}.dmp")
        result = run("compare_snapshots.py", str(target.pid), "0.5", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("threads: 5 -> 5") and "handles:" in result.stdout
        target.assert_untouched()
    finally:
        target.close()
