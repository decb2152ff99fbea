"""snapshotdump.watch(crash=True) on Windows (under Wine here): the debug-API crash trigger.

The target is tests/wine/crash_target.c.  An access violation nobody handles must give one
dump with the exception stream, and the target must die with the same exit code (the
NTSTATUS) it has without the watch; one its own vectored handler resolves is a
first-chance exception only, and gives no dump.

Under Wine an unhandled exception starts the AeDebug debugger (winedbg), which keeps the
process alive: scripts/wine-tests points AeDebug's Debugger at a program that does not
exist, so Wine's UnhandledExceptionFilter fails to start it and the process dies as it
does on Windows without a debugger.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator

import pytest

import snapshotdump

from ..conftest import require
from .conftest import read_dump

SOURCE = pathlib.Path(__file__).with_name("crash_target.c")
STATUS_ACCESS_VIOLATION = 0xC0000005
CONTEXT_RIP_OFFSET = 0xF8  # x64 CONTEXT.Rip
EXIT_TIMEOUT = 60


def under_wine() -> bool:
    from snapshotdump._windows import libs

    ntdll = libs.ffi().dlopen("ntdll.dll")
    try:
        getattr(ntdll, "wine_get_version")  # noqa: B009 (a symbol only Wine exports)
    except AttributeError:
        return False
    return True


@pytest.fixture(scope="module")
def crash_target(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """crash_target.exe: scripts/wine-tests builds it (SNAPSHOTDUMP_CRASH_TARGET); on
    Windows the test builds it with the mingw-w64 gcc on PATH."""
    built = os.environ.get("SNAPSHOTDUMP_CRASH_TARGET", "")
    if built:
        require(os.path.isfile(built), f"SNAPSHOTDUMP_CRASH_TARGET={built} does not exist")
        return pathlib.Path(built)
    compiler = shutil.which("x86_64-w64-mingw32-gcc") or shutil.which("gcc")
    require(compiler is not None, "no mingw-w64 gcc to build tests/wine/crash_target.c "
            "(scripts/wine-tests builds it and sets SNAPSHOTDUMP_CRASH_TARGET)")
    assert compiler is not None
    binary = tmp_path_factory.mktemp("crash-target") / "crash_target.exe"
    subprocess.run([compiler, "-O1", "-Wall", "-Werror", "-o", str(binary), str(SOURCE)],
                   check=True)
    return binary


@pytest.fixture(scope="module", autouse=True)
def no_just_in_time_debugger() -> None:
    if not under_wine():
        return
    import winreg

    key = r"Software\Microsoft\Windows NT\CurrentVersion\AeDebug"
    with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key) as aedebug:
        debugger = str(winreg.QueryValueEx(aedebug, "Debugger")[0])
    assert "winedbg" not in debugger.lower(), (
        f"AeDebug\\Debugger is {debugger!r}: Wine would start winedbg on the crash and the "
        "target would hang instead of dying; run the suite through scripts/wine-tests")


class Target:
    def __init__(self, binary: pathlib.Path) -> None:
        self.process = subprocess.Popen([str(binary)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        words = self.read()
        assert words[:1] == ["READY"], words
        self.pid = int(words[1])

    def read(self) -> list[str]:
        assert self.process.stdout is not None
        return self.process.stdout.readline().split()

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def exit_code(self) -> int:
        return self.process.wait(timeout=EXIT_TIMEOUT)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def target(crash_target: pathlib.Path) -> Iterator[Target]:
    process = Target(crash_target)
    try:
        yield process
    finally:
        process.close()


def test_unwatched_crash_exits_with_the_ntstatus(target: Target) -> None:
    target.send("crash")
    assert target.read()[:1] == ["CRASHING"]
    assert target.exit_code() == STATUS_ACCESS_VIOLATION


def test_crash_is_dumped_with_the_exception_and_the_target_dies_as_before(
        target: Target, dumps: pathlib.Path) -> None:
    # count=2: a crash happens once, so the watch ends on the target's exit, which it reports.
    with snapshotdump.watch(target.pid, crash=True, count=2, output_dir=str(dumps)) as w:
        w.start()
        target.send("crash")
        words = target.read()
        assert words[:1] == ["CRASHING"], words
        crashing_thread = int(words[1])
        results = list(w)
        assert w.target_exited and w.exit_status == STATUS_ACCESS_VIOLATION
    assert target.exit_code() == STATUS_ACCESS_VIOLATION

    [result] = results
    assert result.trigger == "crash" and result.value == STATUS_ACCESS_VIOLATION
    assert result.path is not None
    path = pathlib.Path(result.path)
    assert path.name.startswith(f"crash_target_{target.pid}_") and path.name.endswith(
        "_crash.dmp")
    assert result.pause_seconds is not None and result.pause_seconds >= 0

    dump = read_dump(path)
    [stream] = dump.exception.exception_records
    record = stream.ExceptionRecord
    assert stream.ThreadId == crashing_thread
    assert record.ExceptionCode_raw == STATUS_ACCESS_VIOLATION
    # An access violation's parameters: 1 = a write, at address 0.
    assert record.NumberParameters == 2 and record.ExceptionInformation == [1, 0]
    assert crashing_thread in {t.ThreadId for t in dump.threads.threads}
    # The thread context in the stream is the one at the fault: it stands on the faulting
    # instruction.
    raw = path.read_bytes()
    location = stream.ThreadContext
    assert location.DataSize >= CONTEXT_RIP_OFFSET + 8
    [rip] = struct.unpack_from("<Q", raw, location.Rva + CONTEXT_RIP_OFFSET)
    assert rip == record.ExceptionAddress != 0


def test_an_exception_the_target_handles_is_not_a_crash(
        target: Target, dumps: pathlib.Path) -> None:
    with snapshotdump.watch(target.pid, crash=True, output_dir=str(dumps)) as w:
        w.start()
        target.send("handled")
        assert target.read() == ["HANDLED", "7"]
        target.send("exit")
        assert target.exit_code() == 0
        assert list(w) == []
        assert w.target_exited and w.exit_status == 0
    assert list(dumps.iterdir()) == []


def test_closing_the_watch_lets_go_of_the_target(target: Target, dumps: pathlib.Path) -> None:
    with snapshotdump.watch(target.pid, crash=True, output_dir=str(dumps)) as w:
        w.start()
    # Detached: the target runs, and a crash now is no longer ours to see.
    target.send("handled")
    assert target.read() == ["HANDLED", "7"]
    target.send("crash")
    assert target.read()[:1] == ["CRASHING"]
    assert target.exit_code() == STATUS_ACCESS_VIOLATION
    assert list(dumps.iterdir()) == []


def test_a_process_already_debugged_is_refused(target: Target, dumps: pathlib.Path) -> None:
    with snapshotdump.watch(target.pid, crash=True, output_dir=str(dumps)) as first:
        first.start()
        second = snapshotdump.watch(target.pid, crash=True, output_dir=str(dumps))
        with pytest.raises(snapshotdump.SnapshotError, match="DebugActiveProcess"):
            second.start()
    target.send("exit")
    assert target.exit_code() == 0


def test_a_polling_dump_while_the_debugger_holds_the_target(
        target: Target, dumps: pathlib.Path) -> None:
    # The debugger thread keeps answering debug events while the watch's own thread dumps.
    with snapshotdump.watch(target.pid, crash=True, memory=0.001, for_seconds=0.2,
                            interval_ms=50, output_dir=str(dumps), live_fallback=True) as w:
        [result] = list(w)
    assert result.trigger == "memory" and result.path is not None
    assert read_dump(pathlib.Path(result.path)).exception is None
    target.send("handled")
    assert target.read() == ["HANDLED", "7"]
    target.send("exit")
    assert target.exit_code() == 0


def test_no_such_process(dumps: pathlib.Path) -> None:
    w = snapshotdump.watch(0x7FFFFFF0, crash=True, output_dir=str(dumps))
    with pytest.raises(snapshotdump.ProcessNotFoundError):
        w.start()


def test_cli_watch_crash(target: Target, dumps: pathlib.Path) -> None:
    cli = subprocess.Popen(
        [sys.executable, "-m", "snapshotdump", "watch", str(target.pid), "--crash", "--json",
         "-o", str(dumps)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert cli.stderr is not None and cli.stdout is not None
        started = cli.stderr.readline()
        assert started.startswith(f"snapshotdump: watching pid {target.pid}: crash"), started
        target.send("crash")
        assert target.read()[:1] == ["CRASHING"]
        line = cli.stdout.readline()
        assert cli.wait(timeout=EXIT_TIMEOUT) == 0, cli.stderr.read()
    finally:
        if cli.poll() is None:
            cli.kill()
        cli.wait()
        for stream in (cli.stdout, cli.stderr):
            if stream is not None:
                stream.close()
    assert target.exit_code() == STATUS_ACCESS_VIOLATION
    report = json.loads(line)
    assert report["trigger"] == "crash" and report["value"] == STATUS_ACCESS_VIOLATION
    assert read_dump(pathlib.Path(report["path"])).exception is not None
