"""The Linux backend on real processes; each dump read back by obj2yaml, lldb and `minidump`."""

from __future__ import annotations

import os
import pathlib
import re
import struct
import sys
from collections.abc import Iterator
from typing import Any

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


def _maps(pid: int) -> list[tuple[int, int, str, str]]:
    """(start, end, perms, path) per line of /proc/PID/maps, read by the test itself."""
    result = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split(None, 5)
            start, end = (int(x, 16) for x in fields[0].split("-"))
            result.append((start, end, fields[1], fields[5].strip() if len(fields) > 5 else ""))
    return result


def _covered(parsed: object) -> list[tuple[int, int]]:
    segments = getattr(parsed, "memory_segments", None)
    assert segments is not None
    return [(s.start_virtual_address, s.end_virtual_address) for s in segments.memory_segments]


def _holds(ranges: list[tuple[int, int]], start: int, end: int) -> bool:
    """True if [start, end) lies inside the union of *ranges*."""
    position = start
    for low, high in sorted(ranges):
        if low <= position < high:
            position = high
        if position >= end:
            return True
    return position >= end


def test_every_dump_type_flag_loads(target: Target, tmp_path: pathlib.Path) -> None:
    """Each flag adds what it claims, read back from the dump by the `minidump` package."""
    with snapshotdump.capture(target.pid) as snap:
        maps = _maps(target.pid)  # the target is idle: its maps are the snapshot's
        fds = sorted(int(fd) for fd in os.listdir(f"/proc/{target.pid}/fd"))

        def dump(name: str, kind: MiniDumpType) -> tuple[Any, str]:
            path = tmp_path / f"{name}.dmp"
            snap.write_dump(path, kind)
            text = obj2yaml(path)
            parsed = parse_with_minidump_package(path)
            assert parsed.threads is not None and parsed.modules is not None
            return parsed, text

        normal, normal_text = dump("normal", MiniDumpType.NORMAL)
        base = _covered(normal)
        modules = [(m.baseaddress, m.baseaddress + m.size, m.name)
                   for m in normal.modules.modules if m.name.startswith("/")]
        assert "LinuxEnviron" in normal_text

        data_segs, _ = dump("data", MiniDumpType.WITH_DATA_SEGS)
        writable_images = [(start, end) for start, end, perms, path in maps
                           if perms.startswith("rw") and path.startswith("/")
                           and any(low <= start < high and path == name
                                   for low, high, name in modules)]
        assert writable_images
        for start, end in writable_images:
            assert _holds(_covered(data_segs), start, end), hex(start)
            assert not _holds(base, start, end), hex(start)

        private, _ = dump("private", MiniDumpType.WITH_PRIVATE_READ_WRITE_MEMORY)
        anonymous = [(start, end) for start, end, perms, path in maps
                     if perms == "rw-p" and (not path or path == "[heap]")]
        assert anonymous
        for start, end in anonymous:
            assert _holds(_covered(private), start, end), hex(start)
        # The marker sits in the C target's .data, and in the Python target's heap.
        marker_holder = data_segs if target.process.args[0].endswith("target") else private
        reader = marker_holder.get_reader()
        assert reader.read(target.marker_address, len(target.marker)) == target.marker

        indirect, _ = dump("indirect", MiniDumpType.WITH_INDIRECTLY_REFERENCED_MEMORY)
        stack_reader = normal.get_reader()
        writable = [(start, end) for start, end, perms, path in maps
                    if perms.startswith("rw") and path not in ("[vvar]", "[vsyscall]")]
        pointed = set()
        for thread in normal.threads.threads:
            stack = stack_reader.read(thread.Stack.StartOfMemoryRange, thread.Stack.DataSize)
            for (word,) in struct.iter_unpack("<Q", stack[:len(stack) & ~7]):
                if any(low <= word < high for low, high in writable) and \
                        not _holds(base, word, word + 1):
                    pointed.add(word)
        assert pointed, "no stack word points outside the stacks"
        for word in pointed:
            assert _holds(_covered(indirect), word, word + 1), hex(word)

        handles, _ = dump("handles",
                          MiniDumpType.WITH_HANDLE_DATA | MiniDumpType.WITH_THREAD_INFO)
        assert sorted(h.Handle for h in handles.handles.handles) == fds
        names = [str(h.ObjectName) for h in handles.handles.handles]
        assert any(name.startswith("pipe:") for name in names), names
        assert handles.thread_info is not None
        assert len(handles.thread_info.infos) == len(handles.threads.threads)

        _, text = dump("info", MiniDumpType.WITH_FULL_MEMORY_INFO)
        assert "MemoryInfoList" in text
        _, text = dump("lean", MiniDumpType.WITHOUT_OPTIONAL_DATA
                       | MiniDumpType.IGNORE_INACCESSIBLE_MEMORY)
        assert "LinuxEnviron" not in text


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
            user_streams=[(0x10001, b'{"reason": "test"}'), (0x10002, bytes(range(256)))],
            exception=snapshotdump.ExceptionInfo(thread_id=target.pid, code=6, address=0x1234))
    assert result.threads == 1
    output = lldb(tmp_path / "cb.dmp", "thread list", "image list")
    assert "ld-linux" not in output
    assert len(re.findall(r"thread #\d+", output)) == 1
    # The streams by value: obj2yaml prints each stream it does not know as hex content.
    text = obj2yaml(tmp_path / "cb.dmp")
    user = dict(re.findall(r"- Type: +(0x1000[12])\n +Content: +([0-9A-F]+)", text))
    assert bytes.fromhex(user["0x10001"]) == b'{"reason": "test"}'
    assert bytes.fromhex(user["0x10002"]) == bytes(range(256))
    parsed = parse_with_minidump_package(tmp_path / "cb.dmp")
    [record] = parsed.exception.exception_records
    assert record.ThreadId == target.pid
    assert record.ExceptionRecord.ExceptionCode_raw == 6
    assert record.ExceptionRecord.ExceptionAddress == 0x1234
    exception = (rf"Thread ID: +0x{target.pid:X}\n +Exception Record:\n +Exception Code: +0x6\n"
                 r" +Exception Address: +0x1234")
    assert re.search(exception, text), text[:2000]
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


