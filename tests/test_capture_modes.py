"""Capture modes: a stack-only snapshot (no clone) for NORMAL dumps, refusals for the rest.

Real targets; every dump read back by obj2yaml, lldb and the `minidump` package.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

import snapshotdump
from snapshotdump import CaptureMemory, MiniDumpType
from snapshotdump.flags import NEEDS_ALL_MEMORY, memory_needed

from .support import Target, obj2yaml, parse_with_minidump_package, running
from .test_linux_capture import _check_with_readers

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux backend")
ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def gib_target(c_binary: pathlib.Path) -> Iterator[Target]:
    """1 GiB resident: a clone of it takes a fork's time; a stack copy must not."""
    with running([str(c_binary)], {"TARGET_MIB": "1024"}) as target:
        yield target


def _section(yaml: str, stream: str) -> str:
    """One stream's block of obj2yaml's output."""
    match = re.search(rf"  - Type:\s+{stream}\n(.*?)(?=\n  - Type:|\n\.\.\.)", yaml, re.S)
    assert match, f"no {stream} stream"
    return match.group(1)


def _content(section: str) -> bytes:
    match = re.search(r"Content:\s+([0-9A-F]+)", section)
    assert match, section[:500]
    return bytes.fromhex(match.group(1))


def test_a_stack_only_snapshot_writes_a_normal_dump_every_reader_loads(
        gib_target: Target, tmp_path: pathlib.Path) -> None:
    with snapshotdump.capture(gib_target.pid, memory=CaptureMemory.STACKS) as snap:
        assert snap.memory is CaptureMemory.STACKS and not snap.is_live
        assert gib_target.children() == []  # no clone was made
        ticks, _ = gib_target.ticks()  # and the target runs while the snapshot is open
        time.sleep(0.05)
        assert gib_target.ticks()[0] > ticks
        performance = snap.performance
        assert performance.capture_mode == "stacks"
        assert performance.capture_mode_reason and "STACKS" in performance.capture_mode_reason
        threads = snap.threads()
        result = snap.write_dump(tmp_path / "stacks.dmp")
    assert result.threads == len(threads) == 5
    _check_with_readers(tmp_path / "stacks.dmp", threads, gib_target, full=False)
    backtraces = _backtraces(tmp_path / "stacks.dmp")
    for function in ("sleeper", "reader", "waiter", "ticker", "main"):
        assert f"target`{function}" in backtraces, backtraces[:3000]

    # The same NORMAL dump from a clone: the same modules and the same dynamic linker list.
    with snapshotdump.capture(gib_target.pid) as snap:
        assert snap.memory is CaptureMemory.ALL and snap.performance.capture_mode == "clone"
        snap.write_dump(tmp_path / "clone.dmp")
    stacks_yaml = obj2yaml(tmp_path / "stacks.dmp")
    clone_yaml = obj2yaml(tmp_path / "clone.dmp")
    assert _section(stacks_yaml, "ModuleList") == _section(clone_yaml, "ModuleList")
    # MD_RAW_DEBUG64: version, the RVA of its link maps (which differs with the file's
    # layout), their count, r_brk, r_ldbase and _DYNAMIC.
    stacks_debug, clone_debug = (_content(_section(y, "LinuxDSODebug"))
                                 for y in (stacks_yaml, clone_yaml))
    assert stacks_debug[:4] + stacks_debug[8:40] == clone_debug[:4] + clone_debug[8:40]
    assert int.from_bytes(stacks_debug[8:12], "little") >= 4  # ld.so, libc, vdso, the program
    assert "linux-gate.so" in _section(stacks_yaml, "ModuleList")


def _backtraces(path: pathlib.Path) -> str:
    from .support import lldb

    return lldb(path, "thread backtrace all")


FRAMES_COMPARED = 2048  # bytes above the stack pointer: the blocked call's frames


def _stacks(path: pathlib.Path) -> dict[int, tuple[int, bytes]]:
    """tid -> (stack start, stack bytes), as the `minidump` package reads them."""
    parsed = parse_with_minidump_package(path)
    reader = parsed.get_reader()
    return {t.ThreadId: (t.Stack.StartOfMemoryRange,
                         reader.read(t.Stack.StartOfMemoryRange, t.Stack.DataSize))
            for t in parsed.threads.threads}


