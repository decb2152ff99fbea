"""The Python-stacks stream (type ``StreamType.PYTHON_STACKS``, 0x534E5001): its one format.

The stream is compact UTF-8 JSON, one object::

    {"format": "snapshotdump.python-stacks", "version": 1,
     "python": "3.12.1",                        # the target's CPython version
     "gil_holder": 12345,                       # native tid holding the GIL, or null
     "threads": [{"thread_id": 12345,           # native (kernel) thread id
                  "name": "worker-1",           # threading name where CPython has it, or null
                  "holds_gil": true,
                  "frames": [{"function": "wait", "file": "/usr/lib/python3.12/threading.py",
                              "line": 331}]}]}  # innermost first

A reader accepts any ``version`` 1 stream and ignores keys it does not know; a change
that breaks this is a new version.  docs/stacks.md documents it for other tools.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from .format import DumpFormatError

FORMAT = "snapshotdump.python-stacks"
VERSION = 1


@dataclasses.dataclass(frozen=True)
class PythonFrame:
    """One Python frame: the code object's (qualified) name, its file and the current line."""

    function: str
    file: str
    line: int


@dataclasses.dataclass(frozen=True)
class PythonThread:
    """A thread's Python stack: native thread id, OS name, GIL, frames innermost first."""

    thread_id: int
    name: str | None
    holds_gil: bool
    frames: list[PythonFrame]  # innermost first


@dataclasses.dataclass(frozen=True)
class PythonStacks:
    """The whole stream: the CPython version, the GIL holder's thread id, every thread."""

    python: str
    gil_holder: int | None
    threads: list[PythonThread]


def encode(stacks: PythonStacks) -> bytes:
    payload: dict[str, Any] = {"format": FORMAT, "version": VERSION, **dataclasses.asdict(stacks)}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode(data: bytes) -> PythonStacks:
    """Parse a stream; a malformed one raises DumpFormatError."""
    try:
        payload = json.loads(data.decode("utf-8"))
        if payload.get("format") != FORMAT or payload.get("version") != VERSION:
            raise DumpFormatError(f"the Python-stacks stream is not {FORMAT} version {VERSION}")
        threads = [PythonThread(int(t["thread_id"]), _optional_str(t.get("name")),
                                bool(t.get("holds_gil", False)),
                                [PythonFrame(str(f["function"]), str(f["file"]), int(f["line"]))
                                 for f in t["frames"]])
                   for t in payload["threads"]]
        holder = payload.get("gil_holder")
        return PythonStacks(str(payload["python"]), None if holder is None else int(holder),
                            threads)
    except DumpFormatError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise DumpFormatError(f"the Python-stacks stream is malformed: {exc!r}") from None


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)
