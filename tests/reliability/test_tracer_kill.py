"""A tracer killed at any instant leaves the target exactly as it was (issue 10, item 2).

The helper is made to SIGKILL itself at its Nth ptrace request or memory write (the
SNAPSHOTDUMP_TEST_DIE_AT hook in ptrace.py), for every N over a capture and release, and
at points spread over a full dump copied by the clone: inside every step of every
injected call.  The dumper, and the dumper and helper together, are killed too.  After
each: the target runs, untraced, no thread stopped, no zombie, no helper left, its
blocked read() restarted without EINTR, its vector registers intact, its signal mask
back (a signal sent afterwards is handled), and its vDSO image the kernel's.
"""

from __future__ import annotations

import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import pytest

import snapshotdump
from snapshotdump import CaptureMemory, MiniDumpType
from snapshotdump._linux import snapshot as linux_snapshot

from ..conftest import require_tool
from ..support import Target
from .test_signals import wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux ptrace")
HERE = pathlib.Path(__file__).parent
ROOT = str(HERE.parents[1])
CAPTURE_AND_RELEASE_STEPS = 70  # ptrace requests + memory writes of one capture (about 67)


def _vdso_image(pid: int) -> bytes:
    """The vDSO's ELF image (its tail padding may hold our trampolines, by design)."""
    with open(f"/proc/{pid}/maps") as f:
        line = next(line for line in f if line.rstrip().endswith("[vdso]"))
    start = int(line.split("-")[0], 16)
    with open(f"/proc/{pid}/mem", "rb") as mem:
        mem.seek(start)
        header = mem.read(64)
        end = int.from_bytes(header[0x28:0x30], "little") + int.from_bytes(
            header[0x3A:0x3C], "little") * int.from_bytes(header[0x3C:0x3E], "little")
        mem.seek(start)
        return mem.read(end)


def _helpers_alive() -> list[int]:
    alive = []
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/children") as f:
            for child in f.read().split():
                try:
                    with open(f"/proc/{child}/cmdline", "rb") as cmd:
                        if b"snapshotdump._linux.tracer" in cmd.read():
                            alive.append(int(child))
                except FileNotFoundError:
                    continue
    return alive


def _assert_exactly_as_before(target: Target, expected_usr1: int) -> None:
    target.assert_untouched()  # running, untraced, nothing stopped, no child at all
    os.kill(target.pid, signal.SIGUSR1)  # the signal mask is the target's own again
    now = wait_for(target, "usr1", expected_usr1)
    assert now["usr1"] == expected_usr1 and now["eintr"] == 0 and now["badfp"] == 0, now
    assert _vdso_image(target.pid) == _vdso_image(os.getpid())


def _capture_dying_at(target: Target, point: int, flag: pathlib.Path, dest: pathlib.Path,
                      dump_type: MiniDumpType,
                      memory: CaptureMemory = CaptureMemory.ALL) -> bool:
    """One capture whose helper dies at step *point*; True if it did die."""
    linux_snapshot.HELPERS.close_all()
    os.environ["SNAPSHOTDUMP_TEST_DIE_AT"] = f"{point}:{flag}"
    try:
        with snapshotdump.capture(target.pid, memory=memory) as snap:
            snap.write_dump(dest, dump_type, overwrite=True)
    except OSError:
        pass  # the helper's death: a SnapshotError, or a broken channel mid-stream
    finally:
        del os.environ["SNAPSHOTDUMP_TEST_DIE_AT"]
        linux_snapshot.HELPERS.close_all()
    died = flag.exists()
    flag.unlink(missing_ok=True)
    return died


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_the_helper_killed_at_every_step_of_a_capture(target: Target,
                                                      tmp_path: pathlib.Path) -> None:
    deaths = 0
    for point in range(1, CAPTURE_AND_RELEASE_STEPS + 1):
        deaths += _capture_dying_at(target, point, tmp_path / "died", tmp_path / "k.dmp",
                                    MiniDumpType.NORMAL)
        _assert_exactly_as_before(target, point)
        assert _helpers_alive() == []
    assert deaths >= 60, deaths


def _fds(pid: int) -> list[tuple[str, str]]:
    folder = f"/proc/{pid}/fd"
    return sorted((fd, os.readlink(f"{folder}/{fd}")) for fd in os.listdir(folder))


def _vm_flags(pid: int) -> dict[int, set[str]]:
    """Each mapping's VmFlags (smaps), by start address."""
    flags: dict[int, set[str]] = {}
    start = 0
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                start = int(head.split("-")[0], 16)
            elif head == "VmFlags:":
                flags[start] = set(line.split()[1:])
    return flags


