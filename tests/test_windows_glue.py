"""The Windows glue, against fake DLLs at the cffi boundary (real structs, real ffi.callback).

This proves call order, the S_FALSE answer, callback plumbing, cleanup and error
mapping.  That the DLLs really behave this way is proven under Wine
(tests/wine/) and, for PSS itself, on real Windows.
"""

from __future__ import annotations

import os
import pathlib
import stat
import sys
from typing import Any

import pytest

import snapshotdump
from snapshotdump import (
    CallbackEvent,
    CallbackResult,
    CallbackType,
    CaptureFlags,
    MiniDumpType,
    ModuleWriteFlags,
    ProcessHandle,
)
from snapshotdump.errors import hresult_from_win32

from .fake_windows import (
    CURRENT_PROCESS,
    DENIED_PID,
    GONE_PID,
    HPSS_VALUE,
    WOW64_PID,
    FakeLibraries,
)

PID = 42
POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32",
                                reason="POSIX-only: file modes (0600) and symlinks")


@pytest.fixture
def fake(windows_fakes: FakeLibraries) -> FakeLibraries:
    return windows_fakes


def opened(fake: FakeLibraries, pid: int = PID) -> int:
    """The process handle the library opened for *pid* (the fake hands out its own values)."""
    return next(h for h, entry in fake.kernel32.handles.items()
                if entry.kind == "process" and entry.pid == pid)


def opened_values(fake: FakeLibraries) -> list[int]:
    return [call[1] for call in fake.calls if call[0] == "CloseHandle"]


def test_capture_dump_close_in_the_documented_order(fake: FakeLibraries,
                                                    tmp_path: pathlib.Path) -> None:
    with snapshotdump.capture(PID) as snap:
        process = opened(fake)
        result = snap.write_dump(tmp_path / "a.dmp")
    names = fake.names()
    assert names[:2] == ["OpenProcess", "PssCaptureSnapshot"]
    assert fake.calls[1] == ("PssCaptureSnapshot", process, int(CaptureFlags.DEFAULT), 0x0010001F)
    assert ("MiniDumpWriteDump", HPSS_VALUE, PID, 0) in fake.calls
    # Exit frees the snapshot (which closes its VA clone handle itself), then the process.
    assert fake.calls[-2:] == [("PssFreeSnapshot", CURRENT_PROCESS, HPSS_VALUE),
                               ("CloseHandle", process)]
    assert result.path == str(tmp_path / "a.dmp")
    assert result.size == 64
    assert result.pid == PID
    assert result.threads == 3 and result.modules == 2
    assert result.skipped_reads == 0 and result.skipped == ()


def test_is_process_snapshot_callback_is_answered_s_false(fake: FakeLibraries,
                                                          tmp_path: pathlib.Path) -> None:
    with snapshotdump.capture(PID) as snap:
        snap.write_dump(tmp_path / "a.dmp")
    answers = [(result, out["Status"]) for kind, result, out in fake.dbghelp.answers
               if kind == 16]
    assert answers == [(1, 1)]  # TRUE, S_FALSE


def test_live_fallback_dumps_the_process_handle(fake: FakeLibraries,
                                                tmp_path: pathlib.Path) -> None:
    fake.kernel32.pss = False
    with pytest.raises(snapshotdump.SnapshotUnsupportedError, match="live_fallback") as info:
        snapshotdump.capture(PID)
    assert info.value.function == "PssCaptureSnapshot"
    assert not fake.kernel32.open_handles
    with snapshotdump.capture(PID, live_fallback=True) as snap:
        process = opened(fake)
        assert snap.is_live
        assert snap.process.image_path == "C:\\fake\\target.exe"
        snap.write_dump(tmp_path / "live.dmp")
        with pytest.raises(snapshotdump.SnapshotUnsupportedError):
            snap.threads()
    assert ("MiniDumpWriteDump", process, PID, 0) in fake.calls
    assert fake.calls[-1] == ("CloseHandle", process)
    assert not fake.kernel32.open_handles


