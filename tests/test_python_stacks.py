"""Python stacks recorded in the dump, for real CPython 3.10 to 3.13 targets (pyenv's)."""

from __future__ import annotations

import glob
import json
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

import snapshotdump
from snapshotdump import CaptureMemory
from snapshotdump._linux import snapshot as linux_snapshot
from snapshotdump.minidump import pystacks
from snapshotdump.minidump.format import StreamType

from .conftest import require
from .stack_support import TARGETS, parked, wait_parked
from .test_cli import console_script

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux targets")

SCRIPT = TARGETS / "py_stacks_target.py"
# Where each marked line is, read from the script itself: "# AT:sleep" -> line number.
AT = {m.group(1): number for number, line in enumerate(SCRIPT.read_text().splitlines(), 1)
      for m in [re.search(r"# AT:(\w+)", line)] if m}
EXPECTED = {  # innermost function -> the marked lines of the frames, innermost first
    "py_sleeps_here": [("py_sleeps_here", AT["sleep"]), ("py_outer_calls", AT["outer"])],
    "py_waits_on_lock": [("py_waits_on_lock", AT["lock"]), ("py_outer_calls", AT["outer"])],
    "py_computes_here": [("py_computes_here", AT["compute"]), ("py_outer_calls", AT["outer"])],
    "py_main_waits": [("py_main_waits", AT["main"])],
}


def _python(version: str) -> str:
    found = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python3")))
    require(bool(found), f"CPython {version} (pyenv) is not installed")
    return found[-1]