def test_file_objects_a_dump_cannot_be_written_to_are_refused(c_target: Target,
                                                              tmp_path: pathlib.Path) -> None:
    """Refused before a byte is written, not written wrong (append mode once put the
    directory at the end of the file)."""
    existing = tmp_path / "kept.bin"
    existing.write_bytes(b"keep me")
    reader, writer = os.pipe()
    closed = open(tmp_path / "closed.dmp", "wb")  # noqa: SIM115 - closed on purpose
    closed.close()
    with snapshotdump.capture(c_target.pid) as snap:
        with open(existing, "ab") as appending, \
                pytest.raises(ValueError, match="append mode"):
            snap.write_dump(appending)
        with open(existing, "rb") as reading, pytest.raises(ValueError, match="read-only"):
            snap.write_dump(reading)
        with open(existing, "r+") as text, pytest.raises(TypeError, match="binary mode"):
            snap.write_dump(text)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="closed"):
            snap.write_dump(closed)
        with os.fdopen(writer, "wb") as pipe, pytest.raises(ValueError, match="not seekable"):
            snap.write_dump(pipe)
        os.close(reader)
        # A proper one still works after all that.
        with open(tmp_path / "good.dmp", "wb") as good:
            result = snap.write_dump(good)
    assert existing.read_bytes() == b"keep me"
    assert (tmp_path / "closed.dmp").read_bytes() == b""
    assert (tmp_path / "good.dmp").stat().st_size == result.size
    obj2yaml(tmp_path / "good.dmp")
