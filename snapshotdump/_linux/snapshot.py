"""The Linux Snapshot: a tracer helper stops and clones the target; the dump is written here."""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import _dest, _spawn, errors
from .._version import __version__
from ..callbacks import DumpCallback
from ..flags import CaptureFlags, CaptureMemory, MiniDumpType
from ..snapshot import (
    ExceptionInfo,
    HandleInfo,
    Performance,
    ProcessInfo,
    RegionInfo,
    Snapshot,
    ThreadInfo,
    UserStream,
    WriteOutcome,
)
from . import channel, clone_stream, messages, precopy, procfs
from .capture_data import CaptureData

if TYPE_CHECKING:
    from ..minidump.file import DumpFile
    from .dump.plan import DumpPlan

HELPER_EXIT_TIMEOUT = 30.0


class HelperExitedError(errors.SnapshotError):
    """The tracer helper is gone (and with it the snapshot it held)."""


class Helper:
    """The tracer helper process and our end of its channel; one capture at a time."""

    def __init__(self) -> None:
        self.owner = os.getpid()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Isolated, on this package's own files: never code from the caller's folder.
            self.process = subprocess.Popen(
                _spawn.python_argv("snapshotdump._linux.tracer", str(theirs.fileno()),
                                   _spawn.PACKAGE_DIR, __version__),
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, start_new_session=True)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours
        self._owed = 0  # answers to requests whose wait was interrupted, still to be read
        self.released: messages.Released | None = None

    def request(self, message: messages.Request,
                fds: list[int] | None = None) -> tuple[object, list[int]]:
        """Send *message* (with *fds*) and wait for its answer: (value, fds), or the
        helper's error raised here.  The one exchange function of the dumper's side."""
        while self._owed:  # a wait for an answer was interrupted: that answer comes first
            try:
                _payload, fds = self._answer()
            except (errors.SnapshotError, channel.MessageDropped) as exc:
                if isinstance(exc, HelperExitedError):
                    raise
            else:
                for fd in fds:
                    os.close(fd)
        self._owed += 1
        channel.send(self.sock, message, fds)
        return self._answer()

    def _answer(self) -> tuple[object, list[int]]:
        try:
            answer = self.reply()
        except (errors.SnapshotError, channel.MessageDropped):
            self._owed -= 1  # an answer was read all the same
            raise
        self._owed -= 1
        return answer

    def reply(self) -> tuple[object, list[int]]:
        """The helper's next answer (value, fds); its error re-raised here."""
        try:
            answer, fds = channel.receive(self.sock)
        except EOFError:
            code = self.process.wait()
            raise HelperExitedError(
                f"the tracer helper exited unexpectedly (status {code})",
                function="capture") from None
        if isinstance(answer, messages.Reply):
            return answer.value, fds
        for fd in fds:
            os.close(fd)
        if isinstance(answer, messages.Failure):
            raise answer.error
        raise errors.SnapshotError(f"the tracer helper answered out of step: {answer!r:.200}")

    def release(self) -> bool:
        """End the current session (the clone killed and reaped, threads detached); True if
        the helper is fit to serve another capture.  What it reports is kept in released."""
        try:
            payload, _ = self.request(messages.Release())
        except (OSError, EOFError, errors.SnapshotError):
            self.close()
            return False
        if isinstance(payload, messages.Released):
            self.released = payload
            _warn(payload)
            if not payload.fit:
                self.close()
                return False
        return True

    def reap(self, pid: int) -> None:
        """Have this helper reap zombies of ours that a dead helper left in *pid*."""
        payload, _ = self.request(messages.Reap(pid))
        if isinstance(payload, messages.Released):
            _warn(payload)
            if not payload.fit:
                raise errors.SnapshotError("the tracer helper could not stop a thread")

    def close(self) -> None:
        """End the helper: it sees EOF, releases anything it still holds and exits."""
        self.sock.close()
        try:
            self.process.wait(timeout=HELPER_EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class _HelperPool:
    """Idle helpers kept for the next capture: starting Python costs far more than a capture."""

    MAX_IDLE = 2

    def __init__(self) -> None:
        self._idle: list[Helper] = []
        self._lock = threading.Lock()

    def acquire(self) -> Helper:
        with self._lock:
            while self._idle:
                helper = self._idle.pop()
                if helper.owner == os.getpid() and helper.process.poll() is None:
                    return helper
        return Helper()

    def give_back(self, helper: Helper) -> messages.Released | None:
        """Release the helper's session and keep it for later; what the release reported."""
        helper.released = None
        if not helper.release():
            return helper.released
        released = helper.released
        with self._lock:
            if len(self._idle) < self.MAX_IDLE and helper.owner == os.getpid():
                self._idle.append(helper)
                return released
        helper.close()
        return released

    def close_all(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for helper in idle:
            helper.close()


def _warn(released: messages.Released) -> None:
    for text in released.warnings:
        warnings.warn(text, RuntimeWarning, stacklevel=3)


HELPERS = _HelperPool()
atexit.register(HELPERS.close_all)


class LinuxSnapshot(Snapshot):
    """A copy-on-write clone of the target (or, with ``is_live``, the target held frozen)."""

    def __init__(self, flags: CaptureFlags, helper: Helper | None, data: CaptureData,
                 mem_fd: int, uffd_fd: int | None = None) -> None:
        """*helper* is the tracer helper that holds the snapshot; None only for a frozen
        target that the calling process itself traces (the crash watcher)."""
        memory = CaptureMemory(data.memory)
        super().__init__(data.pid, flags, is_live=not data.cloned and memory is CaptureMemory.ALL,
                         memory=memory)
        self._helper = helper
        self._data = data
        self._mem_fd = mem_fd
        self._uffd_fd = uffd_fd  # a pre-copy snapshot's userfaultfd of the target
        self._released_ns: int | None = None
        self._resumed_ns = data.resumed_ns  # as the helper clocked it (see _release)
        self._reap_pause_ns = 0
        self._pauses = [self._pause_of(data)]
        self._precopy_stats: precopy.Statistics | None = None

    @property
    def fallback_reason(self) -> str | None:
        """Why the snapshot is frozen rather than cloned, when live_fallback was used."""
        return self._data.fallback_reason

    def _release(self) -> None:
        try:
            if self._uffd_fd is not None:
                os.close(self._uffd_fd)
            os.close(self._mem_fd)
        finally:
            if self._helper is not None:
                self._give_back(self._helper)

    def _give_back(self, helper: Helper) -> None:
        helper_died = helper.process.poll() is not None
        released = HELPERS.give_back(helper)
        self._released_ns = time.monotonic_ns()
        if released is not None:
            self._resumed_ns = released.resumed_ns or self._data.resumed_ns
            self._reap_pause_ns = released.reap_pause_ns
        if released is None and (helper_died or helper.process.poll() is not None):
            _reap_after_helper_death(self.pid)

    def _write(
        self, out: _dest.Output, dump_type: MiniDumpType, exception: ExceptionInfo | None,
        user_streams: Sequence[UserStream], callback: DumpCallback | None,
        include_dont_dump: bool,
    ) -> WriteOutcome:
        from .dump import writer

        try:
            if self._uffd_fd is not None and dump_type & MiniDumpType.WITH_FULL_MEMORY:
                size, plan = self._write_precopy(out.fd, dump_type, exception, user_streams,
                                                 callback, include_dont_dump)
            else:
                size, plan = writer.write(
                    out.fd, self._data, self._mem_fd, dump_type, exception, user_streams,
                    callback, self._stream_from_clone if self._data.cloned else None,
                    include_dont_dump)
        except OSError as exc:
            if not isinstance(exc, errors.SnapshotError) and self._frozen_target_died():
                raise self._exited_error(exc.errno) from exc
            raise
        if self._frozen_target_died():
            # A frozen target that died mid-dump reads as zeros: the dump would be a lie.
            raise self._exited_error(errno.ESRCH)
        out.size = size
        return WriteOutcome(len(plan.threads), len(plan.modules), tuple(plan.skipped),
                            python_stacks_skipped=plan.python_stacks_skipped)

    def _write_precopy(
        self, fd: int, dump_type: MiniDumpType, exception: ExceptionInfo | None,
        user_streams: Sequence[UserStream], callback: DumpCallback | None,
        include_dont_dump: bool,
    ) -> tuple[int, DumpPlan]:
        assert self._uffd_fd is not None and self._helper is not None
        helper = self._helper

        def finish(state: precopy.State) -> tuple[precopy.State, CaptureData]:
            answer, _fds = helper.request(messages.FinishPrecopy(state), [fd])
            assert isinstance(answer, tuple)
            state, data = answer
            assert isinstance(state, precopy.State) and isinstance(data, CaptureData)
            return state, data

        size, plan, data, stats = precopy.write(
            fd, self.pid, self._uffd_fd, self._mem_fd, finish,
            self._data, dump_type, exception, user_streams, callback, include_dont_dump)
        self._data = data  # the snapshot is now the target at this dump's final stop
        self._resumed_ns = data.resumed_ns
        self._pauses.append(self._pause_of(data))
        self._precopy_stats = stats
        return size, plan

    @staticmethod
    def _pause_of(data: CaptureData) -> float:
        return ((data.resumed_ns or data.first_stop_ns) - data.first_stop_ns) / 1e9

    def _stream_from_clone(self, out: DumpFile, jobs: Sequence[tuple[int, int, int]]) -> bool:
        """Have the clone write its own memory into the dump; False if it cannot here."""
        return self._helper is not None and clone_stream.receive(self._helper, out, jobs) is None

    def _frozen_target_died(self) -> bool:
        """Only a frozen dump reads the target itself; a clone or a stack copy holds its own."""
        return self.is_live and not _alive(self.pid)

    def _exited_error(self, code: int | None) -> errors.TargetExitedError:
        return errors.TargetExitedError(
            f"pid {self.pid} exited while its dump was written; the partial dump was removed",
            errno=code, function="write_dump", pid=self.pid)

    @property
    def process(self) -> ProcessInfo:
        self._check_open()
        data = self._data
        status = procfs.parse_status(data.status)
        stat = procfs.parse_stat(data.stat)
        ticks = data.clock_ticks or 100
        vm = {key: int(status.get(key, "0 kB").split()[0]) * 1024 for key in
              ("VmSize", "VmPeak", "VmRSS", "VmHWM")}
        return ProcessInfo(
            pid=data.pid, parent_pid=int(status.get("PPid", "0") or 0),
            image_path=data.exe or None,
            create_time=data.boot_time + int(stat[procfs.STAT_STARTTIME]) / ticks,
            user_seconds=int(stat[procfs.STAT_UTIME]) / ticks,
            kernel_seconds=int(stat[procfs.STAT_STIME]) / ticks,
            virtual_size=vm["VmSize"], peak_virtual_size=vm["VmPeak"],
            working_set_size=vm["VmRSS"], peak_working_set_size=vm["VmHWM"],
            page_fault_count=int(stat[procfs.STAT_MINFLT]) + int(stat[procfs.STAT_MAJFLT]),
        )

    @property
    def performance(self) -> Performance:
        """Pause: from the first thread interrupted to the last one detached, as the helper
        clocked it (a frozen target: at the release; still counting while it is open),
        plus the short stop that reaps the clone's zombie at the release.  A pre-copy
        snapshot's is that of its last stop; pauses_seconds has each stop's."""
        data = self._data
        resumed = self._resumed_ns or self._released_ns or time.monotonic_ns()
        return Performance(
            pause_seconds=(resumed - data.first_stop_ns + self._reap_pause_ns) / 1e9,
            total_seconds=(data.finished_ns - data.first_stop_ns) / 1e9,
            va_clone_seconds=data.clone_ns / 1e9 if data.clone_ns is not None else None,
            capture_mode=data.mode, capture_mode_reason=data.mode_reason,
            pauses_seconds=tuple(self._pauses) if data.memory == "precopy" else (),
            precopy_rounds=self._precopy_stats.rounds if self._precopy_stats else None,
            precopy_final_bytes=self._precopy_stats.final_bytes if self._precopy_stats
            else None,
        )

    def threads(self) -> list[ThreadInfo]:
        self._check_open()
        from . import arch

        module = arch.current()
        ticks = self._data.clock_ticks or 100
        return [ThreadInfo(
            thread_id=t.tid, name=t.name,
            instruction_pointer=module.instruction_pointer(t.registers),
            stack_pointer=module.stack_pointer(t.registers),
            create_time=self._data.boot_time + int(t.stat[procfs.STAT_STARTTIME]) / ticks,
            user_seconds=int(t.stat[procfs.STAT_UTIME]) / ticks,
            kernel_seconds=int(t.stat[procfs.STAT_STIME]) / ticks,
            state=t.stat[procfs.STAT_STATE],
        ) for t in self._data.threads]

    def handles(self) -> list[HandleInfo]:
        self._check_open()
        from .dump.handle_data import fd_type

        return [HandleInfo(handle=fd, type_name=fd_type(target), object_name=target)
                for fd, target in self._data.fds]

    def regions(self) -> list[RegionInfo]:
        self._check_open()
        from ..minidump.format import MEM_COMMIT, MEM_MAPPED, MEM_PRIVATE, protection

        return [RegionInfo(
            base=m.start, size=m.size, protect=protection(m.perms), state=MEM_COMMIT,
            type=MEM_MAPPED if m.path.startswith("/") else MEM_PRIVATE,
            allocation_base=m.start, mapped_file=m.path or None, permissions=m.perms,
        ) for m in procfs.parse_maps(self._data.maps)]


def _alive(pid: int) -> bool:
    try:
        state = procfs.parse_stat(procfs.read_text(f"/proc/{pid}/stat"))[2]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _reap_after_helper_death(pid: int) -> None:
    """A helper that died holding a snapshot left its clone's zombie: a fresh helper reaps
    it (best effort; the next capture of *pid* would do it otherwise)."""
    if not _alive(pid):
        return
    try:
        helper = HELPERS.acquire()
    except OSError:
        return
    try:
        helper.reap(pid)
    except (OSError, EOFError, errors.SnapshotError):
        helper.close()
        return
    HELPERS.give_back(helper)


def capture(pid: int, flags: CaptureFlags, live_fallback: bool,
            memory: CaptureMemory = CaptureMemory.ALL) -> LinuxSnapshot:
    with contextlib.suppress(errors.SnapshotPermissionError):
        # Traced may mean: by another of our dumpers, which we wait for; the helper checks
        # again once it holds the target's lock.
        procfs.check_target(pid)
    helper = HELPERS.acquire()
    try:
        if pid == os.getpid():
            from . import ptrace

            # Under Yama ptrace_scope=1 only ancestors may trace: name our child explicitly.
            with contextlib.suppress(Exception):
                ptrace.allow_tracer(helper.process.pid)
        payload, fds = helper.request(messages.Capture(
            pid, bool(flags & CaptureFlags.VA_CLONE), live_fallback, memory.value))
        assert isinstance(payload, CaptureData) and len(fds) == 1
        uffd_fd = None
        if payload.memory == "precopy":
            try:
                _none, uffd_fds = helper.request(messages.TakeUffd())
            except BaseException:
                os.close(fds[0])
                raise
            uffd_fd = uffd_fds[0]
        return LinuxSnapshot(flags, helper, payload, fds[0], uffd_fd)
    except BaseException:
        if HELPERS.give_back(helper) is None and helper.process.poll() is not None:
            _reap_after_helper_death(pid)
        raise