def _dont_fork(pid: int) -> list[int]:
    return sorted(start for start, marks in _vm_flags(pid).items() if "dc" in marks)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize(("memory", "dump_type", "mode", "fewest_deaths"), [
    # Steps measured here: 18 (three threads), 56 (arm, then the final stop), 113.
    (CaptureMemory.STACKS, MiniDumpType.NORMAL, "stacks", 15),
    (CaptureMemory.PRECOPY, MiniDumpType.WITH_FULL_MEMORY, "precopy", 45),
    (CaptureMemory.ALL, MiniDumpType.NORMAL, "clone", 90),
], ids=["stacks", "precopy-and-final-stop", "clone-around-dontfork"])
def test_the_helper_killed_at_every_step_of_each_capture_mode(
        signal_binary: pathlib.Path, tmp_path: pathlib.Path, memory: CaptureMemory,
        dump_type: MiniDumpType, mode: str, fewest_deaths: int) -> None:
    """Every step, until a capture (and, for pre-copy, its full dump's final stop) runs to
    the end: besides the checks above, the target keeps its fds (no userfaultfd left in
    it), no write tracking stays registered, and its MADV_DONTFORK mark stays."""
    target = Target([str(signal_binary)], env={"SIGNAL_DONTFORK": "1"})
    try:
        fds = _fds(target.pid)
        dont_fork = _dont_fork(target.pid)
        assert len(dont_fork) == 2 and target.marker_address in dont_fork
        with snapshotdump.capture(target.pid, memory=memory) as snap:
            assert snap.performance.capture_mode == mode, snap.performance
            snap.write_dump(tmp_path / "first.dmp", dump_type)
        deaths = 0
        for point in range(1, 1000):
            died = _capture_dying_at(target, point, tmp_path / "died", tmp_path / "m.dmp",
                                     dump_type, memory)
            _assert_exactly_as_before(target, point)
            assert _helpers_alive() == []
            assert _fds(target.pid) == fds
            assert _dont_fork(target.pid) == dont_fork, point
            assert not [s for s, marks in _vm_flags(target.pid).items() if "uw" in marks], point
            if not died:
                break  # the helper made fewer requests than *point*: every step was covered
            deaths += 1
        assert deaths >= fewest_deaths, deaths
    finally:
        target.close()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_the_helper_killed_while_the_clone_copies_a_full_dump(target: Target,
                                                              tmp_path: pathlib.Path) -> None:
    deaths = 0
    for index, point in enumerate(range(CAPTURE_AND_RELEASE_STEPS, 200, 6)):
        deaths += _capture_dying_at(target, point, tmp_path / "died", tmp_path / "k.dmp",
                                    MiniDumpType.WITH_FULL_MEMORY)
        _assert_exactly_as_before(target, index + 1)
        assert _helpers_alive() == []
    assert deaths >= 10, deaths


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("dont_fork", [False, True], ids=["", "around-dontfork-ranges"])
def test_the_helper_killed_at_every_step_while_injecting_into_live_vector_state(
        tmp_path: pathlib.Path, dont_fork: bool) -> None:
    # One thread, so every call is injected into the thread whose AVX registers hold live
    # values: a death mid-call leaves rt_sigreturn to give them back, upper halves included.
    with open("/proc/cpuinfo") as f:
        if " avx" not in f.read():
            pytest.skip("this CPU has no AVX")
    compiler = require_tool("gcc", "cc")
    binary = tmp_path / "vector_target"
    subprocess.run([compiler, "-O2", "-mavx", "-o", str(binary),
                    str(HERE.parent / "targets" / "vector_target.c")], check=True)
    # With DONTFORK ranges, deaths inside the undo chain (frames without FPU state but the
    # first) must give the vector state back too.
    target = Target([str(binary)], env={"VECTOR_DONTFORK": "1"} if dont_fork else None)
    try:
        steps = 100 if dont_fork else 40
        deaths = sum(_capture_dying_at(target, point, tmp_path / "died", tmp_path / "v.dmp",
                                       MiniDumpType.NORMAL) for point in range(1, steps + 1))
        assert deaths >= steps * 3 // 4, deaths
        assert target.children() == []
        assert target.status()["TracerPid"] == "0"
        time.sleep(0.3)  # a few rounds of checks after the last capture
        os.kill(target.pid, signal.SIGUSR1)
        words = target.line().split()
        assert words[0] == "BAD" and words[1] == "0" and int(words[3]) > 0, words
    finally:
        target.close()


def _dumper(target: Target, folder: pathlib.Path) -> subprocess.Popen[str]:
    loop = pathlib.Path(__file__).parent / "dumper_loop.py"
    process = subprocess.Popen([sys.executable, str(loop), str(target.pid), str(folder)],
                               stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": ROOT})
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "capture"
    return process


def _wait_gone(pid: int, timeout: float = 30.0) -> None:
    """Wait until *pid* has exited (an orphan: its exit is collected by whoever adopted it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] in ("Z", "X"):
                    return
        except FileNotFoundError:
            return
        time.sleep(0.02)
    raise AssertionError(f"the helper {pid} of a killed dumper did not exit in {timeout} s")


def _helper_of(dumper: subprocess.Popen[str]) -> int | None:
    with open(f"/proc/{dumper.pid}/task/{dumper.pid}/children") as f:
        children = f.read().split()
    return int(children[0]) if children else None


@pytest.mark.parametrize("victims", ["dumper", "dumper and helper"])
def test_the_dumper_killed_at_random_instants(target: Target, tmp_path: pathlib.Path,
                                              victims: str) -> None:
    chance = random.Random(10)
    for index in range(12):
        dumper = _dumper(target, tmp_path)
        time.sleep(chance.uniform(0.0, 0.25))
        helper = _helper_of(dumper)
        dumper.kill()
        if helper is not None and victims != "dumper":
            os.kill(helper, signal.SIGKILL)  # a cgroup kill: both at once
        dumper.wait()
        assert dumper.stdout is not None
        dumper.stdout.close()
        if helper is not None and victims == "dumper":
            # Its helper puts everything back in steps (detach, then a stop to reap the
            # clone's zombie), and exits once done: judge the target after that.
            _wait_gone(helper)
        if helper is not None and victims != "dumper":
            # Nobody is left to reap the clone's zombie: the next capture of the target does.
            with snapshotdump.capture(target.pid) as snap:
                snap.write_dump(tmp_path / "after.dmp", overwrite=True)
        _assert_exactly_as_before(target, index + 1)
        for leftover in tmp_path.glob("*.dmp"):
            leftover.unlink()