def test_user_callback_sees_typed_events_and_can_exclude(fake: FakeLibraries,
                                                         tmp_path: pathlib.Path) -> None:
    seen: list[CallbackEvent] = []

    def callback(event: CallbackEvent) -> Any:
        seen.append(event)
        if event.type is CallbackType.MODULE and event.module_path.endswith("kernel32.dll"):
            return False
        if event.type is CallbackType.MODULE:
            return ModuleWriteFlags.MODULE | ModuleWriteFlags.CV_RECORD
        if event.type is CallbackType.THREAD and event.thread_id == 102:
            return CallbackResult.EXCLUDE
        return None

    with snapshotdump.capture(PID) as snap:
        result = snap.write_dump(tmp_path / "a.dmp", callback=callback)
    modules = [e for e in seen if e.type is CallbackType.MODULE]
    assert [e.module_path for e in modules] == [p for p, _ in fake.dbghelp.MODULES]
    assert modules[0].module_base == 0x140000000 and modules[0].module_size == 0x10000
    assert modules[0].write_flags == ModuleWriteFlags(0x0F)
    assert [e.thread_id for e in seen if e.type is CallbackType.THREAD] == [101, 102, 103]
    assert all(e.type is not CallbackType.IS_PROCESS_SNAPSHOT for e in seen)
    assert fake.dbghelp.written_modules == ["C:\\fake\\target.exe"]
    assert fake.dbghelp.written_threads == [101, 103]
    module_answers = [out for kind, _, out in fake.dbghelp.answers if kind == 0]
    assert module_answers[0]["ModuleWriteFlags"] == 0x09
    assert result.modules == 1 and result.threads == 2


def test_callback_exception_cancels_removes_file_and_propagates(fake: FakeLibraries,
                                                                tmp_path: pathlib.Path) -> None:
    class Boom(Exception):
        pass

    def callback(event: CallbackEvent) -> None:
        if event.type is CallbackType.THREAD:
            raise Boom("no threads today")

    dest = tmp_path / "a.dmp"
    with snapshotdump.capture(PID) as snap, pytest.raises(Boom):
        snap.write_dump(dest, callback=callback)
    assert fake.dbghelp.written_threads == []
    # CancelCallback is asked from the start; the first one after the exception cancels.
    cancels = [out["Cancel"] for kind, _, out in fake.dbghelp.answers if kind == 6]
    assert cancels[-1] == 1 and 1 not in cancels[:-1]
    assert os.listdir(tmp_path) == []


def test_callback_cancel_result_raises_dump_cancelled(fake: FakeLibraries,
                                                      tmp_path: pathlib.Path) -> None:
    with snapshotdump.capture(PID) as snap, pytest.raises(snapshotdump.DumpCancelledError):
        snap.write_dump(tmp_path / "a.dmp", callback=lambda e: CallbackResult.CANCEL)
    assert os.listdir(tmp_path) == []


def test_callback_returning_garbage_is_a_type_error(fake: FakeLibraries,
                                                    tmp_path: pathlib.Path) -> None:
    with snapshotdump.capture(PID) as snap, pytest.raises(TypeError, match="INCLUDE_THREAD event"):
        snap.write_dump(tmp_path / "a.dmp", callback=lambda e: "yes please")
    assert os.listdir(tmp_path) == []


def test_keyboard_interrupt_in_callback_still_releases_everything(
        fake: FakeLibraries, tmp_path: pathlib.Path) -> None:
    def callback(event: CallbackEvent) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), snapshotdump.capture(PID) as snap:
        process = opened(fake)
        snap.write_dump(tmp_path / "a.dmp", callback=callback)
    assert fake.calls[-2:] == [("PssFreeSnapshot", CURRENT_PROCESS, HPSS_VALUE),
                               ("CloseHandle", process)]
    assert os.listdir(tmp_path) == []


def test_close_is_idempotent_and_frees_once(fake: FakeLibraries) -> None:
    snap = snapshotdump.capture(PID)
    snap.close()
    snap.close()
    with snap:
        pass
    assert fake.names().count("PssFreeSnapshot") == 1
    assert fake.names().count("CloseHandle") == 1  # the process; the clone is PSS's to close
    with pytest.raises(ValueError, match="closed"):
        snap.write_dump("never.dmp")


def test_capture_failure_closes_the_process_handle(fake: FakeLibraries) -> None:
    fake.kernel32.capture_error = 5
    with pytest.raises(snapshotdump.SnapshotPermissionError) as info:
        snapshotdump.capture(PID)
    assert info.value.winerror == 5 and info.value.function == "PssCaptureSnapshot"
    process = fake.calls[1][1]
    assert fake.calls[-1] == ("CloseHandle", process)


