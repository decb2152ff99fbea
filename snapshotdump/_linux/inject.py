"""Run one system call inside a stopped thread of the target, then put the thread back exactly.

The call runs from a few bytes of code written over the ELF header of the vDSO
(which no thread executes), ends in an int3 that returns the thread to us, and
the bytes and every register are then restored.  The thread is left in a
signal-delivery-stop, so when it is detached the kernel's own restart logic sees
its original registers: a read() or nanosleep() it was blocked in restarts by
itself, and the program never sees EINTR.
"""

from __future__ import annotations

import os
import signal
from types import ModuleType

from .. import errors
from . import procfs, ptrace, rseq
from .freeze import STOP_TIMEOUT_SECONDS, signal_to_return, thread_state, wait_stopped


def code_address(maps: list[procfs.Mapping], fallback: int) -> int:
    for mapping in maps:
        if mapping.path == "[vdso]":
            return mapping.start
    return fallback


class SyscallResult:
    def __init__(self, value: int, child: int | None, signals: list[int]) -> None:
        self.value = value
        self.child = child
        self.signals = signals


def run(arch: ModuleType, tid: int, saved: bytes, at: int, code: bytes, number: int,
        args: tuple[int, ...], timeout: float | None = STOP_TIMEOUT_SECONDS) -> SyscallResult:
    """Execute syscall *number* in stopped thread *tid*; restore it; return what it returned.

    The thread gets its registers back, except that one stopped inside an rseq critical
    section resumes at its abort handler, as after any preemption (see :mod:`.rseq`).

    *timeout* bounds the wait for the call to come back (None: a call meant to block).

    With the clone trampoline, the new process is held stopped, made to die with
    us (PTRACE_O_EXITKILL) and given back the original bytes before this returns.
    """
    cloning = code == arch.CLONE_TRAP
    original = ptrace.read_words(tid, at, len(code))
    ip = arch.instruction_pointer(saved)
    resume_at = rseq.resume_address(tid, ip)
    restored = saved if resume_at == ip else arch.with_instruction_pointer(saved, resume_at)
    trap_at = at + len(code)
    child: int | None = None
    signals: list[int] = []
    ptrace.write_bytes(tid, at, code)
    try:
        if cloning:
            ptrace.set_options(tid, ptrace.PTRACE_O_TRACECLONE)
        arch.write_registers(tid, arch.syscall_registers(saved, at, number, args))
        ptrace.cont(tid)
        while True:
            status = wait_stopped(tid, timeout)
            event = ptrace.stop_event(status)
            sig = os.WSTOPSIG(status)
            if event == ptrace.PTRACE_EVENT_CLONE:
                child = ptrace.event_message(tid)
                _hold_child(child)
                ptrace.cont(tid)
                continue
            if event == 0 and sig == signal.SIGTRAP:
                regs = arch.read_registers(tid)
                if arch.instruction_pointer(regs) == trap_at:
                    break
            if event == 0 and sig != signal.SIGTRAP:
                signals.append(sig)  # a signal that arrived meanwhile: handed back at detach
            ptrace.cont(tid)
        value = arch.syscall_result(regs)
        if child is not None:
            ptrace.write_bytes(child, at, original)
        return SyscallResult(value, child, signals)
    except BaseException:
        if child is not None:
            kill_clone(child)
        raise
    finally:
        ptrace.write_bytes(tid, at, original)
        arch.write_registers(tid, restored)
        if cloning:
            ptrace.set_options(tid, 0)


def _hold_child(child: int) -> None:
    # The clone starts stopped; EXITKILL makes it die with its tracer, whatever happens to us.
    wait_stopped(child)
    ptrace.set_options(child, ptrace.PTRACE_O_EXITKILL)


def kill_clone(child: int) -> None:
    """SIGKILL the clone and collect its exit as its tracer (the target must still reap it)."""
    try:
        os.kill(child, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        while True:
            _, status = os.waitpid(child, ptrace.WALL)
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                return
    except ChildProcessError:
        return


def reap(arch: ModuleType, pid: int, child_in_target: int) -> bool:
    """Inject wait4(child, NULL, __WALL|WNOHANG, NULL) into one thread of *pid*: remove the zombie.

    Only that one thread stops, for well under a millisecond.
    """
    for tid in procfs.task_ids(pid):
        if thread_state(pid, tid) in ("Z", "X"):
            continue
        try:
            ptrace.seize(tid)
        except errors.ProcessNotFoundError:
            continue
        signals: list[int] = []
        try:
            ptrace.interrupt(tid)
            pending = signal_to_return(wait_stopped(tid))
            saved = arch.read_registers(tid)
            at = code_address(procfs.parse_maps(procfs.read_text(f"/proc/{pid}/maps")),
                              arch.instruction_pointer(saved))
            result = run(arch, tid, saved, at, arch.SYSCALL_TRAP, arch.SYS_WAIT4,
                         (child_in_target, 0, ptrace.WALL | os.WNOHANG, 0))
            signals = ([pending] if pending else []) + result.signals
            return result.value == child_in_target
        except errors.TargetExitedError:
            return False
        finally:
            ptrace.detach(tid, signals[0] if signals else 0)
            for extra in signals[1:]:
                os.kill(pid, extra)
    return False
