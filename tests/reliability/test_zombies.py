"""Our clone's zombie is always reaped, sooner or later, and nothing else is (issue 10, item 4).

The zombie is reaped by a wait4() injected into the target.  Our dumpers take turns on a
target (an flock per pid), and a zombie whose reap could not happen (a helper killed, a
thread in state D) is recorded and reaped by the next capture of that target.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import warnings

import pytest

import snapshotdump
from snapshotdump import CaptureFlags, MiniDumpType
from snapshotdump._linux import ledger
from snapshotdump._linux import snapshot as linux_snapshot

from ..support import Target

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux zombies")
HERE = pathlib.Path(__file__).parent
ROOT = str(HERE.parents[1])


def test_three_dumpers_racing_on_one_pid_take_turns(target: Target,
                                                    tmp_path: pathlib.Path) -> None:
    dumpers = []
    for index in range(3):
        folder = tmp_path / str(index)
        folder.mkdir()
        dumpers.append(subprocess.Popen(
            [sys.executable, str(HERE / "capture_times.py"), str(target.pid), "14", str(folder)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": ROOT}))
    for dumper in dumpers:
        out, err = dumper.communicate(timeout=300)
        assert dumper.returncode == 0 and out.strip() == "DONE", err
    assert len(list(tmp_path.glob("*/*.dmp"))) == 42
    assert target.children() == []
    target.assert_untouched()


def test_a_second_capture_waits_for_the_first_then_fails_clearly(
        target: Target, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    busy = ledger.TargetLock(target.pid)  # as another dumper's helper, mid-capture
    try:
        monkeypatch.setenv("SNAPSHOTDUMP_LOCK_TIMEOUT", "0.5")
        linux_snapshot.HELPERS.close_all()  # idle helpers have the environment of their start
        with pytest.raises(snapshotdump.SnapshotError) as raised:
            snapshotdump.capture(target.pid)
        assert raised.value.errno == 16 and "another snapshotdump" in str(raised.value)
    finally:
        busy.release()
    with snapshotdump.capture(target.pid) as first, snapshotdump.capture(target.pid) as second:
        # Cloned snapshots hold the lock only while they stop and while they reap.
        first.write_dump(tmp_path / "1.dmp")
        second.write_dump(tmp_path / "2.dmp")
    # A frozen one keeps it: waiting for it could deadlock, so a second one fails now.
    with snapshotdump.capture(target.pid, CaptureFlags.DEFAULT & ~CaptureFlags.VA_CLONE), \
            pytest.raises(snapshotdump.SnapshotPermissionError, match="already traced"):
        snapshotdump.capture(target.pid)
    assert target.children() == []
    target.assert_untouched()


def test_a_helper_killed_during_the_write_leaves_no_zombie(target: Target,
                                                           tmp_path: pathlib.Path) -> None:
    for _ in range(3):
        with snapshotdump.capture(target.pid) as snap:
            helper = snap._helper.process.pid  # type: ignore[attr-defined]

            def kill_helper(_event: object, pid: int = helper) -> None:
                os.kill(pid, signal.SIGKILL)

            with pytest.raises(OSError):
                snap.write_dump(tmp_path / "k.dmp", MiniDumpType.WITH_FULL_MEMORY,
                                callback=kill_helper, overwrite=True)
        # The dumper saw its helper die and had a fresh one reap the clone's zombie.
        assert target.children() == []
    target.assert_untouched()


def test_a_vfork_parent_defers_the_reap_to_the_next_capture(target: Target,
                                                            tmp_path: pathlib.Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with snapshotdump.capture(target.pid) as snap:
            target.command("v 4")  # a thread in state D for 4 s: the reap cannot stop it
            assert target.line() == "OK"
            snap.write_dump(tmp_path / "v.dmp")
    said = [str(w.message) for w in caught]
    assert any("not reaped yet" in text for text in said), said
    assert target.line(timeout=20) == "VFORKED"
    assert len(target.children()) == 1  # ours, recorded
    with snapshotdump.capture(target.pid) as snap:  # reaps it
        snap.write_dump(tmp_path / "after.dmp")
    assert target.children() == []
    target.assert_untouched()
