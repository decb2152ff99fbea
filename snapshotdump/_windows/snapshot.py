"""The Windows Snapshot: PssCaptureSnapshot, PssWalkSnapshot, and dumps written from it."""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .. import _dest, errors
from ..callbacks import DumpCallback
from ..flags import CaptureFlags, MiniDumpType
from ..snapshot import (
    DumpResult,
    ExceptionInfo,
    HandleInfo,
    Performance,
    ProcessInfo,
    RegionInfo,
    SkippedRegion,
    Snapshot,
    ThreadInfo,
    UserStream,
    WriteOutcome,
)
from . import arch, dbghelp, decode, libs, pss, win32
from .handle import ProcessHandle

__all__ = ["ProcessHandle", "WindowsSnapshot", "capture"]


class _Owned:
    """What a snapshot must free, once: from close(), or from the finalizer if never closed."""

    def __init__(self, process: Any, owns_process: bool, pid: int, hpss: Any | None) -> None:
        self.process = process
        self.owns_process = owns_process
        self.pid = pid
        self.hpss = hpss
        self.freed = False

    def free(self) -> None:
        if self.freed:
            return
        self.freed = True
        try:
            if self.hpss is not None:
                # PssFreeSnapshot also closes the VA clone handle (PSS_VA_CLONE_INFORMATION):
                # that handle belongs to the snapshot, and closing it ourselves first would
                # close it twice, or close an unrelated handle that reused the value.
                pss.free_snapshot(libs.LIBRARIES.kernel32.GetCurrentProcess(), self.hpss,
                                  self.pid)
        finally:
            if self.owns_process:
                win32.close_handle(self.process)


def _free_unclosed(owned: _Owned) -> None:
    # The VA clone and its copy-on-write memory live as long as the snapshot.
    warnings.warn(f"the snapshot of pid {owned.pid} was never closed; close it, or use it "
                  "as a context manager", ResourceWarning, stacklevel=1)
    owned.free()


