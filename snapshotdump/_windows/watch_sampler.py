"""What the polling triggers measure on Windows: process counters, read without stopping it.

ctypes rather than the cffi binding, so the watch adds no declarations to the shared cdefs.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from ctypes import wintypes
from typing import Any

from .. import errors

PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
PROCESS_VM_READ = 0x0010
SYNCHRONIZE = 0x00100000
WAIT_OBJECT_0 = 0
TH32CS_SNAPPROCESS = 0x00000002
INVALID_HANDLE_VALUE = ctypes.c_void_p(-1).value


class ProcessMemoryCounters(ctypes.Structure):
    _fields_ = [("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD)] + [
        (name, ctypes.c_size_t) for name in (
            "PeakWorkingSetSize", "WorkingSetSize", "QuotaPeakPagedPoolUsage",
            "QuotaPagedPoolUsage", "QuotaPeakNonPagedPoolUsage", "QuotaNonPagedPoolUsage",
            "PagefileUsage", "PeakPagefileUsage")]


class ProcessEntry32W(ctypes.Structure):
    _fields_ = [("dwSize", wintypes.DWORD), ("cntUsage", wintypes.DWORD),
                ("th32ProcessID", wintypes.DWORD), ("th32DefaultHeapID", ctypes.c_size_t),
                ("th32ModuleID", wintypes.DWORD), ("cntThreads", wintypes.DWORD),
                ("th32ParentProcessID", wintypes.DWORD), ("pcPriClassBase", ctypes.c_long),
                ("dwFlags", wintypes.DWORD), ("szExeFile", ctypes.c_wchar * 260)]


def _kernel32() -> Any:
    if sys.platform != "win32":
        raise errors.SnapshotUnsupportedError("the Windows sampler runs on Windows only",
                                              function="watch")
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.OpenProcess.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
    kernel32.CreateToolhelp32Snapshot.restype = wintypes.HANDLE
    kernel32.CreateToolhelp32Snapshot.argtypes = [wintypes.DWORD, wintypes.DWORD]
    for name in ("Process32FirstW", "Process32NextW"):
        getattr(kernel32, name).argtypes = [wintypes.HANDLE, ctypes.POINTER(ProcessEntry32W)]
    kernel32.K32GetProcessMemoryInfo.argtypes = [
        wintypes.HANDLE, ctypes.POINTER(ProcessMemoryCounters), wintypes.DWORD]
    kernel32.GetProcessTimes.argtypes = [wintypes.HANDLE] + [ctypes.POINTER(wintypes.FILETIME)] * 4
    kernel32.GetProcessHandleCount.argtypes = [wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD)]
    kernel32.WaitForSingleObject.argtypes = [wintypes.HANDLE, wintypes.DWORD]
    kernel32.CloseHandle.argtypes = [wintypes.HANDLE]
    return kernel32


def _failed(function: str, pid: int) -> errors.SnapshotError:
    code = ctypes.get_last_error()  # type: ignore[attr-defined,unused-ignore]
    return errors.SnapshotError(f"{function} failed for pid {pid}: Windows error {code}",
                                winerror=code, function=function, pid=pid)


def _filetime(value: wintypes.FILETIME) -> int:
    return (value.dwHighDateTime << 32) | value.dwLowDateTime


def processes() -> list[ProcessEntry32W]:
    """One Toolhelp snapshot of every process (with its thread count and executable name)."""
    kernel32 = _kernel32()
    snapshot = kernel32.CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0)
    if snapshot in (None, INVALID_HANDLE_VALUE):
        raise _failed("CreateToolhelp32Snapshot", 0)
    try:
        entries = []
        entry = ProcessEntry32W()
        entry.dwSize = ctypes.sizeof(ProcessEntry32W)
        more = kernel32.Process32FirstW(snapshot, ctypes.byref(entry))
        while more:
            copy = ProcessEntry32W()
            ctypes.pointer(copy)[0] = entry
            entries.append(copy)
            more = kernel32.Process32NextW(snapshot, ctypes.byref(entry))
        return entries
    finally:
        kernel32.CloseHandle(snapshot)


class ProcessSampler:
    """CPU (kernel + user time over wall time, as Task Manager per core), working set,
    threads and handles of one process."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._kernel32 = _kernel32()
        access = PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_VM_READ | SYNCHRONIZE
        self._handle = self._kernel32.OpenProcess(access, False, pid)
        if not self._handle:
            code = ctypes.get_last_error()  # type: ignore[attr-defined,unused-ignore]
            if code == 87:  # ERROR_INVALID_PARAMETER: no such process
                raise errors.ProcessNotFoundError(f"no process has pid {pid}", winerror=code,
                                                  function="OpenProcess", pid=pid)
            raise _failed("OpenProcess", pid)
        self._last: tuple[float, int] | None = None

    def __del__(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            self._kernel32.CloseHandle(handle)

    def sample(self) -> dict[str, float]:
        kernel32, handle = self._kernel32, self._handle
        if kernel32.WaitForSingleObject(handle, 0) == WAIT_OBJECT_0:
            raise errors.ProcessNotFoundError(f"pid {self.pid} has exited", errno=3,
                                              function="watch", pid=self.pid)
        times = [wintypes.FILETIME() for _ in range(4)]
        if not kernel32.GetProcessTimes(handle, *map(ctypes.byref, times)):
            raise _failed("GetProcessTimes", self.pid)
        counters = ProcessMemoryCounters()
        counters.cb = ctypes.sizeof(counters)
        if not kernel32.K32GetProcessMemoryInfo(handle, ctypes.byref(counters), counters.cb):
            raise _failed("K32GetProcessMemoryInfo", self.pid)
        handles = wintypes.DWORD()
        if not kernel32.GetProcessHandleCount(handle, ctypes.byref(handles)):
            raise _failed("GetProcessHandleCount", self.pid)
        threads = next((e.cntThreads for e in processes() if e.th32ProcessID == self.pid), 0)
        now = time.monotonic()
        busy = _filetime(times[2]) + _filetime(times[3])  # kernel + user, in 100 ns
        values: dict[str, float] = {"memory": counters.WorkingSetSize / (1 << 20),
                                    "threads": float(threads), "fds": float(handles.value)}
        if self._last is not None and now > self._last[0]:
            values["cpu"] = 100.0 * (busy - self._last[1]) / 1e7 / (now - self._last[0])
        self._last = (now, busy)
        return values


def find_by_name(name: str) -> list[int]:
    """Pids (other than ours) whose executable name is *name*, with or without .exe."""
    wanted = {name.lower(), name.lower() + ".exe"}
    return sorted(e.th32ProcessID for e in processes()
                  if e.szExeFile.lower() in wanted and e.th32ProcessID != os.getpid())
