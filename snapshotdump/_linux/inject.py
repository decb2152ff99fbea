"""Run one system call inside a stopped thread of the target, safely even if we die meanwhile.

The tracer may be killed at any instant (a unit stop, a cgroup kill, the OOM killer),
and the target must then carry on as if it had never been touched.  So the injected
code completes and restores the thread by itself:

* A trampoline in the vDSO's tail padding (the zero bytes between the end of the vDSO
  image and the end of its mapping, which no code and no reader uses) makes the call
  and then calls rt_sigreturn.  It is left there: bytes in that padding are harmless,
  and a thread of a dead tracer may still be on its way through them.
* Below the red zone of the thread's stack goes an rt_sigreturn frame that holds the
  thread's registers, its signal mask and its FPU/vector state, with a system call the
  thread was interrupted in already turned into its restart (see x86_64.resumed_registers).
* The registers are pointed at the trampoline, and only then is every signal blocked.
  From that moment no signal is dequeued by this thread until the frame restores the
  original mask: signals stay pending, in order, with their siginfo, for the target.

When we live, the thread reports the call's result at its syscall-exit stop, and we put
its mask, its registers (the kernel restarts an interrupted call by itself when we
detach) and its stack bytes back; it never runs the rt_sigreturn.  When we die at any
point, the kernel detaches it and it finishes the trampoline on its own.
"""

from __future__ import annotations

import os
import signal
import struct
from collections.abc import Callable
from types import ModuleType

from .. import errors
from . import procfs, ptrace, rseq
from .freeze import STOP_TIMEOUT_SECONDS, wait_stopped

_SYSCALL_STOP = signal.SIGTRAP | 0x80  # PTRACE_O_TRACESYSGOOD


class InjectionRefused(errors.SnapshotUnsupportedError):
    """No code may be run in this thread (a seccomp filter, shadow stacks, no room)."""


def trampoline_address(tid: int, maps: list[procfs.Mapping], length: int) -> int:
    """Where the trampolines go: the vDSO's tail padding, 16-byte aligned."""
    vdso = next((m for m in maps if m.path == "[vdso]"), None)
    if vdso is None:
        raise InjectionRefused("the target has no vDSO to hold the injected code",
                               function="capture", pid=tid)
    header = ptrace.read_memory(tid, vdso.start, 64)
    (section_headers,) = struct.unpack_from("<Q", header, 0x28)
    entry_size, count = struct.unpack_from("<HH", header, 0x3A)
    at = vdso.start + ((section_headers + entry_size * count + 15) & ~15)
    if header[:4] != b"\x7fELF" or at + length > vdso.end:
        raise InjectionRefused("the vDSO has no free tail padding for the injected code",
                               function="capture", pid=tid)
    return int(at)


def refusal(pid: int, tid: int, saved: bytes, arch: ModuleType) -> str | None:
    """Why no call may be injected into stopped thread *tid*, or None.

    Read after every thread is stopped: no thread of the target can then install a filter
    (seccomp's TSYNC reaches every thread) until we let them go.
    """
    try:
        status = procfs.parse_status(procfs.read_text(f"/proc/{pid}/task/{tid}/status"))
    except OSError:
        return f"thread {tid} has exited"
    seccomp = status.get("Seccomp", "0")
    if seccomp not in ("", "0"):
        # A filter may answer the injected call, or rt_sigreturn, by killing the target.
        return f"thread {tid} runs under a seccomp filter (Seccomp: {seccomp})"
    if "shstk" in status.get("x86_Thread_features", ""):
        return f"thread {tid} uses a shadow stack, which rt_sigreturn would check"
    if arch.waits_with_temporary_mask(saved, lambda a, n: ptrace.read_memory(tid, a, n)):
        return f"thread {tid} waits with a temporary signal mask (sigsuspend, ppoll...)"
    return None


class SyscallResult:
    """An injected call's result, and the clone it made (held stopped), if any.  No signal
    is ever taken from the target, so there is none to hand back."""

    def __init__(self, value: int, child: int | None) -> None:
        self.value = value
        self.child = child


