"""The clone copies a full dump's memory itself, and code run in a target keeps rseq's promise.

Every test here runs real targets and reads the dumps back with independent readers.
"""

from __future__ import annotations

import ctypes
import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import snapshotdump
from snapshotdump import CaptureFlags, MiniDumpType
from snapshotdump._linux import clone_stream

from .conftest import require, require_tool
from .support import Target, obj2yaml, parse_with_minidump_package, running

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux backend")
FULL = MiniDumpType.WITH_FULL_MEMORY
PAGE = 4096


@pytest.fixture
def big_target(c_binary: pathlib.Path) -> Iterator[Target]:
    """32 MiB of data, and a file mapping whose last two pages fault (SIGBUS) when read."""
    with running([str(c_binary)], {"TARGET_MIB": "32", "TARGET_TRUNCATED_MAP": "1"}) as target:
        yield target


def _record_ring(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """What each clone_stream.receive call answered: None when the clone did the copy."""
    answers: list[str | None] = []
    real = clone_stream.receive

    def recording(*args: Any) -> str | None:
        answers.append(real(*args))
        return answers[-1]

    monkeypatch.setattr(clone_stream, "receive", recording)
    return answers


def test_the_clone_copies_the_same_bytes_as_proc_mem(big_target: Target, tmp_path: pathlib.Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    answers = _record_ring(monkeypatch)
    # The kernel writes the CPU number into a thread's rseq area as it returns to user
    # space.  The snapshot is taken on CPU 0 and the clone made to copy on CPU 1, so the
    # dump shows whether the area is the snapshot's or the clone's own.
    require(len(os.sched_getaffinity(0)) >= 2, "this test needs two CPUs")
    first, second = sorted(os.sched_getaffinity(0))[:2]
    os.sched_setaffinity(big_target.pid, {first})  # the main thread: the one cloned from
    with snapshotdump.capture(big_target.pid) as snap:
        (clone,) = [int(line.split()[0]) for line in big_target.children()]
        os.sched_setaffinity(clone, {second})
        truncated = [r for r in snap.regions() if r.size == 3 * PAGE and r.mapped_file
                     and r.mapped_file.endswith("(deleted)")]
        snap.write_dump(tmp_path / "ring.dmp", FULL)
        monkeypatch.setattr(clone_stream, "receive", lambda *args: "disabled by the test")
        snap.write_dump(tmp_path / "proc.dmp", FULL)  # after the ring: the clone is as it was
    assert answers == [None]  # the clone really did copy the first dump
    assert (tmp_path / "ring.dmp").read_bytes() == (tmp_path / "proc.dmp").read_bytes()
    obj2yaml(tmp_path / "ring.dmp")
    reader = parse_with_minidump_package(tmp_path / "ring.dmp").get_reader()
    assert reader.read(big_target.marker_address, len(big_target.marker)) == big_target.marker
    assert len(truncated) == 1
    # The page the file has, then two that fault in the clone and are filled with zeros.
    assert reader.read(truncated[0].base, 3 * PAGE) == b"T" * PAGE + bytes(2 * PAGE)


def _private_dirty_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        return next(int(line.split()[1]) for line in rollup if line.startswith("Private_Dirty:"))


def test_a_full_dump_leaves_the_clone_sharing_the_targets_pages(
        big_target: Target, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pinning read (process_vm_readv) would give the clone a private copy of all 32 MiB."""
    answers = _record_ring(monkeypatch)
    with snapshotdump.capture(big_target.pid) as snap:
        (clone,) = [int(line.split()[0]) for line in big_target.children()]
        before = _private_dirty_kib(clone)
        snap.write_dump(tmp_path / "full.dmp", FULL)
        after = _private_dirty_kib(clone)
    assert answers == [None]
    assert after - before < 4096, (before, after)


def _own_vdso() -> tuple[int, bytes]:
    with open("/proc/self/maps") as maps:
        for line in maps:
            if line.rstrip().endswith("[vdso]"):
                start, end = (int(part, 16) for part in line.split()[0].split("-"))
                return start, ctypes.string_at(start, end - start)
    raise AssertionError("this process has no vDSO")


def test_the_vdso_in_a_full_dump_is_the_kernels(c_target: Target,
                                               tmp_path: pathlib.Path) -> None:
    """The copy code runs from the clone's vDSO: the dump must show the vDSO, not our code."""
    with snapshotdump.capture(c_target.pid) as snap:
        (vdso,) = [r for r in snap.regions() if r.mapped_file == "[vdso]"]
        snap.write_dump(tmp_path / "full.dmp", FULL)
    _, expected = _own_vdso()
    assert vdso.size == len(expected)
    reader = parse_with_minidump_package(tmp_path / "full.dmp").get_reader()
    assert reader.read(vdso.base, vdso.size) == expected


@pytest.fixture(scope="module")
def rseq_binary(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    compiler = require_tool("gcc", "cc")
    binary = tmp_path_factory.mktemp("rseq") / "rseq_target"
    source = pathlib.Path(__file__).parent / "targets" / "rseq_target.c"
    subprocess.run([compiler, "-O1", "-g", "-o", str(binary), str(source)], check=True)
    return binary


def test_a_thread_stopped_in_an_rseq_critical_section_resumes_at_its_abort_handler(
        rseq_binary: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """Its only thread spins in a critical section; every capture runs code in it twice (the
    clone, then the reap).  Put back as it was, it would carry on in a section the kernel
    had already cleared: "broken" counts exactly that."""
    process = subprocess.Popen([str(rseq_binary)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        ready = process.stdout.readline().split()
        require(ready[:1] == ["READY"], f"no rseq here (glibc 2.35+, Linux 4.18+): {ready}")
        pid = int(ready[1])
        frozen = CaptureFlags.DEFAULT & ~CaptureFlags.VA_CLONE
        for index in range(10):
            flags = frozen if index % 5 == 0 else CaptureFlags.DEFAULT
            with snapshotdump.capture(pid, flags) as snap:
                snap.write_dump(tmp_path / "rseq.dmp", FULL if index == 1 else 0, overwrite=True)
        os.kill(pid, signal.SIGUSR1)
        words = process.stdout.readline().split()
        assert words[0] == "RSEQ", words
        loops, aborts, broken = (int(word) for word in words[1:])
        assert broken == 0 and aborts > 0 and loops > 0, words
        with open(f"/proc/{pid}/status") as status:
            assert "TracerPid:\t0\n" in status.read()
    finally:
        process.kill()
        process.wait()


def test_memory_that_is_all_zeros_is_left_as_holes(c_target: Target,
                                                  tmp_path: pathlib.Path) -> None:
    """Its threads' 8 MiB stacks are mostly untouched: on disk they take no blocks."""
    path = tmp_path / "full.dmp"
    with snapshotdump.capture(c_target.pid) as snap:
        result = snap.write_dump(path, FULL)
    status = path.stat()
    assert status.st_size == result.size
    assert status.st_blocks * 512 < status.st_size // 2, (status.st_blocks, status.st_size)
    obj2yaml(path)
    reader = parse_with_minidump_package(path).get_reader()
    assert reader.read(c_target.marker_address, len(c_target.marker)) == c_target.marker
