"""Stop every thread of a process with PTRACE_SEIZE + PTRACE_INTERRUPT; let them all go again."""

from __future__ import annotations

import errno
import os
import signal
import time

from .. import errors
from . import procfs, ptrace

STOP_TIMEOUT_SECONDS = 10.0


_child_signals_blocked = False


def block_child_signals() -> None:
    """Hold SIGCHLD pending in this (single-threaded) tracer, so that waits can sleep on it.

    A ptrace stop sends the tracer SIGCHLD.  Sleeping until it comes costs no CPU, where
    spinning on waitpid would take the very CPU a tracee needs to reach its stop, and
    the scheduler would let it wait a time slice (milliseconds of pause).
    """
    global _child_signals_blocked
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    _child_signals_blocked = True


def wait_stopped(tid: int, timeout: float | None = STOP_TIMEOUT_SECONDS) -> int:
    """Wait until *tid* reports a stop; the raw status.  Raises if it exits or never stops.

    With *timeout* None, wait for as long as it takes (a call that is meant to be long).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            waited, status = os.waitpid(tid, ptrace.WALL | os.WNOHANG)
        except ChildProcessError:
            raise errors.TargetExitedError(
                f"thread {tid} exited while it was being stopped", errno=errno.ESRCH,
                function="waitpid", pid=tid) from None
        if waited:
            if os.WIFSTOPPED(status):
                return status
            raise errors.TargetExitedError(
                f"thread {tid} exited while it was being stopped", errno=errno.ESRCH,
                function="waitpid", pid=tid)
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise errors.SnapshotError(
                f"thread {tid} did not stop within {timeout:.0f} s (uninterruptible sleep, "
                "state D?); nothing was captured", function="waitpid", pid=tid)
        if _child_signals_blocked:
            # Any stop or exit of any tracee wakes us; the waitpid above tells whose.
            signal.sigtimedwait({signal.SIGCHLD}, 60.0 if left is None else left)
        else:
            time.sleep(0.0002)


def thread_state(pid: int, tid: int) -> str:
    """The one-letter state of a thread, "X" when it is gone."""
    try:
        return procfs.parse_stat(procfs.read_text(f"/proc/{pid}/task/{tid}/stat"))[2]
    except (OSError, ValueError, IndexError):
        return "X"


class Freezer:
    """The set of threads we hold stopped.

    Every thread is held in a PTRACE_EVENT_STOP (our interrupt, or the group-stop of a
    stopped process), never in a signal-delivery-stop: a thread that dequeued a signal
    just before our interrupt landed is let go with that very signal (delivered with its
    siginfo, as it would have been) and stops right after.  So no signal is ever taken
    from the target, and detaching hands nothing back.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.stopped: dict[int, int] = {}  # tid -> 0 (kept as a map for its callers)
        self.unstopped: set[int] = set()  # seized, interrupted, never seen to stop
        self.first_stop_ns: int | None = None
        self.resumed_ns: int | None = None

    def stop_all(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Stop every thread; repeat until no thread appeared or vanished meanwhile."""
        gone: set[int] = set()
        while True:
            tids = [t for t in procfs.task_ids(self.pid) if t not in gone]
            if not tids and not self.stopped:
                raise errors.TargetExitedError(
                    f"pid {self.pid} exited before it could be stopped", errno=errno.ESRCH,
                    function="capture", pid=self.pid)
            new = [t for t in tids if t not in self.stopped]
            if not new:
                return
            seized = []
            for tid in new:
                if thread_state(self.pid, tid) in ("Z", "X"):
                    gone.add(tid)  # an exited thread (or zombie leader) never reports a stop
                    continue
                try:
                    ptrace.seize(tid)
                except errors.ProcessNotFoundError:
                    gone.add(tid)
                    continue
                except errors.SnapshotPermissionError:
                    if thread_state(self.pid, tid) not in ("Z", "X"):
                        raise
                    gone.add(tid)  # it exited just now: the kernel refuses to attach to it
                    continue
                if self.first_stop_ns is None:
                    # The pause, as the target sees it, starts at the first interrupt.
                    self.first_stop_ns = time.monotonic_ns()
                try:
                    ptrace.interrupt(tid)
                except errors.ProcessNotFoundError:
                    gone.add(tid)
                    continue
                seized.append(tid)
                self.unstopped.add(tid)
            for tid in seized:
                try:
                    hold(tid, timeout)
                except errors.TargetExitedError:
                    gone.add(tid)
                    self.unstopped.discard(tid)
                    continue
                self.unstopped.discard(tid)
                self.stopped[tid] = 0

    def resume_all(self) -> None:
        """Detach every held thread (ESRCH counts as done).

        The leader goes last: if the target died, a leader's exit can be collected only
        after every other thread's.
        """
        if not self.stopped:
            return  # already let go: the pause ended then
        for tid in sorted(self.stopped, key=lambda t: t == self.pid):
            ptrace.detach(tid, self.stopped.pop(tid))
        self.resumed_ns = time.monotonic_ns()


def hold(tid: int, timeout: float | None = STOP_TIMEOUT_SECONDS) -> int:
    """Wait until interrupted thread *tid* sits in a PTRACE_EVENT_STOP; its last status.

    A signal-delivery-stop comes first when the thread had dequeued a signal before the
    interrupt: the signal goes on (exactly as without us), and the thread stops after it.
    """
    while True:
        status = wait_stopped(tid, timeout)
        if ptrace.stop_event(status) != 0:
            return status
        ptrace.cont(tid, os.WSTOPSIG(status))


def signal_to_return(status: int) -> int:
    """The signal a stop swallowed: 0 for our interrupt or a group-stop, else the signal
    (for the watch tracer, which holds threads in signal-delivery-stops on purpose)."""
    if ptrace.stop_event(status) == ptrace.PTRACE_EVENT_STOP:
        return 0
    sig = os.WSTOPSIG(status)
    return 0 if sig == signal.SIGTRAP else sig
