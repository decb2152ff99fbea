"""Consistency is tested, not assumed: each capture mode must hold one cut of a moving target.

tests/targets/sweep.c sweeps a heap region and a region on its own stack page by page,
writing the sweep number at the start of each page.  A dump taken at one instant holds
pages [0,k) at g and [k,N) at g-1; a copy made while the target runs tears that.  The
same target holds markers in MADV_DONTFORK, MADV_DONTDUMP and idle memory, and a
PROT_NONE guard region.  Dumps are read back by the `minidump` package and obj2yaml.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import snapshotdump
from snapshotdump import CallbackType, CaptureFlags, CaptureMemory, MiniDumpType

from .conftest import require_tool
from .support import TARGETS, Target, obj2yaml, parse_with_minidump_package, running

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux backend")
PAGE = 4096
FULL = MiniDumpType.WITH_FULL_MEMORY
DONT_FORK_MARKER = b"DONTFORK-MARKER-5e1f"
DONT_DUMP_MARKER = b"DONTDUMP-MARKER-7a2c"


@dataclass
class Sweep:
    target: Target
    hot: int
    hot_pages: int
    stack_hot: int
    stack_pages: int
    dont_fork: int
    dont_dump: int
    idle: int
    guard: int
    doomed: int
    zap: int
    moving: int
    secret: int  # 0 where memfd_secret is not available


@pytest.fixture(scope="session")
def sweep_binary(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    compiler = require_tool("gcc", "cc")
    binary = tmp_path_factory.mktemp("sweep") / "sweep"
    subprocess.run([compiler, "-O1", "-g", "-pthread", "-o", str(binary),
                    str(TARGETS / "sweep.c")], check=True)
    return binary


@pytest.fixture
def sweep(sweep_binary: pathlib.Path) -> Iterator[Sweep]:
    yield from _sweep(sweep_binary)


def _sweep(sweep_binary: pathlib.Path, env: dict[str, str] | None = None) -> Iterator[Sweep]:
    with running([str(sweep_binary)], env) as target:
        assert target.process.stdout is not None
        # Printed with READY, so it is already buffered: a select() would not see it.
        words = target.process.stdout.readline().split()
        assert words[0] == "ADDRS", words
        yield Sweep(target, *(int(word, 16) if word.startswith("0x") else int(word)
                              for word in words[1:]))


def _generations(reader: Any, start: int, pages: int) -> list[int]:
    return [int.from_bytes(reader.read(start + i * PAGE, 8), "little") for i in range(pages)]


def assert_one_cut(generations: list[int]) -> None:
    """[0,k) hold g and [k,N) hold g-1 (k may be N: a sweep just ended)."""
    g = generations[0]
    k = next((i for i, value in enumerate(generations) if value != g), len(generations))
    assert g >= 1, generations[:8]
    assert all(value == g - 1 for value in generations[k:]), (
        f"torn: pages [0,{k}) hold {g}, then {sorted(set(generations[k:]))[:8]}")


def _capture(pid: int, mode: str) -> snapshotdump.Snapshot:
    if mode == "stacks":
        return snapshotdump.capture(pid, memory=CaptureMemory.STACKS)
    if mode == "precopy":
        return snapshotdump.capture(pid, memory=CaptureMemory.PRECOPY)
    if mode == "frozen":
        return snapshotdump.capture(pid, CaptureFlags.DEFAULT & ~CaptureFlags.VA_CLONE)
    return snapshotdump.capture(pid)


@pytest.mark.parametrize("mode", ["stacks", "precopy", "clone", "frozen"])
def test_each_capture_mode_holds_one_cut(sweep: Sweep, tmp_path: pathlib.Path,
                                         mode: str) -> None:
    dump = tmp_path / f"{mode}.dmp"
    with _capture(sweep.target.pid, mode) as snap:
        assert snap.performance is not None and snap.performance.capture_mode == mode
        result = snap.write_dump(dump, MiniDumpType.NORMAL if mode == "stacks" else FULL)
    obj2yaml(dump)
    reader = parse_with_minidump_package(dump).get_reader()
    assert_one_cut(_generations(reader, sweep.stack_hot, sweep.stack_pages))
    if mode == "stacks":
        return
    assert_one_cut(_generations(reader, sweep.hot, sweep.hot_pages))
    assert reader.read(sweep.idle, len(sweep.target.marker)) == sweep.target.marker
    assert reader.read(sweep.dont_fork, len(DONT_FORK_MARKER)) == DONT_FORK_MARKER
    reasons = {region.base: region.reason for region in result.skipped}
    assert "MADV_DONTDUMP" in reasons[sweep.dont_dump]
    assert "PROT_NONE" in reasons[sweep.guard]
    if sweep.secret:
        assert "memfd_secret" in reasons[sweep.secret]
    assert result.skipped_bytes >= (1 << 20) + 2 * PAGE


def test_a_full_dump_lists_what_it_leaves_out_and_can_include_dont_dump(
        sweep: Sweep, tmp_path: pathlib.Path) -> None:
    with snapshotdump.capture(sweep.target.pid) as snap:
        left_out = snap.write_dump(tmp_path / "default.dmp", FULL)
        included = snap.write_dump(tmp_path / "included.dmp", FULL, include_dont_dump=True)
    parsed = parse_with_minidump_package(tmp_path / "default.dmp")
    with pytest.raises(Exception):  # noqa: B017 - the package's own error for unmapped memory
        parsed.get_reader().read(sweep.dont_dump, len(DONT_DUMP_MARKER))
    # Left out of the memory, but listed: in the MemoryInfoList and in the maps stream.
    infos = {info.BaseAddress for info in parsed.memory_info.infos}
    assert {sweep.dont_dump, sweep.guard, sweep.dont_fork} <= infos
    if sweep.secret:
        assert sweep.secret in infos
    yaml = obj2yaml(tmp_path / "default.dmp")
    for address in (sweep.dont_dump, sweep.guard, sweep.dont_fork):
        assert f"{address:x}-" in yaml
    assert next(r for r in left_out.skipped if r.base == sweep.dont_dump).size == 1 << 20
    reader = parse_with_minidump_package(tmp_path / "included.dmp").get_reader()
    assert reader.read(sweep.dont_dump, len(DONT_DUMP_MARKER)) == DONT_DUMP_MARKER
    assert sweep.dont_dump not in {r.base for r in included.skipped}
    assert included.skipped_bytes == left_out.skipped_bytes - (1 << 20)


def test_the_target_keeps_its_dont_fork_mark(sweep: Sweep) -> None:
    """The clone took the MADV_DONTFORK region; the target must have its mark back."""
    def dont_fork_flags() -> list[bool]:
        with open(f"/proc/{sweep.target.pid}/smaps") as smaps:
            text = smaps.read()
        head = f"{sweep.dont_fork:x}-"
        block = text[text.index(head):]
        flags = block[block.index("VmFlags:"):].split("\n", 1)[0].split()
        return ["dc" in flags]

    assert dont_fork_flags() == [True]
    with snapshotdump.capture(sweep.target.pid) as snap:
        assert snap.performance.capture_mode == "clone"
        assert dont_fork_flags() == [True]


def _has_userfaultfd(pid: int) -> bool:
    """Whether any mapping of *pid* is registered with a userfaultfd (VmFlags uw/um)."""
    with open(f"/proc/{pid}/smaps") as smaps:
        return any(line.startswith("VmFlags:") and ({"uw", "um"} & set(line.split()))
                   for line in smaps)


def _target_fds(pid: int) -> list[str]:
    return [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]


def test_precopy_follows_mappings_that_change_while_it_copies(
        sweep: Sweep, tmp_path: pathlib.Path) -> None:
    """Mapped, unmapped and emptied while memory is copied: the dump is the final stop's."""
    target = sweep.target
    changed: list[int] = []

    def ask(command: str) -> int:
        target.command(command)
        words = target.line().split()
        assert words[0] == "OK", words
        return int(words[1], 16)

    def change(event: snapshotdump.CallbackEvent) -> None:
        """The first question comes before any copy: map a region then.  The new region is
        asked about once the first copy is done: unmap and empty regions already copied."""
        if event.type is not CallbackType.INCLUDE_VM_REGION:
            return
        if not changed:
            assert target.children() == []  # no clone: nothing copied in the target
            assert _has_userfaultfd(target.pid)
            assert not any("userfaultfd" in fd for fd in _target_fds(target.pid))
            changed.append(ask("m"))
        elif event.memory_base == changed[0]:
            changed.extend((ask("u"), ask("z"), ask("v")))

    with snapshotdump.capture(target.pid, memory=CaptureMemory.PRECOPY) as snap:
        assert snap.memory is CaptureMemory.PRECOPY
        result = snap.write_dump(tmp_path / "p.dmp", FULL, callback=change)
        performance = snap.performance
        assert performance.capture_mode == "precopy" and len(performance.pauses_seconds) == 2
        assert performance.precopy_rounds is not None and performance.precopy_rounds >= 1
        threads = snap.threads()
    assert not _has_userfaultfd(target.pid)  # closing the snapshot dropped the tracking
    assert len(changed) == 4  # the new region was seen after the first copy
    obj2yaml(tmp_path / "p.dmp")
    reader = parse_with_minidump_package(tmp_path / "p.dmp").get_reader()
    assert reader.read(changed[0], 13) == b"NEWMAP-MARKER"
    with pytest.raises(Exception):  # noqa: B017 - the package's own error for unmapped memory
        reader.read(sweep.doomed, 13)
    assert reader.read(sweep.zap, 4096) == bytes(4096)
    assert reader.read(changed[3], 12) == b"MOVED-MARKER"  # moved by mremap, then written
    with pytest.raises(Exception):  # noqa: B017
        reader.read(sweep.moving, 13)
    assert_one_cut(_generations(reader, sweep.hot, sweep.hot_pages))
    assert_one_cut(_generations(reader, sweep.stack_hot, sweep.stack_pages))
    assert reader.read(sweep.dont_fork, len(DONT_FORK_MARKER)) == DONT_FORK_MARKER
    assert {r.base for r in result.skipped} >= {sweep.dont_dump, sweep.guard}
    assert result.threads == len(threads) == 2


