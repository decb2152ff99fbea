"""Helpers for the stack tests: parked targets, their dumps, and lldb's backtraces to compare."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import re
import subprocess
from collections.abc import Iterator

import snapshotdump

from .conftest import require_tool

TARGETS = pathlib.Path(__file__).parent / "targets"
LLDB_ENV = {**os.environ, "PYTHONPATH": "/usr/lib/llvm-14/lib/python3.11/dist-packages"}
# How the unwinder's fallbacks are reached: no unwind tables for the target's own code.
NO_CFI = ["-fno-asynchronous-unwind-tables", "-fno-unwind-tables"]
C_VARIANTS = {
    "fp": ["-fno-omit-frame-pointer"],
    "nofp": ["-fomit-frame-pointer"],
    "fp-nocfi": ["-fno-omit-frame-pointer", *NO_CFI],
    "nofp-nocfi": ["-fomit-frame-pointer", *NO_CFI],
}


def build_c(out: pathlib.Path, variant: str) -> pathlib.Path:
    compiler = require_tool("gcc", "cc")
    binary = out / f"stacks-{variant}"
    subprocess.run([compiler, "-O2", "-g", "-pthread", *C_VARIANTS[variant], "-o", str(binary),
                    str(TARGETS / "stacks_target.c")], check=True)
    return binary


@contextlib.contextmanager
def parked(argv: list[str], env: dict[str, str] | None = None,
           ready: str = "READY") -> Iterator[subprocess.Popen[str]]:
    """A target that prints a READY line once its threads are parked; always killed."""
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env=None if env is None else {**os.environ, **env})
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith(ready), f"{argv[0]} did not start: {line!r}"
        yield process
    finally:
        process.kill()
        process.wait(timeout=30)
        for stream in (process.stdin, process.stdout):
            if stream:
                stream.close()


def wait_parked(pid: int, count: int, timeout: float = 10.0, main: bool = False) -> None:
    """Until *count* threads of *pid* (and its main thread, if *main*) sleep in the kernel."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = {}
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/stat") as f:
                states[int(tid)] = f.read().rsplit(")", 1)[1].split()[0]
        if list(states.values()).count("S") >= count and (not main or states.get(pid) == "S"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{pid}: fewer than {count} threads parked after {timeout} s")


def dump(pid: int, path: pathlib.Path,
         dump_type: snapshotdump.MiniDumpType = snapshotdump.MiniDumpType.NORMAL) -> pathlib.Path:
    with snapshotdump.capture(pid) as snap:
        snap.write_dump(path, dump_type)
    return path


@dataclasses.dataclass(frozen=True)
class LldbFrame:
    pc: int
    module: str
    function: str | None  # None for lldb's "___lldb_unnamed_symbol" names


_THREAD = re.compile(r"thread #(\d+): tid = (\d+)")
_FRAME = re.compile(r"frame #\d+: (0x[0-9a-f]+) ([^`\s]+)(?:`(.*))?$")


def lldb_backtraces(dump_path: pathlib.Path, executable: pathlib.Path
                    ) -> dict[int, list[LldbFrame]]:
    """lldb's ``thread backtrace all`` by thread id, with the executable loaded."""
    tool = require_tool("lldb", "lldb-14")
    result = subprocess.run([tool, "-b", "-c", str(dump_path), str(executable),
                             "-o", "thread list", "-o", "thread backtrace all"],
                            capture_output=True, text=True, env=LLDB_ENV, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    tids: dict[int, int] = {}
    stacks: dict[int, list[LldbFrame]] = {}
    current: list[LldbFrame] | None = None
    for line in result.stdout.splitlines():
        match = _THREAD.search(line)
        if match:
            tids[int(match.group(1))] = int(match.group(2))
            continue
        header = re.match(r"\s*\*?\s*thread #(\d+)\s*$", line)
        if header:
            current = stacks.setdefault(tids[int(header.group(1))], [])
            continue
        match = _FRAME.search(line)
        if match and current is not None:
            current.append(LldbFrame(int(match.group(1), 16), match.group(2),
                                     _lldb_function(match.group(3))))
    return stacks


def _lldb_function(text: str | None) -> str | None:
    if not text:
        return None
    name = re.split(r"\(| at | \+ ", text, maxsplit=1)[0].strip()
    name = _rust_escapes(name.split("@@", 1)[0].split("@", 1)[0])
    return None if name.startswith("___lldb_unnamed_symbol") else name


_RUST_ESCAPES = {"$LT$": "<", "$GT$": ">", "$RF$": "&", "$BP$": "*", "$C$": ",", "$SP$": "@"}


def _rust_escapes(name: str) -> str:
    """lldb 14 leaves a legacy Rust name's $u7b$-style escapes in; c++filt decodes them."""
    for escape, plain in _RUST_ESCAPES.items():
        name = name.replace(escape, plain)
    return re.sub(r"\$u([0-9a-f]{2})\$", lambda m: chr(int(m.group(1), 16)), name)


def physical_lldb_frames(ours: list[int], theirs: list[LldbFrame]) -> list[LldbFrame | None]:
    """For each of our frame pcs, lldb's outermost frame of the inline group at that pc.

    lldb lists inlined calls as extra frames: the group's first frame has the real pc and
    its last frame names the function that holds the code (what a symbol table names).
    """
    starts = []
    at = 0
    for pc in ours:
        while at < len(theirs) and theirs[at].pc != pc:
            at += 1
        starts.append(at if at < len(theirs) else None)
        if at < len(theirs):
            at += 1
    result: list[LldbFrame | None] = []
    for index, start in enumerate(starts):
        if start is None:
            result.append(None)
            continue
        following = [s for s in starts[index + 1:] if s is not None]
        end = following[0] if following else start + 1
        result.append(theirs[end - 1])
    return result


def symbol_aliases(path: str, build_id: bytes | None) -> dict[int, set[str]]:
    """Every function name of an ELF file (and its debug file) by address, from nm."""
    tool = require_tool("nm")
    files = [path]
    if build_id:
        debug = f"/usr/lib/debug/.build-id/{build_id[:1].hex()}/{build_id[1:].hex()}.debug"
        if os.path.exists(debug):
            files.append(debug)
    names: dict[int, set[str]] = {}
    for file in files:
        for flag in ([], ["-D"]):
            result = subprocess.run([tool, *flag, "--defined-only", file], capture_output=True,
                                    text=True, check=False)
            for line in result.stdout.splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[1] in "tTiWw":
                    names.setdefault(int(parts[0], 16), set()).add(
                        parts[2].split("@", 1)[0])
    return names
