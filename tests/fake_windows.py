"""Fake kernel32 / advapi32 / dbghelp at the cffi boundary, for the glue tests.

Every argument and result is a real cffi object of the Windows binding, and the
fake MiniDumpWriteDump calls the library's real ``ffi.callback`` with real
MINIDUMP_CALLBACK_INPUT / OUTPUT structs, the way dbghelp does.
"""

from __future__ import annotations

import os
from typing import Any

from snapshotdump._bindings import load
from snapshotdump.errors import (
    ERROR_ACCESS_DENIED,
    ERROR_INVALID_HANDLE,
    ERROR_INVALID_PARAMETER,
    ERROR_NO_MORE_ITEMS,
    hresult_from_win32,
)

ffi = load("windows")

GONE_PID = 404
DENIED_PID = 5
CURRENT_PROCESS = 0xFFFFFFFFFFFFFFFF
HPSS_VALUE = 0xC0FFEE
VA_CLONE_VALUE = 0xC10E
FILETIME_1S = 10_000_000


class FakeKernel32:
    def __init__(self, calls: list[tuple[Any, ...]], pss: bool = True) -> None:
        self.calls = calls
        self.last_error = 0
        self.pss = pss
        self.capture_error = 0
        self.open_handles: set[int] = set()
        self.thread_entries = 2
        self._messages: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("Pss") and not self.__dict__.get("pss", True):
            # What cffi 2.x raises for a symbol the DLL does not export (Wine, Windows 8).
            raise ffi.error(f"symbol '{name}' not found in library 'kernel32.dll': error 0x7f")
        try:
            return object.__getattribute__(self, "_" + name)
        except AttributeError:
            raise AttributeError(name) from None

    # kernel32
    def _GetLastError(self) -> int:
        return self.last_error

    def _FormatMessageW(self, flags: int, source: Any, code: int, lang: int, buffer: Any,
                        size: int, args: Any) -> int:
        text = {ERROR_ACCESS_DENIED: "Access is denied.\r\n"}.get(code)
        if text is None:
            return 0
        for index, char in enumerate(text):
            buffer[index] = char
        return len(text)

    def _OpenProcess(self, access: int, inherit: int, pid: int) -> Any:
        self.calls.append(("OpenProcess", pid))
        if pid == GONE_PID:
            self.last_error = ERROR_INVALID_PARAMETER
            return ffi.NULL
        if pid == DENIED_PID:
            self.last_error = ERROR_ACCESS_DENIED
            return ffi.NULL
        value = 0x1000 + pid
        self.open_handles.add(value)
        return ffi.cast("HANDLE", value)

    def _CloseHandle(self, handle: Any) -> int:
        value = int(ffi.cast("uintptr_t", handle))
        self.calls.append(("CloseHandle", value))
        self.open_handles.discard(value)
        return 1

    def _GetProcessId(self, handle: Any) -> int:
        value = int(ffi.cast("uintptr_t", handle))
        self.calls.append(("GetProcessId", value))
        if value < 0x1000:
            self.last_error = ERROR_INVALID_HANDLE
            return 0
        return value - 0x1000

    def _GetCurrentProcess(self) -> Any:
        return ffi.cast("HANDLE", CURRENT_PROCESS)

    def _QueryFullProcessImageNameW(self, handle: Any, flags: int, buffer: Any, size: Any) -> int:
        path = "C:\\fake\\target.exe"
        for index, char in enumerate(path):
            buffer[index] = char
        size[0] = len(path)
        return 1

    # PSS
    def _PssCaptureSnapshot(self, process: Any, flags: int, context_flags: int, out: Any) -> int:
        self.calls.append(("PssCaptureSnapshot", int(ffi.cast("uintptr_t", process)), flags,
                           context_flags))
        if self.capture_error:
            return self.capture_error
        out[0] = ffi.cast("HPSS", HPSS_VALUE)
        return 0

    def _PssFreeSnapshot(self, process: Any, snapshot: Any) -> int:
        self.calls.append(("PssFreeSnapshot", int(ffi.cast("uintptr_t", process)),
                           int(ffi.cast("uintptr_t", snapshot))))
        return 0

    def _PssQuerySnapshot(self, snapshot: Any, information: int, buffer: Any, length: int) -> int:
        self.calls.append(("PssQuerySnapshot", information, length))
        if information == 1:
            buffer = ffi.cast("PSS_VA_CLONE_INFORMATION *", buffer)
            buffer.VaCloneHandle = ffi.cast("HANDLE", VA_CLONE_VALUE)
        elif information == 0:
            info = ffi.cast("PSS_PROCESS_INFORMATION *", buffer)
            info.ProcessId = 42
            info.ParentProcessId = 7
            info.UserTime.dwLowDateTime = 3 * FILETIME_1S
            info.WorkingSetSize = 1 << 20
            for index, char in enumerate("C:\\fake\\target.exe"):
                info.ImageFileName[index] = char
        elif information == 7:
            counters = ffi.cast("PSS_PERFORMANCE_COUNTERS *", buffer)
            counters.TotalWallClockPeriod = 25_000  # 2.5 ms in FILETIME units
            counters.VaCloneWallClockPeriod = 20_000
        return 0

    def _PssWalkMarkerCreate(self, allocator: Any, marker: Any) -> int:
        self.calls.append(("PssWalkMarkerCreate",))
        marker[0] = ffi.cast("HPSSWALK", 0x3A1C)
        self._walked = 0
        return 0

    def _PssWalkMarkerFree(self, marker: Any) -> int:
        self.calls.append(("PssWalkMarkerFree",))
        return 0

    def _PssWalkSnapshot(self, snapshot: Any, information: int, marker: Any, buffer: Any,
                         length: int) -> int:
        if information != 3 or self._walked >= self.thread_entries:
            return ERROR_NO_MORE_ITEMS
        self._walked += 1
        entry = ffi.cast("PSS_THREAD_ENTRY *", buffer)
        entry.ThreadId = 100 + self._walked
        entry.SuspendCount = 1
        context = ffi.new("CONTEXT *")
        context.Rip = 0x7FF0_0000_1000 + self._walked
        context.Rsp = 0x0000_00E0_0000 + self._walked
        self._messages.append(context)  # keep it alive like the snapshot would
        entry.ContextRecord = context
        return 0


