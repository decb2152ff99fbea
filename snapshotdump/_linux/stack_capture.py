"""Stack-only capture (CaptureMemory.STACKS): no clone, so the pause does not grow with RSS.

While the threads are stopped, only what a NORMAL dump reads and the target could change
is copied: each thread's stack, and the dynamic linker's list of modules (r_debug and its
link_maps, which dlopen rewrites).  The threads then run again.  Everything else a NORMAL
dump reads is either in /proc or in read-only file mappings (ELF headers, build ids),
which are read from the live target while the dump is written, as they cannot change
without the target remapping them.
"""

from __future__ import annotations

import bisect
import dataclasses
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..minidump import elf
from ..minidump.memory import MemoryReader
from . import arch as arch_module
from . import procfs, ptrace
from .capture_data import CaptureData
from .dump import python_stacks
from .dump.plan import stack_range
from .procfs import Mapping, parse_maps

if TYPE_CHECKING:
    from .session import Session

Registers = dict[int, tuple[bytes, bytes, bytes | None]]


def capture(session: Session) -> tuple[CaptureData, int]:
    """Stop, copy the stacks, resume: CaptureData (memory "stacks") and the live target's
    /proc/PID/mem, for the few reads of read-only file mappings."""
    mem_fd = os.open(f"/proc/{session.pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
    try:
        walk_python = python_stacks_walk(session.pid, mem_fd)
        walked: list[python_stacks.Found] = []
        stopped = stop(session, mem_fd, lambda registers, _maps: walked.append(
            walk_python(registers)))
        data = resume(session, stopped)
        data.python_stacks = walked[0] if walked else None
    except BaseException:
        os.close(mem_fd)
        session.release()
        raise
    return data, mem_fd


def python_stacks_walk(pid: int, mem_fd: int) -> Callable[[Registers], python_stacks.Found]:
    """Find the CPython (reading its files) before the stop; the walk returned reads only
    the stopped target's memory, so its frames agree with the registers."""
    try:
        runtime = python_stacks.find_runtime(
            python_stacks.modules_in_maps(parse_maps(procfs.read_text(f"/proc/{pid}/maps"))))
    except OSError:
        runtime = None

    def read(address: int, size: int) -> bytes | None:
        return _pread(mem_fd, address, size)

    def read_counted(address: int, size: int) -> bytes | None:
        ptrace._step()  # so that a kill test's helper can die mid-walk
        return _pread(mem_fd, address, size)

    def walk(registers: Registers) -> python_stacks.Found:
        if runtime is None:
            return None, None
        arch = arch_module.current()
        counted = ptrace._TEST_DEATH in os.environ
        return python_stacks.walk(runtime, read_counted if counted else read, {
            int(getattr(arch.registers(regs[0]), "fs_base", 0)): tid
            for tid, regs in registers.items()})

    return walk


@dataclasses.dataclass
class Stopped:
    """What was taken while the threads were stopped; the rest is read after resume()."""

    registers: Registers
    maps_text: str
    copied: list[tuple[int, bytes]]
    host: dict[str, bytes]
    first_stop_ns: int


def stop(session: Session, mem_fd: int,
         while_stopped: Callable[[Registers, list[Mapping]], None] | None = None,
         fresh_maps: bool = False) -> Stopped:
    """Stop every thread and copy what a NORMAL dump needs; the threads stay stopped.

    *while_stopped*, if given, runs before the copy (an injection, say, under
    session.injecting).  With *fresh_maps* the maps are read again once stopped (a full
    dump needs them exact).  The target's lock is held from before the stop to resume();
    zombies of our earlier clones are reaped inside the stop.  On failure every thread
    runs again and the lock is let go.
    """
    pid = session.pid
    host = session._host_files()
    session.freezer.first_stop_ns = None  # a snapshot may stop its target more than once
    session.freezer.resumed_ns = None
    try:
        stale = session.take_target()
        maps_text = procfs.read_text(f"/proc/{pid}/maps")
        auxv = procfs.read_optional(f"/proc/{pid}/auxv")
        session.freezer.stop_all()
        stopped_ns = time.monotonic_ns()
        registers = session.stopped_registers()
        stack_pointers = [session.arch.stack_pointer(regs[0]) for regs in registers.values()]
        maps = parse_maps(maps_text)
        if fresh_maps or any(_mapping_at(maps, sp) is None for sp in stack_pointers):
            # A thread started after the maps were read: its stack is a newer mapping.
            maps_text = procfs.read_text(f"/proc/{pid}/maps")
            maps = parse_maps(maps_text)
        session.reap_stale(registers, maps, stale)
        if while_stopped is not None:
            while_stopped(registers, maps)
        copied = copy_stacks(mem_fd, maps, stack_pointers)
        copied += copy_link_maps(mem_fd, auxv)
    except BaseException:
        try:
            session.freezer.resume_all()
        finally:
            session.let_go()
        raise
    return Stopped(registers, maps_text, copied, host,
                   session.freezer.first_stop_ns or stopped_ns)


def resume(session: Session, stopped: Stopped) -> CaptureData:
    """Let the threads stopped by stop() run again (the pause ends), then read the rest."""
    try:
        session.freezer.resume_all()
    finally:
        session.let_go()
    resumed_ns = session.freezer.resumed_ns or time.monotonic_ns()
    data = session._process_files(session.pid, stopped.registers, stopped.host)
    data.maps = stopped.maps_text  # the stacks were found in these; later mappings are not held
    data.memory = "stacks"
    data.copied = stopped.copied
    data.first_stop_ns = stopped.first_stop_ns
    data.resumed_ns = resumed_ns
    data.finished_ns = time.monotonic_ns()
    return data


def _mapping_at(maps: list[Mapping], address: int) -> Mapping | None:
    for mapping in maps:
        if mapping.start <= address < mapping.end:
            return mapping
    return None


def copy_stacks(mem_fd: int, maps: list[Mapping],
                stack_pointers: list[int]) -> list[tuple[int, bytes]]:
    """Each stack as the dump plan will ask for it; a range read short keeps what was read."""
    copied = []
    for start, end in sorted({stack_range(maps, sp) for sp in stack_pointers}):
        if end > start:
            data = _pread(mem_fd, start, end - start)
            if data:
                copied.append((start, data))
    return copied


def copy_link_maps(mem_fd: int, auxv: bytes) -> list[tuple[int, bytes]]:
    """Every read that walking r_debug's list makes, recorded, so the walk can be replayed."""
    reads: list[tuple[int, bytes]] = []

    def read(address: int, size: int) -> bytes | None:
        data = _pread(mem_fd, address, size)
        if data:
            reads.append((address, data))
        return data

    found = elf.debug_address(read, auxv)
    if found is not None:
        elf.link_maps(read, found[0])
    return reads


def _pread(fd: int, address: int, size: int) -> bytes | None:
    try:
        return os.pread(fd, size, address)
    except OSError:
        return None


class CopiedMemory(MemoryReader):
    """The memory of a stack-only snapshot: the ranges copied during the stop, plus the
    target's read-only file mappings read live; everything else reads as unreadable."""

    def __init__(self, fd: int, copied: list[tuple[int, bytes]], maps: list[Mapping]) -> None:
        super().__init__(fd)
        blocks = sorted(copied, key=lambda block: block[0])
        self._starts = [start for start, _ in blocks]
        self._blocks = blocks
        self._constant = [(m.start, m.end) for m in maps
                          if m.readable and not m.writable and not m.shared
                          and (m.path.startswith("/") or m.path == "[vdso]")]

    def _copied(self, address: int, size: int) -> bytes | None:
        # Blocks may overlap (a stack holds a link_map); any block holding *address* serves.
        index = bisect.bisect_right(self._starts, address)
        for start, data in reversed(self._blocks[:index]):
            if address < start + len(data):
                return data[address - start:address - start + size]
        return None

    def _constant_end(self, address: int) -> int | None:
        for start, end in self._constant:
            if start <= address < end:
                return end
        return None

    def read(self, address: int, size: int) -> bytes | None:
        data = self._copied(address, size)
        if data is not None:
            return data
        end = self._constant_end(address)
        if end is None:
            return None
        return super().read(address, min(size, end - address))

    def _read_into(self, view: memoryview, address: int) -> int:
        data = self.read(address, len(view))
        if not data:
            return -1
        view[:len(data)] = data
        return len(data)
