"""The PSS path on real Windows (8.1 or later): the one thing Wine cannot run.

Where PSS exists these tests run and fail, never skip.  Where it does not (Wine,
Windows 8), they skip, unless SNAPSHOTDUMP_REQUIRE_PSS=1 (the windows-latest
workflow sets it), which turns the missing API into a failure.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
from ctypes import wintypes
from typing import Any

import pytest

import snapshotdump
from snapshotdump import CaptureFlags, MiniDumpType
from snapshotdump._windows import answers

from .conftest import Child, pss_available, read_dump
from .test_windows_e2e import _check

pytestmark = pytest.mark.pss


@pytest.fixture(autouse=True)
def _needs_pss() -> None:
    if pss_available():
        return
    if os.environ.get("SNAPSHOTDUMP_REQUIRE_PSS") == "1":
        pytest.fail("SNAPSHOTDUMP_REQUIRE_PSS=1 but kernel32 exports no PssCaptureSnapshot")
    pytest.skip("PSS exists on Windows 8.1+, not Wine")


class _ProcessEntry(ctypes.Structure):
    _fields_ = [("dwSize", wintypes.DWORD), ("cntUsage", wintypes.DWORD),
                ("th32ProcessID", wintypes.DWORD), ("th32DefaultHeapID", ctypes.c_size_t),
                ("th32ModuleID", wintypes.DWORD), ("cntThreads", wintypes.DWORD),
                ("th32ParentProcessID", wintypes.DWORD), ("pcPriClassBase", ctypes.c_long),
                ("dwFlags", wintypes.DWORD), ("szExeFile", ctypes.c_wchar * 260)]


def _children(pid: int) -> set[int]:
    """Processes whose parent is *pid* (a PSS VA clone is one), from a Toolhelp snapshot."""
    kernel32: Any = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.CreateToolhelp32Snapshot.restype = wintypes.HANDLE
    snapshot = kernel32.CreateToolhelp32Snapshot(0x2, 0)  # TH32CS_SNAPPROCESS
    assert snapshot not in (None, wintypes.HANDLE(-1).value), ctypes.get_last_error()
    try:
        entry = _ProcessEntry()
        entry.dwSize = ctypes.sizeof(entry)
        found = set()
        more = kernel32.Process32FirstW(wintypes.HANDLE(snapshot), ctypes.byref(entry))
        while more:
            if entry.th32ParentProcessID == pid:
                found.add(int(entry.th32ProcessID))
            more = kernel32.Process32NextW(wintypes.HANDLE(snapshot), ctypes.byref(entry))
        return found
    finally:
        kernel32.CloseHandle(wintypes.HANDLE(snapshot))


def test_full_and_normal_snapshot_dumps_read_back(child: Child, dumps: pathlib.Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot_answers: list[tuple[int, int]] = []
    answer = answers.CallbackState._answer

    def spy(self: answers.CallbackState, callback_input: Any, out: Any) -> int:
        result = answer(self, callback_input, out)
        if int(callback_input.CallbackType) == 16:  # IsProcessSnapshotCallback
            snapshot_answers.append((result, int(out.Status)))
        return result

    monkeypatch.setattr(answers.CallbackState, "_answer", spy)
    before = _children(child.pid)
    flags = CaptureFlags.DEFAULT | CaptureFlags.VA_SPACE | CaptureFlags.CREATE_MEASURE_PERFORMANCE
    with snapshotdump.capture(child.pid, flags) as snap:
        assert not snap.is_live
        assert snap.process.pid == child.pid
        assert set(child.worker_ids) <= {t.thread_id for t in snap.threads()}
        assert snap.handles() and snap.regions()
        performance = snap.performance
        normal = snap.write_dump(dumps / "pss-normal.dmp")
        full = snap.write_dump(dumps / "pss-full.dmp", MiniDumpType.WITH_FULL_MEMORY)
    assert performance is not None and performance.total_seconds > 0
    assert performance.va_clone_seconds is not None and performance.va_clone_seconds > 0
    assert full.size > normal.size > 0
    assert snapshot_answers and all(a == (1, 1) for a in snapshot_answers)  # TRUE, S_FALSE
    _check(dumps / "pss-normal.dmp", child, full=False)
    _check(dumps / "pss-full.dmp", child, full=True)
    assert read_dump(dumps / "pss-full.dmp").misc_info.ProcessId == child.pid
    assert _children(child.pid) <= before, "a VA clone of the target outlived close()"