class FakeAdvapi32:
    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.calls = calls

    def OpenProcessToken(self, process: Any, access: int, token: Any) -> int:
        self.calls.append(("OpenProcessToken", access))
        token[0] = ffi.cast("HANDLE", 0x70C)
        return 1

    def LookupPrivilegeValueW(self, system: Any, name: str, luid: Any) -> int:
        self.calls.append(("LookupPrivilegeValueW", name))
        luid.LowPart = 20  # SE_DEBUG_PRIVILEGE
        return 1

    def AdjustTokenPrivileges(self, token: Any, disable: int, state: Any, length: int,
                              previous: Any, returned: Any) -> int:
        self.calls.append(("AdjustTokenPrivileges", int(state.Privileges[0].Luid.LowPart),
                           int(state.Privileges[0].Attributes)))
        return 1


class FakeDbgHelp:
    """MiniDumpWriteDump that asks what dbghelp asks, then writes a small file."""

    MODULES = (("C:\\fake\\target.exe", 0x140000000), ("C:\\Windows\\System32\\kernel32.dll",
                                                       0x7FFA00000000))
    THREADS = (101, 102, 103)

    def __init__(self, calls: list[tuple[Any, ...]], kernel32: FakeKernel32) -> None:
        self.calls = calls
        self.kernel32 = kernel32
        self.fail_hresult = 0
        self.answers: list[tuple[int, int, dict[str, int]]] = []
        self.written_modules: list[str] = []
        self.written_threads: list[int] = []
        self.user_streams: list[tuple[int, bytes]] = []
        self.exception: tuple[int, int, int] | None = None
        self.send_snapshot_question = True

    def _ask(self, routine: Any, kind: int, fill: Any = None) -> tuple[int, Any]:
        callback_input = ffi.new("MINIDUMP_CALLBACK_INPUT *")
        callback_output = ffi.new("MINIDUMP_CALLBACK_OUTPUT *")
        callback_input.ProcessId = 42
        callback_input.CallbackType = kind
        if fill is not None:
            fill(callback_input, callback_output)
        result = routine(ffi.NULL, callback_input, callback_output)
        self.answers.append((kind, int(result), {
            "Status": int(callback_output.Status),
            "ModuleWriteFlags": int(callback_output.ModuleWriteFlags),
            "Cancel": int(callback_output.Cancel),
        }))
        return int(result), callback_output

    def MiniDumpWriteDump(self, process: Any, pid: int, file: Any, dump_type: int,
                          exception: Any, streams: Any, callback: Any) -> int:
        self.calls.append(("MiniDumpWriteDump", int(ffi.cast("uintptr_t", process)), pid,
                           dump_type))
        routine = callback.CallbackRoutine
        if self.send_snapshot_question:
            self._ask(routine, 16)
        paths = []
        for path, base in self.MODULES:
            name = ffi.new("WCHAR[]", path)
            paths.append(name)

            def fill_module(i: Any, o: Any, name: Any = name, base: int = base) -> None:
                i.Module.FullPath = name
                i.Module.BaseOfImage = base
                i.Module.SizeOfImage = 0x10000
                o.ModuleWriteFlags = 0x0F

            result, out = self._ask(routine, 0, fill_module)
            if result and out.ModuleWriteFlags & 1:
                self.written_modules.append(path)
        for tid in self.THREADS:
            def fill_thread(i: Any, o: Any, tid: int = tid) -> None:
                i.Thread.ThreadId = tid
                i.Thread.StackBase = 0x20000
                i.Thread.StackEnd = 0x10000
                o.ThreadWriteFlags = 0x07

            result, out = self._ask(routine, 1, fill_thread)
            if result and out.ThreadWriteFlags & 1:
                self.written_threads.append(tid)
        result, out = self._ask(routine, 6)
        cancelled = bool(result and out.Cancel)
        if streams != ffi.NULL:
            for index in range(streams.UserStreamCount):
                stream = streams.UserStreamArray[index]
                self.user_streams.append(
                    (int(stream.Type), bytes(ffi.buffer(stream.Buffer, stream.BufferSize))))
        if exception != ffi.NULL:
            self.exception = (int(exception.ThreadId),
                              int(ffi.cast("uintptr_t", exception.ExceptionPointers)),
                              int(exception.ClientPointers))
        fd = int(ffi.cast("intptr_t", file))
        os.write(fd, b"MDMP" + b"\0" * 60)
        if cancelled:
            self.kernel32.last_error = hresult_from_win32(1223) & 0xFFFFFFFF
            return 0
        if self.fail_hresult:
            self.kernel32.last_error = self.fail_hresult
            return 0
        self.kernel32.last_error = 126  # dbghelp leaves stale codes behind on success
        return 1


class FakeLibraries:
    def __init__(self, pss: bool = True) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.kernel32 = FakeKernel32(self.calls, pss=pss)
        self.advapi32 = FakeAdvapi32(self.calls)
        self.dbghelp = FakeDbgHelp(self.calls, self.kernel32)

    def names(self) -> list[str]:
        return [call[0] for call in self.calls]
