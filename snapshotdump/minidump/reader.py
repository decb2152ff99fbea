"""Read any minidump: ours, Breakpad's or Crashpad's, or a Windows one.

    from snapshotdump import open_dump
    with open_dump("app.dmp") as dump:
        for thread in dump.threads:
            print(thread.thread_id, thread.name, [f.function for f in thread.frames])

Every structure is read through the same cffi declarations the writer uses
(``snapshotdump/_cdefs/minidump.h``).  Every offset and count is checked against the
file before it is used, so a truncated or corrupt file raises one
:class:`DumpFormatError`, never a crash, a hang or a huge allocation: the work done is
bounded by the file's size.  ``.dmp.gz`` and ``.dmp.xz`` files are decompressed to a
private temporary file first.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import gzip
import lzma
import mmap
import operator
import os
import shutil
import tempfile
from collections.abc import Iterator
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from .format import MD_CV_SIGNATURE_ELF, SIGNATURE, StreamType, ffi
from .format import DumpFormatError as DumpFormatError  # part of the reader's API

if TYPE_CHECKING:
    from .pystacks import PythonThread
    from .unwind import NativeFrame

_CV_PDB70 = 0x53445352  # 'RSDS'
_PLATFORMS = {0: "Win32s", 1: "Windows 9x", 2: "Windows NT", 0x8201: "Linux", 0x8101: "macOS",
              0x8203: "Android"}
_ARCHITECTURES = {0: "x86", 5: "ARM", 9: "AMD64", 12: "ARM64"}
_AMD64 = 9
_MAX_STRING = 65536
_GZIP_MAGIC = b"\x1f\x8b"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_DIRECTORY_ENTRY = 12
REGISTER_NAMES = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10",
                  "r11", "r12", "r13", "r14", "r15", "rip")


class DumpStream(NamedTuple):
    """One entry of the stream directory."""

    type: int
    name: str
    size: int
    rva: int


@dataclasses.dataclass(frozen=True)
class DumpModule:
    """A loaded image: where it was mapped, its path on the dumped machine, its build id."""

    base: int
    size: int
    path: str
    build_id: bytes | None
    debug_id: str | None

    @property
    def name(self) -> str:
        return self.path.replace("\\", "/").rsplit("/", 1)[-1]

    def contains(self, address: int) -> bool:
        return self.base <= address < self.base + self.size


@dataclasses.dataclass(frozen=True)
class MemoryRange:
    """Bytes of the target's memory that the dump holds: [start, start + size) at *rva*."""

    start: int
    size: int
    rva: int


@dataclasses.dataclass(frozen=True)
class DumpSystemInfo:
    """The SystemInfo stream: OS and CPU names, OS version, PROCESSOR_ARCHITECTURE value."""

    os: str
    cpu: str
    os_version: str
    architecture: int


@dataclasses.dataclass(frozen=True)
class ExceptionRecord:
    """The ExceptionStream: the thread, code (a signal number on Linux) and address."""

    thread_id: int
    code: int
    flags: int
    address: int
    registers: dict[str, int]


class DumpThread:
    """A thread of the dump: id, name, registers, stack; frames are unwound on first use."""

    def __init__(self, dump: Dump, thread_id: int, name: str | None, teb: int,
                 stack: MemoryRange | None, registers: dict[str, int]) -> None:
        self._dump = dump
        self.thread_id = thread_id
        self.name = name
        #: Windows: the TEB address; Linux (Crashpad's and our convention): fs_base.
        self.teb = teb
        self.stack = stack
        #: General-purpose registers by lower-case name (x86_64 dumps only; else empty).
        self.registers = registers
        self._frames: list[NativeFrame] | None = None

    @property
    def pc(self) -> int | None:
        return self.registers.get("rip")

    @property
    def frames(self) -> list[NativeFrame]:
        """Native frames, innermost first (CFI, then frame pointers, then stack scanning).

        Unwound on first use, from the dump's memory: read them while the dump is open.
        """
        if self._frames is None:
            from .unwind import unwind

            self._frames = unwind(self._dump, self)
        return self._frames

    @property
    def python(self) -> PythonThread | None:
        """This thread's Python stack, when the dump holds a Python-stacks stream for it."""
        return self._dump.python_threads().get(self.thread_id)

    def __repr__(self) -> str:
        return f"DumpThread({self.thread_id}, name={self.name!r}, pc={self.pc!r})"


