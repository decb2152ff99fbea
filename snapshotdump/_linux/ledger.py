"""Per-target lock and the record of the clones we made, in a private run folder.

Our dumpers take turns on a target: the helper holds an flock on ``PID.lock`` while it
stops, clones and lets go of the target, and again while it kills and reaps the clone,
so a second capture waits (and after LOCK_TIMEOUT fails with the holder's pid).  Two
cloned snapshots of one target may be open at once.  A frozen snapshot keeps the lock
(and the target traced) until it is closed: a second capture then fails at once, as
"already traced".  A helper that dies drops the lock with its file descriptor.

Each clone leaves a zombie in the target, which only the target itself can reap (we
inject wait4).  When that cannot happen (a tracer killed, a target in state D, a seccomp
filter), the zombie must still be reaped later, by the next capture of that target or by
the helper's cleanup, and only if it is provably ours.  ``PID-START.clones`` (START is the
target's start time, so a reused pid is a different file) holds, per clone:

* ``attempt TICK`` before the clone call is injected (TICK: CLOCK_BOOTTIME in clock ticks,
  the clock of /proc/PID/stat's start time), and
* ``clone CPID CSTART`` as soon as the kernel reports the clone.

A child of the target is ours when it is a zombie, exits with no signal (our clone() has
exit_signal 0; fork and pthreads never do), and either matches a ``clone`` line exactly or
started within ATTEMPT_TICKS of an ``attempt`` (a tracer that died before it saw the
clone).  Lines are dropped once their zombie is reaped, or, for an attempt, once its
window has passed with no such child.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pathlib
import signal
import stat as stat_module
import time

from .. import errors
from . import procfs

LOCK_TIMEOUT = 60.0  # SNAPSHOTDUMP_LOCK_TIMEOUT (seconds) in the environment overrides it
FROZEN = "frozen"
ATTEMPT_TICKS = 200  # 2 s at 100 Hz: from the injection to the clone's exit_group


def folder() -> pathlib.Path:
    """/run/snapshotdump (root), else $XDG_RUNTIME_DIR/snapshotdump, else a /tmp folder;
    made 0700 and checked to be ours and not a symlink."""
    uid = os.getuid()
    candidates = []
    if uid == 0:
        candidates.append(pathlib.Path("/run/snapshotdump"))
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        candidates.append(pathlib.Path(runtime) / "snapshotdump")
    candidates.append(pathlib.Path(f"/tmp/snapshotdump-{uid}"))
    for path in candidates:
        with contextlib.suppress(FileExistsError, FileNotFoundError, PermissionError):
            os.mkdir(path, 0o700)
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if stat_module.S_ISDIR(info.st_mode) and info.st_uid == uid \
                and not info.st_mode & 0o077:
            return path
    raise errors.SnapshotPermissionError(
        f"no private run folder for snapshotdump's locks (tried {', '.join(map(str, candidates))}"
        "): each must be a directory owned by this user with mode 0700", errno=errno.EACCES,
        function="capture")


def _start_time(pid: int) -> str:
    return procfs.parse_stat(procfs.read_text(f"/proc/{pid}/stat"))[21]


def now_ticks() -> int:
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK"))


class TargetLock:
    """The flock that serializes our dumpers on one target, and its clone record."""

    def __init__(self, pid: int, timeout: float | None = None) -> None:
        if timeout is None:
            timeout = float(os.environ.get("SNAPSHOTDUMP_LOCK_TIMEOUT") or LOCK_TIMEOUT)
        self.pid = pid
        base = folder()
        self.path = base / f"{pid}.lock"
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    holder, _, frozen = os.pread(fd, 64, 0).decode("ascii", "replace") \
                        .strip().partition(" ")
                    if frozen == FROZEN:
                        # Held for as long as a snapshot stays open: waiting could deadlock.
                        raise errors.SnapshotPermissionError(
                            f"pid {pid} is already traced by pid {holder or '?'} (another "
                            "snapshotdump holds it frozen until that snapshot is closed); a "
                            "process has one tracer at a time", errno=errno.EPERM,
                            function="capture", pid=pid) from None
                    if time.monotonic() >= deadline:
                        raise errors.SnapshotError(
                            f"pid {pid} is being captured by another snapshotdump (helper pid "
                            f"{holder or '?'}, lock {self.path}); waited {timeout:.0f} s: try "
                            "again when that capture is released", errno=errno.EBUSY,
                            function="capture", pid=pid) from None
                    time.sleep(0.02)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        try:
            self.record = base / f"{pid}-{_start_time(pid)}.clones"
        except (OSError, ValueError, IndexError):
            self.release()
            raise errors.TargetExitedError(f"pid {pid} exited", errno=errno.ESRCH,
                                           function="capture", pid=pid) from None

    def hold_frozen(self) -> None:
        """Say that the lock stays held while a frozen snapshot is open: others fail at once."""
        os.pwrite(self.fd, f"{os.getpid()} {FROZEN}\n".encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # drops the flock; the file stays (removing it would race)
            self.fd = -1

    def note(self, line: str) -> None:
        fd = os.open(self.record, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                     | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def lines(self) -> list[list[str]]:
        try:
            text = self.record.read_text()
        except OSError:
            return []
        return [line.split() for line in text.splitlines() if line.strip()]

    def rewrite(self, lines: list[list[str]]) -> None:
        if not lines:
            with contextlib.suppress(FileNotFoundError):
                self.record.unlink()
            return
        temporary = self.record.with_suffix(".new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
                     | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, "".join(" ".join(words) + "\n" for words in lines).encode())
        finally:
            os.close(fd)
        os.replace(temporary, self.record)

    def our_zombies(self) -> tuple[list[int], list[list[str]]]:
        """(zombie pids provably ours, the record lines still worth keeping)."""
        found: list[int] = []
        keep: list[list[str]] = []
        children = None
        for words in self.lines():
            if words[:1] == ["clone"] and len(words) == 3:
                child = _zombie_clone(self.pid, int(words[1]))
                if child is not None and child[1] == words[2]:
                    if child[0] not in found:
                        found.append(child[0])
                    keep.append(words)
                elif child is None and _exists_as(int(words[1]), words[2]):
                    keep.append(words)  # still dying: SIGKILL is on its way
            elif words[:1] == ["attempt"] and len(words) == 2:
                tick = int(words[1])
                if children is None:
                    children = _zombie_children(self.pid)
                matches = [c for c, start in children if tick - 1 <= int(start)
                           <= tick + ATTEMPT_TICKS]
                found.extend(c for c in matches if c not in found)
                if matches or now_ticks() <= tick + ATTEMPT_TICKS:
                    keep.append(words)
        return found, keep

    def finish_orphans(self, wait: float = 1.0) -> None:
        """Make sure recorded clones whose tracer died are dead, and wait (briefly) until
        they are zombies we can reap.  PTRACE_O_EXITKILL is already killing them; a clone
        still traced belongs to another open snapshot and is left alone."""
        dying = []
        for words in self.lines():
            if words[:1] != ["clone"] or len(words) != 3:
                continue
            child = int(words[1])
            try:
                status = procfs.parse_status(procfs.read_text(f"/proc/{child}/status"))
            except OSError:
                continue
            if not _exists_as(child, words[2]) or status.get("State", "").startswith("Z") \
                    or status.get("TracerPid", "0") != "0":
                continue
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGKILL)
            dying.append(child)
        deadline = time.monotonic() + wait
        while dying and time.monotonic() < deadline:
            dying = [c for c in dying if _zombie_clone(self.pid, c) is None
                     and os.path.exists(f"/proc/{c}")]
            time.sleep(0.005)

    def forget(self, reaped: list[int]) -> None:
        """Drop what is done: reaped clones, and attempts that no zombie can match now."""
        _, keep = self.our_zombies()
        self.rewrite([w for w in keep if not (w[0] == "clone" and int(w[1]) in reaped)])


def _zombie_clone(pid: int, child: int) -> tuple[int, str] | None:
    try:
        fields = procfs.parse_stat(procfs.read_text(f"/proc/{child}/stat"))
    except (OSError, ValueError, IndexError):
        return None
    if fields[2] == "Z" and fields[3] == str(pid) and fields[37] == "0":
        return child, fields[21]
    return None


def _exists_as(child: int, start: str) -> bool:
    try:
        return procfs.parse_stat(procfs.read_text(f"/proc/{child}/stat"))[21] == start
    except (OSError, ValueError, IndexError):
        return False


def _zombie_children(pid: int) -> list[tuple[int, str]]:
    result = []
    for tid in procfs.task_ids(pid):
        text = procfs.read_optional(f"/proc/{pid}/task/{tid}/children").decode()
        for word in text.split():
            child = _zombie_clone(pid, int(word))
            if child is not None:
                result.append(child)
    return result
