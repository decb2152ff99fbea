"""No signal is lost, duplicated, reordered or stripped of its siginfo by a capture.

Issue 10, item 1: a stopped target's pending signals, queued real-time signals, and
floods during captures.  The target counts what it receives (tests/targets/signal_target.c).
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

import snapshotdump
from snapshotdump import CaptureFlags

from ..support import Target

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux signals")
FREEZE = CaptureFlags.DEFAULT & ~CaptureFlags.VA_CLONE
SIGRTMIN = signal.SIGRTMIN


@pytest.fixture
def counter(signal_binary: pathlib.Path) -> Iterator[Target]:
    process = Target([str(signal_binary)])
    try:
        yield process
    finally:
        if process.process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
        process.close()


def counts(target: Target) -> dict[str, int]:
    target.command("c")
    words = target.line().split()
    assert words[0] == "COUNTS", words
    return dict(zip(("usr1", "term", "rt", "eintr", "badfp"), map(int, words[1:]), strict=True))


def rt_log(target: Target) -> list[int]:
    target.command("l")
    words = target.line(timeout=60).split()
    assert words[0] == "RTLOG", words[:2]
    return [int(w) for w in words[2:]]


def send(binary: pathlib.Path, pid: int, sig: str, count: int) -> int:
    out = subprocess.run([str(binary), "send", str(pid), sig, str(count)], capture_output=True,
                         text=True, check=True, timeout=60).stdout.split()
    assert out[0] == "SENT", out
    return int(out[1])


def wait_for(target: Target, key: str, value: int, seconds: float = 20.0) -> dict[str, int]:
    deadline = time.monotonic() + seconds
    while True:
        now = counts(target)
        if now[key] >= value or time.monotonic() > deadline:
            return now
        time.sleep(0.02)


def stopped(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while _state(pid) != "T" and time.monotonic() < deadline:
        time.sleep(0.005)
    assert _state(pid) == "T"


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


@pytest.mark.parametrize("flags", [CaptureFlags.DEFAULT, FREEZE], ids=["clone", "freeze"])
def test_a_stopped_targets_pending_signals_survive_a_capture(
        counter: Target, signal_binary: pathlib.Path, tmp_path: pathlib.Path,
        flags: CaptureFlags) -> None:
    stopped(counter.pid)
    assert send(signal_binary, counter.pid, str(int(signal.SIGUSR1)), 1) == 1
    assert send(signal_binary, counter.pid, "rt", 2) == 2
    assert send(signal_binary, counter.pid, str(int(signal.SIGTERM)), 1) == 1
    with snapshotdump.capture(counter.pid, flags) as snap:
        snap.write_dump(tmp_path / "stopped.dmp")
    time.sleep(0.1)
    assert _state(counter.pid) == "T", "a stopped target must stay stopped after a capture"
    os.kill(counter.pid, signal.SIGCONT)
    now = wait_for(counter, "term", 1)
    assert (now["usr1"], now["term"], now["rt"], now["eintr"]) == (1, 1, 2, 0), now
    assert rt_log(counter) == [0, 1]  # in order, each with its own siginfo
    counter.assert_untouched()


def test_a_hundred_queued_real_time_signals_all_arrive_in_order(
        counter: Target, signal_binary: pathlib.Path, tmp_path: pathlib.Path) -> None:
    stopped(counter.pid)
    assert send(signal_binary, counter.pid, "rt", 100) == 100
    for index in range(3):
        with snapshotdump.capture(counter.pid, FREEZE if index == 1 else CaptureFlags.DEFAULT) \
                as snap:
            snap.write_dump(tmp_path / "queued.dmp", overwrite=True)
    os.kill(counter.pid, signal.SIGCONT)
    now = wait_for(counter, "rt", 100)
    assert now["rt"] == 100 and now["eintr"] == 0, now
    assert rt_log(counter) == list(range(100))
    counter.assert_untouched()


def test_a_flood_of_signals_during_fifty_captures_loses_none(
        counter: Target, signal_binary: pathlib.Path, tmp_path: pathlib.Path) -> None:
    # A real-time signal every ~0.5 ms, and SIGUSR1 (which may merge while pending, but
    # must arrive at least once after the last one sent) while the target is captured.
    flood = subprocess.Popen([str(signal_binary), "send", str(counter.pid), "rt", "0"],
                             stdout=subprocess.PIPE, text=True)
    try:
        for index in range(50):
            with snapshotdump.capture(counter.pid) as snap:
                if index % 10 == 0:
                    snap.write_dump(tmp_path / "flood.dmp", overwrite=True)
    finally:
        flood.send_signal(signal.SIGTERM)
        out, _ = flood.communicate(timeout=30)
    sent = int(out.split()[1])
    assert sent > 50
    now = wait_for(counter, "rt", sent)
    assert now["rt"] == sent, f"{sent - now['rt']} of {sent} real-time signals lost"
    assert rt_log(counter) == list(range(sent))
    assert now["eintr"] == 0 and now["badfp"] == 0, now
    counter.assert_untouched()