def open_dump(path: str | os.PathLike[str]) -> Dump:
    """Open a minidump (``.dmp``, ``.dmp.gz`` or ``.dmp.xz``); close it, or use ``with``."""
    return Dump(path)


class Dump:
    """A minidump file, mapped read-only.  Raises :class:`DumpFormatError` on a bad file.

    Attributes: ``path``, ``size`` (of the decompressed dump), ``timestamp``, ``system``
    (:class:`DumpSystemInfo` or None), ``pid``, ``threads``, ``modules``, ``memory`` (the
    ranges the dump holds, by address), ``exception`` (:class:`ExceptionRecord` or None).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._file: IO[bytes] = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        self._map: mmap.mmap | None = None
        self._base: Any = None
        self._streams: list[DumpStream] | None = None
        self._python: dict[int, PythonThread] | None = None
        try:
            self._file = _decompressed(self._file)
            self.size = os.fstat(self._file.fileno()).st_size
            if self.size < ffi().sizeof("MINIDUMP_HEADER"):
                raise DumpFormatError(f"{self.size} bytes is too short for a minidump header")
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self._base = ffi().from_buffer(self._map)
            self._parse()
        except BaseException:
            self.close()
            raise

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Unmap and close the file; the Dump's data read so far stays usable."""
        if self._base is not None:
            ffi().release(self._base)
            self._base = None
        if self._map is not None:
            self._map.close()
            self._map = None
        self._file.close()

    def __enter__(self) -> Dump:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # -- raw access -------------------------------------------------------------------------

    def _check(self, offset: int, size: int, what: str) -> None:
        if offset < 0 or size < 0 or offset + size > self.size:
            raise DumpFormatError(f"{what} at offset {offset} (+{size}) runs past the end of "
                                  f"the file ({self.size} bytes): the dump is truncated or corrupt")

    @staticmethod
    def _check_directory_layout() -> None:
        declared = ffi()
        if (declared.sizeof("MINIDUMP_DIRECTORY"), declared.offsetof("MINIDUMP_DIRECTORY",
                                                                    "Location")) != (12, 4):
            raise AssertionError("MINIDUMP_DIRECTORY is no longer three 32-bit words")

    def _struct(self, ctype: str, offset: int, what: str) -> Any:
        self._check(offset, ffi().sizeof(ctype), what)
        if self._base is None:
            raise ValueError(f"{self.path} is closed")
        return ffi().cast(f"{ctype} *", self._base + offset)

    def _array(self, ctype: str, offset: int, count: int, what: str) -> Any:
        self._check(offset, count * ffi().sizeof(ctype), what)
        assert self._base is not None
        return ffi().cast(f"{ctype} *", self._base + offset)

    def _bytes(self, offset: int, size: int, what: str) -> bytes:
        self._check(offset, size, what)
        assert self._map is not None
        return self._map[offset:offset + size]

    def _string(self, rva: int) -> str:
        length = int(self._struct("ULONG32", rva, "a string's length")[0])
        if length % 2 or length > _MAX_STRING:
            raise DumpFormatError(f"a string at offset {rva} has a bad length {length}")
        return self._bytes(rva + 4, length, "a string").decode("utf-16-le", "replace")

    def _stream(self, index: int) -> DumpStream:
        kind = self._kinds[index]
        return DumpStream(kind, _stream_name(kind), self._sizes[index], self._rvas[index])

    @property
    def streams(self) -> list[DumpStream]:
        """The stream directory's entries, in file order (unused entries left out)."""
        if self._streams is None:
            self._streams = [self._stream(i) for i, kind in enumerate(self._kinds) if kind]
        return self._streams

    def stream_counts(self) -> list[tuple[int, str, int, int]]:
        """(type, name, how many, total bytes) per stream type: cheap for huge directories."""
        counts = collections.Counter(self._kinds)
        counts.pop(0, None)
        totals: dict[int, int] = dict.fromkeys(counts, 0)
        for kind, size in zip(self._kinds, self._sizes, strict=True):
            if kind:
                totals[kind] += size
        return [(kind, _stream_name(kind), count, totals[kind]) for kind, count in
                counts.items()]

    def stream_data(self, stream: DumpStream | int) -> bytes | None:
        """The bytes of a stream (by entry or type; the first of that type), or None."""
        if isinstance(stream, int):
            found = self._located.get(stream)
            if found is None:
                return None
            stream = found
        return self._bytes(stream.rva, stream.size, f"stream {stream.name}")

    # -- memory -----------------------------------------------------------------------------

    def read(self, address: int, size: int) -> bytes | None:
        """*size* bytes of the target at *address*, or None where the dump does not hold them.

        Memory comes from the MemoryList and Memory64List, then from the threads' stacks
        (which a dump may describe in its ThreadList alone).
        """
        if size < 0 or self._map is None:
            return None
        for ranges, starts in ((self.memory, self._memory_starts),
                               (self._stacks, self._stack_starts)):
            index = bisect.bisect_right(starts, address) - 1
            if index >= 0 and address + size <= ranges[index].start + ranges[index].size:
                offset = ranges[index].rva + address - ranges[index].start
                return self._map[offset:offset + size]
        return None

    def read_pointer(self, address: int) -> int | None:
        data = self.read(address, 8)
        return None if data is None else int.from_bytes(data, "little")

    def module_at(self, address: int) -> DumpModule | None:
        index = bisect.bisect_right(self._module_starts, address) - 1
        if index >= 0 and self._modules_sorted[index].contains(address):
            return self._modules_sorted[index]
        return None

    def thread(self, thread_id: int) -> DumpThread | None:
        return next((t for t in self.threads if t.thread_id == thread_id), None)

    def python_threads(self) -> dict[int, PythonThread]:
        """Python stacks by native thread id, from the Python-stacks stream (empty if none)."""
        if self._python is None:
            from .pystacks import decode

            data = self.stream_data(StreamType.PYTHON_STACKS)
            self._python = {} if data is None else {t.thread_id: t for t in decode(data).threads}
        return self._python

    # -- parsing ----------------------------------------------------------------------------

    def _parse(self) -> None:
        header = self._struct("MINIDUMP_HEADER", 0, "the header")
        if header.Signature != SIGNATURE:
            raise DumpFormatError("no MDMP signature: this is not a minidump")
        self.timestamp = int(header.TimeDateStamp)
        count = int(header.NumberOfStreams)
        self._check_directory_layout()
        raw = self._bytes(int(header.StreamDirectoryRva), count * _DIRECTORY_ENTRY,
                          "the stream directory")
        # One pass over the directory as 32-bit words (the layout is checked against the
        # declarations above): a directory that claims a million streams reads in well
        # under a second.
        words = memoryview(raw).cast("I")
        self._kinds, self._sizes, self._rvas = words[0::3].tolist(), words[1::3].tolist(), \
            words[2::3].tolist()
        if count and max(map(operator.add, self._rvas, self._sizes)) > self.size:
            index = next(i for i in range(count) if self._rvas[i] + self._sizes[i] > self.size)
            self._check(self._rvas[index], self._sizes[index],
                        f"stream {_stream_name(self._kinds[index])}")
        # The first stream of each type is the one readers use; later duplicates are listed.
        first = dict(zip(reversed(self._kinds), range(count - 1, -1, -1), strict=True))
        first.pop(0, None)
        self._located = {kind: self._stream(index) for kind, index in first.items()}
        self.system = self._system_info()
        self.pid = self._pid()
        self.memory = sorted(self._memory_list() + self._memory64_list(),
                             key=lambda m: m.start)
        self._memory_starts = [m.start for m in self.memory]
        self.modules = self._module_list()
        self._modules_sorted = sorted(self.modules, key=lambda m: m.base)
        self._module_starts = [m.base for m in self._modules_sorted]
        self.threads = self._thread_list(self._thread_names())
        self.exception = self._exception()
        self._stacks = sorted((t.stack for t in self.threads if t.stack is not None),
                              key=lambda m: m.start)
        self._stack_starts = [m.start for m in self._stacks]

    def _list(self, kind: int, ctype: str, header: str = "ULONG32") -> tuple[Any, int]:
        stream = self._located.get(kind)
        if stream is None:
            return None, 0
        count = int(self._struct(header, stream.rva, f"the {stream.name} count")[0])
        head = ffi().sizeof(header)
        return self._array(ctype, stream.rva + head, count, stream.name), count

    def _system_info(self) -> DumpSystemInfo | None:
        stream = self._located.get(StreamType.SYSTEM_INFO)
        if stream is None:
            return None
        info = self._struct("MINIDUMP_SYSTEM_INFO", stream.rva, "SYSTEM_INFO")
        arch, platform = int(info.ProcessorArchitecture), int(info.PlatformId)
        version = f"{info.MajorVersion}.{info.MinorVersion}.{info.BuildNumber}"
        if info.CSDVersionRva:
            version += f" ({self._string(int(info.CSDVersionRva))})"
        return DumpSystemInfo(_PLATFORMS.get(platform, f"platform 0x{platform:x}"),
                          _ARCHITECTURES.get(arch, f"architecture {arch}"), version, arch)

    def _pid(self) -> int | None:
        stream = self._located.get(StreamType.MISC_INFO)
        if stream is None or stream.size < 12:
            return None
        info = self._struct("MINIDUMP_MISC_INFO", stream.rva, "MISC_INFO") \
            if stream.size >= ffi().sizeof("MINIDUMP_MISC_INFO") else None
        if info is None:
            return None
        return int(info.ProcessId) if info.Flags1 & 1 else None

    def _memory_list(self) -> list[MemoryRange]:
        entries, count = self._list(StreamType.MEMORY_LIST, "MINIDUMP_MEMORY_DESCRIPTOR")
        ranges = []
        for index in range(count):
            entry = entries[index]
            memory = MemoryRange(int(entry.StartOfMemoryRange), int(entry.Memory.DataSize),
                                 int(entry.Memory.Rva))
            self._check(memory.rva, memory.size, "a MemoryList range")
            ranges.append(memory)
        return ranges

    def _memory64_list(self) -> list[MemoryRange]:
        stream = self._located.get(StreamType.MEMORY64_LIST)
        if stream is None:
            return []
        head = self._struct("MINIDUMP_MEMORY64_LIST", stream.rva, "MEMORY64_LIST")
        count, rva = int(head.NumberOfMemoryRanges), int(head.BaseRva)
        entries = self._array("MINIDUMP_MEMORY_DESCRIPTOR64",
                              stream.rva + ffi().sizeof("MINIDUMP_MEMORY64_LIST"), count,
                              "the Memory64List")
        ranges = []
        for index in range(count):
            entry = entries[index]
            size = int(entry.DataSize)
            self._check(rva, size, "the Memory64List data")
            ranges.append(MemoryRange(int(entry.StartOfMemoryRange), size, rva))
            rva += size
        return ranges

    def _module_list(self) -> list[DumpModule]:
        entries, count = self._list(StreamType.MODULE_LIST, "MINIDUMP_MODULE")
        modules = []
        for index in range(count):
            entry = entries[index]
            build_id, debug_id = self._codeview(int(entry.CvRecord.Rva),
                                                int(entry.CvRecord.DataSize))
            modules.append(DumpModule(int(entry.BaseOfImage), int(entry.SizeOfImage),
                                  self._string(int(entry.ModuleNameRva)), build_id, debug_id))
        return modules

    def _codeview(self, rva: int, size: int) -> tuple[bytes | None, str | None]:
        if size < 4 or rva == 0:
            return None, None
        record = self._bytes(rva, min(size, 4096), "a CodeView record")
        signature = int.from_bytes(record[:4], "little")
        if signature == MD_CV_SIGNATURE_ELF:
            return record[4:], record[4:].hex()
        if signature == _CV_PDB70 and size >= 24:
            guid = record[4:20]
            d1, d2, d3 = (int.from_bytes(guid[0:4], "little"),
                          int.from_bytes(guid[4:6], "little"), int.from_bytes(guid[6:8], "little"))
            age = int.from_bytes(record[20:24], "little")
            return None, f"{d1:08X}{d2:04X}{d3:04X}{guid[8:].hex().upper()}{age:X}"
        return None, None

    def _thread_names(self) -> dict[int, str]:
        entries, count = self._list(StreamType.THREAD_NAMES, "MINIDUMP_THREAD_NAME")
        names = {}
        for index in range(count):
            entry = entries[index]
            names[int(entry.ThreadId)] = self._string(int(entry.RvaOfThreadName))
        return names

    def _thread_list(self, names: dict[int, str]) -> list[DumpThread]:
        entries, count = self._list(StreamType.THREAD_LIST, "MINIDUMP_THREAD")
        threads = []
        for index in range(count):
            entry = entries[index]
            size, rva = int(entry.Stack.Memory.DataSize), int(entry.Stack.Memory.Rva)
            stack = None
            if size:
                self._check(rva, size, "a thread's stack")
                stack = MemoryRange(int(entry.Stack.StartOfMemoryRange), size, rva)
            registers = self._context(int(entry.ThreadContext.Rva),
                                      int(entry.ThreadContext.DataSize))
            tid = int(entry.ThreadId)
            threads.append(DumpThread(self, tid, names.get(tid), int(entry.Teb), stack, registers))
        return threads

    def _context(self, rva: int, size: int) -> dict[str, int]:
        if self.system is None or self.system.architecture != _AMD64 or rva == 0 \
                or size < ffi().sizeof("CONTEXT"):
            return {}
        context = self._struct("CONTEXT", rva, "a thread context")
        registers = {name: int(getattr(context, name.capitalize())) for name in REGISTER_NAMES}
        registers["eflags"] = int(context.EFlags)
        return registers

    def _exception(self) -> ExceptionRecord | None:
        stream = self._located.get(StreamType.EXCEPTION)
        if stream is None:
            return None
        record = self._struct("MINIDUMP_EXCEPTION_STREAM", stream.rva, "EXCEPTION")
        return ExceptionRecord(int(record.ThreadId), int(record.ExceptionRecord.ExceptionCode),
                               int(record.ExceptionRecord.ExceptionFlags),
                               int(record.ExceptionRecord.ExceptionAddress),
                               self._context(int(record.ThreadContext.Rva),
                                             int(record.ThreadContext.DataSize)))

    def iter_memory(self) -> Iterator[MemoryRange]:
        return iter(self.memory)


def _stream_name(kind: int) -> str:
    try:
        return StreamType(kind).name
    except ValueError:
        return f"0x{kind:x}"


def _decompressed(f: IO[bytes]) -> IO[bytes]:
    """*f* itself, or a private temporary file with its gzip/xz content (f is closed)."""
    magic = f.read(6)
    f.seek(0)
    if magic[:2] == _GZIP_MAGIC:
        codec: Any = gzip.GzipFile(fileobj=f, mode="rb")
    elif magic == _XZ_MAGIC:
        codec = lzma.LZMAFile(f, mode="rb")  # noqa: SIM115 - closed just below
    else:
        return f
    plain = tempfile.TemporaryFile()  # noqa: SIM115 - returned open, closed by Dump.close()
    try:
        with f, codec:
            shutil.copyfileobj(codec, plain, 1 << 20)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        plain.close()
        raise DumpFormatError(f"cannot decompress the dump: {exc}") from exc
    plain.seek(0)
    return plain


def summarize(path: str | os.PathLike[str]) -> Dump:
    """Read a dump's directory, threads, modules and memory list, then close the file."""
    with open_dump(path) as dump:
        return dump
