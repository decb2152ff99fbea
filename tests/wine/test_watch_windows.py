"""snapshotdump.watch's polling triggers on Windows (under Wine here): the same engine, the
Windows sampler (GetProcessTimes, working set, handle count, Toolhelp thread count)."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

import snapshotdump

CHILD = pathlib.Path(__file__).resolve().parents[1] / "targets" / "watch_child_windows.py"


class WatchChild:
    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, str(CHILD)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        words = self.process.stdout.readline().split()
        assert words[:1] == ["READY"], words
        self.pid = int(words[1])

    def ask(self, command: str, answer: str) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == answer


@pytest.fixture
def watch_child() -> Iterator[WatchChild]:
    child = WatchChild()
    try:
        yield child
        assert child.process.poll() is None, "the target died"
    finally:
        child.process.kill()
        child.process.wait()
        for stream in (child.process.stdin, child.process.stdout):
            if stream is not None:
                stream.close()


def under_wine() -> bool:
    import ctypes

    ntdll = ctypes.WinDLL("ntdll")  # type: ignore[attr-defined,unused-ignore]
    return hasattr(ntdll, "wine_get_version")


def test_sampler_reads_the_counters(watch_child: WatchChild) -> None:
    from snapshotdump._windows.watch_sampler import ProcessSampler, find_by_name

    sampler = ProcessSampler(watch_child.pid)
    first = sampler.sample()
    watch_child.ask("threads 6", "THREADS")
    second = sampler.sample()
    assert second["threads"] >= first["threads"] + 6
    assert second["memory"] > 1 and "cpu" in second
    assert watch_child.pid in find_by_name("python.exe")


def test_sampler_measures_cpu(watch_child: WatchChild) -> None:
    from snapshotdump._windows.watch_sampler import ProcessSampler

    if under_wine():
        pytest.skip("Wine 8 answers GetProcessTimes with zero times for another process")
    sampler = ProcessSampler(watch_child.pid)
    sampler.sample()
    watch_child.ask("burn 1", "BURNED")
    assert sampler.sample()["cpu"] > 20


def test_sampler_counts_handles(watch_child: WatchChild) -> None:
    from snapshotdump._windows.watch_sampler import ProcessSampler

    if under_wine():
        pytest.skip("Wine 8 answers GetProcessHandleCount with 0 for another process")
    sampler = ProcessSampler(watch_child.pid)
    first = sampler.sample()
    watch_child.ask("handles 30", "HANDLES")
    assert sampler.sample()["fds"] >= first["fds"] + 30


def test_threads_trigger_writes_a_dump(watch_child: WatchChild, dumps: pathlib.Path) -> None:
    from snapshotdump._windows.watch_sampler import ProcessSampler

    threads = ProcessSampler(watch_child.pid).sample()["threads"]
    with snapshotdump.watch(watch_child.pid, threads=int(threads) + 4, for_seconds=0.3,
                            interval_ms=100, output_dir=str(dumps), live_fallback=True) as w:
        w.start()
        time.sleep(0.5)
        added = time.time()
        watch_child.ask("threads 5", "THREADS")
        [result] = list(w)
    assert result.trigger == "threads" and result.value >= threads + 4
    assert result.triggered_at >= added + 0.3 - 0.05
    assert result.path is not None and pathlib.Path(result.path).read_bytes()[:4] == b"MDMP"
    assert pathlib.Path(result.path).name.startswith(f"python_{watch_child.pid}_")
