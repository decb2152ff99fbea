"""The OS-independent part of a snapshot: data classes, argument checks, the dump destination."""

from __future__ import annotations

import abc
import dataclasses
import threading
import time
from collections.abc import Iterable, Sequence
from types import TracebackType

from typing_extensions import Self  # typing.Self is 3.11+; the floor is 3.10

from . import _dest
from .callbacks import CancelledByCallback, DumpCallback
from .errors import DumpCancelledError
from .flags import NEEDS_ALL_MEMORY, CaptureFlags, CaptureMemory, MiniDumpType, check_flags

# Stream types at or below LastReservedStream (0xFFFF) confuse minidump readers.
LAST_RESERVED_STREAM = 0xFFFF


@dataclasses.dataclass(frozen=True)
class UserStream:
    """A stream of your own, added to the dump: ``type`` must be above 0xFFFF."""

    type: int
    data: bytes

    def __post_init__(self) -> None:
        if isinstance(self.type, bool) or not isinstance(self.type, int):
            raise TypeError(f"user stream type must be an int, not {type(self.type).__name__}")
        if not LAST_RESERVED_STREAM < self.type <= 0xFFFFFFFF:
            raise ValueError(
                f"user stream type 0x{self.type:x} is reserved or out of range: use a value "
                "from 0x10000 to 0xFFFFFFFF (readers reject unknown types at or below 0xFFFF)")
        if not isinstance(self.data, (bytes, bytearray, memoryview)):
            raise TypeError(f"user stream data must be bytes, not {type(self.data).__name__}")
        if len(self.data) >= 1 << 32:
            raise ValueError("user stream data must be smaller than 4 GiB")
        object.__setattr__(self, "data", bytes(self.data))


@dataclasses.dataclass(frozen=True)
class ExceptionInfo:
    """The exception to record in the dump.

    On Windows ``pointers`` is the address, in the target, of its
    EXCEPTION_POINTERS (as MINIDUMP_EXCEPTION_INFORMATION expects).  On Linux the
    stream is built from ``code`` (a signal number), ``address`` and the saved
    context of ``thread_id``; ``flags`` is the signal's si_code (Breakpad's
    ExceptionFlags on Linux).
    """

    thread_id: int
    pointers: int = 0
    code: int = 0
    address: int = 0
    flags: int = 0


@dataclasses.dataclass(frozen=True)
class SkippedRegion:
    """A mapping the dump lists (MemoryInfoList, maps) but holds no bytes of, and why."""

    base: int
    size: int
    reason: str


@dataclasses.dataclass(frozen=True)
class DumpResult:
    """What :meth:`Snapshot.write_dump` wrote.

    ``skipped`` names each region of the requested memory whose bytes are not in the
    dump, with the reason (Linux: MADV_DONTDUMP unless asked for, no access, device memory,
    memfd_secret; Windows: blocks DbgHelp could not read, the first 1024 of them).
    ``skipped_reads`` counts every block DbgHelp could not read (Windows,
    ReadMemoryFailureCallback), listed or not.
    """

    path: str | None
    size: int
    seconds: float
    dump_type: MiniDumpType
    pid: int
    threads: int | None = None
    modules: int | None = None
    skipped: tuple[SkippedRegion, ...] = ()
    skipped_reads: int = 0
    #: Why a CPython target's Python-stacks stream is missing (None: written, or no CPython).
    python_stacks_skipped: str | None = None

    @property
    def skipped_bytes(self) -> int:
        return sum(region.size for region in self.skipped)


@dataclasses.dataclass(frozen=True)
class WriteOutcome:
    """What a backend's write reports back to :meth:`Snapshot.write_dump`."""

    threads: int | None
    modules: int | None
    skipped: tuple[SkippedRegion, ...] = ()
    skipped_reads: int = 0
    python_stacks_skipped: str | None = None


@dataclasses.dataclass(frozen=True)
class ProcessInfo:
    """The target process as captured (PSS_PROCESS_INFORMATION; /proc on Linux)."""

    pid: int
    parent_pid: int | None
    image_path: str | None
    create_time: float | None = None
    user_seconds: float | None = None
    kernel_seconds: float | None = None
    exit_status: int | None = None
    virtual_size: int | None = None
    peak_virtual_size: int | None = None
    working_set_size: int | None = None
    peak_working_set_size: int | None = None
    private_usage: int | None = None
    page_fault_count: int | None = None
    flags: int = 0


