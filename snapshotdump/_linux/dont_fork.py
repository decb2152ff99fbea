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
nothing), and is back where it was.  When we live, the thread runs the undos the same
way, one call and its rt_sigreturn at a time (inject.run_pending).  Only the first frame
holds the whole FPU state; the others hold the legacy area, to keep the chain short.
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
        for start, end in _joined(ranges):
            # Only the first frame, back to the thread itself, needs its FPU state.
            first = not made.chain
            try:
                undo, low, earlier = inject.pending_call(
                    arch, tid, made.saved, mask if first else ptrace.ALL_SIGNALS,
                    at, number, (start, end - start, MADV_DONTFORK), fpu=first)
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
        _unwind(arch, tid, saved, made)


def _joined(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Adjacent ranges as one: one madvise call and one frame for each run."""
    joined: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if joined and joined[-1][1] == start:
            joined[-1] = (joined[-1][0], end)
        else:
            joined.append((start, end))
    return joined


def _unwind(arch: ModuleType, tid: int, saved: bytes, made: Forkable) -> None:
    """Undo the ranges last first: the thread runs its chain itself, one pending call and
    its rt_sigreturn at a time; at the end it has its registers, mask and FPU state back
    from the first frame, and its stack bytes from us."""
    while made.chain:
        undo, low, earlier, (start, _end) = made.chain.pop()
        arch.write_registers(tid, undo)  # where it is already, unless a call failed midway
        result = inject.run_pending(arch, tid)
        if result < 0:
            made.problems.append(f"madvise(MADV_DONTFORK) at {start:#x} failed: "
                                 f"{os.strerror(-result)}")
        made.saved = made.chain[-1][0] if made.chain else saved
        ptrace.write_memory(tid, low, earlier)


def _advise(arch: ModuleType, tid: int, then: bytes, at: int, number: int, start: int,
            end: int, advice: int) -> str | None:
    result = inject.run(arch, tid, then, at, arch.SYSCALL_TRAP, number,
                        (start, end - start, advice))
    if result.value < 0:
        return os.strerror(-result.value)
    return None
