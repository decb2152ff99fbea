"""A small model of kernel32, advapi32 and dbghelp as Microsoft documents them.

It sits at the cffi boundary: every argument and result is a real cffi object of the
Windows binding, and the fake MiniDumpWriteDump calls the library's real
``ffi.callback`` with real MINIDUMP_CALLBACK_INPUT / OUTPUT structs.  Each rule it
enforces cites the sdk-api page it comes from; where the library breaks a rule, the
fake fails the call the way Windows would, or records a *violation* (a double close,
a use after free) that the test fixture turns into a test failure.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from snapshotdump._bindings import load
from snapshotdump.errors import (
    ERROR_ACCESS_DENIED,
    ERROR_CANCELLED,
    ERROR_INVALID_HANDLE,
    ERROR_INVALID_PARAMETER,
    ERROR_NO_MORE_ITEMS,
    ERROR_NOT_FOUND,
    ERROR_PARTIAL_COPY,
    hresult_from_win32,
)

ffi = load("windows")
ERROR_BAD_LENGTH = 24

DOCS = "https://learn.microsoft.com/windows/win32/api/"
MINIDUMPWRITEDUMP = DOCS + "minidumpapiset/nf-minidumpapiset-minidumpwritedump"
CALLBACK_TYPE = DOCS + "minidumpapiset/ne-minidumpapiset-minidump_callback_type"
CALLBACK_OUTPUT = DOCS + "minidumpapiset/ns-minidumpapiset-minidump_callback_output"
PSS_QUERY = DOCS + "processsnapshot/nf-processsnapshot-pssquerysnapshot"
PSS_FREE = DOCS + "processsnapshot/nf-processsnapshot-pssfreesnapshot"
PSS_WALK = DOCS + "processsnapshot/nf-processsnapshot-psswalksnapshot"
PSS_FLAGS = DOCS + "processsnapshot/ne-processsnapshot-pss_capture_flags"
OPEN_PROCESS = DOCS + "processthreadsapi/nf-processthreadsapi-openprocess"

GONE_PID = 404
DENIED_PID = 5
LIMITED_PID = 77  # grants PROCESS_QUERY_LIMITED_INFORMATION and nothing else
WOW64_PID = 32
CURRENT_PROCESS = 0xFFFFFFFFFFFFFFFF
HPSS_VALUE = 0xC0FFEE
VA_CLONE_VALUE = 0xC10E
FILETIME_1S = 10_000_000
S_OK, S_FALSE = 0, 1
E_FAIL = 0x80004005

PROCESS_VM_READ = 0x0010
PROCESS_DUP_HANDLE = 0x0040
PROCESS_CREATE_PROCESS = 0x0080
PROCESS_QUERY_INFORMATION = 0x0400
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
# Process-specific rights (0xFFFF) and the standard rights (0x1F0000): OpenProcess page.
VALID_PROCESS_RIGHTS = 0x001FFFFF

CAPTURE_VA_CLONE, CAPTURE_HANDLES, CAPTURE_THREADS = 0x1, 0x4, 0x80
CAPTURE_VA_SPACE, CAPTURE_VA_SPACE_SECTION_INFORMATION = 0x800, 0x1000
CREATE_MEASURE_PERFORMANCE = 0x40000000
WITH_HANDLE_DATA, WITH_FULL_MEMORY = 0x4, 0x2


def hresult(code: int) -> int:
    return hresult_from_win32(code) & 0xFFFFFFFF


def value(handle: Any) -> int:
    return int(ffi.cast("uintptr_t", handle))


class Handle:
    def __init__(self, kind: str, pid: int, access: int = 0) -> None:
        self.kind, self.pid, self.access = kind, pid, access


class Snapshot:
    def __init__(self, pid: int, flags: int, clone: int | None) -> None:
        self.pid, self.flags, self.clone = pid, flags, clone
        self.freed = False
        self.readers = 0


class FakeKernel32:
    def __init__(self, calls: list[tuple[Any, ...]], violations: list[str]) -> None:
        self.calls = calls
        self.violations = violations
        self.last_error = 0
        self.pss = True
        self.capture_error = 0
        self.handles: dict[int, Handle] = {}
        self.snapshots: dict[int, Snapshot] = {}
        self.markers: set[int] = set()
        self.thread_entries = 2
        self.files: dict[int, int] = {}  # HANDLE value -> fd, from FakeLibraries.os_handle
        self.reopened: dict[int, int] = {}  # handle from ReOpenFile -> fd
        self.local: dict[int, Any] = {}  # LocalAlloc'd memory the caller must LocalFree
        self._next = 0x1000
        self._keep: list[Any] = []

    @property
    def open_handles(self) -> set[int]:
        return set(self.handles)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("Pss") and not self.__dict__.get("pss", True):
            # What cffi 2.x raises for a symbol the DLL does not export (Wine, Windows 8).
            raise ffi.error(f"symbol '{name}' not found in library 'kernel32.dll': error 0x7f")
        try:
            return object.__getattribute__(self, "_" + name)
        except AttributeError:
            raise AttributeError(name) from None

    def new_handle(self, kind: str, pid: int, access: int = 0) -> int:
        self._next += 4
        self.handles[self._next] = Handle(kind, pid, access)
        return self._next

    def process(self, handle: Any, needs: int = 0) -> Handle | int:
        """The open process behind *handle*, or the Win32 error a real call would give."""
        number = value(handle)
        if number == CURRENT_PROCESS:
            return Handle("process", 42, VALID_PROCESS_RIGHTS)
        entry = self.handles.get(number)
        if entry is None or entry.kind != "process":
            return ERROR_INVALID_HANDLE
        if entry.access & needs != needs:
            return ERROR_ACCESS_DENIED
        return entry

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
        self.calls.append(("OpenProcess", pid, access))
        # OpenProcess: the access is checked against the process's security descriptor;
        # a right the caller may not have fails the whole call.
        if pid == GONE_PID:
            self.last_error = ERROR_INVALID_PARAMETER
            return ffi.NULL
        allowed = {DENIED_PID: 0, LIMITED_PID: PROCESS_QUERY_LIMITED_INFORMATION}.get(
            pid, VALID_PROCESS_RIGHTS)
        if access & ~VALID_PROCESS_RIGHTS or access & allowed != access or not access:
            self.last_error = ERROR_ACCESS_DENIED
            return ffi.NULL
        return ffi.cast("HANDLE", self.new_handle("process", pid, access))

    def _CloseHandle(self, handle: Any) -> int:
        self.calls.append(("CloseHandle", value(handle)))
        return self.close(value(handle))

    def close(self, number: int) -> int:
        if number == CURRENT_PROCESS:
            return 1  # closing the pseudo handle is a no-op
        if self.handles.pop(number, None) is None:
            self.violations.append(f"CloseHandle(0x{number:x}): not an open handle (a second "
                                   "close, or a handle someone else owns)")
            self.last_error = ERROR_INVALID_HANDLE
            return 0
        return 1

    def _GetProcessId(self, handle: Any) -> int:
        self.calls.append(("GetProcessId", value(handle)))
        entry = self.process(handle)
        if isinstance(entry, int):
            self.last_error = entry
            return 0
        return entry.pid

    def _GetCurrentProcess(self) -> Any:
        return ffi.cast("HANDLE", CURRENT_PROCESS)

    def _IsWow64Process(self, handle: Any, result: Any) -> int:
        entry = self.process(handle, PROCESS_QUERY_LIMITED_INFORMATION)
        if isinstance(entry, int):
            self.last_error = entry
            return 0
        result[0] = 1 if entry.pid == WOW64_PID else 0
        return 1

    def _ReOpenFile(self, file: Any, access: int, share: int, flags: int) -> Any:
        self.calls.append(("ReOpenFile", value(file), access))
        fd = self.files.get(value(file))
        if fd is None:
            self.last_error = ERROR_INVALID_HANDLE
            return ffi.cast("HANDLE", -1)
        handle = self.new_handle("file", 0, access)
        self.reopened[handle] = fd
        return ffi.cast("HANDLE", handle)

    def _LocalFree(self, memory: Any) -> Any:
        if self.local.pop(value(memory), None) is None:
            self.violations.append(f"LocalFree(0x{value(memory):x}) of memory not LocalAlloc'd")
        return ffi.NULL

    def _QueryFullProcessImageNameW(self, handle: Any, flags: int, buffer: Any, size: Any) -> int:
        path = "C:\\fake\\target.exe"
        for index, char in enumerate(path):
            buffer[index] = char
        size[0] = len(path)
        return 1

    # PSS
    def _PssCaptureSnapshot(self, process: Any, flags: int, context_flags: int, out: Any) -> int:
        self.calls.append(("PssCaptureSnapshot", value(process), flags, context_flags))
        needs = 0
        if flags & CAPTURE_VA_SPACE_SECTION_INFORMATION:
            needs |= PROCESS_VM_READ  # PSS_FLAGS: "PROCESS_VM_READ ... is required"
        entry = self.process(process, needs)
        if isinstance(entry, int):
            return entry
        if self.capture_error:
            return self.capture_error
        clone = self.new_handle("clone", entry.pid) if flags & CAPTURE_VA_CLONE else None
        number = HPSS_VALUE + 0x10 * len(self.snapshots)
        self.snapshots[number] = Snapshot(entry.pid, flags, clone)
        out[0] = ffi.cast("HPSS", number)
        return 0

    def snapshot(self, handle: Any, function: str) -> Snapshot | None:
        entry = self.snapshots.get(value(handle))
        # PSS_FREE: using a descriptor "that has already been freed is undefined".
        if entry is None or entry.freed:
            self.violations.append(f"{function} on a freed or unknown snapshot")
            return None
        return entry

    def _PssFreeSnapshot(self, process: Any, snapshot: Any) -> int:
        self.calls.append(("PssFreeSnapshot", value(process), value(snapshot)))
        # PSS_FREE: pass GetCurrentProcess() for a snapshot captured from this process.
        if value(process) != CURRENT_PROCESS:
            self.violations.append("PssFreeSnapshot without GetCurrentProcess()")
        entry = self.snapshot(snapshot, "PssFreeSnapshot")
        if entry is None:
            return ERROR_INVALID_HANDLE
        if entry.readers:
            # PSS_FREE: "does not protect against concurrent access to the same descriptor".
            self.violations.append("PssFreeSnapshot while MiniDumpWriteDump reads the snapshot")
        entry.freed = True
        if entry.clone is not None:
            # The snapshot owns the VA clone handle and closes it here (Microsoft's clrmd
            # frees the snapshot and never closes that handle); a caller's own CloseHandle
            # of it makes this a second close, which close() reports.
            self.close(entry.clone)
        return 0

    def _PssQuerySnapshot(self, snapshot: Any, information: int, buffer: Any, length: int) -> int:
        self.calls.append(("PssQuerySnapshot", information, length))
        entry = self.snapshot(snapshot, "PssQuerySnapshot")
        if entry is None:
            return ERROR_INVALID_HANDLE
        # PSS_QUERY: ERROR_BAD_LENGTH for a buffer of the wrong size, ERROR_NOT_FOUND when
        # "the requested information is not in the snapshot".
        sizes = {0: "PSS_PROCESS_INFORMATION", 1: "PSS_VA_CLONE_INFORMATION",
                 7: "PSS_PERFORMANCE_COUNTERS"}
        if information in sizes and length != ffi.sizeof(sizes[information]):
            return ERROR_BAD_LENGTH
        needs = {1: CAPTURE_VA_CLONE, 7: CREATE_MEASURE_PERFORMANCE}.get(information, 0)
        if entry.flags & needs != needs:
            return ERROR_NOT_FOUND
        if information == 1:
            assert entry.clone is not None
            ffi.cast("PSS_VA_CLONE_INFORMATION *", buffer).VaCloneHandle = ffi.cast(
                "HANDLE", entry.clone)
        elif information == 0:
            info = ffi.cast("PSS_PROCESS_INFORMATION *", buffer)
            info.ProcessId = entry.pid
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
        self.markers.add(0x3A1C)
        self._walked = 0
        return 0

    def _PssWalkMarkerFree(self, marker: Any) -> int:
        self.calls.append(("PssWalkMarkerFree",))
        self.markers.discard(value(marker))
        return 0

    def _PssWalkSnapshot(self, snapshot: Any, information: int, marker: Any, buffer: Any,
                         length: int) -> int:
        entry = self.snapshot(snapshot, "PssWalkSnapshot")
        if entry is None:
            return ERROR_INVALID_HANDLE
        # PSS_WALK: ERROR_BAD_LENGTH for a wrong buffer size; ERROR_NOT_FOUND when "the
        # requested information is not in the snapshot".
        sizes = {1: "PSS_VA_SPACE_ENTRY", 2: "PSS_HANDLE_ENTRY", 3: "PSS_THREAD_ENTRY"}
        if information in sizes and length != ffi.sizeof(sizes[information]):
            return ERROR_BAD_LENGTH
        needs = {1: CAPTURE_VA_SPACE, 2: CAPTURE_HANDLES, 3: CAPTURE_THREADS}.get(information, 0)
        if entry.flags & needs != needs:
            return ERROR_NOT_FOUND
        if information != 3 or self._walked >= self.thread_entries:
            return ERROR_NO_MORE_ITEMS
        self._walked += 1
        thread = ffi.cast("PSS_THREAD_ENTRY *", buffer)
        thread.ThreadId = 100 + self._walked
        thread.SuspendCount = 1
        context = ffi.new("CONTEXT *")
        context.Rip = 0x7FF0_0000_1000 + self._walked
        context.Rsp = 0x0000_00E0_0000 + self._walked
        self._keep.append(context)  # the snapshot owns the context record
        thread.ContextRecord = context
        return 0


class FakeAdvapi32:
    def __init__(self, calls: list[tuple[Any, ...]], kernel32: FakeKernel32) -> None:
        self.calls = calls
        self.kernel32 = kernel32
        self.holds_debug_privilege = True
        self.file_system_error = 0  # what SetSecurityInfo answers for the dump's volume

    def OpenProcessToken(self, process: Any, access: int, token: Any) -> int:
        self.calls.append(("OpenProcessToken", access))
        token[0] = ffi.cast("HANDLE", self.kernel32.new_handle("token", 42))
        return 1

    def LookupPrivilegeValueW(self, system: Any, name: str, luid: Any) -> int:
        self.calls.append(("LookupPrivilegeValueW", name))
        luid.LowPart = 20  # SE_DEBUG_PRIVILEGE
        return 1

    def AdjustTokenPrivileges(self, token: Any, disable: int, state: Any, length: int,
                              previous: Any, returned: Any) -> int:
        self.calls.append(("AdjustTokenPrivileges", int(state.Privileges[0].Luid.LowPart),
                           int(state.Privileges[0].Attributes)))
        # It succeeds without assigning a privilege the token lacks (ERROR_NOT_ALL_ASSIGNED).
        self.kernel32.last_error = 0 if self.holds_debug_privilege else 1300
        return 1


    # SetSecurityInfo: the handle needs WRITE_DAC to change a DACL.
    def ConvertStringSecurityDescriptorToSecurityDescriptorW(self, sddl: str, revision: int,
                                                              out: Any, size: Any) -> int:
        self.calls.append(("ConvertStringSecurityDescriptorToSecurityDescriptorW", sddl))
        memory = ffi.new("char[]", 64)
        self.kernel32.local[value(ffi.cast("void *", memory))] = (memory, sddl)
        out[0] = memory
        return 1

    def GetSecurityDescriptorDacl(self, descriptor: Any, present: Any, dacl: Any,
                                  defaulted: Any) -> int:
        present[0], dacl[0], defaulted[0] = 1, descriptor, 0
        return 1

    def SetSecurityInfo(self, handle: Any, object_type: int, information: int, owner: Any,
                        group: Any, dacl: Any, sacl: Any) -> int:
        entry = self.kernel32.handles.get(value(handle))
        if entry is None or entry.kind != "file":
            return ERROR_INVALID_HANDLE
        if not entry.access & 0x00040000:  # WRITE_DAC
            return ERROR_ACCESS_DENIED
        if self.file_system_error:
            return self.file_system_error
        _memory, sddl = self.kernel32.local[value(dacl)]
        self.calls.append(("SetSecurityInfo", self.kernel32.reopened[value(handle)], sddl,
                           information))
        return 0


class DumpFailed(Exception):
    def __init__(self, hresult: int) -> None:
        self.hresult = hresult


class FakeDbgHelp:
    """MiniDumpWriteDump that asks what dbghelp asks, in its order, then writes a small file."""

    MODULES = (("C:\\fake\\target.exe", 0x140000000),
               ("C:\\Windows\\System32\\kernel32.dll", 0x7FFA00000000))
    THREADS = (101, 102, 103)
    REGIONS = ((0x10000, 0x4000), (0x7FFA00000000, 0x10000), (0x20000000, 0x3000))

    def __init__(self, calls: list[tuple[Any, ...]], kernel32: FakeKernel32,
                 files: dict[int, int], violations: list[str]) -> None:
        self.calls = calls
        self.kernel32 = kernel32
        self.files = files
        self.violations = violations
        self.fail_hresult = 0
        self.answers: list[tuple[int, int, dict[str, int]]] = []
        self.written_modules: list[str] = []
        self.written_threads: list[int] = []
        self.written_regions: list[tuple[int, int]] = []
        self.user_streams: list[tuple[int, bytes]] = []
        self.exception: tuple[int, int, int] | None = None
        self.unreadable: list[tuple[int, int]] = []  # blocks of REGIONS that fail to read
        self._active = 0
        self._lock = threading.Lock()

    def _ask(self, routine: Any, kind: int, fill: Callable[[Any, Any], None] | None = None
             ) -> tuple[int, Any]:
        callback_input = ffi.new("MINIDUMP_CALLBACK_INPUT *")
        callback_output = ffi.new("MINIDUMP_CALLBACK_OUTPUT *")
        callback_input.ProcessId = 42
        callback_input.CallbackType = kind
        if fill is not None:
            fill(callback_input, callback_output)
        result = int(routine(ffi.NULL, callback_input, callback_output))
        self.answers.append((kind, result, {
            "Status": int(callback_output.Status),
            "ModuleWriteFlags": int(callback_output.ModuleWriteFlags),
            "Cancel": int(callback_output.Cancel),
            "Continue": int(callback_output.Continue),
            "RegionSize": int(callback_output.VmRegion.RegionSize),
        }))
        return result, callback_output

    def MiniDumpWriteDump(self, process: Any, pid: int, file: Any, dump_type: int,
                          exception: Any, streams: Any, callback: Any) -> int:
        self.calls.append(("MiniDumpWriteDump", value(process), pid, dump_type))
        with self._lock:
            self._active += 1
            if self._active > 1:
                # MINIDUMPWRITEDUMP: "all DbgHelp functions ... are single threaded".
                self.violations.append("MiniDumpWriteDump called while another one runs")
        snapshot = self.kernel32.snapshots.get(value(process))
        if snapshot is not None and not snapshot.freed:
            snapshot.readers += 1
        try:
            self._write(process, snapshot, file, dump_type, exception, streams, callback)
        except DumpFailed as failed:
            self.kernel32.last_error = failed.hresult
            return 0
        finally:
            if snapshot is not None:
                snapshot.readers = max(0, snapshot.readers - 1)
            with self._lock:
                self._active -= 1
            self.calls.append(("MiniDumpWriteDump returned",))
        self.kernel32.last_error = 126  # dbghelp leaves stale codes behind on success
        return 1

    def _write(self, process: Any, snapshot: Snapshot | None, file: Any, dump_type: int,
               exception: Any, streams: Any, callback: Any) -> None:
        routine = callback.CallbackRoutine
        fd = self.files.get(value(file))
        if fd is None:
            raise DumpFailed(hresult(ERROR_INVALID_HANDLE))
        if snapshot is None:
            # MINIDUMPWRITEDUMP: the process handle needs PROCESS_QUERY_INFORMATION and
            # PROCESS_VM_READ, and PROCESS_DUP_HANDLE for handle data.
            needs = PROCESS_QUERY_INFORMATION | PROCESS_VM_READ
            needs |= PROCESS_DUP_HANDLE if dump_type & WITH_HANDLE_DATA else 0
            entry = self.kernel32.process(process, needs)
            if isinstance(entry, int):
                raise DumpFailed(hresult(entry))
        elif snapshot.freed:
            self.violations.append("MiniDumpWriteDump on a freed snapshot")
            raise DumpFailed(hresult(ERROR_INVALID_HANDLE))
        # CALLBACK_TYPE, IoStartCallback: TRUE with S_FALSE would route all I/O through
        # IoWriteAllCallback, which this model does not implement.
        result, out = self._ask(routine, 11)
        if result and out.Status == S_FALSE:
            raise DumpFailed(E_FAIL)
        # IsProcessSnapshotCallback: only TRUE with S_FALSE makes dbghelp treat the handle
        # as a PSS snapshot; otherwise it is used as a process handle.
        result, out = self._ask(routine, 16)
        if (snapshot is not None) != bool(result and out.Status == S_FALSE):
            raise DumpFailed(hresult(ERROR_INVALID_HANDLE))
        # CALLBACK_OUTPUT, CheckCancel: asked from the start; FALSE stops the cancel calls.
        checking = [True]

        def cancel_point() -> None:
            if not checking[0]:
                return
            result, out = self._ask(routine, 6)
            checking[0] = bool(result and out.CheckCancel)
            if result and out.Cancel:
                raise DumpFailed(hresult(ERROR_CANCELLED))

        cancel_point()
        if snapshot is not None:
            # VmStartCallback: S_FALSE would turn on VmQuery/VmPreRead/VmPostRead callbacks.
            result, out = self._ask(routine, 17)
            if result and out.Status == S_FALSE:
                raise DumpFailed(E_FAIL)
        threads = [tid for tid in self.THREADS if self._include(routine, 3, tid)]
        modules = [m for m in self.MODULES if self._include(routine, 4, m[1])]
        for path, base in modules:
            name = ffi.new("WCHAR[]", path)

            def fill_module(i: Any, o: Any, name: Any = name, base: int = base) -> None:
                i.Module.FullPath = name
                i.Module.BaseOfImage = base
                i.Module.SizeOfImage = 0x10000
                o.ModuleWriteFlags = 0x0F

            result, out = self._ask(routine, 0, fill_module)
            if result and out.ModuleWriteFlags & 1:
                self.written_modules.append(path)
            cancel_point()
        for tid in threads:
            def fill_thread(i: Any, o: Any, tid: int = tid) -> None:
                i.Thread.ThreadId = tid
                i.Thread.StackBase = 0x20000
                i.Thread.StackEnd = 0x10000
                o.ThreadWriteFlags = 0x07

            result, out = self._ask(routine, 1, fill_thread)
            if result and out.ThreadWriteFlags & 1:
                self.written_threads.append(tid)
            cancel_point()
        if dump_type & WITH_FULL_MEMORY:
            self._full_memory(routine, cancel_point)
        self._streams_and_file(fd, exception, streams)

    def _include(self, routine: Any, kind: int, key: int) -> bool:
        # CALLBACK_TYPE, IncludeThreadCallback / IncludeModuleCallback: FALSE excludes it.
        def fill(i: Any, o: Any) -> None:
            if kind == 3:
                i.IncludeThread.ThreadId = key
            else:
                i.IncludeModule.BaseOfImage = key

        result, _out = self._ask(routine, kind, fill)
        return bool(result)

    def _full_memory(self, routine: Any, cancel_point: Callable[[], None]) -> None:
        for base, size in self.REGIONS:
            chosen = (base, size)
            # CALLBACK_TYPE: IncludeVmRegionCallback is "called twice for each region during
            # the full-memory writing pass"; CALLBACK_OUTPUT: RegionSize 0 filters the region
            # out, and unless the callback returns TRUE with Continue TRUE, MiniDumpWriteDump
            # fails.
            for _pass in range(2):
                def fill(i: Any, o: Any, base: int = base, size: int = size) -> None:
                    o.VmRegion.BaseAddress = base
                    o.VmRegion.RegionSize = size

                result, out = self._ask(routine, 10, fill)
                if not (result and out.Continue):
                    raise DumpFailed(E_FAIL)
                new_base, new_size = int(out.VmRegion.BaseAddress), int(out.VmRegion.RegionSize)
                if new_size and not (base <= new_base and new_base + new_size <= base + size):
                    raise DumpFailed(hresult(ERROR_INVALID_PARAMETER))  # must stay a subset
                chosen = (new_base, new_size)
            if not chosen[1]:
                continue
            for bad_base, bad_size in self.unreadable:
                if chosen[0] <= bad_base < chosen[0] + chosen[1]:
                    self._read_failure(routine, bad_base, bad_size)
            self.written_regions.append(chosen)
            cancel_point()

    def _read_failure(self, routine: Any, base: int, size: int) -> None:
        failure = hresult(ERROR_PARTIAL_COPY)

        def fill(i: Any, o: Any) -> None:
            i.ReadMemoryFailure.Offset = base
            i.ReadMemoryFailure.Bytes = size
            i.ReadMemoryFailure.FailureStatus = failure - (1 << 32)

        # CALLBACK_TYPE, ReadMemoryFailureCallback: only TRUE with Status S_OK skips the block;
        # "Otherwise, this failure results in a failure to write to the minidump."
        result, out = self._ask(routine, 14, fill)
        if not (result and out.Status == S_OK):
            raise DumpFailed(failure)

    def _streams_and_file(self, fd: int, exception: Any, streams: Any) -> None:
        if streams != ffi.NULL:
            for index in range(streams.UserStreamCount):
                stream = streams.UserStreamArray[index]
                self.user_streams.append(
                    (int(stream.Type), bytes(ffi.buffer(stream.Buffer, stream.BufferSize))))
        if exception != ffi.NULL:
            self.exception = (int(exception.ThreadId), value(exception.ExceptionPointers),
                              int(exception.ClientPointers))
        if self.fail_hresult:
            raise DumpFailed(self.fail_hresult)
        os.write(fd, b"MDMP" + b"\0" * 60)


class FakeLibraries:
    """The DLL table of snapshotdump._windows.libs, with the fd -> HANDLE table it keeps."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.violations: list[str] = []
        self.kernel32 = FakeKernel32(self.calls, self.violations)
        self.files = self.kernel32.files
        self.advapi32 = FakeAdvapi32(self.calls, self.kernel32)
        self.dbghelp = FakeDbgHelp(self.calls, self.kernel32, self.files, self.violations)

    def os_handle(self, fd: int) -> Any:
        # A HANDLE value of our own that names the fd: the fake never treats a HANDLE as
        # an fd, so the glue tests run the same on Windows.
        handle = 0xF11E0000 + fd
        self.files[handle] = fd
        return ffi.cast("HANDLE", handle)

    def names(self) -> list[str]:
        return [call[0] for call in self.calls]

    def check_clean(self) -> None:
        """What every test ends with: no protocol violation, nothing left open."""
        assert not self.violations, self.violations
        assert not self.kernel32.handles, \
            f"handles left open: {[(hex(k), h.kind) for k, h in self.kernel32.handles.items()]}"
        assert not self.kernel32.markers, "a walk marker was never freed"
        assert not self.kernel32.local, "LocalAlloc'd memory was never LocalFree'd"
        assert all(s.freed for s in self.kernel32.snapshots.values()), "a snapshot was not freed"