def run(arch: ModuleType, tid: int, saved: bytes, at: int, code: bytes, number: int,
        args: tuple[int, ...], timeout: float | None = STOP_TIMEOUT_SECONDS, *,
        clone_of: int | None = None,
        between: Callable[[int], None] | None = None) -> SyscallResult:
    """Execute syscall *number* in stopped thread *tid*; put it back; return the result.

    *saved* are the thread's registers as stopped, *at* the trampoline area (see
    trampoline_address), *code* arch.SYSCALL_TRAP or arch.CLONE_TRAP.  The thread gets its
    registers back, except that one stopped inside an rseq critical section resumes at
    its abort handler, as after any preemption (see :mod:`.rseq`).  *clone_of* is set
    when *tid* is our own clone (it keeps PTRACE_O_EXITKILL).  With arch.CLOSING_TRAP,
    *between* gets the first call's result at its exit stop (the fd is still open in the
    target then), and the target closes it before the thread is put back.

    *timeout* bounds the wait for the call (None: a call meant to block).  With the clone
    trampoline, the new process is held stopped, made to die with us (PTRACE_O_EXITKILL)
    and given back the memory the target had before this call.
    """
    cloning = code == arch.CLONE_TRAP
    ip = arch.instruction_pointer(saved)
    resume_at = rseq.resume_address(tid, ip)
    restored = saved if resume_at == ip else arch.with_instruction_pointer(saved, resume_at)
    mask = ptrace.get_sigmask(tid)
    xstate = ptrace.xstate(tid)
    fpstate = xstate if xstate is not None else arch.read_fp_registers(tid)
    top = arch.stack_pointer(saved) - arch.RED_ZONE
    low, stack, frame = arch.signal_frame(arch.resumed_registers(saved, resume_at), mask,
                                          fpstate, xstate is not None, top)
    _check_stack(tid, low, top)
    earlier_stack = ptrace.read_memory(tid, low, len(frame))
    earlier_code = ptrace.read_memory(tid, at, len(arch.TRAMPOLINES))
    entry = at + arch.TRAMPOLINE_OFFSETS[code]
    keep = ptrace.PTRACE_O_TRACESYSGOOD | (ptrace.PTRACE_O_EXITKILL if clone_of else 0)
    ptrace.write_memory(tid, at, arch.TRAMPOLINES)
    ptrace.write_memory(tid, low, frame)
    ptrace.set_options(tid, keep | (ptrace.PTRACE_O_TRACECLONE if cloning else 0))
    # Registers first, then the mask: a tracer that dies in between leaves a thread that
    # runs the trampoline with its own mask, which is harmless (a handler's frame goes
    # below ours, and rt_sigreturn brings everything back).
    arch.write_registers(tid, arch.trampoline_registers(saved, entry, stack, number, args))
    ptrace.set_sigmask(tid, ptrace.ALL_SIGNALS)
    child: int | None = None
    try:
        value, child = _collect(arch, tid, entry, arch.TRAMPOLINE_EXITS[code], timeout,
                                between)
        if child is not None:
            ptrace.write_memory(child, at, earlier_code)
            ptrace.write_memory(child, low, earlier_stack)
    except BaseException:
        if child is not None:
            kill_clone(child)
        raise
    # The mask before the registers: a death in between lets the thread finish the
    # trampoline (rt_sigreturn), never run on with every signal blocked.
    ptrace.set_sigmask(tid, mask)
    arch.write_registers(tid, restored)
    ptrace.write_memory(tid, low, earlier_stack)
    if clone_of:
        # Only we ever run code in our clone, and it dies with us: its copy of the vDSO
        # can be given back exactly, for a dump read from /proc/CLONE/mem.
        ptrace.write_memory(tid, at, earlier_code)
    ptrace.set_options(tid, keep)
    return SyscallResult(value, child)


def pending_call(arch: ModuleType, tid: int, then: bytes, mask: int, at: int, number: int,
                 args: tuple[int, ...], *, fpu: bool = True) -> tuple[bytes, int, bytes]:
    """Registers that make stopped thread *tid* call *number*(*args*) by itself, through
    the trampoline at *at*, and then go back to registers *then* with signal mask *mask*
    (by rt_sigreturn, from a frame written now below *then*'s red zone).

    Returns (those registers, the frame's lowest address, the bytes it replaced).  Used
    for an undo that must happen even if we die: the thread is given these registers
    before the change the call undoes is made (see dont_fork).  Without *fpu* the frame
    holds only the legacy FXSAVE area (for a *then* that is more injected code, on its
    way back to a frame that has the whole state), so it is small.  Room for one more
    full frame (an inject.run call) must remain below it, or InjectionRefused is raised.
    run_pending makes the call with the tracer alive."""
    resume_at = rseq.resume_address(tid, arch.instruction_pointer(then))
    xstate = ptrace.xstate(tid)
    fpstate = xstate if xstate is not None else arch.read_fp_registers(tid)
    top = arch.stack_pointer(then) - arch.RED_ZONE
    if not fpu:  # the legacy FXSAVE area only, marked as such: rt_sigreturn inits the rest
        fpstate = fpstate[:arch.FXSAVE_SW_RESERVED] + bytes(512 - arch.FXSAVE_SW_RESERVED)
    low, stack, frame = arch.signal_frame(arch.resumed_registers(then, resume_at), mask,
                                          fpstate, fpu and xstate is not None, top)
    _check_stack(tid, low - arch.RED_ZONE - len(xstate or fpstate) - 2048, top)
    earlier = ptrace.read_memory(tid, low, len(frame))
    ptrace.write_memory(tid, at, arch.TRAMPOLINES)  # before any register points there
    ptrace.write_memory(tid, low, frame)
    entry = at + arch.TRAMPOLINE_OFFSETS[arch.SYSCALL_TRAP]
    return arch.trampoline_registers(then, entry, stack, number, args), low, earlier


