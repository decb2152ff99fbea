"""What the polling triggers measure on Windows: process counters, read without stopping it.

The calls go through the project's cffi binding (snapshotdump/_cdefs/win32.h, whose layouts
tests/test_layout.py proves against MSVC) and kernel32 opened from System32 (libs.py).
"""

from __future__ import annotations

import errno
import os
import time
from typing import Any

from .. import errors
from . import libs, win32

PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
PROCESS_VM_READ = 0x0010
SYNCHRONIZE = 0x00100000
WAIT_OBJECT_0 = 0
TH32CS_SNAPPROCESS = 0x00000002


def _filetime_ticks(value: Any) -> int:
    return (int(value.dwHighDateTime) << 32) | int(value.dwLowDateTime)


def processes() -> list[tuple[int, int, str]]:
    """One Toolhelp snapshot of every process: (pid, thread count, executable name)."""
    ffi, kernel32 = libs.ffi(), libs.LIBRARIES.kernel32
    snapshot = kernel32.CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0)
    if snapshot == ffi.cast("HANDLE", -1):  # INVALID_HANDLE_VALUE
        raise win32.last_error("CreateToolhelp32Snapshot")
    try:
        entries = []
        entry = ffi.new("PROCESSENTRY32W *")
        entry.dwSize = ffi.sizeof("PROCESSENTRY32W")
        more = kernel32.Process32FirstW(snapshot, entry)
        while more:
            entries.append((int(entry.th32ProcessID), int(entry.cntThreads),
                            str(ffi.string(entry.szExeFile))))
            more = kernel32.Process32NextW(snapshot, entry)
        return entries
    finally:
        win32.close_handle(snapshot)


class ProcessSampler:
    """CPU (kernel + user time over wall time, as Task Manager per core), working set,
    threads and handles of one process."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._handle: Any = None
        access = PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_VM_READ | SYNCHRONIZE
        handle = libs.LIBRARIES.kernel32.OpenProcess(access, 0, pid)
        if handle == libs.ffi().NULL:
            # ERROR_INVALID_PARAMETER (no such pid) maps to ProcessNotFoundError there.
            raise win32.last_error("OpenProcess", pid=pid)
        self._handle = handle
        self._last: tuple[float, int] | None = None

    def __del__(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None:
            win32.close_handle(handle)

    def sample(self) -> dict[str, float]:
        ffi, kernel32, handle = libs.ffi(), libs.LIBRARIES.kernel32, self._handle
        if kernel32.WaitForSingleObject(handle, 0) == WAIT_OBJECT_0:
            raise errors.ProcessNotFoundError(f"pid {self.pid} has exited", errno=errno.ESRCH,
                                              function="watch", pid=self.pid)
        created, exited, kernel, user = (ffi.new("FILETIME *") for _ in range(4))
        win32.check(kernel32.GetProcessTimes(handle, created, exited, kernel, user),
                    "GetProcessTimes", pid=self.pid)
        counters = ffi.new("PROCESS_MEMORY_COUNTERS *")
        counters.cb = ffi.sizeof("PROCESS_MEMORY_COUNTERS")
        win32.check(kernel32.K32GetProcessMemoryInfo(handle, counters, counters.cb),
                    "K32GetProcessMemoryInfo", pid=self.pid)
        handles = win32.handle_count(handle)
        threads = next((count for pid, count, _ in processes() if pid == self.pid), 0)
        now = time.monotonic()
        busy = _filetime_ticks(kernel) + _filetime_ticks(user)  # in 100 ns
        values: dict[str, float] = {"memory": int(counters.WorkingSetSize) / (1 << 20),
                                    "threads": float(threads), "fds": float(handles)}
        if self._last is not None and now > self._last[0]:
            values["cpu"] = (100.0 * (busy - self._last[1]) / libs.FILETIME_TICKS_PER_SECOND
                             / (now - self._last[0]))
        self._last = (now, busy)
        return values


def find_by_name(name: str) -> list[int]:
    """Pids (other than ours) whose executable name is *name*, with or without .exe."""
    wanted = {name.lower(), name.lower() + ".exe"}
    return sorted(pid for pid, _, exe in processes()
                  if exe.lower() in wanted and pid != os.getpid())