def _dump(pid: int, path: pathlib.Path, how: str) -> str | None:
    """One dump of *pid* taken *how*; its python_stacks_skipped."""
    if how == "cli":  # the default NORMAL dump of the command: a stack-only capture
        result = subprocess.run([console_script(), str(pid), "-o", str(path), "--json"],
                                capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stderr
        payload = json.loads(result.stdout)
        assert payload["capture_mode"] == "stacks"
        return payload["python_stacks_skipped"]  # type: ignore[no-any-return]
    memory = CaptureMemory.STACKS if how == "stacks" else CaptureMemory.ALL
    with snapshotdump.capture(pid, memory=memory) as snap:
        dumped = snap.write_dump(path)
    assert snap.performance.capture_mode == ("stacks" if how == "stacks" else "clone")
    return dumped.python_stacks_skipped


def _snapshot(python: str, tmp_path: pathlib.Path,
              how: str = "clone") -> tuple[str | None, pathlib.Path]:
    """A dump taken once every thread has reached its marked function.

    READY comes right after the threads pass a barrier, so a first dump may catch one on
    its way (or waiting for the GIL on the way): dump again until all are on their marked
    lines.  The test then checks every frame of that dump.
    """
    with parked([python, str(SCRIPT)]) as process:
        for attempt in range(20):
            wait_parked(process.pid, 3, main=True)
            path = tmp_path / f"py{attempt}.dmp"
            skipped = _dump(process.pid, path, how)
            with snapshotdump.open_dump(path) as opened:
                arrived = {(t.frames[0].function, t.frames[0].line)
                           for t in opened.python_threads().values() if t.frames}
            if arrived >= {want[0] for want in EXPECTED.values()} \
                    or skipped is not None:
                return skipped, path
            time.sleep(0.1)
    raise AssertionError(f"the threads never all reached their functions: {arrived}")


@pytest.mark.parametrize("how", ["clone", "stacks", "cli"])
@pytest.mark.parametrize("version", ["3.10", "3.11", "3.12", "3.13"])
def test_python_stacks_name_functions_and_lines(version: str, how: str,
                                                tmp_path: pathlib.Path) -> None:
    """From the clone, and from the stopped target during a stack-only capture's stop."""
    skipped, path = _snapshot(_python(version), tmp_path, how)
    assert skipped is None
    with snapshotdump.open_dump(path) as opened:
        raw = opened.stream_data(StreamType.PYTHON_STACKS)
        assert raw is not None
        stacks = pystacks.decode(raw)
        assert stacks.python.startswith(version)
        native_ids = {t.thread_id for t in opened.threads}
        python_threads = opened.python_threads()
        assert set(python_threads) == native_ids  # every thread of the target runs Python
        seen = {}
        for tid, thread in python_threads.items():
            innermost = thread.frames[0].function
            assert innermost in EXPECTED, thread
            want = EXPECTED[innermost]
            assert [(f.function, f.line) for f in thread.frames[:len(want)]] == want
            assert all(f.file == str(SCRIPT) for f in thread.frames[:len(want)])
            seen[innermost] = tid
            assert opened.thread(tid) is not None and opened.thread(tid).python is thread
            assert thread.name == opened.thread(tid).name  # named as in ThreadNames
        assert set(seen) == set(EXPECTED)
        # Every other thread waits in a call that releases the GIL: only the computer may hold it.
        assert stacks.gil_holder in (None, seen["py_computes_here"])
        assert [t.thread_id for t in stacks.threads if t.holds_gil] == (
            [] if stacks.gil_holder is None else [stacks.gil_holder])
        # The native stack of the same thread agrees: it sleeps in the kernel under time.sleep.
        sleeper = opened.thread(seen["py_sleeps_here"])
        assert sleeper is not None
        names = [f.function or "" for f in sleeper.frames]
        assert "time_sleep" in names or "pysleep" in names, names
        assert any("EvalFrame" in n for n in names), names


def test_info_shows_python_stack_before_native(tmp_path: pathlib.Path) -> None:
    _, path = _snapshot(_python("3.12"), tmp_path)
    result = subprocess.run([sys.executable, "-m", "snapshotdump", "info", str(path)],
                            capture_output=True, text=True, check=False,
                            cwd=pathlib.Path(__file__).parent.parent)
    assert result.returncode == 0, result.stderr
    block = result.stdout.split("py_sleeps_here", 1)[1].split("  thread ", 1)[0]
    assert f"py_outer_calls ({SCRIPT}:{AT['outer']})" in block
    assert block.index("native stack:") > block.index("py_outer_calls")
    assert "time_sleep" in block


@pytest.mark.parametrize("how", ["clone", "stacks"])
def test_undecodable_cpython_gets_a_reason_and_no_stream(how: str,
                                                         tmp_path: pathlib.Path) -> None:
    # 3.9 has _PyRuntime but no layout here: refused, never guessed.
    skipped, path = _snapshot(_python("3.9"), tmp_path, how)
    assert skipped is not None
    assert "3.9 has no known layout" in skipped
    assert "\n" not in skipped
    with snapshotdump.open_dump(path) as opened:
        assert opened.stream_data(StreamType.PYTHON_STACKS) is None
        assert opened.python_threads() == {}


@pytest.mark.parametrize("how", ["clone", "stacks"])
def test_non_python_target_has_no_reason(how: str, tmp_path: pathlib.Path) -> None:
    from .stack_support import build_c

    binary = build_c(tmp_path, "fp")
    with parked([str(binary)]) as process:
        assert _dump(process.pid, tmp_path / "c.dmp", how) is None
    with snapshotdump.open_dump(tmp_path / "c.dmp") as opened:
        assert opened.stream_data(StreamType.PYTHON_STACKS) is None


DEPTH = 150
# Threads parked under DEPTH Python frames each: a walk of hundreds of reads.
DEEP_TARGET = f"""
import sys, threading, time
def down(n, then):
    return down(n - 1, then) if n else then()
def py_sleeps_deep():
    while True:
        time.sleep(3600)
def py_computes_deep():
    total = 0
    while True:
        total += 1
for inner in (py_sleeps_deep, py_sleeps_deep, py_computes_deep):
    threading.Thread(target=down, args=({DEPTH}, inner), daemon=True).start()
def py_main_waits():
    print("READY", flush=True)
    sys.stdin.read()
py_main_waits()
"""


def _dies_at(pid: int, point: int, flag: pathlib.Path, dest: pathlib.Path) -> bool:
    """A stack-only capture whose helper SIGKILLs itself at counted step *point*; whether
    it got that far (ptrace requests and, for a Python target, the walk's reads count)."""
    linux_snapshot.HELPERS.close_all()
    os.environ["SNAPSHOTDUMP_TEST_DIE_AT"] = f"{point}:{flag}"
    try:
        with snapshotdump.capture(pid, memory=CaptureMemory.STACKS) as snap:
            snap.write_dump(dest, overwrite=True)
    except OSError:
        pass  # the helper's death
    finally:
        del os.environ["SNAPSHOTDUMP_TEST_DIE_AT"]
        linux_snapshot.HELPERS.close_all()
    died = flag.exists()
    flag.unlink(missing_ok=True)
    return died


def _cpu_ticks(pid: int) -> int:
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            total += int(f.read().rsplit(")", 1)[1].split()[11])  # utime
    return total


def _assert_runs_untraced(pid: int) -> None:
    """Untraced, no thread stopped, no child (no clone), and its computing thread runs on."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/status") as f:
            tracer = next(line.split()[1] for line in f if line.startswith("TracerPid:"))
        states = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        if tracer == "0" and not {"t", "T"} & set(states):
            break
        time.sleep(0.05)
    assert tracer == "0" and not {"t", "T"} & set(states), (tracer, states)
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        assert f.read().split() == []
    before = _cpu_ticks(pid)
    while _cpu_ticks(pid) <= before and time.monotonic() < deadline + 10:
        time.sleep(0.05)
    assert _cpu_ticks(pid) > before, "the target's computing thread does not run"


def test_a_helper_killed_mid_walk_leaves_the_python_target_running(
        tmp_path: pathlib.Path) -> None:
    """The walk reads the target while it is stopped: a helper SIGKILLed inside it (at one
    of its reads, counted by the SNAPSHOTDUMP_TEST_DIE_AT hook) is detached by the kernel,
    and the target runs on, untraced, as it was."""
    script = tmp_path / "deep.py"
    script.write_text(DEEP_TARGET)
    with parked([_python("3.12"), str(script)]) as process:
        wait_parked(process.pid, 3, main=True)
        # The steps of one capture: its stop's ptrace requests (about 6 a thread, so some
        # 25 here), the walk's reads (one a frame: hundreds; 650 steps in all, measured),
        # the resume's requests (a few).  Doubling finds a *reached* step between half the
        # total and the total; half and three quarters of it are then both past the stop's
        # requests and before the resume's: inside the walk.
        reached = 32
        while _dies_at(process.pid, reached * 2, tmp_path / "died", tmp_path / "k.dmp"):
            reached *= 2
            _assert_runs_untraced(process.pid)
            assert reached < 1 << 16, "a capture that never ends"
        assert reached >= 256, f"{reached}: too few steps for a walk of the Python frames"
        for point in (reached // 2, reached * 3 // 4):
            assert _dies_at(process.pid, point, tmp_path / "died", tmp_path / "k.dmp")
            _assert_runs_untraced(process.pid)
        # Still the same Python: a capture afterwards finds its threads where they were.
        path = tmp_path / "after.dmp"
        assert _dump(process.pid, path, "stacks") is None
        with snapshotdump.open_dump(path) as opened:
            threads = opened.python_threads().values()
            assert sorted(t.frames[0].function for t in threads) == [
                "py_computes_deep", "py_main_waits", "py_sleeps_deep", "py_sleeps_deep"]
            assert sum(len(t.frames) for t in threads) > 3 * DEPTH


def test_stream_format_round_trip_and_rejects_others() -> None:
    stacks = pystacks.PythonStacks("3.12.1", 7, [pystacks.PythonThread(
        7, "w", True, [pystacks.PythonFrame("f", "/x.py", 3)])])
    assert pystacks.decode(pystacks.encode(stacks)) == stacks
    for bad in (b"", b"[]", b'{"format":"other","version":1}',
                b'{"format":"snapshotdump.python-stacks","version":2,"threads":[]}',
                b'{"format":"snapshotdump.python-stacks","version":1,"python":"3","threads":'
                b'[{"thread_id":"x","frames":[]}]}', b"\xff\xfe"):
        with pytest.raises(snapshotdump.DumpFormatError):
            pystacks.decode(bad)


def test_generated_offsets_are_what_the_headers_say() -> None:
    for version in ("3.10", "3.11", "3.12", "3.13"):
        _python(version)
    script = pathlib.Path(__file__).parent.parent / "scripts" / "gen_cpython_offsets.py"
    # The module the package ships (the suite runs against the installed wheel).
    from snapshotdump._linux.dump import cpython_offsets

    result = subprocess.run([sys.executable, str(script), f"--check={cpython_offsets.__file__}"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
