"""Python stacks recorded in the dump, for real CPython 3.10 to 3.13 targets (pyenv's)."""

from __future__ import annotations

import glob
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

import snapshotdump
from snapshotdump.minidump import pystacks
from snapshotdump.minidump.format import StreamType

from .conftest import require
from .stack_support import TARGETS, parked, wait_parked

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


def _snapshot(python: str, tmp_path: pathlib.Path) -> tuple[snapshotdump.DumpResult,
                                                              pathlib.Path]:
    """A dump taken once every thread has reached its marked function.

    READY comes right after the threads pass a barrier, so a first dump may catch one on
    its way (or waiting for the GIL on the way): dump again until all are on their marked
    lines.  The test then checks every frame of that dump.
    """
    with parked([python, str(SCRIPT)]) as process:
        for attempt in range(20):
            wait_parked(process.pid, 3, main=True)
            path = tmp_path / f"py{attempt}.dmp"
            with snapshotdump.capture(process.pid) as snap:
                result = snap.write_dump(path)
            with snapshotdump.open_dump(path) as opened:
                arrived = {(t.frames[0].function, t.frames[0].line)
                           for t in opened.python_threads().values() if t.frames}
            if arrived >= {want[0] for want in EXPECTED.values()} \
                    or result.python_stacks_skipped is not None:
                return result, path
            time.sleep(0.1)
    raise AssertionError(f"the threads never all reached their functions: {arrived}")


@pytest.mark.parametrize("version", ["3.10", "3.11", "3.12", "3.13"])
def test_python_stacks_name_functions_and_lines(version: str, tmp_path: pathlib.Path) -> None:
    result, path = _snapshot(_python(version), tmp_path)
    assert result.python_stacks_skipped is None
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


def test_undecodable_cpython_gets_a_reason_and_no_stream(tmp_path: pathlib.Path) -> None:
    # 3.9 has _PyRuntime but no layout here: refused, never guessed.
    result, path = _snapshot(_python("3.9"), tmp_path)
    assert result.python_stacks_skipped is not None
    assert "3.9 has no known layout" in result.python_stacks_skipped
    assert "\n" not in result.python_stacks_skipped
    with snapshotdump.open_dump(path) as opened:
        assert opened.stream_data(StreamType.PYTHON_STACKS) is None
        assert opened.python_threads() == {}


def test_non_python_target_has_no_reason(tmp_path: pathlib.Path) -> None:
    from .stack_support import build_c

    binary = build_c(tmp_path, "fp")
    with parked([str(binary)]) as process, snapshotdump.capture(process.pid) as snap:
        result = snap.write_dump(tmp_path / "c.dmp")
    assert result.python_stacks_skipped is None


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
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
