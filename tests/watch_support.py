"""What the watch tests share: the watch target, built once, and the CLI run as a user would."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from .conftest import require_tool

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCE = pathlib.Path(__file__).parent / "targets" / "watch_target.c"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                                 os.environ.get("PYTHONPATH")]))}


@pytest.fixture(scope="session")
def watch_binary(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """tests/targets/watch_target.c, built once per session under a name no other process has."""
    compiler = require_tool("gcc", "cc")
    binary = tmp_path_factory.mktemp("watch-target") / f"wtarget{os.getpid()}"
    subprocess.run([compiler, "-O0", "-g", "-pthread", "-o", str(binary), str(SOURCE)],
                   check=True)
    return binary


def watch_cli(*args: str, cwd: pathlib.Path | None = None) -> subprocess.Popen[str]:
    """`snapshotdump watch ARGS` started as a user would start it; stdout and stderr piped."""
    return subprocess.Popen([sys.executable, "-m", "snapshotdump", "watch", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd or ROOT, env=ENV)


def wait_watching(process: subprocess.Popen[str]) -> str:
    """The CLI's first line on stderr, "snapshotdump: watching pid ...": it holds the target now."""
    assert process.stderr is not None
    line = process.stderr.readline()
    assert "watching pid" in line, line + process.stderr.read()
    return line