def test_given_handle_is_not_closed(fake: FakeLibraries) -> None:
    handle = fake.kernel32.new_handle("process", PID, 0x1FFFFF)
    with snapshotdump.capture(ProcessHandle(handle)) as snap:
        assert snap.pid == PID
    assert ("CloseHandle", handle) not in fake.calls
    assert fake.calls[-1] == ("PssFreeSnapshot", CURRENT_PROCESS, HPSS_VALUE)
    fake.kernel32.close(handle)  # ours to close, as the caller's would be


def test_closed_handle_gives_winerror_6(fake: FakeLibraries) -> None:
    with pytest.raises(snapshotdump.SnapshotError) as info:
        snapshotdump.capture(ProcessHandle(0x10))
    assert info.value.winerror == 6 and info.value.function == "GetProcessId"


def test_access_denied_is_a_permission_error_with_hint(fake: FakeLibraries) -> None:
    with pytest.raises(PermissionError) as info:
        snapshotdump.capture(DENIED_PID)
    error = info.value
    assert isinstance(error, snapshotdump.SnapshotPermissionError)
    assert error.winerror == 5 and error.function == "OpenProcess" and error.pid == DENIED_PID
    assert "Access is denied." in str(error) and "SeDebugPrivilege" in str(error)


def test_missing_pid_is_a_process_lookup_error(fake: FakeLibraries) -> None:
    with pytest.raises(ProcessLookupError) as info:
        snapshotdump.capture(GONE_PID)
    assert isinstance(info.value, snapshotdump.ProcessNotFoundError)
    assert info.value.winerror == 87 and f"pid {GONE_PID}" in str(info.value)


def test_partial_copy_blames_bitness_only_for_a_wow64_target(fake: FakeLibraries,
                                                             tmp_path: pathlib.Path) -> None:
    fake.dbghelp.fail_hresult = hresult_from_win32(299) & 0xFFFFFFFF
    with snapshotdump.capture(PID) as snap, pytest.raises(snapshotdump.SnapshotError) as same:
        snap.write_dump(tmp_path / "a.dmp")
    assert same.value.hresult == hresult_from_win32(299) and same.value.winerror == 299
    assert same.value.function == "MiniDumpWriteDump" and "0x8007012B" in str(same.value)
    assert "32-bit" not in str(same.value) and "could not be read" in str(same.value)
    with snapshotdump.capture(WOW64_PID) as snap, pytest.raises(snapshotdump.SnapshotError) as wow:
        snap.write_dump(tmp_path / "b.dmp")
    assert "32-bit (WoW64)" in str(wow.value) and wow.value.winerror == 299
    assert os.listdir(tmp_path) == []


def test_non_win32_hresult(fake: FakeLibraries, tmp_path: pathlib.Path) -> None:
    fake.dbghelp.fail_hresult = 0x8000FFFF  # E_UNEXPECTED
    with snapshotdump.capture(PID) as snap, pytest.raises(snapshotdump.SnapshotError) as info:
        snap.write_dump(tmp_path / "a.dmp")
    assert info.value.winerror is None and info.value.hresult == 0x8000FFFF - (1 << 32)


@pytest.mark.parametrize(
    ("target", "flags", "error", "match"),
    [
        (-1, CaptureFlags.DEFAULT, ValueError, "pid -1"),
        (0, CaptureFlags.DEFAULT, ValueError, "pid 0"),
        (True, CaptureFlags.DEFAULT, TypeError, "bool"),
        ("42", CaptureFlags.DEFAULT, TypeError, "str"),
        (PID, 0x100000, ValueError, "flags=0x100000"),
        (PID, "VA_CLONE", TypeError, "flags"),
    ],
)
def test_bad_capture_arguments_fail_before_any_call(fake: FakeLibraries, target: Any,
                                                    flags: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        snapshotdump.capture(target, flags)
    assert fake.calls == []


def test_bad_dump_arguments_fail_before_any_call(fake: FakeLibraries,
                                                 tmp_path: pathlib.Path) -> None:
    with snapshotdump.capture(PID) as snap:
        before = len(fake.calls)
        with pytest.raises(ValueError, match="directory"):
            snap.write_dump(tmp_path)
        with pytest.raises(ValueError, match="dump_type=0x4000000"):
            snap.write_dump(tmp_path / "a.dmp", 0x4000000)
        with pytest.raises(TypeError, match="callback"):
            snap.write_dump(tmp_path / "a.dmp", callback=42)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="0xffff"):
            snap.write_dump(tmp_path / "a.dmp", user_streams=[(0xFFFF, b"x")])
        with pytest.raises(snapshotdump.DestinationNotFoundError, match="does not exist"):
            snap.write_dump(tmp_path / "nowhere" / "a.dmp")
        assert len(fake.calls) == before
    assert os.listdir(tmp_path) == []


