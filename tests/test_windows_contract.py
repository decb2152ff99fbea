"""The documented DbgHelp / PSS contract, point by point (issue 12), against the protocol fakes.

Each test names the rule; the fake (tests/fake_windows.py) enforces the rule as the
sdk-api pages state it, so a library that broke it would fail here.
"""

from __future__ import annotations

import gc
import os
import pathlib
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import snapshotdump
from snapshotdump import CallbackEvent, CallbackType, CaptureFlags, MiniDumpType
from snapshotdump import errors as errs
from snapshotdump._windows import arch

from .fake_windows import (
    CURRENT_PROCESS,
    E_FAIL,
    LIMITED_PID,
    FakeLibraries,
    ffi,
    hresult,
)

PID = 42
FULL = MiniDumpType.WITH_FULL_MEMORY


# 1. The VA clone handle belongs to the snapshot.

def test_va_clone_handle_is_closed_by_pss_free_snapshot_only(
        windows_fakes: FakeLibraries, tmp_path: pathlib.Path) -> None:
    with snapshotdump.capture(PID) as snap:
        snap.write_dump(tmp_path / "a.dmp")
        clone = next(h for h, e in windows_fakes.kernel32.handles.items() if e.kind == "clone")
    assert ("CloseHandle", clone) not in windows_fakes.calls
    assert clone not in windows_fakes.kernel32.handles  # PssFreeSnapshot closed it


def test_fake_reports_a_second_close_of_the_clone_handle(windows_fakes: FakeLibraries) -> None:
    kernel32 = windows_fakes.kernel32
    process = kernel32.OpenProcess(0x1FFFFF, 0, PID)
    out = ffi.new("HPSS *")
    assert kernel32.PssCaptureSnapshot(process, 1, 0, out) == 0
    info = ffi.new("PSS_VA_CLONE_INFORMATION *")
    assert kernel32.PssQuerySnapshot(out[0], 1, info, ffi.sizeof(info[0])) == 0
    assert kernel32.CloseHandle(info.VaCloneHandle) == 1  # what _release used to do
    assert kernel32.PssFreeSnapshot(ffi.cast("HANDLE", CURRENT_PROCESS), out[0]) == 0
    assert len(windows_fakes.violations) == 1 and "second close" in windows_fakes.violations[0]
    windows_fakes.violations.clear()
    kernel32.CloseHandle(process)


# 2. DbgHelp is single-threaded; close() waits for the write.

def test_close_from_another_thread_waits_for_the_write(windows_fakes: FakeLibraries,
                                                       tmp_path: pathlib.Path) -> None:
    inside, release = threading.Event(), threading.Event()

    def slow(event: CallbackEvent) -> None:
        inside.set()
        release.wait(10)

    snap = snapshotdump.capture(PID)
    writer = threading.Thread(target=snap.write_dump, args=(tmp_path / "a.dmp",),
                              kwargs={"callback": slow})
    writer.start()
    assert inside.wait(10)
    closer = threading.Thread(target=snap.close)
    closer.start()
    closer.join(0.3)
    assert closer.is_alive(), "close() returned while MiniDumpWriteDump was running"
    assert "PssFreeSnapshot" not in windows_fakes.names()
    release.set()
    writer.join(10)
    closer.join(10)
    names = windows_fakes.names()
    assert names.index("MiniDumpWriteDump returned") < names.index("PssFreeSnapshot")
    assert (tmp_path / "a.dmp").exists()


def test_two_threads_never_run_dbghelp_at_once(windows_fakes: FakeLibraries,
                                               tmp_path: pathlib.Path) -> None:
    first_inside = threading.Event()

    def slow(event: CallbackEvent) -> None:
        first_inside.set()
        time.sleep(0.05)

    with snapshotdump.capture(PID) as snap:
        one = threading.Thread(target=snap.write_dump, args=(tmp_path / "1.dmp",),
                               kwargs={"callback": slow})
        one.start()
        assert first_inside.wait(10)
        snap.write_dump(tmp_path / "2.dmp")
        one.join(10)
    starts = [c[0] for c in windows_fakes.calls if c[0].startswith("MiniDumpWriteDump")]
    assert starts == ["MiniDumpWriteDump", "MiniDumpWriteDump returned"] * 2
    assert sorted(os.listdir(tmp_path)) == ["1.dmp", "2.dmp"]


