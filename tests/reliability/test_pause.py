"""The reported pause is the pause the target lived through (issue 10, item 9).

snap.performance.pause_seconds runs from the first thread interrupted to the last one
let go, as the helper clocks it, plus the short stop that reaps the clone at the release.
A heartbeat thread in the target (tests/targets/signal_target.c) measures its longest
gap; the helper is made to stall inside the pause, where a wrong clock would miss it.
"""

from __future__ import annotations

import os
import pathlib
import signal
import sys
import threading
import time

import pytest

import snapshotdump
from snapshotdump import CaptureFlags, CaptureMemory, MiniDumpType
from snapshotdump._linux import snapshot as linux_snapshot

from ..support import Target

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux pause")
FREEZE = CaptureFlags.DEFAULT & ~CaptureFlags.VA_CLONE
STALL = 1.5
# The heartbeat's own 1 ms sleep and wake-up, and a loaded machine's scheduling.
SLACK = 0.3


def _gap(target: Target) -> float:
    target.command("g")
    words = target.line().split()
    assert words[0] == "GAP", words
    return int(words[1]) / 1e6


def _reset(target: Target) -> None:
    time.sleep(0.05)
    target.command("r")
    assert target.line() == "OK"


def _assert_matches(target: Target, pause: float) -> None:
    gap = _gap(target)
    assert gap - SLACK <= pause <= gap + SLACK, (pause, gap)


def test_a_frozen_capture_with_its_helper_stopped_at_the_release(
        target: Target, tmp_path: pathlib.Path) -> None:
    _reset(target)
    with snapshotdump.capture(target.pid, FREEZE) as snap:
        snap.write_dump(tmp_path / "f.dmp")
        helper = snap._helper.process.pid  # type: ignore[attr-defined]
        os.kill(helper, signal.SIGSTOP)  # as `kill -STOP` or a frozen cgroup would
        threading.Timer(STALL, os.kill, (helper, signal.SIGCONT)).start()
    pause = snap.performance.pause_seconds
    assert pause >= STALL
    _assert_matches(target, pause)
    target.assert_untouched()


@pytest.mark.parametrize(("flags", "step"), [(CaptureFlags.DEFAULT, 20),
                                             (CaptureFlags.DEFAULT, 50), (FREEZE, 10)],
                         ids=["clone, stalled in the injection", "clone, stalled in the reap",
                              "freeze, stalled while stopping"])
def test_a_helper_stalled_inside_the_pause(target: Target, tmp_path: pathlib.Path,
                                           flags: CaptureFlags, step: int) -> None:
    _reset(target)
    linux_snapshot.HELPERS.close_all()
    flag = tmp_path / "stalled"
    os.environ["SNAPSHOTDUMP_TEST_DIE_AT"] = f"{step}:{flag}:{STALL}"
    try:
        with snapshotdump.capture(target.pid, flags) as snap:
            snap.write_dump(tmp_path / "s.dmp")
    finally:
        del os.environ["SNAPSHOTDUMP_TEST_DIE_AT"]
        linux_snapshot.HELPERS.close_all()
    assert flag.exists(), "the helper never reached that step"
    pause = snap.performance.pause_seconds
    assert pause >= STALL
    _assert_matches(target, pause)
    target.assert_untouched()


@pytest.mark.parametrize(("memory", "dump_type", "step", "stops"), [
    (CaptureMemory.STACKS, MiniDumpType.NORMAL, 10, 1),
    # The arm takes about 38 steps; the full dump's final stop follows in the same helper.
    (CaptureMemory.PRECOPY, MiniDumpType.WITH_FULL_MEMORY, 48, 2),
], ids=["stacks, stalled while stopped", "precopy, stalled in the final stop"])
def test_a_helper_stalled_inside_the_pause_of_each_mode(
        target: Target, tmp_path: pathlib.Path, memory: CaptureMemory,
        dump_type: MiniDumpType, step: int, stops: int) -> None:
    """The same clock for the modes without a clone: a pre-copy's pause_seconds is that of
    its last stop (the final stop here), and pauses_seconds lists each stop's."""
    _reset(target)
    linux_snapshot.HELPERS.close_all()
    flag = tmp_path / "stalled"
    os.environ["SNAPSHOTDUMP_TEST_DIE_AT"] = f"{step}:{flag}:{STALL}"
    try:
        with snapshotdump.capture(target.pid, memory=memory) as snap:
            snap.write_dump(tmp_path / "m.dmp", dump_type)
    finally:
        del os.environ["SNAPSHOTDUMP_TEST_DIE_AT"]
        linux_snapshot.HELPERS.close_all()
    assert flag.exists(), "the helper never reached that step"
    performance = snap.performance
    assert performance.capture_mode == memory.value
    pause = performance.pause_seconds
    assert pause >= STALL
    _assert_matches(target, pause)
    if memory is CaptureMemory.PRECOPY:
        assert len(performance.pauses_seconds) == stops
        assert performance.pauses_seconds[-1] == pause
        assert performance.pauses_seconds[0] < STALL
    target.assert_untouched()


def test_a_cloned_snapshot_held_open_is_not_a_pause(target: Target,
                                                    tmp_path: pathlib.Path) -> None:
    _reset(target)
    with snapshotdump.capture(target.pid) as snap:
        assert not snap.is_live
        time.sleep(STALL)  # the target runs all along
        snap.write_dump(tmp_path / "open.dmp")
    pause = snap.performance.pause_seconds
    assert pause < STALL / 2
    _assert_matches(target, pause)
    target.assert_untouched()