def run_pending(arch: ModuleType, tid: int, timeout: float | None = STOP_TIMEOUT_SECONDS) -> int:
    """Let stopped thread *tid*, whose registers are a pending_call's, make that call and
    its rt_sigreturn, as it would on its own; the call's result.  It stops at the
    rt_sigreturn's exit, with the registers, mask and FPU state of the frame it returned
    from (so no frame is ever overwritten while a register still points at it)."""
    ptrace.set_options(tid, ptrace.PTRACE_O_TRACESYSGOOD)
    stops = 0
    value = 0
    ptrace.resume_to_syscall(tid)
    while True:
        status = wait_stopped(tid, timeout)
        sig = os.WSTOPSIG(status)
        resend = 0
        if ptrace.stop_event(status) == 0 and sig == _SYSCALL_STOP:
            stops += 1  # the call's entry and exit, then rt_sigreturn's
            if stops == 2:
                value = arch.syscall_result(arch.read_registers(tid))
            elif stops == 4:
                return value
        elif ptrace.stop_event(status) == 0:
            resend = sig  # only what no mask holds back (SIGSTOP, a fault)
        ptrace.resume_to_syscall(tid, resend)


def saved_code(tid: int, at: int, arch: ModuleType) -> bytes:
    """What the trampoline area holds before we write into it (see put_back_code)."""
    return ptrace.read_memory(tid, at, len(arch.TRAMPOLINES))


def put_back_code(tid: int, at: int, earlier: bytes, ips: list[int]) -> None:
    """Give the vDSO's padding back its *earlier* bytes once our calls are done, unless a
    thread (one whose tracer died mid-call) is still on its way through a trampoline:
    *ips* are the stopped threads' instruction pointers."""
    if not any(at <= ip < at + len(earlier) for ip in ips):
        ptrace.write_memory(tid, at, earlier)


def _check_stack(tid: int, low: int, top: int) -> None:
    for mapping in procfs.parse_maps(procfs.read_text(f"/proc/{tid}/maps")):
        if mapping.start <= top <= mapping.end:
            if mapping.start <= low and mapping.writable:
                return
            break
    raise InjectionRefused(
        f"thread {tid} has no room below its stack pointer for a signal frame",
        function="capture", pid=tid)


def _collect(arch: ModuleType, tid: int, entry: int, exits: tuple[int, ...],
             timeout: float | None,
             between: Callable[[int], None] | None) -> tuple[int, int | None]:
    """Let the thread make the calls; (first result, clone child) at the last call's
    syscall-exit stop (*exits*: where each call's syscall instruction ends)."""
    child: int | None = None
    entered = False
    first: int | None = None
    done = 0
    ptrace.resume_to_syscall(tid)
    while True:
        try:
            status = wait_stopped(tid, timeout)
        except errors.TargetExitedError:
            raise
        except errors.SnapshotError:
            status = _interrupt_call(tid)  # a call that blocks: it returns interrupted
        event = ptrace.stop_event(status)
        sig = os.WSTOPSIG(status)
        resend = 0
        if event == ptrace.PTRACE_EVENT_CLONE:
            child = ptrace.event_message(tid)
            _hold_child(child)
        elif event == 0 and sig == _SYSCALL_STOP:
            if entered:
                regs = arch.read_registers(tid)
                if arch.instruction_pointer(regs) == entry + exits[done]:
                    value = arch.syscall_result(regs)
                    first = value if first is None else first
                    done += 1
                    if done == len(exits):
                        return first, child
                    if between is not None:
                        between(value)
                    entered = False
                    ptrace.resume_to_syscall(tid)
                    continue
            entered = True
        elif event == 0:
            # Only what no mask holds back arrives here (SIGSTOP, a fault): it goes on.
            resend = sig
        # A group-stop (PTRACE_EVENT_STOP) stays in force after we detach; go on now.
        ptrace.resume_to_syscall(tid, resend)


def _interrupt_call(tid: int) -> int:
    ptrace.interrupt(tid)
    try:
        return wait_stopped(tid)
    except errors.SnapshotError:
        raise errors.SnapshotError(
            f"thread {tid} is stuck in an injected call and cannot be stopped; it will "
            "finish and restore itself when this helper exits", function="inject",
            pid=tid) from None


def _hold_child(child: int) -> None:
    # The clone starts stopped; EXITKILL makes it die with its tracer, whatever happens to us.
    wait_stopped(child)
    ptrace.set_options(child, ptrace.PTRACE_O_EXITKILL | ptrace.PTRACE_O_TRACESYSGOOD)


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