@dataclasses.dataclass(frozen=True)
class ThreadInfo:
    """One thread of the snapshot."""

    thread_id: int
    name: str | None = None
    instruction_pointer: int | None = None
    stack_pointer: int | None = None
    start_address: int | None = None
    priority: int | None = None
    suspend_count: int | None = None
    create_time: float | None = None
    user_seconds: float | None = None
    kernel_seconds: float | None = None
    state: str | None = None
    flags: int = 0


@dataclasses.dataclass(frozen=True)
class HandleInfo:
    """One handle (an fd on Linux)."""

    handle: int
    type_name: str | None
    object_name: str | None
    granted_access: int | None = None
    attributes: int | None = None
    handle_count: int | None = None
    pointer_count: int | None = None


@dataclasses.dataclass(frozen=True)
class RegionInfo:
    """One region of the address space."""

    base: int
    size: int
    protect: int
    state: int
    type: int
    allocation_base: int | None = None
    allocation_protect: int | None = None
    mapped_file: str | None = None
    permissions: str | None = None


@dataclasses.dataclass(frozen=True)
class Performance:
    """How long the capture took and how long the target was paused, in seconds."""

    pause_seconds: float
    total_seconds: float
    va_clone_seconds: float | None = None
    va_space_seconds: float | None = None
    aux_pages_seconds: float | None = None
    handles_seconds: float | None = None
    threads_seconds: float | None = None
    # Linux: how memory was captured ("stacks", "precopy", "clone" or "frozen") and why.
    capture_mode: str | None = None
    capture_mode_reason: str | None = None
    # Pre-copy: every pause so far (the capture's, then each full dump's final stop), the
    # copy rounds of the last full dump, and the bytes copied in its final stop.
    pauses_seconds: tuple[float, ...] = ()
    precopy_rounds: int | None = None
    precopy_final_bytes: int | None = None


