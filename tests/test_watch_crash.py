"""The crash and signal triggers: the target's own child-of-the-test wait status, unchanged.

Every crash is run twice, once alone and once watched, under the same RLIMIT_CORE in
its own folder: the parent (this test) must see the same raw wait status both times,
core-dump bit included.  The dumps are read back by obj2yaml and lldb.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

import snapshotdump

from .support import Target, lldb, obj2yaml, parse_with_minidump_package, running
from .watch_support import wait_watching, watch_binary, watch_cli

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux ptrace")
__all__ = ["watch_binary"]  # a fixture, imported for pytest


class Child:
    """The target as this test's own child, so that the test reads its raw wait status."""

    def __init__(self, binary: pathlib.Path, cwd: pathlib.Path, core_limit: int) -> None:
        def limit_core() -> None:
            resource.setrlimit(resource.RLIMIT_CORE, (core_limit, core_limit))

        self.process = subprocess.Popen([str(binary)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, bufsize=1, cwd=cwd,
                                        preexec_fn=limit_core)
        assert self.process.stdout is not None
        self.pid = int(self.process.stdout.readline().split()[1])

    def command(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def wait_status(self) -> int:
        """The raw status waitpid gives the parent (Popen would keep only the signal)."""
        _, status = os.waitpid(self.pid, 0)
        self.process.returncode = 0
        return status

    def output(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.read()

    def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            self.process.wait(timeout=30)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def child_factory(watch_binary: pathlib.Path) -> Iterator[list[Child]]:
    made: list[Child] = []
    yield made
    for child in made:
        child.close()


def start(made: list[Child], binary: pathlib.Path, cwd: pathlib.Path, core: int) -> Child:
    cwd.mkdir(exist_ok=True)
    child = Child(binary, cwd, core)
    made.append(child)
    return child


def exception_stream(path: str) -> dict[str, int]:
    text = obj2yaml(path)
    block = text.split("Type:            Exception\n", 1)[1].split("  - Type:", 1)[0]
    fields = {}
    for key, name in (("Thread ID", "thread"), ("Exception Code", "code"),
                      ("Exception Flags", "flags"), ("Exception Address", "address")):
        match = re.search(rf"{key}:\s+(0x[0-9A-Fa-f]+|\d+)", block)
        fields[name] = int(match.group(1), 0) if match else 0  # obj2yaml omits zeros
    return fields


@pytest.mark.parametrize("core", [0, resource.RLIM_INFINITY], ids=["no-core", "core"])
def test_crash_dumps_then_dies_exactly_as_alone(watch_binary: pathlib.Path,
                                                tmp_path: pathlib.Path,
                                                child_factory: list[Child], core: int) -> None:
    alone = start(child_factory, watch_binary, tmp_path / "alone", core)
    alone.command("crash")
    expected = alone.wait_status()
    assert os.WIFSIGNALED(expected) and os.WTERMSIG(expected) == signal.SIGSEGV
    assert os.WCOREDUMP(expected) == (core != 0)

    watched = start(child_factory, watch_binary, tmp_path / "watched", core)
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    cli = watch_cli(str(watched.pid), "--crash", "-o", str(dumps), "--json")
    wait_watching(cli)
    watched.command("crash")
    status = watched.wait_status()
    out, err = cli.communicate(timeout=120)
    assert status == expected, (hex(status), hex(expected))  # WTERMSIG, core bit and all
    assert watched.output() == ""  # it never ran past the fault
    assert cli.returncode == 0, err
    [line] = out.splitlines()
    result = json.loads(line)
    assert result["trigger"] == "crash" and result["value"] == signal.SIGSEGV
    assert result["pause_seconds"] > 0
    stream = exception_stream(result["path"])
    # Breakpad's convention: the signal as the code, si_code as the flags, si_addr.
    assert stream == {"thread": watched.pid, "code": signal.SIGSEGV, "flags": 1,  # SEGV_MAPERR
                      "address": 0}
    record = parse_with_minidump_package(result["path"]).exception.exception_records[0]
    assert record.ThreadId == watched.pid
    assert record.ExceptionRecord.ExceptionCode.name == "EXCEPTION_SIGSEGV"
    assert record.ExceptionRecord.ExceptionFlags == 1
    report = lldb(result["path"], "thread list", "register read rip")
    assert re.search(rf"\* thread #1: tid = {watched.pid},.*watch_target\.c:\d+.*"
                     r"stop reason = signal SIGSEGV", report), report
    crash_line = next(n for n, text in enumerate(
        (pathlib.Path(__file__).parent / "targets" / "watch_target.c").read_text().splitlines(),
        1) if "crash\\n" in text) + 1
    assert f"watch_target.c:{crash_line}" in report.split("register read rip", 1)[1]
    assert os.path.exists(tmp_path / "watched" / "core") == (core != 0)


def test_a_sigsegv_the_target_handles_is_no_crash(watch_binary: pathlib.Path,
                                                  tmp_path: pathlib.Path,
                                                  child_factory: list[Child]) -> None:
    child = start(child_factory, watch_binary, tmp_path / "t", 0)
    cli = watch_cli(str(child.pid), "--crash", "-o", str(tmp_path))
    wait_watching(cli)
    child.command("handled-segv")
    child.command("usr1")  # it runs on after its own handler recovered
    child.command("exit")
    assert child.wait_status() == 0
    assert child.output() == "RECOVERED\nUSR1 0\n"
    _out, err = cli.communicate(timeout=60)
    assert cli.returncode == 1 and f"pid {child.pid} exited" in err and "0 dump" in err
    assert [p.name for p in tmp_path.iterdir()] == ["t"]


def test_sa_resethand_first_sigsegv_caught_second_one_crashes(
        watch_binary: pathlib.Path, tmp_path: pathlib.Path, child_factory: list[Child]) -> None:
    child = start(child_factory, watch_binary, tmp_path / "t", 0)
    cli = watch_cli(str(child.pid), "--crash", "-n", "5", "-o", str(tmp_path), "--json")
    wait_watching(cli)
    child.command("reset-segv")
    status = child.wait_status()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSEGV
    assert child.output() == "RESETHAND\n"  # the handler ran once, then SIG_DFL killed it
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, err
    [line] = out.splitlines()  # one dump: the caught SIGSEGV was no crash
    assert json.loads(line)["trigger"] == "crash"


def test_signal_is_dumped_then_delivered_exactly_once(watch_binary: pathlib.Path,
                                                      tmp_path: pathlib.Path) -> None:
    with running([str(watch_binary)]) as target:
        cli = watch_cli(str(target.pid), "--signal", "USR1,SIGHUP", "-n", "2", "--for", "1",
                        "-o", str(tmp_path), "--json")
        wait_watching(cli)
        assert _count_usr1(target) == 0
        sent = time.time()
        os.kill(target.pid, signal.SIGUSR1)
        first = json.loads(_stdout_line(cli))
        assert sent <= first["triggered_at"] <= time.time()
        assert _count_usr1(target) == 1
        os.kill(target.pid, signal.SIGUSR1)  # within --for of the first dump: not dumped
        assert _count_usr1(target) == 2
        time.sleep(max(0.0, first["triggered_at"] + 1.1 - time.time()))
        sent = time.time()
        os.kill(target.pid, signal.SIGUSR1)
        out, err = cli.communicate(timeout=60)
        assert cli.returncode == 0, err
        second = json.loads(out)
        assert sent <= second["triggered_at"] <= time.time()
        assert _count_usr1(target) == 3  # each one delivered once, dumped or not
        for result in (first, second):
            assert result["trigger"] == "signal" and result["value"] == signal.SIGUSR1
            stream = exception_stream(result["path"])
            assert stream["code"] == signal.SIGUSR1 and stream["thread"] in (
                target.pid, *map(int, os.listdir(f"/proc/{target.pid}/task")))
            assert stream["flags"] == 0  # SI_USER: sent by kill()
        # `running` checks that the target is untraced, unstopped and ticking.


def test_a_traced_target_is_refused_with_a_clear_error(watch_binary: pathlib.Path,
                                                       tmp_path: pathlib.Path) -> None:
    with running([str(watch_binary)]) as target:
        first = watch_cli(str(target.pid), "--crash", "-o", str(tmp_path))
        wait_watching(first)
        with pytest.raises(snapshotdump.SnapshotPermissionError, match="already traced"), \
                snapshotdump.watch(target.pid, crash=True, output_dir=str(tmp_path)) as w:
            w.start()
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=60) == 130


def _count_usr1(target: Target) -> int:
    target.command("usr1")
    words = target.line(timeout=30).split()
    assert words[0] == "USR1", words
    return int(words[1])


def _stdout_line(cli: subprocess.Popen[str]) -> str:
    assert cli.stdout is not None
    return cli.stdout.readline()


def test_abort_in_a_second_thread_names_that_thread(watch_binary: pathlib.Path,
                                                   tmp_path: pathlib.Path,
                                                   child_factory: list[Child]) -> None:
    alone = start(child_factory, watch_binary, tmp_path / "alone", 0)
    alone.command("thread-abort")
    expected = alone.wait_status()
    assert os.WIFSIGNALED(expected) and os.WTERMSIG(expected) == signal.SIGABRT
    child = start(child_factory, watch_binary, tmp_path / "t", 0)
    cli = watch_cli(str(child.pid), "--crash", "-o", str(tmp_path), "--json")
    wait_watching(cli)
    child.command("thread-abort")
    assert child.wait_status() == expected
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, err
    result = json.loads(out)
    assert result["trigger"] == "crash" and result["value"] == signal.SIGABRT
    stream = exception_stream(result["path"])
    assert stream["code"] == signal.SIGABRT and stream["flags"] == 0xFFFFFFFA  # SI_TKILL
    assert stream["thread"] != child.pid
    report = lldb(result["path"], "thread list")
    assert re.search(rf"\* thread #\d+: tid = {stream['thread']},.*stop reason = signal SIGABRT",
                     report), report


def test_job_control_and_polling_dumps_while_watching_for_crashes(
        watch_binary: pathlib.Path, tmp_path: pathlib.Path,
        child_factory: list[Child]) -> None:
    child = start(child_factory, watch_binary, tmp_path / "t", 0)
    cli = watch_cli(str(child.pid), "--crash", "--threads", "5", "--for", "0.2",
                    "--interval", "100", "-n", "2", "-o", str(tmp_path), "--json")
    wait_watching(cli)
    tasks = f"/proc/{child.pid}/task"

    def states() -> set[str]:
        return {pathlib.Path(f"{tasks}/{t}/stat").read_text().rsplit(")", 1)[1].split()[0]
                for t in os.listdir(tasks)}

    assert not states() & {"t", "T"}  # watched, yet nothing stopped
    os.kill(child.pid, signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while states() != {"t"} and time.monotonic() < deadline:
        time.sleep(0.02)
    assert states() == {"t"}  # stopped as SIGSTOP asked ('t': it has a tracer)
    os.kill(child.pid, signal.SIGCONT)
    child.command("threads 4")  # a dump by the polling trigger, taken by the crash watcher
    assert child.process.stdout is not None and child.process.stdout.readline() == "THREADS 6\n"
    assert cli.stdout is not None
    polled = json.loads(cli.stdout.readline())
    assert polled["trigger"] == "threads" and polled["threads"] == 6
    child.command("crash")
    status = child.wait_status()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSEGV
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, err
    assert json.loads(out)["trigger"] == "crash"
    obj2yaml(polled["path"])


def test_a_stopped_target_stays_stopped_through_a_dump(watch_binary: pathlib.Path,
                                                       tmp_path: pathlib.Path,
                                                       child_factory: list[Child]) -> None:
    child = start(child_factory, watch_binary, tmp_path / "t", 0)
    tasks = f"/proc/{child.pid}/task"

    def states() -> set[str]:
        return {pathlib.Path(f"{tasks}/{t}/stat").read_text().rsplit(")", 1)[1].split()[0]
                for t in os.listdir(tasks)}

    cli = watch_cli(str(child.pid), "--crash", "--cpu-below", "50", "--for", "1",
                    "--interval", "100", "-o", str(tmp_path), "--json")
    wait_watching(cli)
    os.kill(child.pid, signal.SIGSTOP)  # job control, while the watcher traces it
    deadline = time.monotonic() + 10
    while states() != {"t"} and time.monotonic() < deadline:
        time.sleep(0.02)
    assert states() == {"t"} and cli.poll() is None  # stopped before the dump comes
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, err
    assert json.loads(out)["trigger"] == "cpu-below"
    assert states() == {"T"}  # let go, and still stopped as SIGSTOP asked
    os.kill(child.pid, signal.SIGCONT)
    child.command("usr1")
    assert child.process.stdout is not None and child.process.stdout.readline() == "USR1 0\n"
    assert pathlib.Path(f"/proc/{child.pid}/status").read_text().count("TracerPid:\t0") == 1


def test_compressed_crash_dump_keeps_its_exception_stream(watch_binary: pathlib.Path,
                                                          tmp_path: pathlib.Path,
                                                          child_factory: list[Child]) -> None:
    import lzma

    child = start(child_factory, watch_binary, tmp_path / "t", 0)
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    cli = watch_cli(str(child.pid), "--crash", "--compress", "xz", "-o", str(dumps), "--json")
    wait_watching(cli)
    child.command("crash")
    status = child.wait_status()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSEGV
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, err
    packed = pathlib.Path(json.loads(out)["path"])
    assert packed.name.endswith("_crash.dmp.xz") and [p.name for p in dumps.iterdir()] == [
        packed.name]  # no temporary file left beside it
    plain = tmp_path / "crash.dmp"
    plain.write_bytes(lzma.decompress(packed.read_bytes()))
    stream = exception_stream(str(plain))
    assert stream["code"] == signal.SIGSEGV and stream["thread"] == child.pid
