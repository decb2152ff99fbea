"""Make list streams' sizes agree with their counts.

dbghelp (Wine's, measured) sizes the ThreadList and ModuleList streams for every
thread and module it was offered, including those a callback excluded.  LLVM
then takes the spare bytes for alignment padding and reads the list from offset
8, off by four bytes.  Trimming DataSize to the count's size fixes that; it
changes nothing in a dump whose sizes already agree.
"""

from __future__ import annotations

import os

from .format import SIGNATURE, StreamType, ffi

_ENTRY_SIZES: dict[int, int] = {StreamType.THREAD_LIST: 48, StreamType.MODULE_LIST: 108}


def _read(fd: int, offset: int, size: int) -> bytes:
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def trim_list_streams(fd: int) -> int:
    """Trim oversized ThreadList / ModuleList sizes in the dump open at *fd*; return how many."""
    format_ffi = ffi()
    header_size = format_ffi.sizeof("MINIDUMP_HEADER")
    header = format_ffi.new("MINIDUMP_HEADER *")
    raw = _read(fd, 0, header_size)
    if len(raw) < header_size:
        return 0
    format_ffi.memmove(header, raw, header_size)
    if header.Signature != SIGNATURE or header.NumberOfStreams > 4096:
        return 0
    entry_size = format_ffi.sizeof("MINIDUMP_DIRECTORY")
    table = _read(fd, header.StreamDirectoryRva, entry_size * header.NumberOfStreams)
    fixed = 0
    for index in range(len(table) // entry_size):
        entry = format_ffi.new("MINIDUMP_DIRECTORY *")
        format_ffi.memmove(entry, table[index * entry_size:(index + 1) * entry_size], entry_size)
        size_of_entry = _ENTRY_SIZES.get(int(entry.StreamType))
        if size_of_entry is None:
            continue
        count_bytes = _read(fd, entry.Location.Rva, 4)
        if len(count_bytes) < 4:
            continue
        exact = 4 + int.from_bytes(count_bytes, "little") * size_of_entry
        if entry.Location.DataSize > exact and entry.Location.DataSize != exact + 4:
            entry.Location.DataSize = exact
            os.lseek(fd, header.StreamDirectoryRva + index * entry_size, os.SEEK_SET)
            os.write(fd, bytes(format_ffi.buffer(entry)))
            fixed += 1
    return fixed
