"""The tracer helper's half of a pre-copy capture: a userfaultfd made inside the target.

While the threads are stopped (as for a stack-only capture), userfaultfd() is
injected into one thread, the helper takes the new fd with pidfd_getfd, and close()
is injected so that the target never holds it.  After resume, every writable mapping
is registered for async write-protect.  Nothing is protected yet: the dumper does
that when it writes a full dump (see precopy).  Wherever this cannot work, the
capture is a fork clone instead, and says why.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

from . import inject, procfs, stack_capture, uffd, vm_flags
from .capture_data import CaptureData
from .procfs import Mapping

if TYPE_CHECKING:
    from .session import Session

USERFAULTFD_FLAGS = uffd.O_CLOEXEC | uffd.O_NONBLOCK | uffd.UFFD_USER_MODE_ONLY


def capture(session: Session, live_fallback: bool) -> tuple[CaptureData, int]:
    """A "precopy" capture (CaptureData and the target's /proc/PID/mem); or, where write
    tracking is not to be had, a clone capture whose precopy_refused says why."""
    reason = refusal(session)
    if reason is None:
        mem_fd = os.open(f"/proc/{session.pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
        taken: list[int | str] = []
        try:
            stopped = stack_capture.stop(
                session, mem_fd, lambda registers, maps: taken.append(
                    _userfaultfd(session, registers, maps)))
            data = stack_capture.resume(session, stopped)
        except BaseException:
            os.close(mem_fd)
            for fd in taken:
                if isinstance(fd, int):
                    os.close(fd)
            session.release()
            raise
        reason = _arm(session, taken[0] if taken else "no thread to inject into")
        if reason is None:
            data.memory = "precopy"
            return data, mem_fd
        os.close(mem_fd)
    data, mem_fd = session.capture(True, live_fallback)
    data.precopy_refused = reason
    return data, mem_fd


def refusal(session: Session) -> str | None:
    """Why this target cannot be write-tracked, found without stopping it; None if it can."""
    procfs.check_target(session.pid)
    filtered = _seccomp_everywhere(session.pid)
    if filtered:
        # Only an early answer that spares a useless stop: the threads are checked one by
        # one once stopped (inject.refusal), and any unfiltered one would do.
        return f"every thread runs under a seccomp filter (Seccomp: {filtered}), which " \
               "could answer an injected userfaultfd() by killing it"
    if session.arch.MACHINE not in uffd.SYS_USERFAULTFD:
        return f"no userfaultfd number known for {session.arch.MACHINE}"
    try:
        probe = uffd.create_here(session.arch.MACHINE)
    except OSError as exc:
        return f"userfaultfd() is not available here: {exc.strerror}"
    try:
        uffd.enable_async_wp(probe)
    except OSError as exc:
        return str(exc.strerror)
    finally:
        os.close(probe)
    return None


def _seccomp_everywhere(pid: int) -> str | None:
    """The Seccomp mode when every thread of *pid* has a filter (or is gone), else None."""
    modes = set()
    for tid in procfs.task_ids(pid):
        try:
            status = procfs.parse_status(procfs.read_text(f"/proc/{pid}/task/{tid}/status"))
        except OSError:
            continue
        modes.add(status.get("Seccomp", "0"))
    if not modes or modes & {"", "0"}:
        return None
    return ", ".join(sorted(modes))


def _userfaultfd(session: Session, registers: stack_capture.Registers,
                 maps: list[Mapping]) -> int | str:
    """Inject userfaultfd() and take the fd: ours, or why not.  The target keeps no copy.

    The thread is chosen by the per-thread checks made after the stop (a seccomp filter,
    shadow stacks, a temporary signal mask: see inject.refusal)."""
    arch = session.arch
    taken: list[int | str] = []

    def take(fd_in_target: int) -> None:
        # The target's fd, still open: ours by pidfd_getfd before the target closes it.
        if fd_in_target >= 0:
            try:
                taken.append(uffd.take_fd(session.pid, fd_in_target, arch.MACHINE))
            except OSError as exc:
                taken.append(f"pidfd_getfd of the target's userfaultfd failed: {exc.strerror}")

    try:
        with session.injecting(registers, maps) as tid:
            # userfaultfd() then close() of its result, in one trampoline: a helper killed
            # in between still leaves the target without the fd.
            result = inject.run(arch, tid, registers[tid][0], session.code_at,
                                arch.CLOSING_TRAP, uffd.SYS_USERFAULTFD[arch.MACHINE],
                                (USERFAULTFD_FLAGS,), between=take)
    except inject.InjectionRefused as exc:  # refused before any call was made
        return f"no call can be injected into it: {exc.strerror}"
    except BaseException:
        for fd in taken:
            if isinstance(fd, int):
                os.close(fd)
        raise
    if result.value < 0:
        return f"userfaultfd() in the target failed: {os.strerror(-result.value)}"
    return taken[0] if taken else "the target's userfaultfd could not be taken"


def _arm(session: Session, taken: int | str) -> str | None:
    """Async write-protect mode and every writable mapping registered; None when done."""
    if isinstance(taken, str):
        return taken
    try:
        uffd.enable_async_wp(taken)
        maps = procfs.parse_maps(procfs.read_text(f"/proc/{session.pid}/maps"))
        uffd.register_writable(taken, maps, vm_flags.read(session.pid))
    except OSError as exc:
        os.close(taken)
        if exc.errno == errno.EBUSY:
            return f"the target already uses a userfaultfd on its memory ({exc.strerror})"
        return f"write tracking could not be set up: {exc.strerror}"
    session.uffd = taken
    return None
