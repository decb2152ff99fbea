"""snapshotdump.watch and `snapshotdump watch`: the polling triggers on real targets.

Each target is driven into its condition on command, and each test checks the dumps
written (count, trigger, the moment they came), reads them back with obj2yaml, and
checks that the target ran on untraced and unstopped.
"""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import snapshotdump
from snapshotdump import TriggeredDump

from .support import Target, obj2yaml, running
from .watch_support import ROOT, wait_watching, watch_binary, watch_cli

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux targets")
__all__ = ["watch_binary"]  # a fixture, imported for pytest


@pytest.fixture
def target(watch_binary: pathlib.Path) -> Iterator[Target]:
    with running([str(watch_binary)]) as process:
        yield process


class Background:
    """Iterate a Watch in a thread, noting when each dump arrived."""

    def __init__(self, watch: snapshotdump.Watch) -> None:
        self.watch = watch
        self.dumps: list[tuple[float, TriggeredDump]] = []
        self.error: BaseException | None = None
        watch.start()
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for result in self.watch:
                self.dumps.append((time.monotonic(), result))
        except BaseException as exc:  # handed to the test
            self.error = exc

    def join(self, timeout: float = 60.0) -> list[tuple[float, TriggeredDump]]:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the watch never finished"
        if self.error is not None:
            raise self.error
        return self.dumps


def check_dump(result: TriggeredDump, target: Target, trigger: str) -> None:
    assert result.trigger == trigger and result.pid == target.pid
    assert result.path is not None
    path = pathlib.Path(result.path)
    name = rf"wtarget\d+_{target.pid}_\d{{8}}_\d{{6}}_{trigger}(-\d+)?\.dmp"
    assert re.fullmatch(name, path.name), path.name
    assert path.stat().st_mode & 0o777 == 0o600 and path.stat().st_size == result.size
    assert result.pause_seconds is not None and 0 < result.pause_seconds < 5
    text = obj2yaml(path)
    assert "ThreadList" in text and "ModuleList" in text


def answer(target: Target, command: str, word: str) -> int:
    target.command(command)
    while True:
        words = target.line(timeout=60).split()
        if words and words[0] == word:
            return int(words[1]) if len(words) > 1 else 0


def test_cpu_fires_after_the_burn_has_held(target: Target, tmp_path: pathlib.Path) -> None:
    # 10%, not 90%: on a loaded 2-core machine a burning thread may get a fraction of a core.
    watch = snapshotdump.watch(target.pid, cpu=10, for_seconds=1.0, interval_ms=200,
                               output_dir=str(tmp_path))
    background = Background(watch)
    time.sleep(1.5)  # idle and watched: nothing fires
    assert background.dumps == [] and list(tmp_path.iterdir()) == []
    burn_started, burn_started_wall = time.monotonic(), time.time()
    target.command("burn 10")
    [(when, result)] = background.join()
    # CPU is a rate over an interval, so the hold may start up to one interval early.
    assert result.triggered_at >= burn_started_wall + 1.0 - 0.2
    assert when < burn_started + 10 + 2, "the dump came after the burn was over"
    assert result.value >= 10
    check_dump(result, target, "cpu")
    assert target.line(timeout=30) == "BURNED"


def test_memory_fires_once_rss_has_grown(target: Target, tmp_path: pathlib.Path) -> None:
    rss = int(target.status()["VmRSS"].split()[0]) / 1024
    background = Background(snapshotdump.watch(
        target.pid, memory=rss + 48, for_seconds=0.5, interval_ms=100, output_dir=str(tmp_path)))
    time.sleep(0.8)
    assert background.dumps == []
    grown_at = time.monotonic()
    grown = answer(target, "grow 64", "GREW") / 1024
    [(when, result)] = background.join()
    assert when >= grown_at + 0.5
    assert rss + 48 <= result.value <= grown + 1
    check_dump(result, target, "memory")


def test_threads_fire_on_their_count(target: Target, tmp_path: pathlib.Path) -> None:
    background = Background(snapshotdump.watch(
        target.pid, threads=7, for_seconds=0.3, interval_ms=100, output_dir=str(tmp_path)))
    time.sleep(0.6)
    assert background.dumps == []
    threads_at = time.monotonic()
    assert answer(target, "threads 5", "THREADS") == 7
    [(when, result)] = background.join()
    assert when >= threads_at + 0.3 and result.value == 7 and result.threads == 7
    check_dump(result, target, "threads")
    assert "Threads:\t7" in pathlib.Path(f"/proc/{target.pid}/status").read_text()


def test_fds_fire_on_their_count(target: Target, tmp_path: pathlib.Path) -> None:
    fds = len(os.listdir(f"/proc/{target.pid}/fd"))
    background = Background(snapshotdump.watch(
        target.pid, fds=fds + 20, for_seconds=0.3, interval_ms=100, output_dir=str(tmp_path)))
    time.sleep(0.6)
    assert background.dumps == []
    fds_at = time.monotonic()
    assert answer(target, "fds 25", "FDS") == 25
    [(when, result)] = background.join()
    assert when >= fds_at + 0.3 and result.value == fds + 25
    check_dump(result, target, "fds")


def test_below_thresholds_and_count(target: Target, tmp_path: pathlib.Path) -> None:
    rss = int(target.status()["VmRSS"].split()[0]) / 1024
    background = Background(snapshotdump.watch(
        target.pid, cpu_below=50, memory_below=rss + 200, count=3, for_seconds=0.4,
        interval_ms=100, output_dir=str(tmp_path)))
    dumps = background.join()
    assert [r.trigger for _, r in dumps] == ["cpu-below"] * 3  # the first condition named
    fired = [r.triggered_at for _, r in dumps]
    gaps = [b - a for a, b in itertools.pairwise(fired)]
    assert all(gap >= 0.4 for gap in gaps), gaps
    assert dumps[0][0] >= background.started + 0.4
    assert len({r.path for _, r in dumps}) == 3 and len(list(tmp_path.iterdir())) == 3
    for _, result in dumps:
        assert result.value < 50
        check_dump(result, target, "cpu-below")


