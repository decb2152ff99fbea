"""The Windows suite: runs inside a Windows CPython (under Wine here, natively on Windows CI).

On Linux, pytest collects nothing from this folder; scripts/wine-tests runs it under Wine.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

if sys.platform != "win32":
    collect_ignore_glob = ["test_*.py"]

HERE = pathlib.Path(__file__).parent


def pss_available() -> bool:
    import snapshotdump
    from snapshotdump._windows import pss

    try:
        pss.function("PssCaptureSnapshot")
    except snapshotdump.SnapshotUnsupportedError:
        return False
    return True


class Child:
    """A Windows Python child with a marker and two extra threads; killed at the end."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, str(HERE / "child.py")],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        words = self.process.stdout.readline().split()
        assert words and words[0] == "READY", words
        self.pid = int(words[1])
        self.marker_address = int(words[2], 16)
        self.worker_ids = [int(w) for w in words[3:]]
        self.marker = b"SNAPSHOTDUMP-WINE-MARKER-0123456789"

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def child() -> Iterator[Child]:
    process = Child()
    try:
        yield process
        assert process.process.poll() is None, "the child died"
    finally:
        process.close()


@pytest.fixture
def dumps(request: pytest.FixtureRequest) -> pathlib.Path:
    """A folder for this test's dumps; SNAPSHOTDUMP_DUMPS keeps them for obj2yaml on Linux."""
    root = os.environ.get("SNAPSHOTDUMP_DUMPS")
    base = pathlib.Path(root) if root else pathlib.Path(tempfile.mkdtemp())
    folder = base / request.node.name.replace("[", "_").replace("]", "")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def read_dump(path: pathlib.Path) -> Any:
    """Parse with skelsec's `minidump`, which rejects Wine dbghelp's private stream 0xFFF0."""
    import logging

    from minidump import directory
    from minidump.minidumpfile import MinidumpFile

    stream_type: Any = directory.MINIDUMP_STREAM_TYPE
    stream_type._missing_ = classmethod(lambda cls, value: cls.UnusedStream)
    logging.getLogger().setLevel(logging.CRITICAL)
    return MinidumpFile.parse(str(path))
