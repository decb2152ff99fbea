"""The Process Snapshotting API (kernel32's Pss* functions)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .. import errors
from ..flags import CaptureFlags, QueryInformationClass, WalkInformationClass
from . import libs, win32

# CONTEXT_ALL on x64: control, integer, segments, floating point, debug registers.
CONTEXT_ALL_AMD64 = 0x0010001F

_QUERY_TYPES = {
    QueryInformationClass.PROCESS_INFORMATION: "PSS_PROCESS_INFORMATION",
    QueryInformationClass.VA_CLONE_INFORMATION: "PSS_VA_CLONE_INFORMATION",
    QueryInformationClass.AUXILIARY_PAGES_INFORMATION: "PSS_AUXILIARY_PAGES_INFORMATION",
    QueryInformationClass.VA_SPACE_INFORMATION: "PSS_VA_SPACE_INFORMATION",
    QueryInformationClass.HANDLE_INFORMATION: "PSS_HANDLE_INFORMATION",
    QueryInformationClass.THREAD_INFORMATION: "PSS_THREAD_INFORMATION",
    QueryInformationClass.HANDLE_TRACE_INFORMATION: "PSS_HANDLE_TRACE_INFORMATION",
    QueryInformationClass.PERFORMANCE_COUNTERS: "PSS_PERFORMANCE_COUNTERS",
}

_WALK_TYPES = {
    WalkInformationClass.AUXILIARY_PAGES: "PSS_AUXILIARY_PAGE_ENTRY",
    WalkInformationClass.VA_SPACE: "PSS_VA_SPACE_ENTRY",
    WalkInformationClass.HANDLES: "PSS_HANDLE_ENTRY",
    WalkInformationClass.THREADS: "PSS_THREAD_ENTRY",
}


# The capture flag without which PssQuerySnapshot / PssWalkSnapshot answer ERROR_NOT_FOUND.
# Two tables: the two IntEnums share values, so one dict would mix them up.
_QUERY_NEEDS = {
    QueryInformationClass.VA_CLONE_INFORMATION: CaptureFlags.VA_CLONE,
    QueryInformationClass.HANDLE_INFORMATION: CaptureFlags.HANDLES,
    QueryInformationClass.THREAD_INFORMATION: CaptureFlags.THREADS,
    QueryInformationClass.VA_SPACE_INFORMATION: CaptureFlags.VA_SPACE,
    QueryInformationClass.HANDLE_TRACE_INFORMATION: CaptureFlags.HANDLE_TRACE,
    QueryInformationClass.PERFORMANCE_COUNTERS: CaptureFlags.CREATE_MEASURE_PERFORMANCE,
}
_WALK_NEEDS = {
    WalkInformationClass.HANDLES: CaptureFlags.HANDLES,
    WalkInformationClass.THREADS: CaptureFlags.THREADS,
    WalkInformationClass.VA_SPACE: CaptureFlags.VA_SPACE,
}


def _check(code: int, what: str, needs: CaptureFlags | None, function_name: str,
           pid: int) -> None:
    if code == errors.ERROR_NOT_FOUND and needs is not None:
        raise errors.SnapshotError(
            f"the snapshot of pid {pid} holds no {what} data: it was captured without "
            f"CaptureFlags.{needs.name}; capture with CaptureFlags.DEFAULT | "
            f"CaptureFlags.{needs.name} to get it [WinError {code}]",
            winerror=code, function=function_name, pid=pid)
    win32.check_code(code, function_name, pid=pid)


def function(name: str) -> Any:
    """A Pss* function, or SnapshotUnsupportedError where kernel32 lacks it."""
    try:
        return getattr(libs.LIBRARIES.kernel32, name)
    except (AttributeError, libs.ffi().error) as exc:
        # cffi 1.x raises AttributeError for a missing export, cffi 2.x ffi.error.
        raise errors.SnapshotUnsupportedError(
            f"the Process Snapshotting API is unavailable here ({name} is not exported by "
            "kernel32.dll: Windows before 8.1, or Wine); pass live_fallback=True to dump the "
            "live process instead",
            winerror=errors.ERROR_CALL_NOT_IMPLEMENTED, function=name) from exc


def capture_snapshot(process: Any, flags: int, context_flags: int, pid: int) -> Any:
    capture = function("PssCaptureSnapshot")
    snapshot = libs.ffi().new("HPSS *")
    win32.check_code(capture(process, flags, context_flags, snapshot),
                     "PssCaptureSnapshot", pid=pid)
    return snapshot[0]


def free_snapshot(process: Any, snapshot: Any, pid: int) -> None:
    win32.check_code(function("PssFreeSnapshot")(process, snapshot), "PssFreeSnapshot", pid=pid)


def query(snapshot: Any, information: QueryInformationClass, pid: int) -> Any:
    """PssQuerySnapshot into a fresh struct of the class's type."""
    ffi = libs.ffi()
    ctype = _QUERY_TYPES[information]
    buffer = ffi.new(f"{ctype} *")
    _check(function("PssQuerySnapshot")(snapshot, int(information), buffer, ffi.sizeof(ctype)),
           information.name, _QUERY_NEEDS.get(information),
           f"PssQuerySnapshot({information.name})", pid)
    return buffer


def walk(snapshot: Any, information: WalkInformationClass, pid: int) -> Iterator[Any]:
    """PssWalkSnapshot, one struct per entry, with a walk marker freed on every path."""
    ffi = libs.ffi()
    ctype = _WALK_TYPES[information]
    marker = ffi.new("HPSSWALK *")
    win32.check_code(function("PssWalkMarkerCreate")(ffi.NULL, marker), "PssWalkMarkerCreate",
                     pid=pid)
    try:
        walk_snapshot = function("PssWalkSnapshot")
        while True:
            entry = ffi.new(f"{ctype} *")
            code = walk_snapshot(snapshot, int(information), marker[0], entry, ffi.sizeof(ctype))
            if code == errors.ERROR_NO_MORE_ITEMS:
                return
            _check(code, information.name, _WALK_NEEDS.get(information),
                   f"PssWalkSnapshot({information.name})", pid)
            yield entry
    finally:
        function("PssWalkMarkerFree")(marker[0])


def duplicate(process: Any, snapshot: Any, target_process: Any, pid: int) -> Any:
    """PssDuplicateSnapshot into *target_process*."""
    out = libs.ffi().new("HPSS *")
    win32.check_code(
        function("PssDuplicateSnapshot")(process, snapshot, target_process, out, 0),
        "PssDuplicateSnapshot", pid=pid)
    return out[0]