def test_no_trigger_writes_count_dumps_apart(target: Target, tmp_path: pathlib.Path) -> None:
    background = Background(snapshotdump.watch(target.pid, count=2, for_seconds=0.5,
                                               output_dir=str(tmp_path), compress="gzip"))
    (_, first), (_, second) = background.join()
    assert second.triggered_at - first.triggered_at >= 0.5
    for result in (first, second):
        assert result.trigger == "time" and result.path is not None
        assert result.path.endswith("_time.dmp.gz") or result.path.endswith("_time-1.dmp.gz")
        import gzip

        assert gzip.decompress(pathlib.Path(result.path).read_bytes())[:4] == b"MDMP"


def test_cli_json_lines_and_exit_status(target: Target, tmp_path: pathlib.Path) -> None:
    cli = watch_cli(str(target.pid), "--threads", "4", "--for", "0.2", "--interval", "100",
                    "-o", str(tmp_path), "--json")
    wait_watching(cli)
    assert answer(target, "threads 2", "THREADS") == 4
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, err
    [line] = out.splitlines()
    payload = json.loads(line)
    assert payload["trigger"] == "threads" and payload["value"] == 4
    assert payload["pause_seconds"] > 0 and os.path.exists(payload["path"])
    obj2yaml(payload["path"])


def test_cli_target_exit_without_a_dump_is_status_1(watch_binary: pathlib.Path,
                                                   tmp_path: pathlib.Path) -> None:
    process = Target([str(watch_binary)])
    try:
        cli = watch_cli(str(process.pid), "--threads", "1000", "--interval", "100",
                        "-o", str(tmp_path))
        wait_watching(cli)
        process.command("exit")
        assert process.process.wait(timeout=30) == 0
        _out, err = cli.communicate(timeout=60)
        assert cli.returncode == 1 and f"pid {process.pid} exited" in err and "0 dump" in err
        assert list(tmp_path.iterdir()) == []
    finally:
        process.close()


def test_name_waits_and_refuses_ambiguity(watch_binary: pathlib.Path,
                                          tmp_path: pathlib.Path) -> None:
    cli = watch_cli("--name", watch_binary.name, "-o", str(tmp_path), "--json")
    time.sleep(0.5)  # it waits: nothing by that name runs yet
    assert cli.poll() is None
    with running([str(watch_binary)]) as process:
        out, err = cli.communicate(timeout=60)
        assert cli.returncode == 0, err
        assert json.loads(out)["pid"] == process.pid
        with running([str(watch_binary)]) as other:
            pids = rf"pids {min(process.pid, other.pid)}, {max(process.pid, other.pid)}"
            with pytest.raises(ValueError, match=pids), \
                    snapshotdump.watch(name=watch_binary.name, output_dir=str(tmp_path)) as w:
                w.start()


def test_ctrl_c_leaves_no_file_and_the_target_untouched(target: Target,
                                                       tmp_path: pathlib.Path) -> None:
    cli = watch_cli(str(target.pid), "--crash", "--signal", "USR2", "--cpu", "1000",
                    "--interval", "50", "-o", str(tmp_path))
    wait_watching(cli)
    assert target.status()["TracerPid"] != "0"  # the crash/signal watcher holds it
    cli.send_signal(signal.SIGINT)
    _out, err = cli.communicate(timeout=60)
    assert cli.returncode == 130 and "interrupted" in err
    assert list(tmp_path.iterdir()) == []
    # `running` then checks: untraced, no thread stopped, no child, the ticker ticking.


@pytest.mark.parametrize("call, message", [
    (lambda: snapshotdump.watch(), "either a pid or name"),
    (lambda: snapshotdump.watch(1, name="x"), "either a pid or name"),
    (lambda: snapshotdump.watch(1, signals=["NOPE"]), "unknown signal 'NOPE'"),
    (lambda: snapshotdump.watch(1, signals=["KILL"]), "cannot be watched"),
    (lambda: snapshotdump.watch(1, count=0), "count=0"),
    (lambda: snapshotdump.watch(1, cpu=-1), "cpu=-1"),
    (lambda: snapshotdump.watch(1, output_dir="/nonexistent/x"), "create it first"),
    (lambda: snapshotdump.watch(1, compress="zip"), "compress='zip'"),
])
def test_bad_arguments_name_the_problem(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_cli_usage_errors_exit_2() -> None:
    result = subprocess.run([sys.executable, "-m", "snapshotdump", "watch", "--cpu", "5"],
                            capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 2 and "give a PID or --name NAME" in result.stderr


def test_killed_watcher_lets_go_of_the_target(target: Target, tmp_path: pathlib.Path) -> None:
    cli = watch_cli(str(target.pid), "--crash", "--signal", "USR1", "-o", str(tmp_path))
    wait_watching(cli)
    assert target.status()["TracerPid"] != "0"
    cli.kill()  # SIGKILL: no chance to clean up; its crash watcher sees its pipe close
    cli.communicate(timeout=60)
    os.kill(target.pid, signal.SIGUSR1)
    assert answer(target, "usr1", "USR1") == 1  # delivered, by the watcher or after it left
    for left in tmp_path.iterdir():  # a dump the watcher took before it noticed is whole
        assert left.suffix == ".dmp", left
        obj2yaml(left)
    # `running` checks that the target ends untraced, unstopped and ticking.
