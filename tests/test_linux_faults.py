"""The Linux backend when things go wrong: every way out leaves the target running and untraced."""

from __future__ import annotations

import errno
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

import snapshotdump
from snapshotdump import CaptureFlags, MiniDumpType, errors
from snapshotdump._linux import ptrace

from .support import (
    TARGETS,
    Target,
    lldb,
    obj2yaml,
    package_env,
    parse_with_minidump_package,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux backend")
FREEZE = CaptureFlags.DEFAULT & ~CaptureFlags.VA_CLONE


@pytest.fixture
def target(c_binary: pathlib.Path) -> Iterator[Target]:
    process = Target([str(c_binary)])
    try:
        yield process
    finally:
        process.close()


def test_pid_that_does_not_exist() -> None:
    pid = 2**22 + 12345
    with pytest.raises(ProcessLookupError) as info:
        snapshotdump.capture(pid)
    assert isinstance(info.value, snapshotdump.ProcessNotFoundError)
    assert f"pid {pid}" in str(info.value)


def test_zombie_pid() -> None:
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(f"/proc/{child.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.01)
    try:
        with pytest.raises(snapshotdump.ProcessNotFoundError, match="zombie"):
            snapshotdump.capture(child.pid)
    finally:
        child.wait()


def test_process_already_traced(target: Target) -> None:
    tracer = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from snapshotdump._linux import ptrace; "
         "ptrace.seize(int(sys.argv[1])); print('SEIZED', flush=True); time.sleep(60)",
         str(target.pid)], stdout=subprocess.PIPE, text=True, env=package_env())
    try:
        assert tracer.stdout is not None and tracer.stdout.readline().strip() == "SEIZED"
        with pytest.raises(PermissionError,
                           match=rf"already traced by {tracer.pid} \(python[^)]*\)"):
            snapshotdump.capture(target.pid)
        # The same words when the other tracer wins the race past that first check.
        raced = errors.from_errno(errno.EPERM, "ptrace(PTRACE_SEIZE)", pid=target.pid)
        assert isinstance(raced, PermissionError)
        assert f"already traced by {tracer.pid} (python" in str(raced)
        assert "CAP_SYS_PTRACE" not in str(raced)
    finally:
        tracer.kill()
        tracer.wait()
    target.assert_untouched()


def test_no_privilege_to_trace(tmp_path: pathlib.Path) -> None:
    """A dumper without CAP_SYS_PTRACE (a container without SYS_PTRACE) and a protected target."""
    from .conftest import require_tool

    setpriv = require_tool("setpriv")
    # A non-dumpable process may be traced only with CAP_SYS_PTRACE, even by its own user.
    protected = (
        "import ctypes, os, sys\n"
        "ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0\n"
        "print('READY', os.getpid(), '0x0', 0, flush=True)\n"
        "sys.stdin.read()\n")
    target = Target([sys.executable, "-c", protected])
    script = (
        "import sys, snapshotdump\n"
        "try:\n"
        "    snapshotdump.capture(int(sys.argv[1]))\n"
        "except PermissionError as e:\n"
        "    print(type(e).__name__, isinstance(e, snapshotdump.SnapshotError), e)\n")
    try:
        result = subprocess.run(
            [setpriv, "--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace", sys.executable,
             "-c", script, str(target.pid)], capture_output=True, text=True,
            env=package_env(), check=False, timeout=60)
        status = target.status()
        assert status["TracerPid"] == "0"
        assert target.children() == []
    finally:
        target.close()
    assert result.stdout.startswith("SnapshotPermissionError True"), result.stdout + result.stderr
    assert "ptrace_scope" in result.stdout and "CAP_SYS_PTRACE" in result.stdout


def test_another_users_process_gives_a_permission_error_that_says_why(target: Target) -> None:
    """A non-root user (nobody) against root's process: a PermissionError with the reason."""
    from .conftest import require_tool

    setpriv = require_tool("setpriv")
    script = (
        "import sys, snapshotdump\n"
        "try:\n"
        "    snapshotdump.capture(int(sys.argv[1]))\n"
        "except PermissionError as e:\n"
        "    print(type(e).__name__, isinstance(e, snapshotdump.SnapshotError), e)\n")
    # CAP_DAC_READ_SEARCH only lets nobody reach this Python and the package (under /root, or
    # a 0700 temporary folder); it has no say in ptrace access, which the test is about.
    result = subprocess.run(
        [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
         "--inh-caps=-all,+dac_read_search", "--ambient-caps=+dac_read_search",
         sys.executable, "-c", script, str(target.pid)], capture_output=True, text=True,
        env=package_env(), cwd="/", check=False, timeout=60)
    assert result.stdout.startswith("SnapshotPermissionError True"), result.stdout + result.stderr
    assert "belongs to uid 0, not to you (uid 65534)" in result.stdout, result.stdout
    assert "lacks CAP_SYS_PTRACE" in result.stdout
    assert "kernel.yama.ptrace_scope is" in result.stdout or "Yama is not enabled" in result.stdout
    assert "tracer helper failed" not in result.stdout
    target.assert_untouched()


