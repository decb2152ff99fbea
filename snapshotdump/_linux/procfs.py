"""What the dump needs from /proc, read while the target is stopped."""

from __future__ import annotations

import dataclasses
import errno
import os

from .. import errors

# Indexes into parse_stat()'s list: proc(5)'s field numbers minus one.
STAT_STATE = 2
STAT_FLAGS = 8
STAT_MINFLT = 9
STAT_MAJFLT = 11
STAT_UTIME = 13
STAT_STIME = 14
STAT_STARTTIME = 21

PF_KTHREAD = 0x00200000  # include/linux/sched.h
CAP_SYS_PTRACE = 19


@dataclasses.dataclass(frozen=True)
class Mapping:
    """One line of /proc/PID/maps."""

    start: int
    end: int
    perms: str
    offset: int
    device: str
    inode: int
    path: str

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def readable(self) -> bool:
        return self.perms[0] == "r"

    @property
    def writable(self) -> bool:
        return self.perms[1] == "w"

    @property
    def executable(self) -> bool:
        return self.perms[2] == "x"

    @property
    def shared(self) -> bool:
        return self.perms[3] == "s"


def parse_maps(text: str) -> list[Mapping]:
    result = []
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        start, end = (int(x, 16) for x in parts[0].split("-"))
        path = parts[5] if len(parts) > 5 else ""
        result.append(Mapping(start, end, parts[1], int(parts[2], 16), parts[3], int(parts[4]),
                              path))
    return result


def parse_status(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def parse_stat(text: str) -> list[str]:
    """Fields of /proc/PID/stat; index 0 is the pid, 1 the comm (which may hold spaces)."""
    close = text.rindex(")")
    head, comm = text[:close].split(" (", 1)
    return [head, comm, *text[close + 2:].split()]


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def read_text(path: str) -> str:
    return read(path).decode("utf-8", "replace")


def read_optional(path: str) -> bytes:
    try:
        return read(path)
    except OSError:
        return b""


def task_ids(pid: int) -> list[int]:
    try:
        return sorted(int(name) for name in os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return []


def check_target(pid: int) -> dict[str, str]:
    """The target's status fields; raise for a missing, zombie, kernel, already-traced or
    forbidden process, each with what to do about it."""
    try:
        status = parse_status(read_text(f"/proc/{pid}/status"))
        flags = int(parse_stat(read_text(f"/proc/{pid}/stat"))[STAT_FLAGS])
    except (FileNotFoundError, ProcessLookupError):
        raise errors.ProcessNotFoundError(
            f"no process has pid {pid}: check the pid (ps -p {pid})", errno=errno.ESRCH,
            function="open(/proc/PID/status)", pid=pid) from None
    except PermissionError as exc:
        raise errors.from_errno(exc.errno or errno.EACCES, "open(/proc/PID/status)",
                                pid=pid) from exc
    if status.get("State", "").startswith(("Z", "X")):
        raise errors.ProcessNotFoundError(
            f"pid {pid} is a zombie (it has exited; its parent has not reaped it): there is "
            "nothing left to dump", errno=errno.ESRCH, function="capture", pid=pid)
    if flags & PF_KTHREAD:
        raise errors.SnapshotUnsupportedError(
            f"pid {pid} ({status.get('Name', '?')}) is a kernel thread: a kernel thread cannot "
            "be dumped (it has no user memory)", errno=errno.EPERM, function="capture",
            pid=pid)
    tracer = int(status.get("TracerPid", "0") or 0)
    if tracer:
        raise errors.SnapshotPermissionError(
            f"pid {pid} is already traced by {errors.describe_process(tracer)}; a process has "
            "one tracer at a time: detach it first", errno=errno.EPERM, function="capture",
            pid=pid)
    try:
        # Opening maps makes the kernel's ptrace access check, as tracing it would.
        os.close(os.open(f"/proc/{pid}/maps", os.O_RDONLY | os.O_CLOEXEC))
    except PermissionError as exc:
        raise errors.SnapshotPermissionError(
            f"cannot trace pid {pid}: {access_denied_reason(status)}", errno=exc.errno,
            function="open(/proc/PID/maps)", pid=pid) from None
    except (FileNotFoundError, ProcessLookupError):
        raise errors.ProcessNotFoundError(
            f"pid {pid} exited before it could be captured", errno=errno.ESRCH,
            function="open(/proc/PID/maps)", pid=pid) from None
    return status


def access_denied_reason(status: dict[str, str]) -> str:
    """Why the kernel refuses us the target whose /proc/PID/status fields are *status*."""
    owner = int((status.get("Uid", "") or "-1").split()[0])
    me = os.geteuid()
    own = parse_status(read_text("/proc/self/status"))
    has_cap = bool(int(own.get("CapEff", "0") or "0", 16) >> CAP_SYS_PTRACE & 1)
    scope = read_optional("/proc/sys/kernel/yama/ptrace_scope").decode().strip()
    yama = f"kernel.yama.ptrace_scope is {scope}" if scope else "Yama is not enabled"
    if not has_cap and owner != me:
        return (f"it belongs to uid {owner}, not to you (uid {me}), and this process lacks "
                "CAP_SYS_PTRACE: run as root or as its owner, or grant CAP_SYS_PTRACE "
                f"({yama})")
    if not has_cap:
        return (f"it is yours, but without CAP_SYS_PTRACE the kernel refuses: {yama} (1 lets "
                "only ancestors trace, 2 only CAP_SYS_PTRACE, 3 nobody), or the target made "
                "itself non-dumpable (setuid, or prctl(PR_SET_DUMPABLE, 0))")
    return f"the kernel refuses even with CAP_SYS_PTRACE ({yama}; a security module?)"


def file_descriptors(pid: int) -> list[tuple[int, str]]:
    """(fd, what it points to) for each open fd, like ls -l /proc/PID/fd."""
    base = f"/proc/{pid}/fd"
    result = []
    try:
        names = os.listdir(base)
    except OSError:
        return []
    for name in names:
        try:
            result.append((int(name), os.readlink(f"{base}/{name}")))
        except (OSError, ValueError):
            continue
    return sorted(result)


def boot_time() -> float:
    for line in read_text("/proc/stat").splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")
