"""What the polling triggers measure on Linux, read from /proc without touching the target."""

from __future__ import annotations

import errno
import os
import time

from .. import errors
from . import procfs


class ProcSampler:
    """CPU (as top computes it), resident memory, threads and fds of one process.

    CPU is the target's utime + stime growth over the wall time since the previous
    sample, in percent of one core (0..100 * ncpu).  The first sample has no CPU figure.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._ticks = procfs.clock_ticks()
        self._last: tuple[float, int] | None = None

    def sample(self) -> dict[str, float]:
        """One reading; raises ProcessNotFoundError once the process is gone (or a zombie)."""
        base = f"/proc/{self.pid}"
        try:
            stat = procfs.parse_stat(procfs.read_text(f"{base}/stat"))
            status = procfs.parse_status(procfs.read_text(f"{base}/status"))
            fds = len(os.listdir(f"{base}/fd"))
        except (FileNotFoundError, ProcessLookupError):
            raise self._gone() from None
        if stat[procfs.STAT_STATE] in ("Z", "X"):
            raise self._gone()
        now = time.monotonic()
        cpu_ticks = int(stat[procfs.STAT_UTIME]) + int(stat[procfs.STAT_STIME])
        values: dict[str, float] = {
            "memory": int(status.get("VmRSS", "0 kB").split()[0]) / 1024,
            "threads": float(int(status.get("Threads", "0"))),
            "fds": float(fds),
        }
        if self._last is not None and now > self._last[0]:
            spent = (cpu_ticks - self._last[1]) / self._ticks
            values["cpu"] = 100.0 * spent / (now - self._last[0])
        self._last = (now, cpu_ticks)
        return values

    def _gone(self) -> errors.ProcessNotFoundError:
        return errors.ProcessNotFoundError(
            f"pid {self.pid} has exited", errno=errno.ESRCH, function="watch", pid=self.pid)


def image_names(pid: int) -> set[str]:
    """The names --name matches: the comm and the basename of argv[0]."""
    names = set()
    comm = procfs.read_optional(f"/proc/{pid}/comm").decode("utf-8", "replace").strip()
    if comm:
        names.add(comm)
    argv0 = procfs.read_optional(f"/proc/{pid}/cmdline").split(b"\0", 1)[0]
    if argv0:
        names.add(os.path.basename(argv0.decode("utf-8", "replace")))
    return names


def find_by_name(name: str) -> list[int]:
    """Pids (other than ours) whose comm or argv[0] basename is *name*; live processes only."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        try:
            if procfs.parse_stat(procfs.read_text(f"/proc/{pid}/stat"))[2] in ("Z", "X"):
                continue
        except (OSError, ValueError, IndexError):
            continue
        names = image_names(pid)
        # The kernel keeps 15 bytes of a comm: a longer NAME matches its first 15.
        if name in names or (len(name) > 15 and name[:15] in names):
            found.append(pid)
    return sorted(found)