def test_precopy_falls_back_to_a_clone_where_memory_has_a_userfaultfd(
        sweep_binary: pathlib.Path, tmp_path: pathlib.Path) -> None:
    for sweep in _sweep(sweep_binary, {"SWEEP_UFFD": "1"}):
        with snapshotdump.capture(sweep.target.pid, memory=CaptureMemory.PRECOPY) as snap:
            assert snap.memory is CaptureMemory.ALL
            performance = snap.performance
            assert performance.capture_mode == "clone"
            assert "userfaultfd" in (performance.capture_mode_reason or "")
            snap.write_dump(tmp_path / "c.dmp", FULL)
        reader = parse_with_minidump_package(tmp_path / "c.dmp").get_reader()
        assert_one_cut(_generations(reader, sweep.hot, sweep.hot_pages))
        assert reader.read(sweep.dont_fork, len(DONT_FORK_MARKER)) == DONT_FORK_MARKER


def test_precopy_under_seccomp_falls_back_and_says_why(sweep_binary: pathlib.Path,
                                                       tmp_path: pathlib.Path) -> None:
    for sweep in _sweep(sweep_binary, {"SWEEP_SECCOMP": "1"}):
        with snapshotdump.capture(sweep.target.pid, memory=CaptureMemory.PRECOPY,
                                  live_fallback=True) as snap:
            performance = snap.performance
            assert snap.is_live and performance.capture_mode == "frozen"
            assert "seccomp" in (performance.capture_mode_reason or "")
            snap.write_dump(tmp_path / "s.dmp", FULL)
        reader = parse_with_minidump_package(tmp_path / "s.dmp").get_reader()
        assert_one_cut(_generations(reader, sweep.hot, sweep.hot_pages))


