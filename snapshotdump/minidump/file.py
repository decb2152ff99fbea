"""A minidump being written: reserve space, fill it in later, patch the directory as streams land.

Data is written with pwrite at known offsets; nothing the size of the target's
memory is ever held in the dumper.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from .format import SIGNATURE, VERSION, StreamType, ffi


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    """Write all of *data* at *offset* (pwrite may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


class Location:
    __slots__ = ("rva", "size")

    def __init__(self, rva: int, size: int) -> None:
        self.rva = rva
        self.size = size


HOLE_BLOCK = 64 << 10  # memory blocks of zeros this size are left as holes
_ZEROS = bytes(HOLE_BLOCK)


class DumpFile:
    """Appends to *fd*; the header and a directory of *stream_count* entries come first."""

    def __init__(self, fd: int, stream_count: int, timestamp: int) -> None:
        self.fd = fd
        status = os.fstat(fd)
        self._regular = stat.S_ISREG(status.st_mode)
        # Only past the file's end does a hole read back as zeros.
        self._holes_from = status.st_size if self._regular else 0
        self._ffi = ffi()
        self.stream_count = stream_count
        self._directory_rva: int = self._ffi.sizeof("MINIDUMP_HEADER")
        self._next_stream = 0
        self.end: int = self._directory_rva + stream_count * self._ffi.sizeof("MINIDUMP_DIRECTORY")
        header = self._ffi.new("MINIDUMP_HEADER *")
        header.Signature = SIGNATURE
        header.Version = VERSION
        header.NumberOfStreams = stream_count
        header.StreamDirectoryRva = self._directory_rva
        header.TimeDateStamp = timestamp & 0xFFFFFFFF
        header.Flags = 0
        self.write_at(0, bytes(self._ffi.buffer(header)))
        # Unused directory slots stay zero (UnusedStream), which every reader skips.
        self.write_at(self._directory_rva, bytes(self.end - self._directory_rva))

    def new(self, ctype: str, count: int | None = None) -> Any:
        if count is None:
            return self._ffi.new(f"{ctype} *")
        return self._ffi.new(f"{ctype}[]", count)

    def write_at(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        pwrite_all(self.fd, data, offset)

    def write_memory_at(self, offset: int, data: memoryview) -> None:
        """write_at, leaving 64 KiB blocks of zeros as holes.

        Untouched stacks and heaps are mostly zeros; a hole costs neither a page of
        cache nor a block of disk, and reads back as the same zeros.
        """
        run: int | None = None  # where the blocks still to be written begin
        for position in range(0, len(data), HOLE_BLOCK):
            block = data[position:position + HOLE_BLOCK]
            if offset + position >= self._holes_from and _is_zeros(block):
                if run is not None:
                    self.write_at(offset + run, data[run:position])
                    run = None
            elif run is None:
                run = position
        if run is not None:
            self.write_at(offset + run, data[run:])

    def finish(self) -> None:
        """Give the file its full size, should it end in a hole."""
        if self._regular and os.fstat(self.fd).st_size < self.end:
            os.ftruncate(self.fd, self.end)

    def align(self, boundary: int = 8) -> None:
        padding = -self.end % boundary
        if padding:
            self.write_at(self.end, bytes(padding))
            self.end += padding

    def reserve(self, size: int) -> int:
        rva = self.end
        self.end += size
        return rva

    def append(self, data: bytes | bytearray | memoryview) -> Location:
        rva = self.reserve(len(data))
        self.write_at(rva, data)
        return Location(rva, len(data))

    def bytes_of(self, cdata: Any, size: int | None = None) -> bytes:
        return bytes(self._ffi.buffer(cdata) if size is None else self._ffi.buffer(cdata, size))

    def append_struct(self, cdata: Any) -> Location:
        return self.append(self.bytes_of(cdata))

    def append_list(self, header: bytes | Any, entries: Any, count: int) -> Location:
        """A list stream: *header* (bytes or a struct), then the first *count* of *entries*.

        *entries* is allocated with at least one element, so count may be 0.
        """
        prefix = header if isinstance(header, bytes) else self.bytes_of(header)
        entry_size = self._ffi.sizeof(entries[0])
        return self.append(prefix + self.bytes_of(entries, entry_size * count))

    def string(self, text: str) -> int:  # the RVA
        """A MINIDUMP_STRING: byte length, UTF-16LE, a terminating NUL not counted."""
        encoded = text.encode("utf-16-le", "surrogatepass")
        location = self.append(len(encoded).to_bytes(4, "little") + encoded + b"\0\0")
        return location.rva

    def add_stream(self, stream_type: int, location: Location) -> None:
        """Record a finished stream in the next directory slot, at once."""
        if self._next_stream >= self.stream_count:
            raise RuntimeError("more streams than the directory was sized for")
        entry = self._ffi.new("MINIDUMP_DIRECTORY *")
        entry.StreamType = int(stream_type)
        entry.Location.DataSize = location.size
        entry.Location.Rva = location.rva
        self.write_at(self._directory_rva + self._next_stream * self._ffi.sizeof(entry[0]),
                      bytes(self._ffi.buffer(entry)))
        self._next_stream += 1


__all__ = ["DumpFile", "Location", "StreamType"]


def _is_zeros(block: memoryview) -> bool:
    # The first bytes settle most blocks of data without copying the whole block.
    head = block[:16].tobytes()
    return head.count(0) == len(head) and block.tobytes() == _ZEROS[:len(block)]
