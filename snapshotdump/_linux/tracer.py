"""The tracer helper process: it stops, clones and releases the target for the dumper.

Tracing from a separate process means the dumper can even snapshot itself, and
that if the dumper is killed the helper sees its end of the channel close and
still puts everything back: the clone killed and reaped, every thread detached.

Run as ``python -m snapshotdump._linux.tracer FD``, by :mod:`.snapshot` only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from types import ModuleType

from .. import _spawn, errors
from . import arch as arch_module
from . import (
    channel,
    clone_stream,
    dont_fork,
    freeze,
    inject,
    messages,
    precopy_arm,
    procfs,
    ptrace,
    stack_capture,
    vm_flags,
)
from .capture_data import CaptureData, ThreadState
from .freeze import Freezer


class Session:
    """One captured target and what must be undone for it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.arch: ModuleType = arch_module.current()
        self.freezer = Freezer(pid)
        self.clone: int | None = None
        self.clone_in_target: int | None = None
        self.code_at = 0  # where calls are injected into the clone (the vDSO's header)
        self.dont_fork: list[tuple[int, int]] = []  # MADV_DONTFORK ranges a clone must hold
        self.dont_fork_problems: list[str] = []
        self.uffd: int | None = None  # a pre-copy's userfaultfd of the target (precopy_arm)

    def capture(self, want_clone: bool, live_fallback: bool,
                memory: str = "all") -> tuple[CaptureData, int]:
        if memory == "stacks":
            return stack_capture.capture(self)
        if memory == "precopy":
            return precopy_arm.capture(self, live_fallback)
        status_fields = procfs.check_target(self.pid)
        # Whatever does not need the target stopped is read before or after the pause.
        reason = self._clone_refusal(status_fields) if want_clone else None
        maps = procfs.parse_maps(procfs.read_text(f"/proc/{self.pid}/maps"))
        code_at = inject.code_address(maps, 0)
        flags = vm_flags.read(self.pid)  # not while stopped: smaps walks every page table
        self.dont_fork = vm_flags.dont_fork_ranges(maps, flags)
        host = self._host_files()
        try:
            self.freezer.stop_all()
            stopped_ns = time.monotonic_ns()
            registers = {tid: self._registers(tid) for tid in sorted(self.freezer.stopped)}
            if any(len(regs[0]) != self.arch.REGS_SIZE for regs in registers.values()):
                raise errors.SnapshotUnsupportedError(
                    f"pid {self.pid} is not a {self.arch.MACHINE} process (a 32-bit task?): "
                    f"its registers cannot be dumped by this backend", function="capture",
                    pid=self.pid)
            clone_ns = None
            if want_clone and reason is None:
                started = time.monotonic_ns()
                reason = self._make_clone(registers, code_at)
                clone_ns = time.monotonic_ns() - started
            if self.clone is not None:
                self.freezer.resume_all()
                resumed_ns: int | None = time.monotonic_ns()
            else:
                resumed_ns = None
                if want_clone and not live_fallback:
                    raise errors.SnapshotUnsupportedError(
                        f"pid {self.pid} cannot be cloned: {reason}; pass live_fallback=True "
                        "to dump it frozen instead (or capture without VA_CLONE)",
                        function="clone", pid=self.pid)
            # The clone's address space, fds and environment are the target's at the instant.
            source = self.clone if self.clone is not None else self.pid
            data = self._process_files(source, registers, host)
            data.fallback_reason = reason if want_clone else None
            data.vm_flags = flags
            data.dont_fork = self.dont_fork
            data.dont_fork_problem = "; ".join(self.dont_fork_problems) or None
            data.first_stop_ns = self.freezer.first_stop_ns or stopped_ns
            data.resumed_ns = resumed_ns
            data.finished_ns = resumed_ns or time.monotonic_ns()
            data.clone_pid = self.clone
            data.clone_ns = clone_ns
            mem_fd = os.open(f"/proc/{source}/mem", os.O_RDONLY | os.O_CLOEXEC)
            return data, mem_fd
        except BaseException:
            self.release()
            raise

    def _registers(self, tid: int) -> tuple[bytes, bytes, bytes | None]:
        return (self.arch.read_registers(tid), self.arch.read_fp_registers(tid),
                ptrace.xstate(tid))

    def _thread(self, tid: int, registers: tuple[bytes, bytes, bytes | None]) -> ThreadState:
        base = f"/proc/{self.pid}/task/{tid}"
        try:
            stat = procfs.parse_stat(procfs.read_text(f"{base}/stat"))
        except (OSError, ValueError):
            stat = [str(tid), "", "X", *["0"] * 49]  # it exited since the snapshot
        return ThreadState(
            tid=tid,
            name=procfs.read_optional(f"{base}/comm").decode("utf-8", "replace").rstrip("\n"),
            registers=registers[0], fp_registers=registers[1], xstate=registers[2], stat=stat)

    def _host_files(self) -> dict[str, bytes]:
        lsb = procfs.read_optional("/etc/lsb-release") or procfs.read_optional("/etc/os-release")
        return {"cpuinfo": procfs.read_optional("/proc/cpuinfo"), "lsb_release": lsb}

    def _process_files(self, source: int, registers: dict[int, tuple[bytes, bytes, bytes | None]],
                       host: dict[str, bytes]) -> CaptureData:
        base = f"/proc/{source}"
        try:
            exe = os.readlink(f"{base}/exe")
        except OSError:
            exe = ""
        return CaptureData(
            pid=self.pid, clone_pid=None,
            threads=[self._thread(tid, regs) for tid, regs in registers.items()],
            maps=procfs.read_text(f"{base}/maps"),
            status=procfs.read_text(f"/proc/{self.pid}/status"),
            stat=procfs.read_text(f"/proc/{self.pid}/stat"),
            cmdline=procfs.read_optional(f"{base}/cmdline"),
            environ=procfs.read_optional(f"{base}/environ"),
            auxv=procfs.read_optional(f"{base}/auxv"),
            fds=procfs.file_descriptors(source), exe=exe,
            cpuinfo=host["cpuinfo"], lsb_release=host["lsb_release"],
            captured_at=time.time(), first_stop_ns=0, resumed_ns=None, finished_ns=0,
            clone_ns=None, boot_time=procfs.boot_time(), clock_ticks=procfs.clock_ticks(),
        )

    def _clone_refusal(self, status_fields: dict[str, str]) -> str | None:
        seccomp = status_fields.get("Seccomp", "0")
        if seccomp not in ("", "0"):
            # A filter could answer clone() by killing the target: never risk it.
            return f"it runs under a seccomp filter (Seccomp: {seccomp})"
        return None

    def _make_clone(self, registers: dict[int, tuple[bytes, bytes, bytes | None]],
                    code_at: int) -> str | None:
        # Prefer a thread stopped by our interrupt: its state is the simplest to put back.
        tid = min(registers, key=lambda t: (self.freezer.stopped.get(t, 0) != 0, t))
        saved = registers[tid][0]
        at = code_at or self.arch.instruction_pointer(saved)
        with dont_fork.forkable(self, tid, saved, at, self.dont_fork) as problems:
            result = inject.run(self.arch, tid, saved, at, self.arch.CLONE_TRAP,
                                self.arch.SYS_CLONE, (0, 0, 0, 0, 0))
        self.dont_fork_problems = problems
        if result.signals and not self.freezer.stopped.get(tid):
            self.freezer.stopped[tid] = result.signals[0]
        if result.value < 0 or result.child is None:
            return f"clone() in the target failed: {os.strerror(-result.value)}"
        self.clone = result.child
        self.clone_in_target = result.value
        self.code_at = at
        return None

    def release(self) -> None:
        """Put the target back as it was: clone killed and reaped, every thread running."""
        if self.uffd is not None:  # the last fd closed: the kernel drops the write tracking
            os.close(self.uffd)
            self.uffd = None
        try:
            if self.clone is not None:
                inject.kill_clone(self.clone)
        finally:
            try:
                self.freezer.resume_all()
            finally:
                clone_in_target, self.clone = self.clone_in_target, None
                self.clone_in_target = None
                if clone_in_target is not None:
                    with contextlib.suppress(errors.SnapshotError, OSError):
                        inject.reap(self.arch, self.pid, clone_in_target)