DUMPER = """
import sys, time, snapshotdump
from snapshotdump import CaptureMemory, MiniDumpType
def hold(event):
    print("IN", flush=True)
    time.sleep(120)
with snapshotdump.capture(int(sys.argv[1]), memory=CaptureMemory.PRECOPY) as snap:
    snap.write_dump(sys.argv[2], MiniDumpType.WITH_FULL_MEMORY, callback=hold)
"""


def test_a_killed_precopy_dumper_leaves_no_tracking(sweep: Sweep, tmp_path: pathlib.Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[1])}
    dumper = subprocess.Popen([sys.executable, "-c", DUMPER, str(sweep.target.pid),
                               str(tmp_path / "k.dmp")], stdout=subprocess.PIPE, text=True,
                              env=env)
    try:
        assert dumper.stdout is not None
        assert dumper.stdout.readline().strip() == "IN"
        assert _has_userfaultfd(sweep.target.pid)
        dumper.send_signal(signal.SIGKILL)
        dumper.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _has_userfaultfd(sweep.target.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _has_userfaultfd(sweep.target.pid)
    finally:
        if dumper.poll() is None:
            dumper.kill()
            dumper.wait()
        if dumper.stdout is not None:
            dumper.stdout.close()


@pytest.mark.parametrize("include", [False, True])
def test_the_cli_reports_what_a_full_dump_leaves_out(sweep: Sweep, tmp_path: pathlib.Path,
                                                     include: bool) -> None:
    env = {**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[1])}
    argv = [sys.executable, "-m", "snapshotdump", str(sweep.target.pid), "--type", "full",
            "-o", str(tmp_path / "f.dmp"), "--json"]
    result = subprocess.run(argv + (["--include-dont-dump"] if include else []),
                            capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["capture_mode"] == "precopy"
    reasons = {region["base"]: region["reason"] for region in payload["skipped"]}
    assert "PROT_NONE" in reasons[sweep.guard]
    assert ("MADV_DONTDUMP" in reasons.get(sweep.dont_dump, "")) is not include
    reader = parse_with_minidump_package(tmp_path / "f.dmp").get_reader()
    assert_one_cut(_generations(reader, sweep.hot, sweep.hot_pages))
    if include:
        assert reader.read(sweep.dont_dump, len(DONT_DUMP_MARKER)) == DONT_DUMP_MARKER
