"""Reading the snapshot's memory in bounded chunks, and the address ranges a dump includes."""

from __future__ import annotations

import errno
import os
import queue
import threading
from collections.abc import Callable, Sequence

from .file import DumpFile

PAGE = 4096
CHUNK = 1 << 20
PIPELINE_BUFFERS = 4  # the bulk copy's memory: this many CHUNKs, whatever the target's size
_UNREADABLE = (errno.EIO, errno.EFAULT, errno.ENOMEM, errno.EPERM, errno.EACCES, errno.EINVAL,
               errno.ESRCH)


# Copies (address, size, file offset) jobs into the dump some faster way; False if it can't.
BulkCopy = Callable[[DumpFile, Sequence[tuple[int, int, int]]], bool]


class MemoryReader:
    """Reads /proc/PID/mem through one reusable buffer: memory use never grows with the target."""

    def __init__(self, fd: int, bulk: BulkCopy | None = None) -> None:
        self.fd = fd
        self.bulk = bulk
        self._buffer = bytearray(CHUNK)

    def read(self, address: int, size: int) -> bytes | None:
        """Up to *size* bytes at *address*, or None where the first byte is unreadable."""
        try:
            return os.pread(self.fd, size, address)
        except OSError as exc:
            if exc.errno in _UNREADABLE:
                return None
            raise

    def readable(self, address: int) -> bool:
        return bool(self.read(address, 1))

    def copy(self, out: DumpFile, address: int, size: int, offset: int) -> int:
        """Write exactly *size* bytes from *address* at file *offset*; unreadable pages are zeros.

        Returns how many bytes were really read.
        """
        view = memoryview(self._buffer)
        done = 0
        read_total = 0
        while done < size:
            chunk, got = self._fill(view[:min(CHUNK, size - done)], address + done)
            out.write_at(offset + done, view[:chunk])
            done += chunk
            read_total += got
        return read_total

    def _fill(self, view: memoryview, address: int) -> tuple[int, int]:
        """Fill the front of *view* from *address*: (bytes to write, bytes really read).

        A chunk that fails as a whole is read page by page, unreadable pages as zeros.
        """
        got = self._read_into(view, address)
        if got <= 0:
            return len(view), self.read_pagewise(view, address)
        return got, got

    def copy_all(self, out: DumpFile, jobs: list[tuple[int, int, int]]) -> None:
        """copy() each (address, size, file offset): through *bulk* if it can, else here.

        Here, reading /proc/PID/mem and writing the dump cost about the same, so a writer
        thread drains a small ring of buffers while this thread fills the next one.
        """
        if self.bulk is not None and self.bulk(out, jobs):
            return
        free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(PIPELINE_BUFFERS):
            free.put(bytearray(CHUNK))
        full: queue.Queue[tuple[bytearray, int, int] | None] = queue.Queue()
        failure: list[BaseException] = []

        def writer() -> None:
            while (item := full.get()) is not None:
                buffer, length, offset = item
                try:
                    if not failure:
                        out.write_memory_at(offset, memoryview(buffer)[:length])
                except BaseException as exc:  # handed to the reading thread below
                    failure.append(exc)
                free.put(buffer)

        thread = threading.Thread(target=writer, name="snapshotdump-writer", daemon=True)
        thread.start()
        try:
            for address, size, offset in jobs:
                done = 0
                while done < size and not failure:
                    buffer = free.get()
                    chunk, _got = self._fill(memoryview(buffer)[:min(CHUNK, size - done)],
                                             address + done)
                    full.put((buffer, chunk, offset + done))
                    done += chunk
        finally:
            full.put(None)
            thread.join()
        if failure:
            raise failure[0]

    def _read_into(self, view: memoryview, address: int) -> int:
        try:
            return os.preadv(self.fd, [view], address)
        except OSError as exc:
            if exc.errno in _UNREADABLE:
                return -1
            raise

    def read_pagewise(self, view: memoryview, address: int) -> int:
        """Fill *view* from *address* a page at a time, unreadable pages as zeros; the
        number of bytes really read."""
        size = len(view)
        position = 0
        total = 0
        while position < size:
            step = min(PAGE - (address + position) % PAGE, size - position)
            got = max(self._read_into(view[position:position + step], address + position), 0)
            if got < step:
                view[position + got:position + step] = bytes(step - got)
            total += got
            position += step
        return total


def merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping (start, end) ranges covering the same addresses."""
    result: list[tuple[int, int]] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if result and start <= result[-1][1]:
            if end > result[-1][1]:
                result[-1] = (result[-1][0], end)
        else:
            result.append((start, end))
    return result
