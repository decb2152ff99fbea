"""One target captured by the tracer helper, and what must be undone for it.

The helper's side of every capture mode shares this: the target's lock, the stop, the
thread chosen for injected calls and the trampolines' place, the clone and its zombie,
and the release.  The modes themselves are in stack_capture, precopy_arm and precopy.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from types import ModuleType

from .. import errors
from . import arch as arch_module
from . import dont_fork, inject, ledger, procfs, ptrace, vm_flags
from .capture_data import CaptureData, ThreadState
from .freeze import Freezer

# A thread that does not stop for this long (state D: a vfork parent) defers the reap.
REAP_STOP_TIMEOUT = 2.0

Registers = dict[int, tuple[bytes, bytes, bytes | None]]


class Session:
    """One captured target and what must be undone for it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.arch: ModuleType = arch_module.current()
        self.freezer = Freezer(pid)
        self.lock: ledger.TargetLock | None = None
        self.clone: int | None = None
        self.clone_in_target: int | None = None
        self.code_at = 0  # the trampolines' place, in the target's vDSO and the clone's
        self.code_before = b""  # what the target's vDSO padding held there before our calls
        self.warnings: list[str] = []
        self.reap_pause_ns = 0
        self.fit = True  # False: a thread is still seized but never stopped; we must exit
        self.dont_fork: list[tuple[int, int]] = []  # MADV_DONTFORK ranges a clone must hold
        self.dont_fork_problems: list[str] = []
        self.uffd: int | None = None  # a pre-copy's userfaultfd of the target (precopy_arm)

    def capture(self, want_clone: bool, live_fallback: bool) -> tuple[CaptureData, int]:
        """A clone capture, or a frozen one (see tracer.capture for the other modes)."""
        host = self._host_files()
        try:
            stale = self.take_target()
            # Whatever does not need the target stopped is read before or after the pause.
            maps = procfs.parse_maps(procfs.read_text(f"/proc/{self.pid}/maps"))
            flags = vm_flags.read(self.pid)  # not while stopped: smaps walks every page table
            self.dont_fork = vm_flags.dont_fork_ranges(maps, flags)
            self.freezer.stop_all()
            stopped_ns = time.monotonic_ns()
            registers = self.stopped_registers()
            clone_ns = None
            reason = None
            if want_clone or stale:
                started = time.monotonic_ns()
                reason = self._inject_all(registers, maps, want_clone, stale)
                clone_ns = time.monotonic_ns() - started if want_clone else None
            assert self.lock is not None
            if self.clone is not None:
                self.freezer.resume_all()
                self.lock.release()  # the target runs and is not traced: others may go on
            elif want_clone and not live_fallback:
                raise errors.SnapshotUnsupportedError(
                    f"pid {self.pid} cannot be cloned: {reason}; pass live_fallback=True "
                    "to dump it frozen instead (or capture without VA_CLONE)",
                    function="clone", pid=self.pid)
            else:
                self.lock.hold_frozen()
            # The clone's address space, fds and environment are the target's at the instant.
            source = self.clone if self.clone is not None else self.pid
            data = self._process_files(source, registers, host)
            data.fallback_reason = reason if want_clone else None
            data.vm_flags = flags
            data.dont_fork = self.dont_fork
            data.dont_fork_problem = "; ".join(self.dont_fork_problems) or None
            data.first_stop_ns = self.freezer.first_stop_ns or stopped_ns
            data.resumed_ns = self.freezer.resumed_ns
            data.finished_ns = self.freezer.resumed_ns or time.monotonic_ns()
            data.clone_pid = self.clone
            data.clone_ns = clone_ns
            mem_fd = os.open(f"/proc/{source}/mem", os.O_RDONLY | os.O_CLOEXEC)
            return data, mem_fd
        except BaseException:
            self.release()
            raise

    def take_target(self) -> list[int]:
        """Before any stop: the target's lock (our dumpers take turns: another one's helper
        traces it until it lets go), the target checked, clones of dead tracers finished;
        the zombies of ours found in it, to be reaped inside the stop."""
        if self.lock is None or self.lock.fd < 0:
            self.lock = ledger.TargetLock(self.pid)
        procfs.check_target(self.pid)
        self.lock.finish_orphans()
        stale, _ = self.lock.our_zombies()
        return stale

    def let_go(self) -> None:
        """After a stop that made no clone: the target runs and is not traced, so our other
        dumpers may go on (a clone keeps the lock object, to reap at the release)."""
        if self.lock is not None:
            self.lock.release()
            if self.clone is None:
                self.lock = None
        self.fit = self.fit and not self.freezer.unstopped

    @contextlib.contextmanager
    def injecting(self, registers: Registers, maps: list[procfs.Mapping]) -> Iterator[int]:
        """With every thread stopped: a thread that passes the per-thread checks for the
        injected calls of the block, with self.code_at the trampolines' place.  The vDSO's
        padding gets its bytes back after the block, unless the block failed (a thread may
        then still be on its way through a trampoline).  Raises InjectionRefused."""
        tid = self._injectable(registers)
        self.code_at = inject.trampoline_address(tid, maps, len(self.arch.TRAMPOLINES))
        self.code_before = inject.saved_code(tid, self.code_at, self.arch)
        yield tid
        self._put_back_code(tid, self.code_before, [r[0] for r in registers.values()])

    def reap_stale(self, registers: Registers, maps: list[procfs.Mapping],
                   stale: list[int]) -> None:
        """Inside a stop that injects nothing else: reap zombies of earlier captures."""
        if not stale:
            return
        try:
            with self.injecting(registers, maps) as tid:
                self._reap_into(tid, registers[tid][0], stale)
        except inject.InjectionRefused as exc:
            self.warnings.append(f"{len(stale)} zombie clone(s) of an earlier capture "
                                 f"left in pid {self.pid}: {exc.strerror}")

    def _inject_all(self, registers: Registers, maps: list[procfs.Mapping], want_clone: bool,
                    stale: list[int]) -> str | None:
        """With every thread stopped: make the clone, reap stale zombies of ours; why the
        clone could not be made, or None."""
        try:
            with self.injecting(registers, maps) as tid:
                self._reap_into(tid, registers[tid][0], stale)
                reason = self._make_clone(tid, registers[tid][0]) if want_clone else None
        except inject.InjectionRefused as exc:
            if stale:
                self.warnings.append(f"{len(stale)} zombie clone(s) of an earlier capture "
                                     f"left in pid {self.pid}: {exc.strerror}")
            return str(exc.strerror)
        return reason

    def _make_clone(self, tid: int, saved: bytes) -> str | None:
        assert self.lock is not None
        with dont_fork.forkable(self.arch, tid, saved, self.code_at,
                                  self.dont_fork) as made:
            self.lock.note(f"attempt {ledger.now_ticks()}")
            result = inject.run(self.arch, tid, made.saved, self.code_at, self.arch.CLONE_TRAP,
                                self.arch.SYS_CLONE, (0, 0, 0, 0, 0))
            if result.child is not None:
                self._note_clone(result.child, result.value)
                made.give_back(result.child)
                # The clone's vDSO as the target had it before any of our calls.
                ptrace.write_memory(result.child, self.code_at, self.code_before)
        self.dont_fork_problems = made.problems
        if result.value < 0 or result.child is None:
            return f"clone() in the target failed: {os.strerror(-result.value)}"
        self.clone = result.child
        self.clone_in_target = result.value
        return None

    def _put_back_code(self, tid: int, earlier: bytes, registers: list[bytes]) -> None:
        inject.put_back_code(tid, self.code_at, earlier,
                             [self.arch.instruction_pointer(r) for r in registers])

    def _note_clone(self, child: int, in_target: int) -> None:
        assert self.lock is not None
        with contextlib.suppress(OSError, ValueError, IndexError):
            start = procfs.parse_stat(procfs.read_text(f"/proc/{child}/stat"))[21]
            self.lock.note(f"clone {in_target} {start}")

    def _injectable(self, registers: Registers) -> int:
        """A stopped thread we may run a call in; the main thread preferred."""
        reasons = []
        for tid in sorted(registers, key=lambda t: t != self.pid):
            reason = inject.refusal(self.pid, tid, registers[tid][0], self.arch)
            if reason is None:
                return tid
            reasons.append(reason)
        raise inject.InjectionRefused("; ".join(reasons[:3]) or "no thread is stopped",
                                      function="clone", pid=self.pid)

    def _reap_into(self, tid: int, saved: bytes, zombies: list[int]) -> list[int]:
        """Inject wait4(z, NULL, __WALL|WNOHANG) for each zombie; those reaped."""
        reaped = []
        for zombie in zombies:
            result = inject.run(self.arch, tid, saved, self.code_at, self.arch.SYSCALL_TRAP,
                                self.arch.SYS_WAIT4, (zombie, 0, ptrace.WALL | os.WNOHANG, 0))
            if result.value == zombie:
                reaped.append(zombie)
        if zombies and self.lock is not None:
            self.lock.forget(reaped)
        return reaped

    def stopped_registers(self) -> dict[int, tuple[bytes, bytes, bytes | None]]:
        """Every stopped thread's registers; a task whose register set is not ours is refused."""
        registers = {tid: self._registers(tid) for tid in sorted(self.freezer.stopped)}
        if any(len(regs[0]) != self.arch.REGS_SIZE for regs in registers.values()):
            raise errors.SnapshotUnsupportedError(
                f"pid {self.pid} is not a {self.arch.MACHINE} process (a 32-bit task?): "
                f"its registers cannot be dumped by this backend", function="capture",
                pid=self.pid)
        return registers

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

    def release(self) -> None:
        """Put the target back as it was: write tracking dropped, clone killed and reaped,
        every thread running."""
        if self.uffd is not None:  # the last fd closed: the kernel drops the write tracking
            os.close(self.uffd)
            self.uffd = None
        if self.lock is not None and self.lock.fd < 0:
            try:
                self.lock = ledger.TargetLock(self.pid)
            except errors.SnapshotError as exc:
                self.lock = None
                if not isinstance(exc, errors.TargetExitedError):
                    self.warnings.append(f"the clone's zombie in pid {self.pid} is not reaped "
                                         f"yet ({exc}); a later capture of this pid reaps it")
        try:
            if self.clone is not None:
                inject.kill_clone(self.clone)
        finally:
            try:
                self.freezer.resume_all()
            finally:
                self.clone = None
                self.clone_in_target = None
                try:
                    self._reap_clones()
                finally:
                    self.fit = self.fit and not self.freezer.unstopped
                    if self.lock is not None:
                        self.lock.release()
                        self.lock = None

    def _reap_clones(self) -> None:
        """Reap every zombie of ours in the target, with all its threads stopped (so that
        none can install a seccomp filter meanwhile); else keep the record and say so."""
        if self.lock is None:
            return
        self.lock.finish_orphans()
        zombies, _ = self.lock.our_zombies()
        if not zombies:
            self.lock.forget([])
            return
        freezer = Freezer(self.pid)
        try:
            maps = procfs.parse_maps(procfs.read_text(f"/proc/{self.pid}/maps"))
            freezer.stop_all(timeout=REAP_STOP_TIMEOUT)
            registers: Registers = {tid: (self.arch.read_registers(tid), b"", None)
                         for tid in freezer.stopped}
            with self.injecting(registers, maps) as tid:
                reaped = self._reap_into(tid, registers[tid][0], zombies)
            if len(reaped) < len(zombies):
                raise errors.SnapshotError("wait4() in the target did not reap it")
        except (errors.SnapshotError, OSError) as exc:
            if not isinstance(exc, errors.TargetExitedError):
                self.warnings.append(
                    f"the clone's zombie in pid {self.pid} is not reaped yet ({exc}); a later "
                    "capture of this pid reaps it when it can, else it goes when the target "
                    "exits")
        finally:
            freezer.resume_all()
            self.fit = self.fit and not freezer.unstopped
            if freezer.first_stop_ns is not None and freezer.resumed_ns is not None:
                self.reap_pause_ns += freezer.resumed_ns - freezer.first_stop_ns
