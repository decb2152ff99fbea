"""The Linux backend on real processes; each dump read back by obj2yaml, lldb and `minidump`."""

from __future__ import annotations

import os
import pathlib
import re
import sys
from collections.abc import Iterator

import pytest

import snapshotdump
from snapshotdump import CaptureFlags, MiniDumpType

from .support import (
    Target,
    elf_build_id,
    lldb,
    lldb_threads,
    obj2yaml,
    parse_with_minidump_package,
    python_target_argv,
    running,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux backend")


@pytest.fixture(params=["c", "python"])
def target(request: pytest.FixtureRequest, c_binary: pathlib.Path) -> Iterator[Target]:
    argv = [str(c_binary)] if request.param == "c" else python_target_argv()
    with running(argv) as process:
        yield process


def _check_with_readers(path: pathlib.Path, snap_threads: list[snapshotdump.ThreadInfo],
                        target: Target, full: bool) -> None:
    obj2yaml(path)
    commands = ["thread list", "image list"]
    for index in range(1, len(snap_threads) + 1):
        commands += [f"thread select {index}", "thread info", "register read rip rsp"]
    commands.append("thread backtrace all")
    if full:
        commands.append(f"memory read -c {len(target.marker)} {target.marker_address:#x}")
    output = lldb(path, *commands)
    seen = lldb_threads(output)
    assert len(seen) == len(snap_threads), output[:3000]
    for thread in snap_threads:
        assert seen[thread.thread_id] == {"rip": thread.instruction_pointer,
                                          "rsp": thread.stack_pointer}, thread
    images = re.findall(r"^\[\s*\d+\] ([0-9A-F-]+) 0x[0-9a-f]+ (\S+)", output, re.M)
    assert images, output
    for uuid, image in images:
        if image.startswith("/"):
            assert uuid.replace("-", "").lower() == elf_build_id(image), image
    assert re.search(r"nanosleep|clock_nanosleep", output), "no sleeping frame in the backtrace"
    if full:
        dumped = re.findall(r"^0x[0-9a-f]+: ((?:[0-9a-f]{2} )+)", output, re.M)
        assert bytes.fromhex("".join(dumped).replace(" ", "")) == target.marker
    parsed = parse_with_minidump_package(path)
    assert len(parsed.threads.threads) == len(snap_threads)
    assert {t.ThreadId for t in parsed.threads.threads} == {t.thread_id for t in snap_threads}
    if full:
        reader = parsed.get_reader()
        assert reader.read(target.marker_address, len(target.marker)) == target.marker


def test_clone_snapshot_dumps_load_in_every_reader(target: Target,
                                                   tmp_path: pathlib.Path) -> None:
    expected_threads = set(target.task_states())
    with snapshotdump.capture(target.pid) as snap:
        assert not snap.is_live
        threads = snap.threads()
        assert {t.thread_id for t in threads} == expected_threads
        assert snap.performance.pause_seconds > 0
        normal = snap.write_dump(tmp_path / "normal.dmp")
        full = snap.write_dump(tmp_path / "full.dmp", MiniDumpType.WITH_FULL_MEMORY)
        assert full.size > normal.size
        # The target runs on while the dump is written from the clone.
        before, _ = target.ticks()
        assert target.status()["TracerPid"] == "0"
    after, _ = target.ticks()
    assert after > before
    assert normal.threads == len(threads) and normal.modules and normal.modules >= 3
    assert os.stat(normal.path or "").st_mode & 0o777 == 0o600
    _check_with_readers(tmp_path / "normal.dmp", threads, target, full=False)
    _check_with_readers(tmp_path / "full.dmp", threads, target, full=True)


def test_blocked_threads_resume_without_eintr(target: Target, tmp_path: pathlib.Path) -> None:
    for _ in range(3):
        with snapshotdump.capture(target.pid) as snap:
            snap.write_dump(tmp_path / "a.dmp", overwrite=True)
    target.command("p")
    assert target.line() == "PIPE 5 0"  # the pipe reader got the data, no EINTR
    target.command("c")
    assert target.line() == "COND"


def test_freeze_mode_holds_the_target_until_close(target: Target,
                                                  tmp_path: pathlib.Path) -> None:
    with snapshotdump.capture(target.pid, CaptureFlags.DEFAULT & ~CaptureFlags.VA_CLONE) as snap:
        assert snap.is_live
        states = target.task_states()
        assert set(states.values()) == {"t"}, states
        assert target.status()["TracerPid"] != "0"
        snap.write_dump(tmp_path / "frozen.dmp", MiniDumpType.WITH_FULL_MEMORY)
        threads = snap.threads()
    _check_with_readers(tmp_path / "frozen.dmp", threads, target, full=True)


def test_every_dump_type_flag_loads(target: Target, tmp_path: pathlib.Path) -> None:
    kinds = [
        MiniDumpType.WITH_DATA_SEGS,
        MiniDumpType.WITH_PRIVATE_READ_WRITE_MEMORY,
        MiniDumpType.WITH_HANDLE_DATA | MiniDumpType.WITH_THREAD_INFO,
        MiniDumpType.WITH_FULL_MEMORY_INFO | MiniDumpType.WITH_INDIRECTLY_REFERENCED_MEMORY,
        MiniDumpType.WITHOUT_OPTIONAL_DATA | MiniDumpType.IGNORE_INACCESSIBLE_MEMORY,
    ]
    with snapshotdump.capture(target.pid) as snap:
        for index, kind in enumerate(kinds):
            path = tmp_path / f"{index}.dmp"
            snap.write_dump(path, kind)
            text = obj2yaml(path)
            parsed = parse_with_minidump_package(path)
            assert parsed.threads is not None and parsed.modules is not None
            if kind & MiniDumpType.WITH_HANDLE_DATA:
                names = [h.ObjectName for h in parsed.handles.handles]
                assert any("pipe:" in str(n) for n in names), names
                assert parsed.thread_info is not None
            if kind & MiniDumpType.WITH_FULL_MEMORY_INFO:
                assert "MemoryInfoList" in text
            if kind & MiniDumpType.WITHOUT_OPTIONAL_DATA:
                assert "LinuxEnviron" not in text
            else:
                assert "LinuxEnviron" in text


def test_user_streams_callback_and_exception(target: Target, tmp_path: pathlib.Path) -> None:
    events: list[snapshotdump.CallbackEvent] = []

    def keep_main_module(event: snapshotdump.CallbackEvent) -> object:
        events.append(event)
        if event.type is snapshotdump.CallbackType.MODULE:
            return "ld-linux" not in (event.module_path or "")
        if event.type is snapshotdump.CallbackType.THREAD:
            return event.thread_id == target.pid
        return None

    with snapshotdump.capture(target.pid) as snap:
        result = snap.write_dump(
            tmp_path / "cb.dmp", callback=keep_main_module,
            user_streams=[(0x10001, b'{"reason": "test"}')],
            exception=snapshotdump.ExceptionInfo(thread_id=target.pid, code=6, address=0x1234))
    assert result.threads == 1
    output = lldb(tmp_path / "cb.dmp", "thread list", "image list")
    assert "ld-linux" not in output
    assert len(re.findall(r"thread #\d+", output)) == 1
    text = obj2yaml(tmp_path / "cb.dmp")
    assert "Exception" in text
    raw = (tmp_path / "cb.dmp").read_bytes()
    assert b'{"reason": "test"}' in raw
    assert {e.type for e in events} >= {snapshotdump.CallbackType.MODULE,
                                        snapshotdump.CallbackType.THREAD}


def test_callback_cancel_and_raise_leave_nothing(target: Target,
                                                 tmp_path: pathlib.Path) -> None:
    def interrupt(event: snapshotdump.CallbackEvent) -> None:
        raise KeyboardInterrupt

    with snapshotdump.capture(target.pid) as snap:
        with pytest.raises(snapshotdump.DumpCancelledError):
            snap.write_dump(tmp_path / "x.dmp",
                            callback=lambda e: snapshotdump.CallbackResult.CANCEL)
        with pytest.raises(KeyboardInterrupt):
            snap.write_dump(tmp_path / "y.dmp", MiniDumpType.WITH_FULL_MEMORY, callback=interrupt)
        with pytest.raises(TypeError, match="THREAD event"):
            snap.write_dump(tmp_path / "z.dmp", callback=lambda e: 42)
    assert os.listdir(tmp_path) == []