def test_write_dump_from_a_dump_callback_is_refused(windows_fakes: FakeLibraries,
                                                    tmp_path: pathlib.Path) -> None:
    with snapshotdump.capture(PID) as snap:
        def nested(event: CallbackEvent) -> None:
            snap.write_dump(tmp_path / "inner.dmp")

        with pytest.raises(RuntimeError, match="single-threaded"):
            snap.write_dump(tmp_path / "outer.dmp", callback=nested)
    assert os.listdir(tmp_path) == []


# 3. IncludeVmRegionCallback: RegionSize = 0 leaves a region out; Continue = TRUE.

def test_vm_region_left_out_by_region_size_zero_and_asked_once(
        windows_fakes: FakeLibraries, tmp_path: pathlib.Path) -> None:
    dbghelp = windows_fakes.dbghelp
    dropped = dbghelp.REGIONS[1]
    seen: list[tuple[int | None, int | None]] = []

    def callback(event: CallbackEvent) -> bool:
        if event.type is CallbackType.INCLUDE_VM_REGION:
            seen.append((event.memory_base, event.memory_size))
            return event.memory_base != dropped[0]
        return True

    with snapshotdump.capture(PID) as snap:
        snap.write_dump(tmp_path / "a.dmp", FULL, callback=callback)
    assert seen == list(dbghelp.REGIONS)  # twice per region from DbgHelp, once to the user
    assert dbghelp.written_regions == [r for r in dbghelp.REGIONS if r != dropped]
    region_answers = [(result, out["Continue"]) for kind, result, out in dbghelp.answers
                      if kind == 10]
    assert region_answers == [(1, 1)] * 2 * len(dbghelp.REGIONS)


