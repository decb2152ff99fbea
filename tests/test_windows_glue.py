"""The Windows glue, against fake DLLs at the cffi boundary (real structs, real ffi.callback).

This proves call order, the S_FALSE answer, callback plumbing, cleanup and error
mapping.  That the DLLs really behave this way is proven under Wine
(tests/wine/) and, for PSS itself, on real Windows.
"""

from __future__ import annotations

import os
import pathlib
import stat
from collections.abc import Iterator
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
from snapshotdump._windows import libs
from snapshotdump.errors import hresult_from_win32

from .fake_windows import (
    CURRENT_PROCESS,
    DENIED_PID,
    GONE_PID,
    HPSS_VALUE,
    VA_CLONE_VALUE,
    FakeLibraries,
)

PID = 42
PROCESS = 0x1000 + PID


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLibraries]:
    fake = FakeLibraries()
    monkeypatch.setattr(libs, "LIBRARIES", fake)
    yield fake
    assert not fake.kernel32.open_handles, "a handle the library opened was never closed"


def test_capture_dump_close_in_the_documented_order(fake: FakeLibraries,
                                                    tmp_path: pathlib.Path) -> None:
    with snapshotdump.capture(PID) as snap:
        result = snap.write_dump(tmp_path / "a.dmp")
    names = fake.names()
    assert names[:2] == ["OpenProcess", "PssCaptureSnapshot"]
    assert fake.calls[1] == ("PssCaptureSnapshot", PROCESS, int(CaptureFlags.DEFAULT), 0x0010001F)
    assert ("MiniDumpWriteDump", HPSS_VALUE, PID, 0) in fake.calls
    # Exit frees the VA clone handle, then the snapshot, then the process handle.
    tail = fake.calls[-3:]
    assert tail == [("CloseHandle", VA_CLONE_VALUE),
                    ("PssFreeSnapshot", CURRENT_PROCESS, HPSS_VALUE),
                    ("CloseHandle", PROCESS)]
    assert result.path == str(tmp_path / "a.dmp")
    assert result.size == 64
    assert result.pid == PID
    assert result.threads == 3 and result.modules == 2


def test_is_process_snapshot_callback_is_answered_s_false(fake: FakeLibraries,
                                                          tmp_path: pathlib.Path) -> None:
    with snapshotdump.capture(PID) as snap:
        snap.write_dump(tmp_path / "a.dmp")
    kind, result, output = fake.dbghelp.answers[0]
    assert (kind, result, output["Status"]) == (16, 1, 1)  # TRUE, S_FALSE


def test_live_fallback_dumps_the_process_handle(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: pathlib.Path) -> None:
    fake = FakeLibraries(pss=False)
    monkeypatch.setattr(libs, "LIBRARIES", fake)
    with pytest.raises(snapshotdump.SnapshotUnsupportedError, match="live_fallback") as info:
        snapshotdump.capture(PID)
    assert info.value.function == "PssCaptureSnapshot"
    assert not fake.kernel32.open_handles
    with snapshotdump.capture(PID, live_fallback=True) as snap:
        assert snap.is_live
        assert snap.process.image_path == "C:\\fake\\target.exe"
        snap.write_dump(tmp_path / "live.dmp")
        with pytest.raises(snapshotdump.SnapshotUnsupportedError):
            snap.threads()
    assert ("MiniDumpWriteDump", PROCESS, PID, 0) in fake.calls
    assert fake.calls[-1] == ("CloseHandle", PROCESS)
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
    assert [out["Cancel"] for kind, _, out in fake.dbghelp.answers if kind == 6] == [1]
    assert os.listdir(tmp_path) == []


def test_callback_cancel_result_raises_dump_cancelled(fake: FakeLibraries,
                                                      tmp_path: pathlib.Path) -> None:
    with snapshotdump.capture(PID) as snap, pytest.raises(snapshotdump.DumpCancelledError):
        snap.write_dump(tmp_path / "a.dmp", callback=lambda e: CallbackResult.CANCEL)
    assert os.listdir(tmp_path) == []


def test_callback_returning_garbage_is_a_type_error(fake: FakeLibraries,
                                                    tmp_path: pathlib.Path) -> None:
    with snapshotdump.capture(PID) as snap, pytest.raises(TypeError, match="MODULE event"):
        snap.write_dump(tmp_path / "a.dmp", callback=lambda e: "yes please")
    assert os.listdir(tmp_path) == []


def test_keyboard_interrupt_in_callback_still_releases_everything(
        fake: FakeLibraries, tmp_path: pathlib.Path) -> None:
    def callback(event: CallbackEvent) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), snapshotdump.capture(PID) as snap:
        snap.write_dump(tmp_path / "a.dmp", callback=callback)
    assert fake.calls[-2:] == [("PssFreeSnapshot", CURRENT_PROCESS, HPSS_VALUE),
                               ("CloseHandle", PROCESS)]
    assert os.listdir(tmp_path) == []


def test_close_is_idempotent_and_frees_once(fake: FakeLibraries) -> None:
    snap = snapshotdump.capture(PID)
    snap.close()
    snap.close()
    with snap:
        pass
    assert fake.names().count("PssFreeSnapshot") == 1
    assert fake.names().count("CloseHandle") == 2
    with pytest.raises(ValueError, match="closed"):
        snap.write_dump("never.dmp")


def test_capture_failure_closes_the_process_handle(fake: FakeLibraries) -> None:
    fake.kernel32.capture_error = 5
    with pytest.raises(snapshotdump.SnapshotPermissionError) as info:
        snapshotdump.capture(PID)
    assert info.value.winerror == 5 and info.value.function == "PssCaptureSnapshot"
    assert fake.calls[-1] == ("CloseHandle", PROCESS)


def test_given_handle_is_not_closed(fake: FakeLibraries) -> None:
    with snapshotdump.capture(ProcessHandle(PROCESS)) as snap:
        assert snap.pid == PID
    assert ("CloseHandle", PROCESS) not in fake.calls
    assert fake.calls[-1] == ("PssFreeSnapshot", CURRENT_PROCESS, HPSS_VALUE)


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


def test_minidump_hresult_maps_to_win32_code_and_hint(fake: FakeLibraries,
                                                      tmp_path: pathlib.Path) -> None:
    fake.dbghelp.fail_hresult = hresult_from_win32(299) & 0xFFFFFFFF
    with snapshotdump.capture(PID) as snap, pytest.raises(snapshotdump.SnapshotError) as info:
        snap.write_dump(tmp_path / "a.dmp")
    error = info.value
    assert error.hresult == hresult_from_win32(299) and error.winerror == 299
    assert error.function == "MiniDumpWriteDump" and "32/64-bit" in str(error)
    assert "0x8007012B" in str(error)
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
