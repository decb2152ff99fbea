"""The public API against real Windows processes, kernel32 and dbghelp (Wine's, or Windows')."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

import snapshotdump
from snapshotdump import CallbackType, MiniDumpType, ProcessHandle
from snapshotdump._windows import libs, win32

from .conftest import Child, pss_available, read_dump

needs_no_pss = pytest.mark.skipif(pss_available(), reason="checks the path taken without PSS")


def _check(path: pathlib.Path, child: Child, *, full: bool, threads: set[int] | None = None,
           absent_module: str | None = None) -> None:
    dump = read_dump(path)
    assert dump.misc_info.ProcessId == child.pid
    tids = {t.ThreadId for t in dump.threads.threads}
    if threads is None:
        assert set(child.worker_ids) <= tids and len(tids) >= 3
    else:
        assert tids == threads
    names = [m.name.lower() for m in dump.modules.modules]
    assert any(n.endswith("python.exe") for n in names), names
    if absent_module:
        assert not any(n.endswith(absent_module) for n in names), names
    else:
        assert any(n.endswith("kernel32.dll") for n in names), names
    if full:
        reader = dump.get_reader()
        assert reader.read(child.marker_address, len(child.marker)) == child.marker


@needs_no_pss
def test_without_pss_capture_says_so_and_names_live_fallback(child: Child) -> None:
    with pytest.raises(snapshotdump.SnapshotUnsupportedError) as info:
        snapshotdump.capture(child.pid)
    assert "Process Snapshotting API is unavailable" in str(info.value)
    assert "live_fallback" in str(info.value)
    assert info.value.function == "PssCaptureSnapshot"


def test_live_fallback_dumps_to_a_path_and_a_file_object(child: Child,
                                                         dumps: pathlib.Path) -> None:
    with snapshotdump.capture(child.pid, live_fallback=True) as snap:
        assert snap.is_live == (not pss_available())
        normal = snap.write_dump(dumps / "normal.dmp")
        with open(dumps / "full.dmp", "wb") as f:
            full = snap.write_dump(f, MiniDumpType.WITH_FULL_MEMORY)
    assert normal.size == os.path.getsize(dumps / "normal.dmp") > 0
    assert full.size == os.path.getsize(dumps / "full.dmp") > normal.size
    assert normal.threads is not None and normal.threads >= 3
    _check(dumps / "normal.dmp", child, full=False)
    _check(dumps / "full.dmp", child, full=True)


def test_callback_drops_a_module_and_a_thread(child: Child, dumps: pathlib.Path) -> None:
    dropped = child.worker_ids[0]
    seen: list[snapshotdump.CallbackEvent] = []

    def callback(event: snapshotdump.CallbackEvent) -> bool:
        seen.append(event)
        if event.type is CallbackType.MODULE:
            return not (event.module_path or "").lower().endswith("kernel32.dll")
        if event.type in (CallbackType.THREAD, CallbackType.THREAD_EX):
            return event.thread_id != dropped
        return True

    with snapshotdump.capture(child.pid, live_fallback=True) as snap:
        snap.write_dump(dumps / "filtered.dmp", callback=callback)
    assert {e.type for e in seen} >= {CallbackType.MODULE, CallbackType.THREAD}
    assert any((e.module_path or "").lower().endswith("python.exe") for e in seen)
    kept = {e.thread_id for e in seen if e.type is CallbackType.THREAD} - {dropped}
    _check(dumps / "filtered.dmp", child, full=False, threads=kept, absent_module="kernel32.dll")


def test_callback_that_raises_cancels_leaves_no_file_and_reraises(
        child: Child, dumps: pathlib.Path) -> None:
    class Refused(Exception):
        pass

    def callback(event: snapshotdump.CallbackEvent) -> None:
        raise Refused(event.type.name)

    with snapshotdump.capture(child.pid, live_fallback=True) as snap, pytest.raises(Refused):
        snap.write_dump(dumps / "never.dmp", callback=callback)
    assert list(dumps.iterdir()) == []


def test_errors_carry_their_win32_codes(child: Child, dumps: pathlib.Path) -> None:
    with pytest.raises(snapshotdump.ProcessNotFoundError) as missing:
        snapshotdump.capture(0x7FFFFFF0, live_fallback=True)
    assert missing.value.winerror == 87 and isinstance(missing.value, ProcessLookupError)

    import _winapi

    handle = _winapi.OpenProcess(0x1000, False, child.pid)
    _winapi.CloseHandle(handle)
    with pytest.raises(snapshotdump.SnapshotError) as closed:
        snapshotdump.capture(ProcessHandle(handle), live_fallback=True)
    assert closed.value.winerror == 6 and closed.value.function == "GetProcessId"

    existing = dumps / "existing.bin"
    existing.write_bytes(b"keep")
    with snapshotdump.capture(child.pid, live_fallback=True) as snap:
        with pytest.raises(snapshotdump.DestinationNotFoundError) as no_folder:
            snap.write_dump(dumps / "no" / "such" / "folder.dmp")
        assert no_folder.value.winerror == 3
        with pytest.raises(snapshotdump.DestinationExistsError) as exists:
            snap.write_dump(existing)
        assert exists.value.winerror == 80 and "overwrite=True" in str(exists.value)
    assert existing.read_bytes() == b"keep"
    assert sorted(p.name for p in dumps.iterdir()) == ["existing.bin"]


def _probe_handle() -> int:
    """The value a new handle gets: handle tables reuse the lowest free slot, so leaks show."""
    kernel32 = libs.LIBRARIES.kernel32
    handle = kernel32.OpenProcess(0x1000, 0, os.getpid())
    try:
        return win32.handle_value(handle)
    finally:
        win32.close_handle(handle)


def test_two_hundred_cycles_leak_no_handle(child: Child, dumps: pathlib.Path) -> None:
    me = libs.LIBRARIES.kernel32.GetCurrentProcess()
    with snapshotdump.capture(child.pid, live_fallback=True) as snap:
        snap.write_dump(dumps / "warmup.dmp")  # loads dbghelp and its caches once
    count_before, probe_before = win32.handle_count(me), _probe_handle()
    for _ in range(200):
        with snapshotdump.capture(child.pid, live_fallback=True) as snap:
            snap.write_dump(dumps / "cycle.dmp", overwrite=True, callback=lambda e: False)
    assert win32.handle_count(me) <= count_before
    assert _probe_handle() <= probe_before
    assert _exit_code(child.pid) == 259  # STILL_ACTIVE: the child runs on


def _exit_code(pid: int) -> int:
    import _winapi

    handle = _winapi.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    try:
        return int(_winapi.GetExitCodeProcess(handle))
    finally:
        _winapi.CloseHandle(handle)


def test_runs_under_the_windows_interpreter() -> None:
    assert sys.platform == "win32" and sys.maxsize > 2**32
    assert subprocess.run([sys.executable, "-c", "print(1)"], capture_output=True,
                          check=True).stdout.strip() == b"1"
