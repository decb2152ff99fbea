"""MADV_DONTFORK memory in a clone: the target's own madvise(MADV_DOFORK) around the clone.

A fork leaves out what the program marked MADV_DONTFORK (node's whole V8 heap), so a
clone would silently lack it.  While the threads are stopped, madvise(MADV_DOFORK) is
injected for each such range, the clone is made, and madvise(MADV_DONTFORK) puts the
mark back.  The target is stopped throughout, so it never sees the change; only a
dumper killed by SIGKILL between the two calls would leave the marks off.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from . import inject

if TYPE_CHECKING:
    from .tracer import Session

MADV_DONTFORK = 10
MADV_DOFORK = 11
_SYS_MADVISE = {"x86_64": 28}


@contextlib.contextmanager
def forkable(session: Session, tid: int, saved: bytes, at: int,
             ranges: list[tuple[int, int]]) -> Iterator[list[str]]:
    """Within the block a fork of the target takes *ranges* too; yields the problems met
    (empty when every range was made forkable)."""
    problems: list[str] = []
    done: list[tuple[int, int]] = []
    try:
        for start, end in ranges:
            error = _advise(session, tid, saved, at, start, end, MADV_DOFORK)
            if error:
                problems.append(f"madvise(MADV_DOFORK) at {start:#x}: {error}")
            else:
                done.append((start, end))
        yield problems
    finally:
        for start, end in done:
            error = _advise(session, tid, saved, at, start, end, MADV_DONTFORK)
            if error:
                problems.append(f"madvise(MADV_DONTFORK) at {start:#x} failed: {error}")


def _advise(session: Session, tid: int, saved: bytes, at: int, start: int, end: int,
            advice: int) -> str | None:
    number = _SYS_MADVISE.get(session.arch.MACHINE)
    if number is None:
        return f"no madvise number for {session.arch.MACHINE}"
    try:
        result = inject.run(session.arch, tid, saved, at, session.arch.SYSCALL_TRAP, number,
                            (start, end - start, advice))
    except OSError as exc:
        return str(exc)
    if result.signals and not session.freezer.stopped.get(tid):
        session.freezer.stopped[tid] = result.signals[0]
    if result.value < 0:
        return os.strerror(-result.value)
    return None
