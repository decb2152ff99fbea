"""A seccomp filter never kills the target because of a call we inject (issue 10, item 3).

Each thread's Seccomp field is read after every thread is stopped (no thread can then
install a filter), before each injection, the reap included.  The target's filter kills
the process on clone() and wait4() (tests/targets/seccomp_target.c).
"""

from __future__ import annotations

import pathlib
import random
import sys
import warnings

import pytest

import snapshotdump
from snapshotdump import CaptureFlags

from ..support import Target

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux seccomp")


def _finish(target: Target) -> int:
    """Close the target's stdin: it exits 0, unless a filter killed it (SIGSYS) already."""
    assert target.process.stdin is not None
    target.process.stdin.close()
    code = target.process.wait(timeout=30)
    target.close()
    return code


def test_a_filter_racing_two_hundred_immediate_captures_never_kills(
        seccomp_binary: pathlib.Path) -> None:
    chance = random.Random(3)
    outcomes = {"cloned": 0, "frozen": 0, "reap deferred": 0}
    for _ in range(200):
        target = Target([str(seccomp_binary), "race", str(chance.randrange(0, 3000))])
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with snapshotdump.capture(target.pid, live_fallback=True) as snap:
                    outcomes["frozen" if snap.is_live else "cloned"] += 1
                    if snap.is_live:
                        assert "seccomp" in (snap.fallback_reason or "")
            for warning in caught:
                assert "seccomp" in str(warning.message), warning
                outcomes["reap deferred"] += 1
        finally:
            code = _finish(target)
        assert code == 0, f"the target died ({code}) after {outcomes}"
    assert outcomes["cloned"] + outcomes["frozen"] == 200
    print(outcomes)


def test_a_filter_installed_while_a_snapshot_is_open_defers_the_reap(
        seccomp_binary: pathlib.Path, tmp_path: pathlib.Path) -> None:
    target = Target([str(seccomp_binary), "later"])
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with snapshotdump.capture(target.pid) as snap:
                assert not snap.is_live
                target.command("s")
                assert target.line() == "OK"
                snap.write_dump(tmp_path / "open.dmp")
        said = [str(w.message) for w in caught]
        assert any("not reaped" in text and "seccomp" in text for text in said), said
        # Our clone's zombie stays (only the target can reap it); no call is risked.
        assert len(target.children()) == 1, target.children()
        with pytest.raises(snapshotdump.SnapshotUnsupportedError, match="seccomp"):
            snapshotdump.capture(target.pid, CaptureFlags.DEFAULT)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with snapshotdump.capture(target.pid, live_fallback=True) as snap:
                assert snap.is_live and "seccomp" in (snap.fallback_reason or "")
                snap.write_dump(tmp_path / "frozen.dmp")
    finally:
        code = _finish(target)
    assert code == 0, code