def _a_kernel_thread() -> int:
    for name in sorted(os.listdir("/proc"), key=lambda n: (len(n), n)):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    flags = int(f.read().rsplit(")", 1)[1].split()[6])
            except (OSError, ValueError, IndexError):
                continue
            if flags & 0x00200000:  # PF_KTHREAD
                return int(name)
    pytest.fail("no kernel thread is visible in /proc (a pid namespace?)")


def test_a_kernel_thread_is_refused_for_what_it_is() -> None:
    pid = _a_kernel_thread()
    with pytest.raises(snapshotdump.SnapshotUnsupportedError,
                       match="a kernel thread cannot be dumped") as info:
        snapshotdump.capture(pid)
    assert "root" not in str(info.value)


def test_target_exits_during_a_frozen_dump(target: Target, tmp_path: pathlib.Path) -> None:
    def kill_target(event: snapshotdump.CallbackEvent) -> None:
        if event.type is snapshotdump.CallbackType.MODULE:
            os.kill(target.pid, signal.SIGKILL)

    with snapshotdump.capture(target.pid, FREEZE) as snap, \
            pytest.raises(snapshotdump.TargetExitedError, match="exited"):
        snap.write_dump(tmp_path / "a.dmp", MiniDumpType.WITH_FULL_MEMORY, callback=kill_target)
    assert os.listdir(tmp_path) == []
    target.process.wait(timeout=10)


def test_target_exits_during_a_cloned_dump_which_still_completes(
        target: Target, tmp_path: pathlib.Path) -> None:
    def kill_target(event: snapshotdump.CallbackEvent) -> None:
        if event.type is snapshotdump.CallbackType.MODULE:
            os.kill(target.pid, signal.SIGKILL)

    threads = set(target.task_states())
    with snapshotdump.capture(target.pid) as snap:
        snap.write_dump(tmp_path / "a.dmp", MiniDumpType.WITH_FULL_MEMORY, callback=kill_target)
    target.process.wait(timeout=10)
    # The clone held the memory: the dump is whole, and holds the target as it was.
    obj2yaml(tmp_path / "a.dmp")
    parsed = parse_with_minidump_package(tmp_path / "a.dmp")
    assert {t.ThreadId for t in parsed.threads.threads} == threads
    reader = parsed.get_reader()
    assert reader.read(target.marker_address, len(target.marker)) == target.marker
    assert any(m.name.endswith("/target") for m in parsed.modules.modules)


@pytest.mark.parametrize("mode", ["clone", "freeze"])
def test_sigkill_of_the_dumping_process(target: Target, tmp_path: pathlib.Path,
                                        mode: str) -> None:
    dumper = subprocess.Popen(
        [sys.executable, str(TARGETS / "dump_slowly.py"), str(target.pid),
         str(tmp_path / "a.dmp"), mode], stdout=subprocess.PIPE, text=True,
        env=package_env())
    assert dumper.stdout is not None
    assert dumper.stdout.readline().strip() == "CAPTURED"
    time.sleep(0.3)
    dumper.kill()
    dumper.wait()
    dumper.stdout.close()
    target.assert_untouched()  # waits for the helper to kill and reap the clone
    assert not (tmp_path / "a.dmp").exists()


def test_two_hundred_threads(c_binary: pathlib.Path, tmp_path: pathlib.Path) -> None:
    process = Target([str(c_binary), "200"])
    try:
        count = len(process.task_states())
        assert count == 205
        with snapshotdump.capture(process.pid) as snap:
            assert len(snap.threads()) == count
            result = snap.write_dump(tmp_path / "many.dmp")
        assert result.threads == count
        output = lldb(tmp_path / "many.dmp", "thread list")
        assert output.count("tid = ") == count
        process.assert_untouched()
    finally:
        process.close()