def test_fake_fails_the_dump_when_a_region_answer_is_false(
        windows_fakes: FakeLibraries, tmp_path: pathlib.Path) -> None:
    fd = os.open(tmp_path / "raw.dmp", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        ok = _raw_dump(windows_fakes, fd, FULL, lambda kind, i, o: 0 if kind == 10 else 1)
    finally:
        os.close(fd)
    assert ok == 0 and windows_fakes.kernel32.last_error == E_FAIL


# 4. ReadMemoryFailureCallback: TRUE with S_OK skips the block; the result reports it.

@pytest.mark.parametrize("live", [False, True])
def test_unreadable_blocks_are_skipped_and_reported(windows_fakes: FakeLibraries,
                                                    tmp_path: pathlib.Path, live: bool) -> None:
    windows_fakes.kernel32.pss = not live
    windows_fakes.dbghelp.unreadable = [(0x11000, 0x1000), (0x20001000, 0x2000)]
    with snapshotdump.capture(PID, live_fallback=live) as snap:
        result = snap.write_dump(tmp_path / "a.dmp", FULL)
    assert result.skipped_reads == 2
    assert [(r.base, r.size) for r in result.skipped] == [(0x11000, 0x1000),
                                                          (0x20001000, 0x2000)]
    assert windows_fakes.dbghelp.written_regions == list(windows_fakes.dbghelp.REGIONS)


def test_fake_fails_the_dump_when_a_read_failure_is_not_acknowledged(
        windows_fakes: FakeLibraries, tmp_path: pathlib.Path) -> None:
    windows_fakes.dbghelp.unreadable = [(0x11000, 0x1000)]

    def answer(kind: int, i: Any, o: Any) -> int:
        if kind == 10:
            o.Continue = 1
        return 0 if kind == 14 else 1

    fd = os.open(tmp_path / "raw.dmp", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        ok = _raw_dump(windows_fakes, fd, FULL, answer)
    finally:
        os.close(fd)
    assert ok == 0
    assert windows_fakes.kernel32.last_error == hresult(errs.ERROR_PARTIAL_COPY)


def _raw_dump(fake: FakeLibraries, fd: int, dump_type: int, answer: Any) -> int:
    """MiniDumpWriteDump of a live process with a bare callback *answer(kind, in, out)*."""
    routine = ffi.callback("MINIDUMP_CALLBACK_ROUTINE",
                           lambda _p, i, o: answer(int(i.CallbackType), i, o))
    info = ffi.new("MINIDUMP_CALLBACK_INFORMATION *")
    info.CallbackRoutine = routine
    process = fake.kernel32.OpenProcess(0x1FFFFF, 0, PID)
    try:
        return int(fake.dbghelp.MiniDumpWriteDump(process, PID, fake.os_handle(fd), dump_type,
                                                  ffi.NULL, ffi.NULL, info))
    finally:
        fake.kernel32.CloseHandle(process)


# 5. Architecture guard, before any call.

@pytest.mark.parametrize(("platform", "name"), [("win32", "32-bit x86"), ("win-arm64", "ARM64")])
def test_non_x64_python_is_refused_before_any_call(
        windows_fakes: FakeLibraries, monkeypatch: pytest.MonkeyPatch, platform: str,
        name: str) -> None:
    monkeypatch.setattr(arch, "interpreter", lambda: platform)
    with pytest.raises(snapshotdump.SnapshotUnsupportedError, match=name) as info:
        snapshotdump.capture(PID)
    assert platform in str(info.value)
    assert windows_fakes.calls == []


# 7. Without VA_CLONE there is nothing to dump: refused, clearly.

def test_write_dump_without_va_clone_is_refused(windows_fakes: FakeLibraries,
                                                tmp_path: pathlib.Path) -> None:
    with snapshotdump.capture(PID, CaptureFlags.DEFAULT & ~CaptureFlags.VA_CLONE) as snap:
        assert [t.thread_id for t in snap.threads()] == [101, 102]
        with pytest.raises(snapshotdump.SnapshotUnsupportedError,
                           match=r"without CaptureFlags\.VA_CLONE.*--no-clone"):
            snap.write_dump(tmp_path / "a.dmp")
    assert "MiniDumpWriteDump" not in windows_fakes.names()
    assert os.listdir(tmp_path) == []


# 8. A snapshot never closed is freed by its finalizer, with a ResourceWarning.

def test_unclosed_snapshot_is_freed_with_a_resource_warning(
        windows_fakes: FakeLibraries) -> None:
    snap = snapshotdump.capture(PID)
    with pytest.warns(ResourceWarning, match="pid 42 was never closed"):
        del snap
        gc.collect()
    assert windows_fakes.names().count("PssFreeSnapshot") == 1
    assert not windows_fakes.kernel32.handles


# 9. Smaller points.

@pytest.mark.parametrize(("method", "member"), [("regions", "VA_SPACE"),
                                                ("handles", "HANDLES"),
                                                ("threads", "THREADS")])
def test_data_not_captured_names_the_missing_flag(windows_fakes: FakeLibraries, method: str,
                                                  member: str) -> None:
    expected = f"without CaptureFlags.{member}"
    with snapshotdump.capture(PID, CaptureFlags.VA_CLONE) as snap, \
            pytest.raises(snapshotdump.SnapshotError, match=expected) as info:
        getattr(snap, method)()
    assert info.value.winerror == errs.ERROR_NOT_FOUND


@pytest.mark.parametrize(
    ("value", "cls", "builtin"),
    [
        (0x80070005, snapshotdump.SnapshotPermissionError, PermissionError),  # Win32 5
        (0xD0000022, snapshotdump.SnapshotPermissionError, PermissionError),  # NT access denied
        (0xC0000022, snapshotdump.SnapshotPermissionError, PermissionError),  # raw NTSTATUS
        (0xD0000061, snapshotdump.SnapshotPermissionError, PermissionError),  # privilege
        (0xD000000B, snapshotdump.ProcessNotFoundError, ProcessLookupError),  # invalid CID
        (0xC000010A, snapshotdump.ProcessNotFoundError, ProcessLookupError),  # terminating
    ],
)
def test_from_hresult_maps_win32_and_ntstatus_like_the_win32_path(
        value: int, cls: type, builtin: type) -> None:
    error = errs.from_hresult(value, "MiniDumpWriteDump", pid=PID)
    assert type(error) is cls and isinstance(error, builtin)
    assert error.hresult == value - (1 << 32) and f"0x{value:08X}" in str(error)


def test_access_mask_is_checked_by_open_process_and_by_dbghelp(
        windows_fakes: FakeLibraries, tmp_path: pathlib.Path) -> None:
    with pytest.raises(snapshotdump.SnapshotPermissionError) as denied:
        snapshotdump.capture(LIMITED_PID)
    assert denied.value.function == "OpenProcess"
    windows_fakes.kernel32.pss = False
    limited = windows_fakes.kernel32.new_handle("process", PID, 0x1000)
    with snapshotdump.capture(snapshotdump.ProcessHandle(limited), live_fallback=True) as snap, \
            pytest.raises(PermissionError) as info:
        snap.write_dump(tmp_path / "a.dmp")
    assert info.value.winerror == 5 and "MiniDumpWriteDump" in str(info.value)
    windows_fakes.kernel32.close(limited)


def test_cancel_callback_is_asked_first_and_stops_when_declined(
        windows_fakes: FakeLibraries, tmp_path: pathlib.Path) -> None:
    with snapshotdump.capture(PID) as snap:
        snap.write_dump(tmp_path / "a.dmp")
    kinds = [kind for kind, _, _ in windows_fakes.dbghelp.answers]
    assert kinds[:5] == [11, 16, 6, 17, 3]
    assert kinds.count(6) == 1  # no user callback: CheckCancel FALSE ends the cancel calls


def test_cli_says_when_the_debug_privilege_was_not_granted(
        windows_fakes: FakeLibraries, tmp_path: pathlib.Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from snapshotdump import cli

    windows_fakes.advapi32.holds_debug_privilege = False
    status = cli.main([str(PID), "--enable-debug-privilege", "-q", "-o", str(tmp_path / "a.dmp")])
    assert status == 0
    assert "SeDebugPrivilege was not enabled" in capsys.readouterr().err


# Issue 11: no test seams in production code.

def test_import_loads_nothing_of_the_windows_backend() -> None:
    code = ("import sys, snapshotdump; "
            "print(sorted(m for m in sys.modules if m.startswith('snapshotdump._windows')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=pathlib.Path(__file__).parent.parent).stdout
    assert out.strip() == "[]"


def test_backend_is_chosen_from_the_platform_alone() -> None:
    from snapshotdump import _api

    assert _api._select("win32") is _api.WINDOWS
    assert _api._select("linux") is _api.LINUX
    assert _api._select("darwin") is None
    assert _api.BACKEND is _api._select(sys.platform)


@pytest.mark.skipif(sys.platform == "win32", reason="checks the non-Windows refusal")
def test_process_handle_is_refused_off_windows() -> None:
    with pytest.raises(TypeError, match="only on Windows"):
        snapshotdump.capture(snapshotdump.ProcessHandle(0x40))


def test_a_dump_file_gets_an_owner_only_dacl_before_any_data(
        windows_fakes: FakeLibraries, tmp_path: pathlib.Path) -> None:
    with snapshotdump.capture(PID) as snap:
        snap.write_dump(tmp_path / "a.dmp")
        with open(tmp_path / "mine.dmp", "wb") as mine:
            snap.write_dump(mine)
    names = windows_fakes.names()
    dacls = [call for call in windows_fakes.calls if call[0] == "SetSecurityInfo"]
    assert len(dacls) == 1  # the path; a file object the caller opened keeps its ACL
    assert dacls[0][2] == "D:P(A;;FA;;;OW)" and dacls[0][3] == 0x80000004
    assert names.index("SetSecurityInfo") < names.index("MiniDumpWriteDump")


@pytest.mark.parametrize(("code", "fails"), [(errs.ERROR_NOT_SUPPORTED, False),
                                             (errs.ERROR_ACCESS_DENIED, True)])
def test_dacl_failure_fails_the_dump_unless_the_volume_has_no_acls(
        windows_fakes: FakeLibraries, tmp_path: pathlib.Path, code: int, fails: bool) -> None:
    windows_fakes.advapi32.file_system_error = code
    with snapshotdump.capture(PID) as snap:
        if fails:
            with pytest.raises(PermissionError) as info:
                snap.write_dump(tmp_path / "a.dmp")
            assert info.value.function == "SetSecurityInfo"
        else:
            assert snap.write_dump(tmp_path / "a.dmp").size == 64
    assert os.listdir(tmp_path) == ([] if fails else ["a.dmp"])
