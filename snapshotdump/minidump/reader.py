"""A small, defensive minidump reader for ``snapshotdump info``.

Every offset and count is checked against the file before it is used, so a
truncated or corrupted file gives one :class:`DumpFormatError`, never a crash or
a huge allocation.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import struct
from typing import BinaryIO

from .format import MD_CV_SIGNATURE_ELF, SIGNATURE, StreamType

MAX_ENTRIES = 1_000_000
_CV_PDB70 = 0x53445352  # 'RSDS'
_PLATFORMS = {0: "Win32s", 1: "Windows 9x", 2: "Windows NT", 0x8201: "Linux", 0x8101: "macOS",
              0x8203: "Android"}
_ARCHITECTURES = {0: "x86", 5: "ARM", 9: "AMD64", 12: "ARM64"}


class DumpFormatError(ValueError):
    """The file is not a well-formed minidump."""


@dataclasses.dataclass(frozen=True)
class ThreadSummary:
    thread_id: int
    stack_start: int
    stack_size: int


@dataclasses.dataclass(frozen=True)
class ModuleSummary:
    base: int
    size: int
    name: str
    debug_id: str | None


@dataclasses.dataclass(frozen=True)
class DumpSummary:
    path: str
    size: int
    streams: list[tuple[int, str, int]]
    os: str | None
    cpu: str | None
    os_version: str | None
    pid: int | None
    threads: list[ThreadSummary]
    modules: list[ModuleSummary]
    memory_ranges: int
    memory_bytes: int


class _View:
    def __init__(self, data: bytes | mmap.mmap) -> None:
        self.data = data
        self.size = len(data)

    def unpack(self, fmt: str, offset: int) -> tuple[int, ...]:
        size = struct.calcsize(fmt)
        if offset < 0 or offset + size > self.size:
            raise DumpFormatError(f"a field at offset {offset} runs past the end of the file "
                                  f"({self.size} bytes): the dump is truncated or corrupt")
        return struct.unpack_from(fmt, self.data, offset)

    def string(self, rva: int) -> str:
        (length,) = self.unpack("<I", rva)
        if length % 2 or length > 65536 or rva + 4 + length > self.size:
            raise DumpFormatError(f"a string at offset {rva} has a bad length {length}")
        return bytes(self.data[rva + 4:rva + 4 + length]).decode("utf-16-le", "replace")

    def count(self, value: int, entry: int, where: str) -> int:
        if value > MAX_ENTRIES or value * entry > self.size:
            raise DumpFormatError(f"{where} claims {value} entries, more than the file can hold")
        return value


def _stream_name(kind: int) -> str:
    try:
        return StreamType(kind).name
    except ValueError:
        return f"0x{kind:x}"


def summarize(path: str | os.PathLike[str]) -> DumpSummary:
    with open(path, "rb") as f:
        return _summarize(f, os.fspath(path))


def _summarize(f: BinaryIO, path: str) -> DumpSummary:
    size = os.fstat(f.fileno()).st_size
    if size < 32:
        raise DumpFormatError(f"{size} bytes is too short for a minidump header")
    data: bytes | mmap.mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    view = _View(data)
    signature, _version, stream_count, directory = view.unpack("<IIII", 0)[:4]
    if signature != SIGNATURE:
        raise DumpFormatError("no MDMP signature: this is not a minidump")
    view.count(stream_count, 12, "the stream directory")
    streams: list[tuple[int, str, int]] = []
    located: dict[int, tuple[int, int]] = {}
    for index in range(stream_count):
        kind, length, rva = view.unpack("<III", directory + 12 * index)
        if kind == 0:
            continue
        if rva + length > size:
            raise DumpFormatError(f"stream {_stream_name(kind)} runs past the end of the file")
        streams.append((kind, _stream_name(kind), length))
        located.setdefault(kind, (rva, length))
    os_name = cpu = version = None
    if StreamType.SYSTEM_INFO in located:
        rva, _ = located[StreamType.SYSTEM_INFO]
        arch, = view.unpack("<H", rva)
        major, minor, build, platform, csd = view.unpack("<IIIII", rva + 8)
        os_name = _PLATFORMS.get(platform, f"platform 0x{platform:x}")
        cpu = _ARCHITECTURES.get(arch, f"architecture {arch}")
        version = f"{major}.{minor}.{build}"
        if csd:
            version += f" ({view.string(csd)})"
    pid = None
    if StreamType.MISC_INFO in located:
        rva, length = located[StreamType.MISC_INFO]
        if length >= 12:
            _size, flags, pid_value = view.unpack("<III", rva)
            pid = pid_value if flags & 1 else None
    threads = []
    if StreamType.THREAD_LIST in located:
        rva, _ = located[StreamType.THREAD_LIST]
        (count,) = view.unpack("<I", rva)
        for index in range(view.count(count, 48, "the thread list")):
            tid, _s, _pc, _p, _teb, start, stack_size, _srva = view.unpack(
                "<IIIIQQII", rva + 4 + 48 * index)
            threads.append(ThreadSummary(tid, start, stack_size))
    modules = []
    if StreamType.MODULE_LIST in located:
        rva, _ = located[StreamType.MODULE_LIST]
        (count,) = view.unpack("<I", rva)
        for index in range(view.count(count, 108, "the module list")):
            entry = rva + 4 + 108 * index
            base, image_size, _ck, _ts, name_rva = view.unpack("<QIIII", entry)
            cv_size, cv_rva = view.unpack("<II", entry + 76)
            modules.append(ModuleSummary(base, image_size, view.string(name_rva),
                                         _debug_id(view, cv_rva, cv_size)))
    ranges = total = 0
    if StreamType.MEMORY_LIST in located:
        rva, _ = located[StreamType.MEMORY_LIST]
        (count,) = view.unpack("<I", rva)
        for index in range(view.count(count, 16, "the memory list")):
            _start, length, _mrva = view.unpack("<QII", rva + 4 + 16 * index)
            ranges, total = ranges + 1, total + length
    if StreamType.MEMORY64_LIST in located:
        rva, _ = located[StreamType.MEMORY64_LIST]
        count, base_rva = view.unpack("<QQ", rva)
        for index in range(view.count(count, 16, "the memory64 list")):
            _start, length = view.unpack("<QQ", rva + 16 + 16 * index)
            ranges, total = ranges + 1, total + length
        if base_rva + total > size:
            raise DumpFormatError("the memory64 data runs past the end of the file")
    return DumpSummary(path, size, streams, os_name, cpu, version, pid, threads, modules, ranges,
                       total)


def _debug_id(view: _View, rva: int, size: int) -> str | None:
    if size < 4 or rva == 0:
        return None
    (signature,) = view.unpack("<I", rva)
    if signature == MD_CV_SIGNATURE_ELF:
        return bytes(view.data[rva + 4:rva + min(size, 68)]).hex()
    if signature == _CV_PDB70 and size >= 24:
        guid = bytes(view.data[rva + 4:rva + 20])
        (age,) = view.unpack("<I", rva + 20)
        d1, d2, d3 = struct.unpack_from("<IHH", guid)
        return f"{d1:08X}{d2:04X}{d3:04X}{guid[8:].hex().upper()}{age:X}"
    return None
