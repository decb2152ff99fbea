"""A full dump's memory, copied by the clone itself into a ring the dumper writes out.

Reading a clone from outside is slow or harmful.  /proc/CLONE/mem copies every page
through a kernel bounce page, one page at a time.  process_vm_readv pins the pages,
and a read-only pin of a copy-on-write page makes the kernel copy it, so the clone
would end up owning a private copy of everything it shares with the target.  A pipe
(write(2) in the clone, splice(2) here) allocates a page per page sent, which on
these machines costs more than the bounce.

The clone can read its own memory at memcpy speed, through its page tables, with no
copy-on-write break.  So the helper gives it a ring: a memfd, mapped shared in the
clone and here.  In the clone (which never runs its own code) it runs

    memfd_create("")  mmap(MAP_SHARED)  close()     once, to set the ring up
    rep movsb; int3                                 once per slot of the ring
    munmap()                                        at the end

and tells the dumper over the channel which slot holds the next piece; the dumper
writes the slot into the dump and hands it back.  Both sides fill and drain slots at
the same time.  A page the clone cannot read (SIGSEGV or SIGBUS, swallowed) is filled
by the helper from /proc/CLONE/mem, or with zeros, exactly as the /proc path would.
Two small ranges are put in by the helper as the snapshot had them: the copy code,
which sits in the clone's vDSO while the ring runs, and the rseq area, which the
kernel rewrites whenever the clone returns to user space (see :mod:`.rseq`).

The ring is allocated by the helper, so its pages are charged to us, not to the
target's memory cgroup.  When anything needed is missing (pidfd_getfd before Linux
5.6, a security module, no room for the mapping), the dumper reads /proc/CLONE/mem.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import signal
import socket
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from .. import errors
from ..minidump.memory import MemoryReader
from . import channel, inject, messages, ptrace
from .freeze import wait_stopped

if TYPE_CHECKING:
    from ..minidump.file import DumpFile


# What this module needs of the tracer's session and of the dumper's helper, declared here so
# that it imports neither .tracer nor .snapshot (both import this module).
class Session(Protocol):
    arch: ModuleType
    clone: int | None
    code_at: int


class Helper(Protocol):
    sock: socket.socket

    def reply(self) -> tuple[object, list[int]]: ...

    def close(self) -> None: ...

PAGE = 4096
SLOT_SIZE = 2 << 20
SLOTS = 4  # 8 MiB in all: both sides stay busy, and it stays in the CPU caches
MFD_CLOEXEC = 1

Region = tuple[int, int]  # (start address, size)
Job = tuple[int, int, int]  # (start address, size, file offset)


class StreamUnavailable(Exception):
    """The clone cannot copy into a ring here: the dumper reads /proc/PID/mem instead."""


class _Aborted(Exception):
    """The dumper stopped writing (an error or an interrupt on its side)."""


def pieces(regions: Sequence[Region]) -> Iterator[tuple[int, int]]:
    """(address, length) of each slot-sized piece, in the order both sides use."""
    for start, size in regions:
        for offset in range(0, size, SLOT_SIZE):
            yield start + offset, min(SLOT_SIZE, size - offset)


# ---------------------------------------------------------------- the helper's side


class _Clone:
    """The stopped clone, and what runs in it; its registers are put back after each run."""

    def __init__(self, session: Session, pid: int) -> None:
        self.arch = session.arch
        self.pid = pid
        self.code_at = session.code_at
        self.saved = self.arch.read_registers(pid)
        # What the snapshot had where the injected code goes (read before anything runs).
        self.code_bytes = ptrace.read_memory(pid, self.code_at, len(self.arch.TRAMPOLINES))
        # Read before anything runs in the clone: the kernel rewrites the area each time.
        area = ptrace.rseq_area(pid)
        self.rseq = (area[0], ptrace.read_words(pid, *area)) if area else None

    def syscall(self, number: int, *args: int) -> int:
        return inject.run(self.arch, self.pid, self.saved, self.code_at, self.arch.SYSCALL_TRAP,
                          number, args, clone_of=self.pid).value

    def snapshot_bytes(self) -> list[tuple[int, bytes]]:
        """(address, bytes) the clone's own copy would get wrong: where the injected code
        sits in its vDSO, and its rseq area."""
        return [(self.code_at, self.code_bytes)] + ([self.rseq] if self.rseq else [])

    def restore_rseq(self) -> None:
        if self.rseq:
            ptrace.write_bytes(self.pid, *self.rseq)

    def copy(self, source: int, destination: int, length: int, fill: _Filler) -> None:
        """Run the copy code until *length* bytes from *source* are at *destination*."""
        arch, at = self.arch, self.code_at
        while length > 0:
            arch.write_registers(self.pid, arch.copy_registers(
                self.saved, at, source, destination, length))
            ptrace.cont(self.pid)
            # A blocking wait: spinning would take a CPU from the copy or the dump's writes.
            # (A page stuck on a dead NFS server would hang a /proc/PID/mem read alike.)
            status = wait_stopped(self.pid, None)
            done = length - arch.copy_remaining(arch.read_registers(self.pid))
            source, destination, length = source + done, destination + done, length - done
            if ptrace.stop_event(status) == 0 and os.WSTOPSIG(status) in (signal.SIGSEGV,
                                                                          signal.SIGBUS):
                # The page at *source* is unreadable from inside; the signal is dropped.
                step = min(PAGE - source % PAGE, length)
                fill(source, destination, step)
                source, destination, length = source + step, destination + step, length - step
            # Anything else (a signal meant for the clone, a stop) is dropped and the copy
            # resumes where it is; the int3 after a finished copy leaves length at 0.


class _Filler:
    """Puts the bytes /proc/CLONE/mem has for unreadable pages (else zeros) into the ring."""

    def __init__(self, pid: int, ring: mmap.mmap, ring_in_clone: int) -> None:
        self.fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
        self.reader = MemoryReader(self.fd)
        self.ring = ring
        self.base = ring_in_clone

    def __call__(self, source: int, destination: int, size: int) -> None:
        offset = destination - self.base
        with memoryview(self.ring) as ring:
            self.reader.read_pagewise(ring[offset:offset + size], source)

    def close(self) -> None:
        os.close(self.fd)


def _open_ring(clone: _Clone, size: int) -> tuple[int, int]:
    """(ring address in the clone, our fd for it): a memfd the clone maps shared."""
    arch = clone.arch
    name = clone.code_at + arch.EMPTY_STRING_OFFSET  # written with the trampolines
    fd_in_clone = clone.syscall(arch.SYS_MEMFD_CREATE, name, MFD_CLOEXEC)
    if fd_in_clone < 0:
        raise StreamUnavailable(f"memfd_create() in the clone: {os.strerror(-fd_in_clone)}")
    memfd = -1
    try:
        pidfd = os.pidfd_open(clone.pid)
        try:
            memfd = ptrace.pidfd_getfd(pidfd, fd_in_clone)
        finally:
            os.close(pidfd)
        # Allocated here, so the pages count against our memory cgroup, not the target's.
        os.ftruncate(memfd, size)
        os.posix_fallocate(memfd, 0, size)
        address = clone.syscall(arch.SYS_MMAP, 0, size, mmap.PROT_READ | mmap.PROT_WRITE,
                                mmap.MAP_SHARED, fd_in_clone, 0)
        if -4096 < address < 0:
            raise StreamUnavailable(f"mmap() in the clone: {os.strerror(-address)}")
    except BaseException as exc:
        if memfd >= 0:
            os.close(memfd)
        if isinstance(exc, OSError | AttributeError):
            raise StreamUnavailable(f"cannot share a ring with the clone: {exc}") from None
        raise
    finally:
        clone.syscall(arch.SYS_CLOSE, fd_in_clone)
    return address, memfd


def serve(session: Session, regions: Sequence[Region], sock: socket.socket) -> None:
    """Answer a Stream request: the Ring, a Filled per piece, then Done or a Failure.

    Raises EOFError or ConnectionError when the dumper is gone.
    """
    if session.clone is None:
        channel.send(sock, messages.Reply(messages.Declined("no clone to copy from")))
        return
    size = SLOT_SIZE * SLOTS
    try:
        clone = _Clone(session, session.clone)
        ring_in_clone, memfd = _open_ring(clone, size)
    except (StreamUnavailable, errors.SnapshotError) as exc:
        channel.send(sock, messages.Reply(messages.Declined(str(exc))))
        return
    try:
        ring = mmap.mmap(memfd, size)
        channel.send(sock, messages.Reply(messages.Ring(SLOT_SIZE, SLOTS)), [memfd])
    finally:
        os.close(memfd)
    verdict: messages.Answer = messages.Reply(messages.Done())
    try:
        _copy_regions(clone, ring, ring_in_clone, regions, sock)
    except (EOFError, ConnectionError):
        raise
    except BaseException as exc:
        verdict = messages.Failure(_stream_error(exc))
    finally:
        ring.close()
        try:
            clone.syscall(clone.arch.SYS_MUNMAP, ring_in_clone, size)
            clone.restore_rseq()
        except errors.SnapshotError:
            inject.kill_clone(clone.pid)  # a clone we cannot put back is no snapshot any more
            session.clone = None
    channel.send(sock, verdict)


def _copy_regions(clone: _Clone, ring: mmap.mmap, ring_in_clone: int,
                  regions: Sequence[Region], sock: socket.socket) -> None:
    code = ptrace.read_words(clone.pid, clone.code_at, len(clone.arch.COPY_TRAP))
    patches = clone.snapshot_bytes()
    free = list(range(SLOTS))
    fill = _Filler(clone.pid, ring, ring_in_clone)
    ptrace.write_bytes(clone.pid, clone.code_at, clone.arch.COPY_TRAP)
    try:
        for address, length in pieces(regions):
            if not free:
                free.append(_next_free(sock))
            slot = free.pop(0)
            clone.copy(address, ring_in_clone + slot * SLOT_SIZE, length, fill)
            for at, data in patches:
                low, high = max(at, address), min(at + len(data), address + length)
                if low < high:
                    offset = slot * SLOT_SIZE + low - address
                    ring[offset:offset + high - low] = data[low - at:high - at]
            channel.send(sock, messages.Reply(messages.Filled(slot, length)))
    finally:
        fill.close()
        ptrace.write_bytes(clone.pid, clone.code_at, code)


def _next_free(sock: socket.socket) -> int:
    message, _ = channel.receive(sock)
    if isinstance(message, messages.Free):
        return message.slot
    raise _Aborted  # an Abort (anything else would be out of step: stop all the same)


def _stream_error(exc: BaseException) -> errors.SnapshotError:
    if isinstance(exc, errors.SnapshotError):
        return exc
    if isinstance(exc, _Aborted):
        return errors.SnapshotError("the dump was stopped while the clone copied its memory",
                                    errno=errno.ECANCELED, function="write_dump")
    return errors.SnapshotError(f"the clone could not copy its memory: {exc}",
                                errno=getattr(exc, "errno", None), function="write_dump")


# ---------------------------------------------------------------- the dumper's side


def receive(helper: Helper, out: DumpFile, jobs: Sequence[Job]) -> str | None:
    """Have the clone copy *jobs* into *out*: None when done, else why it cannot (nothing
    is written then, and the caller reads /proc/PID/mem instead).

    Ctrl-C is held back for the length of the exchange and acted on between pieces: the
    helper is told to stop, and the channel stays in step for the next dump.
    """
    regions = [(start, size) for start, size, _ in jobs]
    with channel.interrupts_held() as interrupted:
        channel.send(helper.sock, messages.Stream(regions))
        payload, fds = helper.reply()
        if not isinstance(payload, messages.Ring) or not fds:
            for fd in fds:
                os.close(fd)
            return payload.reason if isinstance(payload, messages.Declined) else repr(payload)
        slot_size, slots = payload.slot_size, payload.slots
        try:
            ring = mmap.mmap(fds[0], slot_size * slots, prot=mmap.PROT_READ)
        finally:
            os.close(fds[0])
        try:
            _write_pieces(helper, out, jobs, ring, slot_size, interrupted)
        finally:
            with contextlib.suppress(BufferError):  # a view held by a traceback: unmapped with it
                ring.close()
    return None


def _write_pieces(helper: Helper, out: DumpFile, jobs: Sequence[Job], ring: mmap.mmap,
                  slot_size: int, interrupted: list[Any]) -> None:
    view = memoryview(ring)
    try:
        for start, size, offset in jobs:
            for address, length in pieces([(start, size)]):
                slot = _filled_slot(helper.reply()[0], length)
                out.write_memory_at(offset + address - start,
                                    view[slot * slot_size:slot * slot_size + length])
                channel.send(helper.sock, messages.Free(slot))
                if interrupted:
                    raise errors.DumpCancelledError("the dump was interrupted (SIGINT)",
                                                    errno=errno.EINTR, function="write_dump")
        helper.reply()  # Done
    except errors.SnapshotError as exc:
        if not isinstance(exc, errors.DumpCancelledError):
            raise  # the helper's own last word (or its end): nothing more is coming
        _abort(helper)
        raise
    except BaseException:
        _abort(helper)
        raise


def _filled_slot(message: object, length: int) -> int:
    if not (isinstance(message, messages.Filled) and message.length == length):
        raise errors.SnapshotError(f"the clone's copy is out of step: {message!r}")
    return message.slot


def _abort(helper: Helper) -> None:
    """Stop the helper's copy and read up to its last word (Done or a Failure), so the
    channel stays in step."""
    try:
        channel.send(helper.sock, messages.Abort())
        while True:
            payload, _ = helper.reply()
            if isinstance(payload, messages.Done):
                return  # the copy had ended before the abort
    except errors.SnapshotError:
        return  # its answer to the abort
    except BaseException:
        helper.close()  # out of step for good: the helper releases everything and exits
        raise
