"""MADV_DONTFORK memory in a clone: the target's own madvise(MADV_DOFORK) around the clone.

A fork leaves out what the program marked MADV_DONTFORK (node's whole V8 heap), so a
clone would silently lack it.  While the threads are stopped, madvise(MADV_DOFORK) is
injected for each such range, the clone is made, and madvise(MADV_DONTFORK) puts the
mark back.  The target is stopped throughout, so it never sees the change.

The marks come back even if the tracer dies between the calls.  Before a range is made
forkable, the injecting thread is given registers that first call
madvise(range, MADV_DONTFORK) and then rt_sigreturn to where it was (inject.pending_call):
a chain of such undos, one frame per range, each returning into the previous one, the
first into the thread's own registers and signal mask.  The calls of this module and the
clone run on top of that chain, so a thread let go by a dead tracer, wherever it is in
them, finishes its call, undoes every range (an undo of a range not yet changed does
nothing), and is back where it was.  When we live, the undos are made one by one the
same way, each with the next frame down as its return.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from types import ModuleType

from . import inject, ptrace

MADV_DONTFORK = 10
MADV_DOFORK = 11
_SYS_MADVISE = {"x86_64": 28}


class Forkable:
    """What forkable() did: the registers to make the clone call with, the problems met."""

    def __init__(self, saved: bytes) -> None:
        self.saved = saved
        self.problems: list[str] = []
        # The undo chain: (registers, frame address, bytes the frame replaced, range).
        self.chain: list[tuple[bytes, int, bytes, tuple[int, int]]] = []

    def give_back(self, child: int) -> None:
        """Give the clone's stack back the bytes the undo frames replaced."""
        for _registers, low, earlier, _range in reversed(self.chain):
            ptrace.write_memory(child, low, earlier)


@contextlib.contextmanager
def forkable(arch: ModuleType, tid: int, saved: bytes, at: int,
             ranges: list[tuple[int, int]]) -> Iterator[Forkable]:
    """Within the block a fork of the target takes *ranges* too; yields what was done
    (its problems empty when every range was made forkable): make the clone call with
    its saved registers.  Calls go through the trampolines at *at* (Session.injecting)."""
    made = Forkable(saved)
    number = _SYS_MADVISE.get(arch.MACHINE)
    if not ranges:
        yield made
        return
    if number is None:
        made.problems.append(f"no madvise number for {arch.MACHINE}")
        yield made
        return
    mask = ptrace.get_sigmask(tid)
    try:
        for start, end in ranges:
            try:
                undo, low, earlier = inject.pending_call(
                    arch, tid, made.saved, mask if not made.chain else ptrace.ALL_SIGNALS,
                    at, number, (start, end - start, MADV_DONTFORK))
            except inject.InjectionRefused as exc:
                made.problems.append(f"MADV_DONTFORK range at {start:#x} left out: "
                                     f"{exc.strerror}")
                continue
            made.chain.append((undo, low, earlier, (start, end)))
            # Registers first, then the mask (as inject.run does): a death in between
            # leaves a thread that undoes with its own mask, which is harmless.
            arch.write_registers(tid, undo)
            ptrace.set_sigmask(tid, ptrace.ALL_SIGNALS)
            made.saved = undo
            error = _advise(arch, tid, undo, at, number, start, end, MADV_DOFORK)
            if error:
                made.problems.append(f"madvise(MADV_DOFORK) at {start:#x}: {error}")
        yield made
    finally:
        _unwind(arch, tid, saved, at, mask, number, made)


def _unwind(arch: ModuleType, tid: int, saved: bytes, at: int, mask: int, number: int,
            made: Forkable) -> None:
    """Undo the ranges last first, each call returning to the state below it in the chain;
    at the end the thread has its registers, mask and stack bytes back."""
    while made.chain:
        _undo, low, earlier, (start, end) = made.chain.pop()
        below = made.chain[-1][0] if made.chain else saved
        if not made.chain:
            ptrace.set_sigmask(tid, mask)  # the last frame returns to the thread's own mask
        error = _advise(arch, tid, below, at, number, start, end, MADV_DONTFORK)
        if error:
            made.problems.append(f"madvise(MADV_DONTFORK) at {start:#x} failed: {error}")
        made.saved = below
        ptrace.write_memory(tid, low, earlier)


def _advise(arch: ModuleType, tid: int, then: bytes, at: int, number: int, start: int,
            end: int, advice: int) -> str | None:
    result = inject.run(arch, tid, then, at, arch.SYSCALL_TRAP, number,
                        (start, end - start, advice))
    if result.value < 0:
        return os.strerror(-result.value)
    return None