@POSIX_ONLY
def test_dest_is_private_never_overwritten_never_through_symlink(
        fake: FakeLibraries, tmp_path: pathlib.Path) -> None:
    existing = tmp_path / "existing.dmp"
    existing.write_bytes(b"keep me")
    secret = tmp_path / "secret"
    secret.write_bytes(b"secret")
    link = tmp_path / "link.dmp"
    link.symlink_to(secret)
    with snapshotdump.capture(PID) as snap:
        new = snap.write_dump(tmp_path / "new.dmp")
        assert stat.S_IMODE(os.stat(new.path or "").st_mode) == 0o600
        with pytest.raises(FileExistsError, match="overwrite=True"):
            snap.write_dump(existing)
        assert existing.read_bytes() == b"keep me"
        with pytest.raises(FileExistsError, match="symbolic link"):
            snap.write_dump(link, overwrite=True)
        assert secret.read_bytes() == b"secret" and link.is_symlink()
        replaced = snap.write_dump(existing, overwrite=True)
        assert existing.read_bytes().startswith(b"MDMP")
        assert stat.S_IMODE(os.stat(replaced.path or "").st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["existing.dmp", "link.dmp", "new.dmp", "secret"]


def test_file_object_dest_and_user_streams_and_exception(fake: FakeLibraries,
                                                         tmp_path: pathlib.Path) -> None:
    info = snapshotdump.ExceptionInfo(thread_id=101, pointers=0x7FF0_1234)
    with snapshotdump.capture(PID) as snap, open(tmp_path / "f.dmp", "wb") as f:
        result = snap.write_dump(f, MiniDumpType.WITH_FULL_MEMORY, exception=info,
                                 user_streams=[snapshotdump.UserStream(0x10001, b"hello"),
                                               (0x10002, b"{}")])
    assert result.size == 64 and result.dump_type is MiniDumpType.WITH_FULL_MEMORY
    assert fake.dbghelp.user_streams == [(0x10001, b"hello"), (0x10002, b"{}")]
    assert fake.dbghelp.exception == (101, 0x7FF0_1234, 1)
    assert (tmp_path / "f.dmp").read_bytes().startswith(b"MDMP")


def test_snapshot_data_is_decoded(fake: FakeLibraries) -> None:
    flags = CaptureFlags.DEFAULT | CaptureFlags.CREATE_MEASURE_PERFORMANCE
    with snapshotdump.capture(PID, flags) as snap:
        process = snap.process
        threads = snap.threads()
        performance = snap.performance
    assert (process.pid, process.parent_pid, process.image_path) == (42, 7, "C:\\fake\\target.exe")
    assert process.user_seconds == 3.0 and process.working_set_size == 1 << 20
    assert [(t.thread_id, t.instruction_pointer, t.suspend_count) for t in threads] == [
        (101, 0x7FF0_0000_1001, 1), (102, 0x7FF0_0000_1002, 1)]
    assert performance is not None
    assert performance.pause_seconds == pytest.approx(0.0025)
    assert performance.va_clone_seconds == pytest.approx(0.002)
    assert fake.names().count("PssWalkMarkerCreate") == fake.names().count("PssWalkMarkerFree")


def test_enable_debug_privilege(fake: FakeLibraries) -> None:
    assert snapshotdump.enable_debug_privilege() is True
    assert ("AdjustTokenPrivileges", 20, 2) in fake.calls
    fake.advapi32.holds_debug_privilege = False
    assert snapshotdump.enable_debug_privilege() is False