class Snapshot(abc.ABC):
    """A captured process.  Use it as a context manager, or call :meth:`close`.

    ``is_live`` is True when no snapshot could be taken and the dump is written
    from the live (Windows) or frozen (Linux) process instead.  ``memory`` says
    which memory the snapshot holds, and so which dump types it can write.
    """

    pid: int
    flags: CaptureFlags
    is_live: bool
    memory: CaptureMemory

    def __init__(self, pid: int, flags: CaptureFlags, is_live: bool,
                 memory: CaptureMemory = CaptureMemory.ALL) -> None:
        self.pid = pid
        self.flags = flags
        self.is_live = is_live
        self.memory = memory
        self._closed = False
        self._close_lock = threading.Lock()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("live" if self.is_live else "snapshot")
        return f"<{type(self).__name__} pid={self.pid} {state}>"

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Release everything the snapshot holds.  Safe to call more than once."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._release()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"the snapshot of pid {self.pid} is closed; capture() a new one")

    def write_dump(
        self,
        dest: _dest.Dest,
        dump_type: MiniDumpType = MiniDumpType.NORMAL,
        *,
        exception: ExceptionInfo | None = None,
        user_streams: Iterable[UserStream | tuple[int, bytes]] = (),
        callback: DumpCallback | None = None,
        overwrite: bool = False,
        include_dont_dump: bool = False,
    ) -> DumpResult:
        """Write a minidump of the snapshot to *dest* (a path or a binary file object).

        A new path is created with mode 0600; an existing one is replaced only
        with ``overwrite=True``, and a symlink never.  If anything fails, or the
        *callback* raises or returns CANCEL, nothing is left behind and the
        exception propagates.

        Memory the target marked MADV_DONTDUMP (key material, caches) is left out,
        as kernel cores leave it out, and counted in ``DumpResult.skipped``;
        ``include_dont_dump=True`` writes it as well.
        """
        self._check_open()
        check_flags(dump_type, MiniDumpType, "dump_type")
        if exception is not None and not isinstance(exception, ExceptionInfo):
            raise TypeError(f"exception must be an ExceptionInfo, not {type(exception).__name__}")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        if not isinstance(overwrite, bool):
            raise TypeError(f"overwrite must be True or False, not {overwrite!r}")
        if not isinstance(include_dont_dump, bool):
            raise TypeError(f"include_dont_dump must be True or False, not {include_dont_dump!r}")
        self._check_memory(MiniDumpType(dump_type))
        streams = _user_streams(user_streams)
        started = time.perf_counter()
        try:
            with _dest.open_destination(dest, overwrite) as out:
                outcome = self._write(out, MiniDumpType(dump_type), exception, streams,
                                      callback, include_dont_dump)
        except CancelledByCallback as cancel:
            # The partial file is gone by now; what the caller sees is the callback's own
            # exception, or DumpCancelledError for a CANCEL answer.
            if cancel.cause is not None:
                raise cancel.cause from None
            raise DumpCancelledError(
                f"the dump callback cancelled the dump of pid {self.pid}",
                winerror=cancel.winerror, function=cancel.function, pid=self.pid) from None
        return DumpResult(
            path=out.path,
            size=out.size,
            seconds=time.perf_counter() - started,
            dump_type=MiniDumpType(dump_type),
            pid=self.pid,
            threads=outcome.threads,
            modules=outcome.modules,
            skipped=outcome.skipped,
            skipped_reads=outcome.skipped_reads,
            python_stacks_skipped=outcome.python_stacks_skipped,
        )

    def _check_memory(self, dump_type: MiniDumpType) -> None:
        missing = dump_type & NEEDS_ALL_MEMORY
        if self.memory is CaptureMemory.PRECOPY and missing and \
                not dump_type & MiniDumpType.WITH_FULL_MEMORY:
            names = "|".join(flag.name or hex(flag) for flag in MiniDumpType
                             if flag & missing and flag & NEEDS_ALL_MEMORY == flag)
            raise ValueError(
                f"dump_type {names} cannot be written from a CaptureMemory.PRECOPY snapshot "
                f"of pid {self.pid}, which writes full dumps (WITH_FULL_MEMORY) or stack-only "
                "ones: add WITH_FULL_MEMORY, or capture with memory=CaptureMemory.ALL")
        if self.memory is CaptureMemory.STACKS and missing:
            names = "|".join(flag.name or hex(flag) for flag in MiniDumpType
                             if flag & missing and flag & NEEDS_ALL_MEMORY == flag)
            raise ValueError(
                f"dump_type {names} needs memory this snapshot of pid {self.pid} does not "
                "hold: it was captured with memory=CaptureMemory.STACKS (thread stacks only); "
                "capture with memory=CaptureMemory.ALL for this dump type")

    @abc.abstractmethod
    def _write(
        self,
        out: _dest.Output,
        dump_type: MiniDumpType,
        exception: ExceptionInfo | None,
        user_streams: Sequence[UserStream],
        callback: DumpCallback | None,
        include_dont_dump: bool,
    ) -> WriteOutcome:
        """Write the dump to ``out.fd``, set ``out.size``; say what was written and left out.

        *include_dont_dump* asks for MADV_DONTDUMP memory too (Linux; Windows has none).
        """

    @abc.abstractmethod
    def _release(self) -> None:
        """Free the snapshot's resources (called exactly once)."""

    @property
    @abc.abstractmethod
    def process(self) -> ProcessInfo:
        """The target process as captured."""

    @property
    @abc.abstractmethod
    def performance(self) -> Performance | None:
        """Capture timings, or None when they were not measured."""

    @abc.abstractmethod
    def threads(self) -> list[ThreadInfo]:
        """The threads captured."""

    @abc.abstractmethod
    def handles(self) -> list[HandleInfo]:
        """The handles (Windows) or file descriptors (Linux) captured."""

    @abc.abstractmethod
    def regions(self) -> list[RegionInfo]:
        """The address space as captured."""


def _user_streams(streams: Iterable[UserStream | tuple[int, bytes]]) -> list[UserStream]:
    if isinstance(streams, (bytes, str)):
        raise TypeError("user_streams must be a sequence of UserStream or (type, bytes) pairs")
    result = []
    for item in streams:
        if isinstance(item, UserStream):
            result.append(item)
        elif isinstance(item, tuple) and len(item) == 2:
            result.append(UserStream(item[0], item[1]))
        else:
            raise TypeError(
                f"user_streams items must be UserStream or (type, bytes), not {item!r:.60}")
    return result
