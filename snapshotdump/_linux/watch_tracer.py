"""The crash and signal watcher: a process of ours that holds PTRACE_SEIZE on every thread.

Nothing is stopped until a signal comes.  At a signal-delivery-stop it decides: a
listed signal (--signal), or a fatal signal the target has left at SIG_DFL (--crash);
anything else goes on to the target at once, unchanged.  To dump, it stops the other
threads, writes the dump from the stopped process, then hands the signal back exactly
once (PTRACE_CONT or PTRACE_DETACH with it), so the target gets it, or dies of it, as it
would have without us.

Run as ``python -m snapshotdump._linux.watch_tracer CONFIG_JSON`` by snapshotdump.watch
only.  It reads requests as JSON lines on stdin (EOF: let go of everything and exit) and
reports as JSON lines on stdout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import select
import signal
import sys
import time
from typing import Any

from .. import errors
from .._watch import files
from ..flags import MiniDumpType
from ..snapshot import ExceptionInfo
from . import freeze, procfs, ptrace
from .watch_held import siginfo, snapshot_held

# The signals whose default action kills the process with a core: ProcDump's -e on Linux.
CRASH_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL,
                           signal.SIGABRT, signal.SIGTRAP, signal.SIGSYS})
STOP_SIGNALS = frozenset({signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU})
OPTIONS = ptrace.PTRACE_O_TRACECLONE | ptrace.PTRACE_O_TRACEEXEC
CONTROL_POLL_SECONDS = 0.1
LISTEN = -1  # a held thread that was in a job-control stop goes back to it


def would_kill(pid: int, tid: int, sig: int) -> bool:
    """True when *sig*, about to be delivered to *tid*, meets the default action.

    At the signal-delivery-stop the kernel has already undone what a fault overrides
    (a blocked or ignored SIGSEGV from a fault is reset to SIG_DFL first), so the
    disposition read now is the one the delivery will use.  A caught signal goes to the
    target's handler (a JVM, a GC, a sandbox): no crash.  SA_RESETHAND needs no case of
    its own: the first signal is caught, a second one meets SIG_DFL.
    """
    try:
        status = procfs.parse_status(procfs.read_text(f"/proc/{pid}/task/{tid}/status"))
    except OSError:
        return False
    bit = 1 << (sig - 1)
    caught = int(status.get("SigCgt", "0"), 16)
    ignored = int(status.get("SigIgn", "0"), 16)
    return not (caught | ignored) & bit


class Watcher:
    def __init__(self, config: dict[str, Any]) -> None:
        self.pid = int(config["pid"])
        self.signals = frozenset(int(s) for s in config["signals"])
        self.crash = bool(config["crash"])
        self.remaining = int(config["count"])
        self.folder = str(config["folder"])
        self.dump_type = MiniDumpType(int(config["dump_type"]))
        self.compress: str | None = config["compress"]
        self.for_seconds = float(config["for_seconds"])
        self.last_dump: float | None = None
        self.traced: set[int] = set()
        self.held: dict[int, int] = {}  # stopped by us: tid -> signal to hand back (or LISTEN)
        self.finished = False
        self._control = b""

    # --- reporting ---------------------------------------------------------------------
    def emit(self, **event: Any) -> None:
        with contextlib.suppress(OSError):
            os.write(1, (json.dumps(event) + "\n").encode())

    # --- attaching ---------------------------------------------------------------------
    def seize_all(self) -> None:
        """Seize every thread, again until no thread appeared meanwhile."""
        procfs.check_target(self.pid)
        while True:
            new = [t for t in procfs.task_ids(self.pid) if t not in self.traced]
            if not new:
                if not self.traced:
                    raise errors.TargetExitedError(f"pid {self.pid} has exited", errno=errno.ESRCH,
                                                   function="watch", pid=self.pid)
                return
            for tid in new:
                try:
                    ptrace.seize(tid, OPTIONS)
                except errors.ProcessNotFoundError:
                    continue
                except errors.SnapshotError:
                    if _tracer_of(self.pid, tid) != os.getpid():
                        raise
                self.traced.add(tid)  # or it was auto-attached as a clone of a seized one

    # --- the loop ----------------------------------------------------------------------
    def run(self) -> None:
        self.seize_all()
        self.emit(event="ready", threads=len(self.traced))
        while not self.finished:
            if not self.handle_control():
                self.release_all()
                return
            self.drain()
            if not self.finished:
                signal.sigtimedwait({signal.SIGCHLD}, CONTROL_POLL_SECONDS)

    def handle_control(self) -> bool:
        """Serve the requests on stdin; False at EOF (our owner is done or gone)."""
        while select.select([0], [], [], 0)[0]:
            chunk = os.read(0, 4096)
            if not chunk:
                return False
            self._control += chunk
            while b"\n" in self._control:
                line, self._control = self._control.split(b"\n", 1)
                request = json.loads(line)
                self.dump_on_request(str(request["trigger"]), float(request["value"]),
                                     float(request["at"]))
                if self.finished:
                    return True
        return True

    def drain(self) -> None:
        while not self.finished:
            try:
                tid, status = os.waitpid(-1, ptrace.WALL | os.WNOHANG)
            except ChildProcessError:
                self.finish_exited(None)
                return
            if not tid:
                return
            self.on_status(tid, status)

    def on_status(self, tid: int, status: int) -> None:
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            self.traced.discard(tid)
            if tid == self.pid:
                self.finish_exited(status)
            return
        if not os.WIFSTOPPED(status):
            return
        event, sig = ptrace.stop_event(status), os.WSTOPSIG(status)
        try:
            if event == ptrace.PTRACE_EVENT_CLONE:
                self.traced.add(ptrace.event_message(tid))
                ptrace.cont(tid)
            elif event == ptrace.PTRACE_EVENT_EXEC:
                self.traced = set(procfs.task_ids(self.pid)) | {tid}
                ptrace.cont(tid)
            elif event == ptrace.PTRACE_EVENT_STOP:
                self.traced.add(tid)
                if sig in STOP_SIGNALS:
                    # A group-stop: the target stays stopped, as job control asked.
                    ptrace.listen(tid)
                else:
                    ptrace.cont(tid)  # a new thread's first stop, or a stale interrupt
            elif self.wants(tid, sig):
                self.dump_on_signal(tid, sig)
            else:
                ptrace.cont(tid, sig)
        except errors.ProcessNotFoundError:
            self.traced.discard(tid)  # killed (SIGKILL) while stopped: its exit comes next

    def wants(self, tid: int, sig: int) -> bool:
        if self.crash and sig in CRASH_SIGNALS and would_kill(self.pid, tid, sig):
            return True  # a crash is dumped whenever it comes: there is no next time
        if sig in self.signals:
            # --for is also the least time between two dumps: a signal sooner goes on undumped.
            return (self.last_dump is None
                    or time.monotonic() - self.last_dump >= self.for_seconds)
        return False

    # --- dumping -----------------------------------------------------------------------
    def hold(self) -> None:
        """Stop every traced thread; note in ``held`` what each stop swallowed, to hand back.

        A thread in a job-control stop is noted as LISTEN: it goes back to that stop.
        """
        held = self.held
        while True:
            new = [t for t in sorted(self.traced | set(procfs.task_ids(self.pid)))
                   if t not in held]
            if not new:
                return
            for tid in new:
                try:
                    ptrace.interrupt(tid)
                    status = freeze.wait_stopped(tid)
                except (errors.ProcessNotFoundError, errors.TargetExitedError):
                    self.traced.discard(tid)
                    continue
                except errors.SnapshotError:
                    if tid in self.traced:
                        raise
                    continue  # a thread born meanwhile, not yet ours: the next pass has it
                event, sig = ptrace.stop_event(status), os.WSTOPSIG(status)
                if event == ptrace.PTRACE_EVENT_CLONE:
                    self.traced.add(ptrace.event_message(tid))
                if event == ptrace.PTRACE_EVENT_STOP and sig in STOP_SIGNALS:
                    held[tid] = LISTEN
                else:
                    held[tid] = freeze.signal_to_return(status) if event == 0 else 0

    def dump_on_signal(self, tid: int, sig: int) -> None:
        noticed, fired = time.monotonic_ns(), time.time()
        # Noted first: whatever happens next, letting go of the target delivers it.
        self.held[tid] = sig
        info = siginfo(tid)
        crash = self.crash and sig in CRASH_SIGNALS and would_kill(self.pid, tid, sig)
        trigger = "crash" if crash else "signal"
        exception = ExceptionInfo(thread_id=tid, code=sig, flags=info.code, address=info.address)
        self.hold()
        self.dump(noticed, fired, trigger, float(sig), exception, last=tid,
                  final=trigger == "crash")

    def dump_on_request(self, trigger: str, value: float, fired: float) -> None:
        noticed = time.monotonic_ns()
        self.hold()
        self.dump(noticed, fired, trigger, value, None, None, final=False)

    def dump(self, noticed: int, fired: float, trigger: str, value: float,
             exception: ExceptionInfo | None, last: int | None, final: bool) -> None:
        error: str | None = None
        result = None
        try:
            with snapshot_held(self.pid, list(self.held), noticed) as snap:
                result = files.write(snap, self.folder, trigger, value, self.dump_type,
                                     self.compress, exception, pause_seconds=0.0,
                                     triggered_at=fired)
        except Exception as exc:  # whatever failed, the target must get its signal back
            error = f"{exc}" or type(exc).__name__
        self.remaining -= 1 if result is not None else 0
        self.last_dump = time.monotonic()
        final = final or self.remaining <= 0
        self.resume(final, last)
        resumed = time.monotonic_ns()
        if result is not None:
            payload = dataclasses.asdict(result)
            payload["dump_type"] = int(result.dump_type)
            payload["pause_seconds"] = (resumed - noticed) / 1e9
            self.emit(event="dump", result=payload)
        else:
            self.emit(event="error", message=error or "the dump failed")
        if final:
            self.emit(event="done", remaining=self.remaining)

    def resume(self, detach: bool, last: int | None = None) -> None:
        """Let every held thread go with what its stop swallowed: continue, or detach.

        *last* (the thread that got the signal) goes last, and otherwise the leader: for a
        crash, that delivery ends the process; a dead leader is collected after the others.
        """
        held, self.held = self.held, {}
        for tid in sorted(held, key=lambda t: (t == last, t == self.pid)):
            sig = held[tid]
            try:
                if detach:
                    ptrace.detach(tid, max(sig, 0))
                elif sig == LISTEN:
                    ptrace.listen(tid)
                else:
                    ptrace.cont(tid, sig)
            except errors.ProcessNotFoundError:
                self.traced.discard(tid)
        if detach:
            self.traced.clear()
            self.finished = True

    # --- the end -----------------------------------------------------------------------
    def finish_exited(self, status: int | None) -> None:
        self.finished = True
        self.traced.clear()
        self.emit(event="exited", status=status)

    def release_all(self) -> None:
        """Let go of the target: stop each thread, then detach it with what its stop held."""
        if self.finished or not (self.traced or self.held):
            return
        with contextlib.suppress(errors.SnapshotError):
            self.hold()
        self.resume(detach=True)


def _tracer_of(pid: int, tid: int) -> int:
    try:
        status = procfs.parse_status(procfs.read_text(f"/proc/{pid}/task/{tid}/status"))
    except OSError:
        return 0
    return int(status.get("TracerPid", "0") or 0)


def main() -> None:
    # Ctrl-C reaches our owner, which closes our stdin: we let go of the target then.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    freeze.block_child_signals()
    watcher = Watcher(json.loads(sys.argv[1]))
    try:
        watcher.run()
    except BaseException as exc:
        watcher.release_all()
        watcher.emit(event="error", message=str(exc) or type(exc).__name__, fatal=True,
                     errno=getattr(exc, "errno", None))
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
