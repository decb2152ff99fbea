"""MiniDumpWriteDump, and the callback that answers IsProcessSnapshotCallback and the user."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from typing import Any

from .. import errors
from ..callbacks import (
    USER_EVENT_TYPES,
    CallbackEvent,
    CancelledByCallback,
    Decision,
    DumpCallback,
    ask,
)
from ..flags import CallbackType, ModuleWriteFlags, ThreadWriteFlags
from ..minidump import lists
from ..snapshot import ExceptionInfo, UserStream
from . import libs, win32


class _CallbackState:
    """The Python side of one MiniDumpWriteDump call: the user callback and what it decided."""

    def __init__(self, user: DumpCallback | None, from_snapshot: bool) -> None:
        self.user = user
        self.from_snapshot = from_snapshot
        self.cancelled: CancelledByCallback | None = None
        self.modules = 0
        self.threads = 0
        self.excluded = False

    def answer(self, callback_input: Any, callback_output: Any) -> int:
        try:
            return self._answer(callback_input, callback_output)
        except BaseException as exc:  # nothing may unwind through dbghelp's frames
            self.cancelled = self.cancelled or CancelledByCallback(exc)
            return 0

    def _answer(self, callback_input: Any, out: Any) -> int:
        kind_value = int(callback_input.CallbackType)
        try:
            kind = CallbackType(kind_value)
        except ValueError:
            return 0
        if kind is CallbackType.IS_PROCESS_SNAPSHOT:
            # S_FALSE: "the handle is a PSS snapshot handle, not a process handle".
            out.Status = errors.S_FALSE if self.from_snapshot else errors.S_OK
            return 1
        if kind is CallbackType.CANCEL:
            out.Cancel = 1 if self.cancelled else 0
            out.CheckCancel = 1 if self.user is not None else 0
            return 1
        if kind not in USER_EVENT_TYPES:
            return 0
        if self.cancelled is not None:
            # Once cancelled, include nothing more so the writer finishes quickly.
            _exclude(kind, out)
            return 0 if kind in (CallbackType.INCLUDE_THREAD, CallbackType.INCLUDE_MODULE) else 1
        event = _event(kind, callback_input, out)
        try:
            decision = ask(self.user, event)
        except CancelledByCallback as cancel:
            self.cancelled = cancel
            _exclude(kind, out)
            return 1
        return _apply(kind, decision, out, self)


def _exclude(kind: CallbackType, out: Any) -> None:
    if kind is CallbackType.MODULE:
        out.ModuleWriteFlags = 0
    elif kind in (CallbackType.THREAD, CallbackType.THREAD_EX):
        out.ThreadWriteFlags = 0


def _apply(kind: CallbackType, decision: Decision, out: Any, state: _CallbackState) -> int:
    state.excluded = state.excluded or not decision.include or decision.write_flags is not None
    if kind is CallbackType.MODULE:
        if decision.write_flags is not None:
            out.ModuleWriteFlags = decision.write_flags
        if out.ModuleWriteFlags & ModuleWriteFlags.MODULE:
            state.modules += 1
        return 1
    if kind in (CallbackType.THREAD, CallbackType.THREAD_EX):
        if decision.write_flags is not None:
            out.ThreadWriteFlags = decision.write_flags
        if out.ThreadWriteFlags & ThreadWriteFlags.THREAD:
            state.threads += 1
        return 1
    # INCLUDE_THREAD / INCLUDE_MODULE / INCLUDE_VM_REGION: FALSE excludes.
    return 1 if decision.include else 0


def _event(kind: CallbackType, callback_input: Any, out: Any) -> CallbackEvent:
    ffi = libs.ffi()
    if kind is CallbackType.MODULE:
        module = callback_input.Module
        path = ffi.string(module.FullPath) if module.FullPath != ffi.NULL else None
        return CallbackEvent(
            kind, module_path=path, module_base=int(module.BaseOfImage),
            module_size=int(module.SizeOfImage),
            write_flags=ModuleWriteFlags(int(out.ModuleWriteFlags) & 0x7F))
    if kind in (CallbackType.THREAD, CallbackType.THREAD_EX):
        thread = callback_input.Thread
        low, high = int(thread.StackEnd), int(thread.StackBase)
        # Wine's dbghelp (built by mingw) lays this struct out without MSVC's 16-byte CONTEXT
        # alignment, so its stack fields land elsewhere: report them only when they make sense.
        plausible = 0 < low < high and high - low < 1 << 32
        return CallbackEvent(kind, thread_id=int(thread.ThreadId),
                             memory_base=low if plausible else None,
                             memory_size=high - low if plausible else None,
                             write_flags=ThreadWriteFlags(int(out.ThreadWriteFlags) & 0x7F))
    if kind is CallbackType.INCLUDE_THREAD:
        return CallbackEvent(kind, thread_id=int(callback_input.IncludeThread.ThreadId))
    if kind is CallbackType.INCLUDE_MODULE:
        return CallbackEvent(kind, module_base=int(callback_input.IncludeModule.BaseOfImage))
    return CallbackEvent(kind, memory_base=int(out.VmRegion.BaseAddress),
                         memory_size=int(out.VmRegion.RegionSize))


def _file_handle(fd: int) -> Any:
    if sys.platform == "win32":
        import msvcrt

        return libs.ffi().cast("HANDLE", msvcrt.get_osfhandle(fd))
    return libs.ffi().cast("HANDLE", fd)  # fakes at the cffi boundary write to the fd


def write_dump(
    fd: int,
    source: Any,
    pid: int,
    dump_type: int,
    *,
    from_snapshot: bool,
    exception: ExceptionInfo | None,
    user_streams: Sequence[UserStream],
    callback: DumpCallback | None,
) -> tuple[int, int]:
    """Call MiniDumpWriteDump; return the (threads, modules) it reported writing.

    *source* is the PSS snapshot handle (``from_snapshot=True``) or a process handle.
    """
    ffi = libs.ffi()
    kernel32 = libs.LIBRARIES.kernel32
    state = _CallbackState(callback, from_snapshot)

    @ffi.callback("MINIDUMP_CALLBACK_ROUTINE")  # type: ignore[untyped-decorator]
    def routine(_param: Any, callback_input: Any, callback_output: Any) -> int:
        return state.answer(callback_input, callback_output)

    info = ffi.new("MINIDUMP_CALLBACK_INFORMATION *")
    info.CallbackRoutine = routine
    info.CallbackParam = ffi.NULL

    exception_param = ffi.NULL
    if exception is not None:
        exception_param = ffi.new("MINIDUMP_EXCEPTION_INFORMATION *")
        exception_param.ThreadId = exception.thread_id
        exception_param.ExceptionPointers = ffi.cast("EXCEPTION_POINTERS *", exception.pointers)
        exception_param.ClientPointers = 1  # the pointers are in the target's address space

    streams_param = ffi.NULL
    keep_alive: list[Any] = []
    if user_streams:
        array = ffi.new("MINIDUMP_USER_STREAM[]", len(user_streams))
        for slot, stream in zip(array, user_streams, strict=True):
            data = ffi.from_buffer(stream.data)
            keep_alive.append(data)
            slot.Type = stream.type
            slot.BufferSize = len(stream.data)
            slot.Buffer = data
        streams_param = ffi.new("MINIDUMP_USER_STREAM_INFORMATION *")
        streams_param.UserStreamCount = len(user_streams)
        streams_param.UserStreamArray = array
        keep_alive.append(array)

    try:
        dbghelp_write = libs.LIBRARIES.dbghelp.MiniDumpWriteDump
    except (AttributeError, ffi.error) as exc:
        raise errors.SnapshotUnsupportedError(
            "dbghelp.dll has no MiniDumpWriteDump", function="MiniDumpWriteDump") from exc
    ok = dbghelp_write(source, pid, _file_handle(fd), dump_type, exception_param, streams_param,
                       info)
    # MiniDumpWriteDump leaves an HRESULT in GetLastError on failure (stale values on success).
    last = int(kernel32.GetLastError()) if not ok else 0
    if state.cancelled is not None:
        raise CancelledByCallback(state.cancelled.cause, function="MiniDumpWriteDump",
                                  winerror=errors.ERROR_CANCELLED)
    if not ok:
        raise errors.from_hresult(last, "MiniDumpWriteDump", pid=pid,
                                  message=win32.format_message(last))
    if state.excluded:
        # A write-only file object cannot be read back to check; a path dest always can.
        with contextlib.suppress(OSError):
            lists.trim_list_streams(fd)
    return state.threads, state.modules
