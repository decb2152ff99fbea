"""What the dump needs from /proc, read while the target is stopped."""

from __future__ import annotations

import dataclasses
import os

from .. import errors


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
    """The target's status fields; raise for a missing, zombie or already-traced process."""
    try:
        status = parse_status(read_text(f"/proc/{pid}/status"))
    except FileNotFoundError:
        raise errors.ProcessNotFoundError(
            f"no process has pid {pid}: check the pid (ps -p {pid})", errno=3,
            function="open(/proc/PID/status)", pid=pid) from None
    except PermissionError as exc:
        raise errors.from_errno(exc.errno or 13, "open(/proc/PID/status)", pid=pid) from exc
    if status.get("State", "").startswith(("Z", "X")):
        raise errors.ProcessNotFoundError(
            f"pid {pid} is a zombie (it has exited; its parent has not reaped it): there is "
            "nothing left to dump", errno=3, function="capture", pid=pid)
    tracer = int(status.get("TracerPid", "0") or 0)
    if tracer:
        raise errors.SnapshotPermissionError(
            f"pid {pid} is already traced by pid {tracer} (a debugger or strace?); a process "
            "has one tracer at a time: detach it first", errno=1, function="capture", pid=pid)
    return status


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