class WindowsSnapshot(Snapshot):
    """A PSS snapshot (or, with ``is_live``, the live process) of one Windows process."""

    def __init__(
        self, process: Any, owns_process: bool, pid: int, flags: CaptureFlags,
        hpss: Any | None,
    ) -> None:
        super().__init__(pid, flags, is_live=hpss is None)
        self._process = process
        self._hpss = hpss
        self._owned = _Owned(process, owns_process, pid, hpss)
        self._finalizer = weakref.finalize(self, _free_unclosed, self._owned)
        self._finalizer.atexit = False  # at exit the OS closes every handle anyway
        self._info: ProcessInfo | None = None
        # Threads using the snapshot now, so that close() never frees it under DbgHelp or a
        # walk: freeing a snapshot that is being read is a use-after-free.
        self._idle = threading.Condition()
        self._users: list[int] = []
        self._written = threading.local()

    @contextlib.contextmanager
    def _in_use(self) -> Iterator[None]:
        with self._idle:
            self._check_open()
            self._users.append(threading.get_ident())
        try:
            yield
        finally:
            with self._idle:
                self._users.remove(threading.get_ident())
                if self.closed and not self._users:
                    self._owned.free()  # close() was called from a dump callback
                self._idle.notify_all()

    def _release(self) -> None:
        self._finalizer.detach()
        with self._idle:
            if threading.get_ident() in self._users:
                return  # called from our own dump callback: freed when that use ends
            while self._users:
                self._idle.wait()
            self._owned.free()

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
        self._check_open()
        if not self.is_live and not self.flags & CaptureFlags.VA_CLONE:
            raise errors.SnapshotUnsupportedError(
                f"the snapshot of pid {self.pid} was captured without CaptureFlags.VA_CLONE, "
                "so it holds no memory and the target ran on: Windows cannot dump it frozen. "
                "Capture with VA_CLONE (the CLI: drop --no-clone)",
                function="MiniDumpWriteDump", pid=self.pid)
        # A file the library creates gets an owner-only DACL; a file object stays the caller's.
        self._written.private = isinstance(dest, (str, os.PathLike))
        return super().write_dump(dest, dump_type, exception=exception,
                                  user_streams=user_streams, callback=callback,
                                  overwrite=overwrite, include_dont_dump=include_dont_dump)

    def _write(
        self, out: _dest.Output, dump_type: MiniDumpType, exception: ExceptionInfo | None,
        user_streams: Sequence[UserStream], callback: DumpCallback | None,
        include_dont_dump: bool,
    ) -> WriteOutcome:
        file = libs.LIBRARIES.os_handle(out.fd)
        if getattr(self._written, "private", False):
            win32.make_private(file)  # before a byte of the target's memory is written
        with self._in_use():
            source = self._hpss if self._hpss is not None else self._process
            written = dbghelp.write_dump(
                file, out.fd, source, self._process, self.pid,
                int(dump_type), from_snapshot=self._hpss is not None, exception=exception,
                user_streams=user_streams, callback=callback)
        out.size = os.fstat(out.fd).st_size
        skipped = tuple(SkippedRegion(address, size, "unreadable (ReadMemoryFailureCallback)")
                        for address, size in written.skipped)
        return WriteOutcome(written.threads, written.modules, skipped, written.skipped_count)

    def _require_snapshot(self, what: str) -> Any:
        self._check_open()
        if self._hpss is None:
            raise errors.SnapshotUnsupportedError(
                f"{what} needs a PSS snapshot; this is a live_fallback snapshot of pid {self.pid}",
                function="PssWalkSnapshot", pid=self.pid)
        return self._hpss

    @property
    def process(self) -> ProcessInfo:
        self._check_open()
        if self._info is None:
            with self._in_use():
                if self._hpss is None:
                    self._info = ProcessInfo(pid=self.pid, parent_pid=None,
                                             image_path=win32.image_path(self._process))
                else:
                    self._info = decode.process_info(self._hpss, self.pid)
        return self._info

    @property
    def performance(self) -> Performance | None:
        self._check_open()
        if self._hpss is None or not self.flags & CaptureFlags.CREATE_MEASURE_PERFORMANCE:
            return None
        with self._in_use():
            return decode.performance(self._hpss, self.pid)

    def threads(self) -> list[ThreadInfo]:
        hpss = self._require_snapshot("threads()")
        with self._in_use():
            return decode.threads(hpss, self.pid)

    def handles(self) -> list[HandleInfo]:
        hpss = self._require_snapshot("handles()")
        with self._in_use():
            return decode.handles(hpss, self.pid)

    def regions(self) -> list[RegionInfo]:
        hpss = self._require_snapshot("regions()")
        with self._in_use():
            return decode.regions(hpss, self.pid)


def capture(
    target: int | ProcessHandle, flags: CaptureFlags, thread_context_flags: int | None,
    live_fallback: bool,
) -> WindowsSnapshot:
    """Open the target (unless given a handle) and PssCaptureSnapshot it."""
    arch.check()  # before any call: the declarations are x64's
    ffi = libs.ffi()
    if isinstance(target, ProcessHandle):
        process, owns = ffi.cast("HANDLE", target.value), False
        pid = win32.process_id(process)
    else:
        pid = target
        process, owns = win32.open_process(pid), True
    context_flags = pss.CONTEXT_ALL_AMD64 if thread_context_flags is None else thread_context_flags
    try:
        try:
            hpss = pss.capture_snapshot(process, int(flags), context_flags, pid)
        except errors.SnapshotUnsupportedError:
            if not live_fallback:
                raise
            return WindowsSnapshot(process, owns, pid, flags, None)
        return WindowsSnapshot(process, owns, pid, flags, hpss)
    except BaseException:
        if owns:
            with contextlib.suppress(Exception):
                win32.close_handle(process)
        raise