def test_threads_starting_and_exiting_during_capture(tmp_path: pathlib.Path) -> None:
    churn = (
        "import threading, time, os, sys\n"
        "def short(): time.sleep(0.001)\n"
        "def spawn():\n"
        "    while True:\n"
        "        ts = [threading.Thread(target=short) for _ in range(8)]\n"
        "        [t.start() for t in ts]; [t.join() for t in ts]\n"
        "for _ in range(2): threading.Thread(target=spawn, daemon=True).start()\n"
        "print('READY', os.getpid(), '0x0', 0, flush=True)\n"
        "sys.stdin.read()\n")
    process = Target([sys.executable, "-c", churn])
    try:
        for index in range(10):
            with snapshotdump.capture(process.pid) as snap:
                snap.write_dump(tmp_path / f"{index}.dmp")
            obj2yaml(tmp_path / f"{index}.dmp")
        status = process.status()
        assert status["TracerPid"] == "0"
        assert process.children() == []
        assert process.process.poll() is None
    finally:
        process.close()


def test_capture_of_our_own_process(tmp_path: pathlib.Path) -> None:
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, name="self-worker", daemon=True)
    worker.start()
    try:
        with snapshotdump.capture(os.getpid()) as snap:
            threads = snap.threads()
            result = snap.write_dump(tmp_path / "self.dmp")
        assert os.getpid() in {t.thread_id for t in threads}
        assert worker.native_id in {t.thread_id for t in threads}
        assert result.threads == len(threads)
        output = lldb(tmp_path / "self.dmp", "thread list")
        assert output.count("tid = ") == len(threads)
        with open(f"/proc/{os.getpid()}/status") as f:
            assert "TracerPid:\t0" in f.read()
        children = subprocess.run(["ps", "-o", "pid=,stat=,comm=", "--ppid", str(os.getpid())],
                                  capture_output=True, text=True, check=False).stdout
        assert "Z" not in children.split(), children
    finally:
        stop.set()
        worker.join()


def test_bad_arguments_name_what_is_wrong(target: Target, tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="pid -5"):
        snapshotdump.capture(-5)
    with pytest.raises(ValueError, match="flags=0x2000000"):
        snapshotdump.capture(target.pid, 0x2000000)
    with snapshotdump.capture(target.pid) as snap:
        with pytest.raises(ValueError, match="directory"):
            snap.write_dump(tmp_path)
        with pytest.raises(snapshotdump.DestinationNotFoundError, match="does not exist"):
            snap.write_dump(tmp_path / "missing" / "a.dmp")
    with pytest.raises(ValueError, match="closed"):
        snap.write_dump(tmp_path / "a.dmp")
    target.assert_untouched()


def test_linux_structs_match_the_system_headers(tmp_path: pathlib.Path) -> None:
    from .conftest import require_tool

    compiler = require_tool("gcc", "cc")
    fields = {"user_regs_struct": ["r15", "rax", "orig_rax", "rip", "cs", "eflags", "rsp",
                                   "fs_base", "gs"],
              "user_fpregs_struct": ["cwd", "rip", "mxcsr", "st_space", "xmm_space", "padding"]}
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <sys/user.h>",
             "#include <sys/uio.h>", "int main(void) {"]
    for struct, names in fields.items():
        lines.append(f'printf("sizeof {struct} %zu\\n", sizeof(struct {struct}));')
        for name in names:
            lines.append(f'printf("{struct}.{name} %zu\\n", offsetof(struct {struct}, {name}));')
    lines += ['printf("sizeof iovec %zu\\n", sizeof(struct iovec));', "return 0; }"]
    source = tmp_path / "abi.c"
    source.write_text("\n".join(lines))
    subprocess.run([compiler, "-o", str(tmp_path / "abi"), str(source)], check=True)
    printed = subprocess.run([str(tmp_path / "abi")], capture_output=True, text=True,
                             check=True).stdout
    ffi = ptrace.ffi()
    ours = [f"sizeof {s} {ffi.sizeof('struct ' + s)}" for s in fields]
    for struct, names in fields.items():
        ours += [f"{struct}.{n} {ffi.offsetof('struct ' + struct, n)}" for n in names]
    ours.append(f"sizeof iovec {ffi.sizeof('struct iovec')}")
    assert sorted(printed.split("\n")[:-1]) == sorted(ours)