def test_stack_memory_matches_a_clone_of_the_same_blocked_threads(
        c_target: Target, tmp_path: pathlib.Path) -> None:
    """Threads blocked in a syscall keep their stacks: both captures must hold the same bytes.

    A blocked thread still wakes now and then (the sleeper's nanosleep loop), and the kernel
    rewrites a thread's rseq area (cpu_id, at the top of a thread's stack mapping) whenever
    it moves to another CPU.  So the frames near the stack pointer are compared, and a pair
    of captures that straddles a wake-up is taken again, a bounded number of times.
    """
    mismatched: list[str] = []
    for attempt in range(5):
        with snapshotdump.capture(c_target.pid, memory=CaptureMemory.STACKS) as snap:
            names = {t.thread_id: t.name for t in snap.threads()}
            snap.write_dump(tmp_path / f"stacks{attempt}.dmp")
        with snapshotdump.capture(c_target.pid) as snap:
            snap.write_dump(tmp_path / f"clone{attempt}.dmp")
        stacks = _stacks(tmp_path / f"stacks{attempt}.dmp")
        clone = _stacks(tmp_path / f"clone{attempt}.dmp")
        assert stacks.keys() == clone.keys() == names.keys()
        mismatched, compared = [], 0
        for tid, name in names.items():
            if name == "ticker":
                continue  # it runs between the two captures
            assert len(stacks[tid][1]) > 64
            start, frames = stacks[tid][0], stacks[tid][1][:FRAMES_COMPARED]
            if (start, frames) != (clone[tid][0], clone[tid][1][:FRAMES_COMPARED]):
                mismatched.append(name)
            compared += 1
        assert compared == 4
        if not mismatched:
            return
    raise AssertionError(f"the stacks of {mismatched} differ in 5 pairs of captures")


@pytest.mark.parametrize("flag", [f for f in MiniDumpType if f & NEEDS_ALL_MEMORY == f and f])
def test_write_dump_refuses_a_type_that_needs_more_than_stacks(
        c_target: Target, tmp_path: pathlib.Path, flag: MiniDumpType) -> None:
    with snapshotdump.capture(c_target.pid, memory=CaptureMemory.STACKS) as snap:
        with pytest.raises(ValueError, match=rf"{flag.name}.*CaptureMemory.ALL"):
            snap.write_dump(tmp_path / "x.dmp", flag | MiniDumpType.WITH_HANDLE_DATA)
        assert not (tmp_path / "x.dmp").exists()
        snap.write_dump(tmp_path / "ok.dmp", MiniDumpType.WITH_HANDLE_DATA
                        | MiniDumpType.WITH_THREAD_INFO | MiniDumpType.WITH_FULL_MEMORY_INFO)
    obj2yaml(tmp_path / "ok.dmp")
    assert memory_needed(flag) is (CaptureMemory.PRECOPY if flag == MiniDumpType.WITH_FULL_MEMORY
                                   else CaptureMemory.ALL)


def test_a_precopy_snapshot_refuses_partial_memory_types(c_target: Target,
                                                         tmp_path: pathlib.Path) -> None:
    with snapshotdump.capture(c_target.pid, memory=CaptureMemory.PRECOPY) as snap:
        assert snap.memory is CaptureMemory.PRECOPY
        with pytest.raises(ValueError, match=r"WITH_DATA_SEGS.*WITH_FULL_MEMORY"):
            snap.write_dump(tmp_path / "x.dmp", MiniDumpType.WITH_DATA_SEGS)
        snap.write_dump(tmp_path / "normal.dmp")  # from the capture's own stop
        snap.write_dump(tmp_path / "full.dmp", MiniDumpType.WITH_FULL_MEMORY
                        | MiniDumpType.WITH_DATA_SEGS)
    assert not (tmp_path / "x.dmp").exists()
    _check_with_readers(tmp_path / "full.dmp", snap_threads=_threads_of(tmp_path / "full.dmp"),
                        target=c_target, full=True)
    obj2yaml(tmp_path / "normal.dmp")


def _threads_of(path: pathlib.Path) -> list[snapshotdump.ThreadInfo]:
    """The threads a dump holds, by the `minidump` package (ip and sp from each context)."""
    parsed = parse_with_minidump_package(path)
    return [snapshotdump.ThreadInfo(thread_id=t.ThreadId,
                                    instruction_pointer=t.ContextObject.Rip,
                                    stack_pointer=t.ContextObject.Rsp)
            for t in parsed.threads.threads]


def test_capture_rejects_a_memory_that_is_not_a_capture_memory(c_target: Target) -> None:
    with pytest.raises(TypeError, match="CaptureMemory"):
        snapshotdump.capture(c_target.pid, memory="stacks")  # type: ignore[arg-type]


@pytest.mark.parametrize(("kind", "mode"), [("normal", "stacks"), ("full", "precopy"),
                                            ("with_data_segs", "clone")])
def test_the_cli_picks_the_cheapest_capture_for_the_type(
        c_target: Target, tmp_path: pathlib.Path, kind: str, mode: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "snapshotdump", str(c_target.pid), "-o", str(tmp_path / "a.dmp"),
         "--type", kind, "--json"], capture_output=True, text=True, env=env, timeout=300,
        check=False)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["capture_mode"] == mode
    obj2yaml(tmp_path / "a.dmp")
