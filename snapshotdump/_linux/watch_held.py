"""A snapshot of a process whose threads the crash/signal watcher already holds stopped.

The normal capture seizes the target itself, which cannot happen while the watcher is
its tracer; here the watcher reads the held threads' registers and the process files,
and the dump is written from the stopped process (no clone: the target is about to get
its signal, and for a crash, to die).
"""

from __future__ import annotations

import dataclasses
import os
import time

from .. import errors
from ..flags import CaptureFlags
from . import arch as arch_module
from . import procfs, ptrace
from .capture_data import CaptureData, ThreadState
from .snapshot import LinuxSnapshot


@dataclasses.dataclass(frozen=True)
class SignalInfo:
    """The parts of a siginfo_t the exception stream records (Breakpad's Linux convention)."""

    signo: int
    code: int
    address: int


def siginfo(tid: int) -> SignalInfo:
    """The siginfo of the signal *tid* is stopped for (in signal-delivery-stop)."""
    raw = ptrace.siginfo(tid)
    return SignalInfo(signo=int.from_bytes(raw[0:4], "little", signed=True),
                      code=int.from_bytes(raw[8:12], "little", signed=True),
                      address=int.from_bytes(raw[16:24], "little"))


class HeldSnapshot(LinuxSnapshot):
    """A LinuxSnapshot of a stopped target that this process traces (not a helper's)."""

    def __init__(self, data: CaptureData, mem_fd: int) -> None:
        # No helper: this process is the tracer, and the target is frozen (never cloned,
        # never pre-copied), so none of the helper's services is ever asked for.
        super().__init__(CaptureFlags.DEFAULT & ~CaptureFlags.VA_CLONE, None, data, mem_fd)

    def resumed(self, when_ns: int) -> None:
        """Record when the target ran again, for :attr:`performance`."""
        self._data.resumed_ns = when_ns
        self._resumed_ns = when_ns


def snapshot_held(pid: int, tids: list[int], stopped_ns: int) -> HeldSnapshot:
    """Read the held threads and the process files into a snapshot; the target stays stopped."""
    module = arch_module.current()
    threads = []
    for tid in sorted(tids):
        registers = module.read_registers(tid)
        if len(registers) != module.REGS_SIZE:
            raise errors.SnapshotUnsupportedError(
                f"pid {pid} is not a {module.MACHINE} process (a 32-bit task?)",
                function="watch", pid=pid)
        base = f"/proc/{pid}/task/{tid}"
        threads.append(ThreadState(
            tid=tid,
            name=procfs.read_optional(f"{base}/comm").decode("utf-8", "replace").rstrip("\n"),
            registers=registers, fp_registers=module.read_fp_registers(tid),
            xstate=ptrace.xstate(tid), stat=procfs.parse_stat(procfs.read_text(f"{base}/stat"))))
    base = f"/proc/{pid}"
    try:
        exe = os.readlink(f"{base}/exe")
    except OSError:
        exe = ""
    lsb = procfs.read_optional("/etc/lsb-release") or procfs.read_optional("/etc/os-release")
    data = CaptureData(
        pid=pid, clone_pid=None, threads=threads,
        maps=procfs.read_text(f"{base}/maps"), status=procfs.read_text(f"{base}/status"),
        stat=procfs.read_text(f"{base}/stat"), cmdline=procfs.read_optional(f"{base}/cmdline"),
        environ=procfs.read_optional(f"{base}/environ"),
        auxv=procfs.read_optional(f"{base}/auxv"), fds=procfs.file_descriptors(pid), exe=exe,
        cpuinfo=procfs.read_optional("/proc/cpuinfo"), lsb_release=lsb,
        captured_at=time.time(), first_stop_ns=stopped_ns, resumed_ns=None,
        finished_ns=time.monotonic_ns(), clone_ns=None, boot_time=procfs.boot_time(),
        clock_ticks=procfs.clock_ticks(),
        fallback_reason="held by the crash/signal watcher, which delivers the signal next")
    mem_fd = os.open(f"{base}/mem", os.O_RDONLY | os.O_CLOEXEC)
    return HeldSnapshot(data, mem_fd)
