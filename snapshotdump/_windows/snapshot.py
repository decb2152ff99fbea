"""The Windows Snapshot: PssCaptureSnapshot, PssWalkSnapshot, and dumps written from it."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from .. import _dest, errors
from ..callbacks import DumpCallback
from ..flags import CaptureFlags, MiniDumpType, QueryInformationClass, WalkInformationClass
from ..snapshot import (
    ExceptionInfo,
    HandleInfo,
    Performance,
    ProcessInfo,
    RegionInfo,
    Snapshot,
    ThreadInfo,
    UserStream,
)
from . import dbghelp, libs, pss, win32


@dataclasses.dataclass(frozen=True)
class ProcessHandle:
    """An open Windows process handle, for ``capture()`` (a plain int is a pid)."""

    value: int


class WindowsSnapshot(Snapshot):
    """A PSS snapshot (or, with ``is_live``, the live process) of one Windows process."""

    def __init__(
        self, process: Any, owns_process: bool, pid: int, flags: CaptureFlags,
        hpss: Any | None,
    ) -> None:
        super().__init__(pid, flags, is_live=hpss is None)
        self._process = process
        self._owns_process = owns_process
        self._hpss = hpss
        self._va_clone: Any | None = None
        self._info: ProcessInfo | None = None

    def _release(self) -> None:
        # Order matters: the VA clone, then the snapshot, then the process handle.
        try:
            if self._va_clone is not None:
                win32.close_handle(self._va_clone)
                self._va_clone = None
        finally:
            try:
                if self._hpss is not None:
                    pss.free_snapshot(libs.LIBRARIES.kernel32.GetCurrentProcess(), self._hpss,
                                      self.pid)
                    self._hpss = None
            finally:
                if self._owns_process:
                    win32.close_handle(self._process)

    def _take_va_clone(self) -> None:
        info = pss.query(self._hpss, QueryInformationClass.VA_CLONE_INFORMATION, self.pid)
        if info.VaCloneHandle != libs.ffi().NULL:
            self._va_clone = info.VaCloneHandle

    def _write(
        self, out: _dest.Output, dump_type: MiniDumpType, exception: ExceptionInfo | None,
        user_streams: Sequence[UserStream], callback: DumpCallback | None,
    ) -> tuple[int | None, int | None]:
        source = self._hpss if self._hpss is not None else self._process
        threads, modules = dbghelp.write_dump(
            out.fd, source, self.pid, int(dump_type),
            from_snapshot=self._hpss is not None, exception=exception,
            user_streams=user_streams, callback=callback)
        out.size = os.fstat(out.fd).st_size
        return threads, modules

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
            if self._hpss is None:
                self._info = ProcessInfo(pid=self.pid, parent_pid=None,
                                         image_path=win32.image_path(self._process))
            else:
                self._info = _process_info(
                    pss.query(self._hpss, QueryInformationClass.PROCESS_INFORMATION, self.pid))
        return self._info

    @property
    def performance(self) -> Performance | None:
        self._check_open()
        if self._hpss is None or not self.flags & CaptureFlags.CREATE_MEASURE_PERFORMANCE:
            return None
        counters = pss.query(self._hpss, QueryInformationClass.PERFORMANCE_COUNTERS, self.pid)
        seconds = 1 / libs.FILETIME_TICKS_PER_SECOND
        total = int(counters.TotalWallClockPeriod) * seconds
        return Performance(
            pause_seconds=total,
            total_seconds=total,
            va_clone_seconds=int(counters.VaCloneWallClockPeriod) * seconds,
            va_space_seconds=int(counters.VaSpaceWallClockPeriod) * seconds,
            aux_pages_seconds=int(counters.AuxPagesWallClockPeriod) * seconds,
            handles_seconds=int(counters.HandlesWallClockPeriod) * seconds,
            threads_seconds=int(counters.ThreadsWallClockPeriod) * seconds,
        )

    def threads(self) -> list[ThreadInfo]:
        hpss = self._require_snapshot("threads()")
        result = []
        for entry in pss.walk(hpss, WalkInformationClass.THREADS, self.pid):
            context = entry.ContextRecord
            has_context = context != libs.ffi().NULL
            result.append(ThreadInfo(
                thread_id=int(entry.ThreadId),
                instruction_pointer=int(context.Rip) if has_context else None,
                stack_pointer=int(context.Rsp) if has_context else None,
                start_address=int(libs.ffi().cast("uintptr_t", entry.Win32StartAddress)),
                priority=int(entry.Priority),
                suspend_count=int(entry.SuspendCount),
                create_time=libs.filetime_to_unix(entry.CreateTime),
                user_seconds=libs.filetime_seconds(entry.UserTime),
                kernel_seconds=libs.filetime_seconds(entry.KernelTime),
                flags=int(entry.Flags),
            ))
        return result

    def handles(self) -> list[HandleInfo]:
        hpss = self._require_snapshot("handles()")
        ffi = libs.ffi()
        result = []
        for entry in pss.walk(hpss, WalkInformationClass.HANDLES, self.pid):
            result.append(HandleInfo(
                handle=win32.handle_value(entry.Handle),
                type_name=_counted(entry.TypeName, entry.TypeNameLength, ffi),
                object_name=_counted(entry.ObjectName, entry.ObjectNameLength, ffi),
                granted_access=int(entry.GrantedAccess),
                attributes=int(entry.Attributes),
                handle_count=int(entry.HandleCount),
                pointer_count=int(entry.PointerCount),
            ))
        return result

    def regions(self) -> list[RegionInfo]:
        hpss = self._require_snapshot("regions()")
        ffi = libs.ffi()
        result = []
        for entry in pss.walk(hpss, WalkInformationClass.VA_SPACE, self.pid):
            result.append(RegionInfo(
                base=int(ffi.cast("uintptr_t", entry.BaseAddress)),
                size=int(entry.RegionSize),
                protect=int(entry.Protect),
                state=int(entry.State),
                type=int(entry.Type),
                allocation_base=int(ffi.cast("uintptr_t", entry.AllocationBase)),
                allocation_protect=int(entry.AllocationProtect),
                mapped_file=_counted(entry.MappedFileName, entry.MappedFileNameLength, ffi),
            ))
        return result


def _counted(pointer: Any, length_bytes: int, ffi: Any) -> str | None:
    if pointer == ffi.NULL or not length_bytes:
        return None
    return str(ffi.string(pointer, int(length_bytes) // 2))


def _process_info(info: Any) -> ProcessInfo:
    return ProcessInfo(
        pid=int(info.ProcessId),
        parent_pid=int(info.ParentProcessId),
        image_path=str(libs.ffi().string(info.ImageFileName)) or None,
        create_time=libs.filetime_to_unix(info.CreateTime),
        user_seconds=libs.filetime_seconds(info.UserTime),
        kernel_seconds=libs.filetime_seconds(info.KernelTime),
        exit_status=int(info.ExitStatus),
        virtual_size=int(info.VirtualSize),
        peak_virtual_size=int(info.PeakVirtualSize),
        working_set_size=int(info.WorkingSetSize),
        peak_working_set_size=int(info.PeakWorkingSetSize),
        private_usage=int(info.PrivateUsage),
        page_fault_count=int(info.PageFaultCount),
        flags=int(info.Flags),
    )


def capture(
    target: int | ProcessHandle, flags: CaptureFlags, thread_context_flags: int | None,
    live_fallback: bool,
) -> WindowsSnapshot:
    """Open the target (unless given a handle) and PssCaptureSnapshot it."""
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
        snapshot = WindowsSnapshot(process, owns, pid, flags, hpss)
    except BaseException:
        if owns:
            with contextlib.suppress(Exception):
                win32.close_handle(process)
        raise
    try:
        if flags & CaptureFlags.VA_CLONE:
            snapshot._take_va_clone()
    except BaseException:
        snapshot.close()
        raise
    return snapshot
