"""PSS data as the library's dataclasses: what PssQuerySnapshot and PssWalkSnapshot return."""

from __future__ import annotations

from typing import Any

from ..flags import QueryInformationClass, WalkInformationClass
from ..snapshot import HandleInfo, Performance, ProcessInfo, RegionInfo, ThreadInfo
from . import libs, pss, win32


def process_info(hpss: Any, pid: int) -> ProcessInfo:
    info = pss.query(hpss, QueryInformationClass.PROCESS_INFORMATION, pid)
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


def performance(hpss: Any, pid: int) -> Performance:
    counters = pss.query(hpss, QueryInformationClass.PERFORMANCE_COUNTERS, pid)
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


def threads(hpss: Any, pid: int) -> list[ThreadInfo]:
    ffi = libs.ffi()
    result = []
    for entry in pss.walk(hpss, WalkInformationClass.THREADS, pid):
        context = entry.ContextRecord
        has_context = context != ffi.NULL
        result.append(ThreadInfo(
            thread_id=int(entry.ThreadId),
            instruction_pointer=int(context.Rip) if has_context else None,
            stack_pointer=int(context.Rsp) if has_context else None,
            start_address=int(ffi.cast("uintptr_t", entry.Win32StartAddress)),
            priority=int(entry.Priority),
            suspend_count=int(entry.SuspendCount),
            create_time=libs.filetime_to_unix(entry.CreateTime),
            user_seconds=libs.filetime_seconds(entry.UserTime),
            kernel_seconds=libs.filetime_seconds(entry.KernelTime),
            flags=int(entry.Flags),
        ))
    return result


def handles(hpss: Any, pid: int) -> list[HandleInfo]:
    ffi = libs.ffi()
    return [
        HandleInfo(
            handle=win32.handle_value(entry.Handle),
            type_name=_counted(entry.TypeName, entry.TypeNameLength, ffi),
            object_name=_counted(entry.ObjectName, entry.ObjectNameLength, ffi),
            granted_access=int(entry.GrantedAccess),
            attributes=int(entry.Attributes),
            handle_count=int(entry.HandleCount),
            pointer_count=int(entry.PointerCount),
        )
        for entry in pss.walk(hpss, WalkInformationClass.HANDLES, pid)
    ]


def regions(hpss: Any, pid: int) -> list[RegionInfo]:
    ffi = libs.ffi()
    return [
        RegionInfo(
            base=int(ffi.cast("uintptr_t", entry.BaseAddress)),
            size=int(entry.RegionSize),
            protect=int(entry.Protect),
            state=int(entry.State),
            type=int(entry.Type),
            allocation_base=int(ffi.cast("uintptr_t", entry.AllocationBase)),
            allocation_protect=int(entry.AllocationProtect),
            mapped_file=_counted(entry.MappedFileName, entry.MappedFileNameLength, ffi),
        )
        for entry in pss.walk(hpss, WalkInformationClass.VA_SPACE, pid)
    ]


def _counted(pointer: Any, length_bytes: int, ffi: Any) -> str | None:
    if pointer == ffi.NULL or not length_bytes:
        return None
    return str(ffi.string(pointer, int(length_bytes) // 2))
