"""MiniDumpWriteDump, called by one thread at a time.

The MiniDumpWriteDump page: "all DbgHelp functions, such as this one, are single
threaded.  Therefore, calls from more than one thread to this function will likely
result in unexpected behavior or memory corruption."  Every DbgHelp call goes
through ``DBGHELP_LOCK``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from .. import errors
from ..callbacks import CancelledByCallback, DumpCallback
from ..minidump import lists
from ..snapshot import ExceptionInfo, UserStream
from . import libs, win32
from .answers import CallbackState

DBGHELP_LOCK = threading.Lock()
_holder = threading.local()


@contextlib.contextmanager
def serialized() -> Iterator[None]:
    """Hold DBGHELP_LOCK; a dump callback asking for it again gets an error, not a deadlock."""
    if getattr(_holder, "inside", False):
        raise RuntimeError("write_dump was called from a dump callback; DbgHelp is single-"
                           "threaded and already busy with the dump that called it")
    with DBGHELP_LOCK:
        _holder.inside = True
        try:
            yield
        finally:
            _holder.inside = False


@dataclasses.dataclass(frozen=True)
class Written:
    """What one MiniDumpWriteDump call reported through its callbacks."""

    threads: int
    modules: int
    skipped_count: int
    skipped: tuple[tuple[int, int], ...]


def _streams(user_streams: Sequence[UserStream], keep_alive: list[Any]) -> Any:
    ffi = libs.ffi()
    if not user_streams:
        return ffi.NULL
    array = ffi.new("MINIDUMP_USER_STREAM[]", len(user_streams))
    for slot, stream in zip(array, user_streams, strict=True):
        data = ffi.from_buffer(stream.data)
        keep_alive.append(data)
        slot.Type = stream.type
        slot.BufferSize = len(stream.data)
        slot.Buffer = data
    info = ffi.new("MINIDUMP_USER_STREAM_INFORMATION *")
    info.UserStreamCount = len(user_streams)
    info.UserStreamArray = array
    keep_alive.append(array)
    return info


@dataclasses.dataclass(frozen=True)
class LocalExceptionPointers(ExceptionInfo):
    """An exception whose ``pointers`` is an EXCEPTION_POINTERS in *this* process, with the
    record and context it points to (ClientPointers=FALSE): a debugger's copies."""


def _exception(exception: ExceptionInfo | None) -> Any:
    ffi = libs.ffi()
    if exception is None:
        return ffi.NULL
    info = ffi.new("MINIDUMP_EXCEPTION_INFORMATION *")
    info.ThreadId = exception.thread_id
    info.ExceptionPointers = ffi.cast("EXCEPTION_POINTERS *", exception.pointers)
    # Otherwise the pointers are in the target's address space.
    info.ClientPointers = 0 if isinstance(exception, LocalExceptionPointers) else 1
    return info


def write_dump(
    file: Any,
    fd: int,
    source: Any,
    process: Any,
    pid: int,
    dump_type: int,
    *,
    from_snapshot: bool,
    exception: ExceptionInfo | None,
    user_streams: Sequence[UserStream],
    callback: DumpCallback | None,
) -> Written:
    """Call MiniDumpWriteDump on the Win32 *file* handle (*fd* is the same file, for checks).

    *source* is the PSS snapshot handle (``from_snapshot=True``) or *process*.
    """
    ffi = libs.ffi()
    state = CallbackState(callback, from_snapshot)

    @ffi.callback("MINIDUMP_CALLBACK_ROUTINE")  # type: ignore[untyped-decorator]
    def routine(_param: Any, callback_input: Any, callback_output: Any) -> int:
        return state.answer(callback_input, callback_output)

    info = ffi.new("MINIDUMP_CALLBACK_INFORMATION *")
    info.CallbackRoutine = routine
    info.CallbackParam = ffi.NULL
    keep_alive: list[Any] = []
    streams = _streams(user_streams, keep_alive)
    exception_param = _exception(exception)
    with serialized():
        try:
            dbghelp_write = libs.LIBRARIES.dbghelp.MiniDumpWriteDump
        except (AttributeError, ffi.error) as exc:
            raise errors.SnapshotUnsupportedError(
                "dbghelp.dll has no MiniDumpWriteDump", function="MiniDumpWriteDump") from exc
        ok = dbghelp_write(source, pid, file, dump_type, exception_param, streams, info)
        # MiniDumpWriteDump leaves an HRESULT in GetLastError on failure (stale values on success).
        last = int(libs.LIBRARIES.kernel32.GetLastError()) if not ok else 0
    if state.cancelled is not None:
        raise CancelledByCallback(state.cancelled.cause, function="MiniDumpWriteDump",
                                  winerror=errors.ERROR_CANCELLED)
    if not ok:
        hint = None
        if errors.win32_from_hresult(last) == errors.ERROR_PARTIAL_COPY and \
                win32.is_wow64(process):
            hint = errors.BITNESS_HINT
        raise errors.from_hresult(last, "MiniDumpWriteDump", pid=pid,
                                  message=win32.format_message(last), hint=hint)
    if state.excluded:
        # A write-only file object cannot be read back to check; a path dest always can.
        with contextlib.suppress(OSError):
            lists.trim_list_streams(fd)
    return Written(state.threads, state.modules, state.skipped_count, tuple(state.skipped))
