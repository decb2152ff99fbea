"""Real targets and independent readers for the Linux tests."""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from .conftest import require, require_tool

TARGETS = pathlib.Path(__file__).parent / "targets"
LLDB_ENV = {**os.environ, "PYTHONPATH": "/usr/lib/llvm-14/lib/python3.11/dist-packages"}


class Target:
    """A running target process; it is always killed at the end, never left stopped."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, bufsize=1,
                                        env=None if env is None else {**os.environ, **env})
        assert self.process.stdout is not None
        ready = self.process.stdout.readline().split()
        assert ready and ready[0] == "READY", ready
        self.pid = int(ready[1])
        self.marker_address = int(ready[2], 16)
        self.marker = b"SNAPSHOTDUMP-MARKER-0123456789abcdef"

    def command(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def line(self, timeout: float = 10.0) -> str:
        assert self.process.stdout is not None
        import selectors

        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise AssertionError("the target did not answer")
        return self.process.stdout.readline().strip()

    def ticks(self) -> tuple[int, int]:
        self.command("t")
        words = self.line().split()
        assert words[0] == "TICKS", words
        return int(words[1]), int(words[2])

    def reset_ticker(self) -> None:
        """Forget the ticker's longest gap so far."""
        self.command("r")
        assert self.line() == "OK"

    def status(self) -> dict[str, str]:
        fields = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        return fields

    def task_states(self) -> dict[int, str]:
        states = {}
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            try:
                with open(f"/proc/{self.pid}/task/{tid}/stat") as f:
                    states[int(tid)] = f.read().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                continue  # a thread that exited meanwhile (the cond waiter does)
        return states

    def children(self) -> list[str]:
        """Every child of the target, zombies included (ps --ppid)."""
        out = subprocess.run(["ps", "-o", "pid=,stat=", "--ppid", str(self.pid)],
                             capture_output=True, text=True, check=False).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def _released(self) -> bool:
        stopped = [s for s in self.task_states().values() if s in ("t", "T")]
        return self.status()["TracerPid"] == "0" and not stopped and not self.children()

    def assert_untouched(self) -> None:
        """Running, untraced, no stopped thread, no child (no clone, no zombie).

        After a dumper is killed its helper needs a moment to notice: allow 10 s.
        """
        deadline = time.monotonic() + 10
        while not self._released() and time.monotonic() < deadline:
            time.sleep(0.05)
        status = self.status()
        assert status["TracerPid"] == "0", status["TracerPid"]
        states = self.task_states()
        assert not [s for s in states.values() if s in ("t", "T")], states
        assert self.children() == []
        # Running: the ticker advances.  On a loaded machine it may not get a CPU within any
        # fixed sleep, so wait for the next tick (a stopped ticker still fails, after 10 s).
        before, _ = self.ticks()
        deadline = time.monotonic() + 10
        after = before
        while after <= before and time.monotonic() < deadline:
            time.sleep(0.05)
            after, _ = self.ticks()
        assert after > before, "the ticker stopped"

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        # A bounded wait: a target its tracer never let go of must fail the test, not hang it.
        self.process.wait(timeout=30)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str] | None = None) -> Iterator[Target]:
    """A target for the length of a test: checked untouched at the end, always killed."""
    process = Target(argv, env)
    try:
        yield process
        process.assert_untouched()
    finally:
        process.close()


def package_env(**extra: str) -> dict[str, str]:
    """The environment for a Python child that must import the snapshotdump the tests import.

    Installed (scripts/test), that is the venv's site-packages, on the path anyway; in a
    developer's checkout, the checkout.  Never the child's working folder.
    """
    import site

    import snapshotdump

    root = os.path.dirname(os.path.dirname(os.path.abspath(snapshotdump.__file__ or "")))
    if root in site.getsitepackages():
        return {**os.environ, **extra}
    return {**os.environ, "PYTHONPATH": root, **extra}


def python_target_argv() -> list[str]:
    return [sys.executable, str(TARGETS / "target.py")]


def obj2yaml(path: str | os.PathLike[str]) -> str:
    tool = require_tool("obj2yaml", "/usr/lib/llvm-14/bin/obj2yaml")
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"obj2yaml rejected {path}: {result.stderr[:2000]}"
    return result.stdout


def lldb(path: str | os.PathLike[str], *commands: str) -> str:
    tool = require_tool("lldb", "lldb-14")
    argv = [tool, "-b", "-c", str(path)]
    for command in commands:
        argv += ["-o", command]
    result = subprocess.run(argv, capture_output=True, text=True, env=LLDB_ENV, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "error:" not in result.stdout.split("\n", 2)[1], result.stdout[:2000]
    return result.stdout


def lldb_threads(output: str) -> dict[int, dict[str, int]]:
    """tid -> {'rip':..., 'rsp':...} from `thread select N; thread info; register read rip rsp`."""
    threads: dict[int, dict[str, int]] = {}
    current = None
    for line in output.splitlines():
        match = re.match(r"thread #\d+: tid = (\d+)", line)  # `thread info`, not `thread list`
        if match:
            current = int(match.group(1))
            threads.setdefault(current, {})
        register = re.match(r"\s+(rip|rsp) = 0x([0-9a-f]+)", line)
        if register and current is not None:
            threads[current][register.group(1)] = int(register.group(2), 16)
    return threads


def parse_with_minidump_package(path: str | os.PathLike[str]) -> Any:
    try:
        from minidump.minidumpfile import MinidumpFile
    except ImportError:
        require(False, "the PyPI package 'minidump' is not installed")
        raise
    import logging

    logging.getLogger().setLevel(logging.CRITICAL)  # it logs that Linux dumps have no PEB
    return MinidumpFile.parse(str(path))


def elf_build_id(path: str) -> str:
    readelf = shutil.which("readelf")
    require(readelf is not None, "readelf (binutils) is not installed")
    out = subprocess.run([str(readelf), "-n", path], capture_output=True, text=True,
                         check=True).stdout
    match = re.search(r"Build ID: ([0-9a-f]+)", out)
    assert match, f"{path} has no build id"
    return match.group(1)