class _Server:
    """The helper's end of the channel and the session it holds (released if it ends)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.session: Session | None = None

    def serve(self) -> None:
        try:
            while True:
                try:
                    message, received = channel.receive(self.sock)
                except (EOFError, ConnectionError):
                    return
                try:
                    self.answer(message, received)
                except (EOFError, ConnectionError):
                    return
                finally:
                    for fd in received:
                        os.close(fd)
        finally:
            if self.session is not None:
                self.session.release()

    def answer(self, message: object, received: list[int]) -> None:
        """Answer one request.  A session is recorded before anything is sent, so that a
        dumper gone meanwhile still gets it released."""
        sock = self.sock
        if isinstance(message, messages.Capture):
            self.session = session = Session(message.pid)
            try:
                data, mem_fd = session.capture(message.want_clone, message.live_fallback,
                                               message.memory)
            except BaseException as exc:
                self.session = None  # capture() released what it had taken
                channel.send(sock, messages.Failure(_portable(exc)))
                return
            try:
                channel.send(sock, messages.Reply(data), [mem_fd])
            finally:
                os.close(mem_fd)
        elif isinstance(message, messages.Stream):
            if self.session is None:
                channel.send(sock, messages.Reply(messages.Declined("nothing is captured")))
            else:
                clone_stream.serve(self.session, message.regions, sock)
        elif isinstance(message, messages.Free | messages.Abort):
            pass  # slots handed back, or a stop that came after the last piece
        elif isinstance(message, messages.Release):
            # The helper stays for the dumper's next capture; EOF ends it.
            if self.session is not None:
                self.session.release()
                self.session = None
            channel.send(sock, messages.Reply())
        elif isinstance(message, messages.TakeUffd | messages.FinishPrecopy):
            try:
                value, fds = _precopy_step(self.session, message, received)
            except BaseException as exc:
                channel.send(sock, messages.Failure(_portable(exc)))
            else:
                channel.send(sock, messages.Reply(value), fds)
        else:
            channel.send(sock, messages.Failure(errors.SnapshotError(
                f"the tracer helper got an unknown request: {message!r:.200}")))


def serve(sock: socket.socket) -> None:
    _Server(sock).serve()


def _precopy_step(session: Session | None, message: messages.TakeUffd | messages.FinishPrecopy,
                  received: list[int]) -> tuple[object, list[int]]:
    """A pre-copy's requests: its userfaultfd; then the final stop, run here so that
    nothing crosses between processes while the target is stopped."""
    if session is None or session.uffd is None:
        raise errors.SnapshotError("no pre-copy snapshot is held by the tracer helper")
    if isinstance(message, messages.TakeUffd):
        return None, [session.uffd]
    from . import precopy

    state = message.state
    assert isinstance(state, precopy.State) and len(received) == 1
    return precopy.final_stop(session, state, received[0]), []


def _portable(exc: BaseException) -> errors.SnapshotError:
    if isinstance(exc, errors.SnapshotError):
        return exc
    if isinstance(exc, OSError):
        return errors.SnapshotError(f"the tracer helper failed: {exc}", errno=exc.errno)
    return errors.SnapshotError(f"the tracer helper failed: {type(exc).__name__}: {exc}")


def main() -> None:
    # Ctrl-C in the dumper's terminal must not stop the helper halfway through a clone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    freeze.block_child_signals()
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
        f.write("-1000")
    sock = socket.socket(fileno=int(sys.argv[1]))
    # The dumper names its package folder and version: a helper running other code (the
    # package upgraded since the dumper imported it) must not trace anything.
    reason = (_spawn.same_package(sys.argv[2], sys.argv[3]) if len(sys.argv) == 4
              else "it was started without the dumper's package folder and version")
    if reason is not None:
        refuse(sock, f"the tracer helper cannot run: {reason}; reinstall snapshotdump and "
                     "restart the program")
        return
    serve(sock)


def refuse(sock: socket.socket, message: str) -> None:
    """Answer every request with *message* until the dumper hangs up."""
    while True:
        try:
            channel.receive(sock)
            channel.send(sock, ("error", errors.SnapshotError(message, function="capture")))
        except (EOFError, OSError):
            return


if __name__ == "__main__":
    main()
