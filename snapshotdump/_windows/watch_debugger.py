"""The Windows ``--crash`` trigger: a debugger thread that dumps on a second-chance exception.

The debug API ties a debuggee to the *thread* that called DebugActiveProcess: only that
thread may wait for its events, continue them and detach.  So one thread owns the whole
attachment and hands its reports to the watch through a queue, in the same dict form the
Linux tracer writes as JSON lines ({"event": "ready" | "dump" | "exited" | "error", ...}).

Only a second-chance exception is a crash: the first chance goes back to the target
(DBG_EXCEPTION_NOT_HANDLED) so its own handlers (SEH, vectored, a JIT's or a GC's) run as
if no debugger were there.  A second chance means no handler took it; after the dump it is
continued as not handled, and Windows ends the process with the exception code, as it
would have.  DebugSetProcessKillOnExit(FALSE): if this process dies, the target runs on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
from typing import Any

from .. import errors
from .._watch import files
from ..flags import CaptureFlags, MiniDumpType
from . import libs, pss, win32
from .dbghelp import LocalExceptionPointers
from .snapshot import WindowsSnapshot

EXCEPTION_DEBUG_EVENT = 1
CREATE_PROCESS_DEBUG_EVENT = 3
EXIT_PROCESS_DEBUG_EVENT = 5
LOAD_DLL_DEBUG_EVENT = 6
DBG_CONTINUE = 0x00010002
DBG_EXCEPTION_NOT_HANDLED = 0x80010001
STATUS_BREAKPOINT = 0x80000003
THREAD_GET_CONTEXT = 0x0008
THREAD_QUERY_INFORMATION = 0x0040
ERROR_SEM_TIMEOUT = 121
WAIT_TIMEOUT = 258
# How often the debugger thread looks up from WaitForDebugEvent to see if it must let go.
POLL_MS = 100
CONTEXT_ALIGNMENT = 16
ALREADY_DEBUGGED_HINT = ("a process that a debugger (or another watch --crash) already holds "
                         "cannot be watched for crashes")


class CrashWatcher:
    """Attach to *pid* as its debugger, in a thread, and dump it when it crashes."""

    def __init__(self, pid: int, folder: str, dump_type: MiniDumpType,
                 compress: str | None) -> None:
        self.pid = pid
        self.folder = folder
        self.dump_type = dump_type
        self.compress = compress
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._process: Any = None
        self._attached = False
        self._attach_break_seen = False
        self._thread = threading.Thread(target=self._run, name=f"snapshotdump-crash-{pid}",
                                        daemon=True)
        self._thread.start()

    # --- the watch's side ----------------------------------------------------------------
    def event(self, timeout: float | None) -> dict[str, Any] | None:
        """The next report; None if none came within *timeout* seconds (None: wait)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # Short waits: a lock wait without a timeout cannot be interrupted by Ctrl-C
            # on Windows.
            left = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
            try:
                return self._events.get(timeout=max(0.0, left))
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    return None

    def close(self, timeout: float) -> None:
        """Let go of the target (the debugger thread detaches) and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout)

    # --- the debugger thread -------------------------------------------------------------
    def _emit(self, **event: Any) -> None:
        self._events.put(event)

    def _run(self) -> None:
        try:
            self._attach()
        except errors.SnapshotError as exc:
            self._emit(event="error", fatal=True, message=str(exc), errno=exc.errno)
            self._release()
            return
        self._emit(event="ready")
        try:
            self._loop()
        except Exception as exc:  # the watch must hear why, not wait forever
            self._emit(event="error", fatal=True, message=f"{exc}" or type(exc).__name__,
                       errno=getattr(exc, "errno", None))
        finally:
            self._release()

    def _attach(self) -> None:
        kernel32 = libs.LIBRARIES.kernel32
        # First, so that a wrong pid or a denied access gets its usual exception.
        self._process = win32.open_process(self.pid)
        if not kernel32.DebugActiveProcess(self.pid):
            code = int(kernel32.GetLastError())
            hint = None if code == errors.ERROR_ACCESS_DENIED else ALREADY_DEBUGGED_HINT
            raise errors.from_win32(code, "DebugActiveProcess", pid=self.pid,
                                    message=win32.format_message(code), hint=hint)
        self._attached = True
        win32.check(kernel32.DebugSetProcessKillOnExit(0), "DebugSetProcessKillOnExit",
                    pid=self.pid)

    def _release(self) -> None:
        kernel32 = libs.LIBRARIES.kernel32
        if self._attached:
            self._attached = False
            # Fails once the target has exited, which ends the debugging anyway.
            kernel32.DebugActiveProcessStop(self.pid)
        process, self._process = self._process, None
        if process is not None:
            win32.close_handle(process)

    def _loop(self) -> None:
        ffi, kernel32 = libs.ffi(), libs.LIBRARIES.kernel32
        event = ffi.new("DEBUG_EVENT *")
        while not self._stop.is_set():
            if not kernel32.WaitForDebugEvent(event, POLL_MS):
                code = int(kernel32.GetLastError())
                if code in (ERROR_SEM_TIMEOUT, WAIT_TIMEOUT):
                    continue
                raise win32.error(code, "WaitForDebugEvent", pid=self.pid)
            noticed = time.monotonic()
            kind = int(event.dwDebugEventCode)
            dumped, status = self._answer(event, kind)
            win32.check(kernel32.ContinueDebugEvent(event.dwProcessId, event.dwThreadId,
                                                    status), "ContinueDebugEvent", pid=self.pid)
            if dumped is not None:
                payload = dataclasses.asdict(dumped)
                payload["dump_type"] = int(dumped.dump_type)
                payload["pause_seconds"] = time.monotonic() - noticed
                self._emit(event="dump", result=payload)
            if kind == EXIT_PROCESS_DEBUG_EVENT:
                # Continuing the exit event ended the debugging: nothing to detach from.
                self._attached = False
                self._emit(event="exited", status=int(event.u.ExitProcess.dwExitCode))
                return

    def _answer(self, event: Any, kind: int) -> tuple[files.TriggeredDump | None, int]:
        """What to do about one debug event: the dump it caused, and the continue status."""
        if kind in (CREATE_PROCESS_DEBUG_EVENT, LOAD_DLL_DEBUG_EVENT):
            # The image file handles are the debugger's to close; the process and thread
            # handles belong to the system.
            image = (event.u.CreateProcessInfo.hFile if kind == CREATE_PROCESS_DEBUG_EVENT
                     else event.u.LoadDll.hFile)
            if image != libs.ffi().NULL:
                win32.close_handle(image)
            return None, DBG_CONTINUE
        if kind != EXCEPTION_DEBUG_EVENT:
            return None, DBG_CONTINUE
        exception = event.u.Exception
        code = int(exception.ExceptionRecord.ExceptionCode)
        if exception.dwFirstChance:
            if code == STATUS_BREAKPOINT and not self._attach_break_seen:
                # DebugActiveProcess's own breakpoint, in a thread it started in the target:
                # ours to swallow.  Any later breakpoint is the target's.
                self._attach_break_seen = True
                return None, DBG_CONTINUE
            return None, DBG_EXCEPTION_NOT_HANDLED
        dumped = None
        try:
            dumped = self._dump(event)
        except Exception as exc:  # whatever failed, the target must die as it would have
            self._emit(event="error", message=f"{exc}" or type(exc).__name__)
        return dumped, DBG_EXCEPTION_NOT_HANDLED

    def _dump(self, event: Any) -> files.TriggeredDump:
        """Dump the target, stopped at its second-chance exception, with the exception stream.

        ClientPointers=FALSE, with the EXCEPTION_POINTERS, record and context in this
        process.  The debug event hands a debugger a copy of the record, never its address
        in the target, and the target holds no EXCEPTION_POINTERS we could point at without
        walking its stack.  TRUE would mean writing our copies into the target
        (VirtualAllocEx + WriteProcessMemory): a change to the process we promise to leave
        as we found it, and one more allocation in the dump it is about to become.
        """
        fired = time.time()
        ffi = libs.ffi()
        thread_id = int(event.dwThreadId)
        record = _copy_record(event.u.Exception.ExceptionRecord)
        storage, context = _aligned_context()
        _read_context(thread_id, context, self.pid)
        pointers = ffi.new("EXCEPTION_POINTERS *")
        pointers.ExceptionRecord = record
        pointers.ContextRecord = context
        info = LocalExceptionPointers(
            thread_id=thread_id, pointers=int(ffi.cast("uintptr_t", pointers)),
            code=int(record.ExceptionCode), flags=int(record.ExceptionFlags),
            address=int(ffi.cast("uintptr_t", record.ExceptionAddress)))
        # Every thread is stopped while the event waits for our answer: the live process is
        # as still as a snapshot, so no PSS clone is needed (nor is PSS, which Windows before
        # 8.1 and Wine lack).
        with WindowsSnapshot(self._process, False, self.pid, CaptureFlags(0), None) as snap:
            result = files.write(snap, self.folder, "crash", float(info.code), self.dump_type,
                                 self.compress, info, triggered_at=fired)
        del storage, record, pointers  # alive until the dump is written
        return result


def _copy_record(original: Any) -> Any:
    """The debug event's EXCEPTION_RECORD, to hand DbgHelp with ClientPointers=FALSE."""
    record = libs.ffi().new("EXCEPTION_RECORD *")
    record.ExceptionCode = original.ExceptionCode
    record.ExceptionFlags = original.ExceptionFlags
    # A chained record's address is in the target: this process must not follow it.
    record.ExceptionRecord = libs.ffi().NULL
    record.ExceptionAddress = original.ExceptionAddress
    count = min(int(original.NumberParameters), len(record.ExceptionInformation))
    record.NumberParameters = count
    # Only the first NumberParameters are the exception's; the rest of the event's array is
    # whatever was there (Wine leaves stale words), and would be written into the dump.
    for index in range(count):
        record.ExceptionInformation[index] = original.ExceptionInformation[index]
    return record


def _aligned_context() -> tuple[Any, Any]:
    """A CONTEXT on a 16-byte boundary, as GetThreadContext requires (and its owner)."""
    ffi = libs.ffi()
    storage = ffi.new("char[]", ffi.sizeof("CONTEXT") + CONTEXT_ALIGNMENT)
    address = int(ffi.cast("uintptr_t", storage))
    start = (address + CONTEXT_ALIGNMENT - 1) & ~(CONTEXT_ALIGNMENT - 1)
    return storage, ffi.cast("CONTEXT *", start)


def _read_context(thread_id: int, context: Any, pid: int) -> None:
    kernel32 = libs.LIBRARIES.kernel32
    thread = kernel32.OpenThread(THREAD_GET_CONTEXT | THREAD_QUERY_INFORMATION, 0, thread_id)
    if thread == libs.ffi().NULL:
        raise win32.last_error("OpenThread", pid=pid)
    try:
        context.ContextFlags = pss.CONTEXT_ALL_AMD64
        win32.check(kernel32.GetThreadContext(thread, context), "GetThreadContext", pid=pid)
    finally:
        with contextlib.suppress(Exception):
            win32.close_handle(thread)
