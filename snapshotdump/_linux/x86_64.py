"""Everything x86_64-specific: the register sets, the CONTEXT they become, syscall injection code.

Another architecture is another module with the same names (see arch.py).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from .._bindings import load
from . import ptrace

MACHINE = "x86_64"
PROCESSOR_ARCHITECTURE = 9  # PROCESSOR_ARCHITECTURE_AMD64
REGS_SIZE = load("linux").sizeof("struct user_regs_struct")
FPREGS_SIZE = load("linux").sizeof("struct user_fpregs_struct")  # the FXSAVE area

SYS_CLOSE = 3
SYS_MMAP = 9
SYS_MUNMAP = 11
SYS_CLONE = 56
SYS_WAIT4 = 61
SYS_MEMFD_CREATE = 319
NO_SYSCALL = 0xFFFFFFFFFFFFFFFF  # orig_rax = -1: the kernel's restart logic leaves the thread alone

# CONTEXT_AMD64 | CONTROL | INTEGER | SEGMENTS | FLOATING_POINT
CONTEXT_FLAGS = 0x0010000F

SYS_RT_SIGRETURN = 15
SYS_EXIT_GROUP = 231
SYS_RESTART_SYSCALL = 219

# The injected code.  Each trampoline ends in rt_sigreturn, which puts the thread back
# from a signal frame the tracer left below its stack (see signal_frame), so a thread
# set up to run one finishes and restores itself even if the tracer dies at any moment.
# syscall; mov eax,15; syscall
SYSCALL_TRAP = bytes.fromhex("0f05" "b80f000000" "0f05")
# syscall; test rax,rax; jnz 1f; mov eax,231; xor edi,edi; syscall; 1: mov eax,15; syscall
# The child (rax == 0) is never meant to run: if the tracer died before it could hold it,
# its first act is exit_group(0), so it never runs an instruction of the target's own code.
CLONE_TRAP = bytes.fromhex("0f05" "4885c0" "7509" "b8e7000000" "31ff" "0f05" "b80f000000" "0f05")
# syscall; mov rdi,rax; mov eax,3; syscall; mov eax,15; syscall
# A call that makes an fd the target must not keep (userfaultfd): close() of its result
# follows by itself, so a thread whose tracer died in between still closes it.  The tracer
# takes the fd at the first call's exit stop (inject.run's *between*).
CLOSING_TRAP = bytes.fromhex("0f05" "4889c7" "b803000000" "0f05" "b80f000000" "0f05")
# All always sit at the same offsets, and writing them again writes the same bytes: a
# thread still inside one (its tracer died) is never disturbed by a later capture.
TRAMPOLINE_OFFSETS = {SYSCALL_TRAP: 0, CLONE_TRAP: 16, CLOSING_TRAP: 48}
TRAMPOLINES = ((SYSCALL_TRAP.ljust(16, b"\0") + CLONE_TRAP).ljust(48, b"\0")
               + CLOSING_TRAP).ljust(80, b"\0")
EMPTY_STRING_OFFSET = 40  # a zero byte inside TRAMPOLINES: "" for a call that wants a name
SYSCALL_LENGTH = 2  # the syscall instruction: rip after it, and back by this much to restart
# Where each trampoline's calls end, from its start: the last one is the call whose result
# inject.run returns, any earlier one is reported to its *between*.
TRAMPOLINE_EXITS = {SYSCALL_TRAP: (2,), CLONE_TRAP: (2,), CLOSING_TRAP: (2, 12)}

_ERESTART = (-512, -513, -514)  # ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND
_ERESTART_RESTARTBLOCK = -516
# Signal frame layout (arch/x86/include/uapi/asm/ucontext.h, sigcontext.h): struct ucontext
# is uc_flags, uc_link, uc_stack (24 bytes), uc_mcontext (256), uc_sigmask; rt_sigreturn
# reads it at rsp, after the 8-byte return address a handler's frame would have.
_UC_MCONTEXT = 40
_UC_SIGMASK = 296
_UC_AND_SIGINFO = 304 + 128
_UC_FP_XSTATE, _UC_SIGCONTEXT_SS, _UC_STRICT_RESTORE_SS = 1, 2, 4
_FP_XSTATE_MAGIC1 = 0x46505853
_FP_XSTATE_MAGIC2 = 0x46505845
_SW_RESERVED = 464  # struct _fpx_sw_bytes inside the FXSAVE image
FXSAVE_SW_RESERVED = _SW_RESERVED
_XSTATE_BV = 512
RED_ZONE = 128


def _ffi() -> Any:
    return load("linux")


def registers(raw: bytes) -> Any:
    """A ``struct user_regs_struct *`` view of saved registers (a private copy)."""
    ffi = _ffi()
    regs = ffi.new("struct user_regs_struct *")
    ffi.memmove(regs, raw, min(len(raw), REGS_SIZE))
    return regs


def as_bytes(regs: Any) -> bytes:
    return bytes(_ffi().buffer(regs, REGS_SIZE))


def instruction_pointer(raw: bytes) -> int:
    return int(registers(raw).rip)


def stack_pointer(raw: bytes) -> int:
    return int(registers(raw).rsp)


def syscall_registers(saved: bytes, at: int, number: int, args: tuple[int, ...]) -> bytes:
    """*saved* with rip at the trampoline, the syscall number and its arguments loaded."""
    regs = registers(saved)
    regs.rip = at
    regs.rax = number
    regs.orig_rax = NO_SYSCALL
    for name, value in zip(("rdi", "rsi", "rdx", "r10", "r8", "r9"), args, strict=False):
        setattr(regs, name, value & 0xFFFFFFFFFFFFFFFF)
    return as_bytes(regs)


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def resumed_registers(saved: bytes, resume_at: int) -> bytes:
    """The registers the thread carries on with when it is not left in the kernel.

    A thread stopped on its way out of an interrupted system call is restarted the way
    the kernel would have (rip back onto the syscall instruction, the number in rax),
    since after rt_sigreturn the kernel no longer restarts anything; *resume_at* is where
    a thread stopped in an rseq critical section must go instead.
    """
    regs = registers(saved)
    if resume_at != int(regs.rip):
        regs.rip = resume_at  # no system call is ever made inside a critical section
    elif int(regs.orig_rax) != NO_SYSCALL:
        error = _signed(int(regs.rax))
        if error in _ERESTART:
            regs.rax = regs.orig_rax
            regs.rip = regs.rip - SYSCALL_LENGTH
        elif error == _ERESTART_RESTARTBLOCK:
            regs.rax = SYS_RESTART_SYSCALL
            regs.rip = regs.rip - SYSCALL_LENGTH
    regs.orig_rax = NO_SYSCALL
    return as_bytes(regs)


def signal_frame(resumed: bytes, mask: int, fpstate: bytes, xsave: bool,
                 top: int) -> tuple[int, int, bytes]:
    """(lowest address, rsp for rt_sigreturn, bytes) of an rt_sigreturn frame ending at
    *top*, which restores *resumed*, the signal mask *mask* and the FPU/vector state.

    *fpstate* is the NT_X86_XSTATE image (*xsave* True) or the bare FXSAVE image.
    uc_stack is left zero: sigaltstack() refuses a zero-sized stack, so it stays as it is.
    """
    regs = registers(resumed)
    size = len(fpstate)
    fp_at = (top - size - 4) & ~63  # XRSTOR wants 64-byte alignment
    uc_at = (fp_at - _UC_AND_SIGINFO) & ~15
    start = uc_at - 8
    frame = bytearray(fp_at + size + 4 - start)
    uc = uc_at - start
    flags = _UC_SIGCONTEXT_SS | _UC_STRICT_RESTORE_SS | (_UC_FP_XSTATE if xsave else 0)
    struct.pack_into("<Q", frame, uc, flags)
    names = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp",
             "rbx", "rdx", "rax", "rcx", "rsp", "rip", "eflags")
    struct.pack_into("<18Q", frame, uc + _UC_MCONTEXT, *(int(getattr(regs, n)) for n in names))
    struct.pack_into("<4H", frame, uc + _UC_MCONTEXT + 144,
                     int(regs.cs), int(regs.gs), int(regs.fs), int(regs.ss))
    struct.pack_into("<Q", frame, uc + _UC_MCONTEXT + 184, fp_at)  # fpstate
    struct.pack_into("<Q", frame, uc + _UC_SIGMASK, mask & 0xFFFFFFFFFFFFFFFF)
    image = bytearray(fpstate)
    if xsave:
        features = int.from_bytes(image[_XSTATE_BV:_XSTATE_BV + 8], "little")
        struct.pack_into("<IIQI", image, _SW_RESERVED, _FP_XSTATE_MAGIC1, size + 4, features,
                         size)
        image += struct.pack("<I", _FP_XSTATE_MAGIC2)
    else:
        image += bytes(4)
    frame[fp_at - start:] = image
    return start, uc_at, bytes(frame)


def trampoline_registers(saved: bytes, entry: int, stack: int, number: int,
                         args: tuple[int, ...]) -> bytes:
    """*saved* set to run the trampoline at *entry* with its frame at *stack*."""
    regs = registers(syscall_registers(saved, entry, number, args))
    regs.rsp = stack
    return as_bytes(regs)


# rep movsb; int3 -- a memory copy run by the clone itself: no system call, no pinned pages.
COPY_TRAP = bytes.fromhex("f3a4" "cc")
_DIRECTION_FLAG = 1 << 10


def copy_registers(saved: bytes, at: int, source: int, destination: int, length: int) -> bytes:
    """*saved* set up to run COPY_TRAP at *at*: *length* bytes from *source* to *destination*."""
    regs = registers(saved)
    regs.rip = at
    regs.rsi = source
    regs.rdi = destination
    regs.rcx = length
    regs.eflags &= ~_DIRECTION_FLAG
    regs.orig_rax = NO_SYSCALL
    return as_bytes(regs)


def copy_remaining(raw: bytes) -> int:
    """Bytes a COPY_TRAP that stopped part way has still to copy."""
    return int(registers(raw).rcx)


def with_instruction_pointer(raw: bytes, ip: int) -> bytes:
    regs = registers(raw)
    regs.rip = ip
    return as_bytes(regs)


def syscall_result(raw: bytes) -> int:
    value = int(registers(raw).rax)
    return value - (1 << 64) if value >= 1 << 63 else value


def read_registers(tid: int) -> bytes:
    return ptrace.get_regset(tid, ptrace.NT_PRSTATUS, REGS_SIZE)


def write_registers(tid: int, raw: bytes) -> None:
    ptrace.set_regset(tid, ptrace.NT_PRSTATUS, raw)


def read_fp_registers(tid: int) -> bytes:
    return ptrace.get_regset(tid, ptrace.NT_PRFPREG, FPREGS_SIZE)


def context(raw: bytes, fp: bytes) -> bytes:
    """The Windows x64 CONTEXT (what minidump readers expect) for one thread's registers."""
    ffi = load("minidump")
    regs = registers(raw)
    ctx = ffi.new("CONTEXT *")
    ctx.ContextFlags = CONTEXT_FLAGS
    ctx.SegCs, ctx.SegDs, ctx.SegEs = regs.cs, regs.ds, regs.es
    ctx.SegFs, ctx.SegGs, ctx.SegSs = regs.fs, regs.gs, regs.ss
    ctx.EFlags = regs.eflags & 0xFFFFFFFF
    for name in ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                 "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip"):
        setattr(ctx, name.capitalize(), getattr(regs, name))
    if len(fp) >= FPREGS_SIZE:
        # user_fpregs_struct is the FXSAVE image, which is exactly XSAVE_FORMAT.
        ffi.memmove(ffi.addressof(ctx, "FltSave"), fp[:FPREGS_SIZE], FPREGS_SIZE)
        ctx.MxCsr = ctx.FltSave.MxCsr
    return bytes(ffi.buffer(ctx))


def cpu_information(cpuinfo: bytes) -> dict[str, int]:
    """ProcessorLevel / Revision and CPUID fields for SystemInfo, from captured /proc/cpuinfo."""
    info: dict[str, str] = {}
    for line in cpuinfo.decode("utf-8", "replace").splitlines():
        if not line.strip():
            break  # the first processor's block is enough
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    family = int(info.get("cpu family", "0") or 0)
    model = int(info.get("model", "0") or 0)
    stepping = int(info.get("stepping", "0") or 0)
    vendor = info.get("vendor_id", "").encode("ascii", "replace")[:12].ljust(12, b"\0")
    version = (stepping & 0xF) | ((model & 0xF) << 4) | ((family & 0xF) << 8)
    if family >= 0xF:
        version |= ((family - 0xF) & 0xFF) << 20
    version |= ((model >> 4) & 0xF) << 16
    return {
        "level": family,
        "revision": ((model & 0xFF) << 8) | (stepping & 0xFF),
        "vendor0": int.from_bytes(vendor[0:4], "little"),
        "vendor1": int.from_bytes(vendor[4:8], "little"),
        "vendor2": int.from_bytes(vendor[8:12], "little"),
        "version": version,
    }


_SYS_RT_SIGSUSPEND = 130
_MASK_ARGUMENT = {271: "r10", 281: "r8", 441: "r8"}  # ppoll, epoll_pwait, epoll_pwait2
_MASK_STRUCT = {270: "r9", 333: "r9"}  # pselect6, io_pgetevents: {sigset *, size}
_SYS_IO_URING_ENTER = 426
_IORING_ENTER_EXT_ARG = 8


def waits_with_temporary_mask(raw: bytes, read: Callable[[int, int], bytes]) -> bool:
    """True when the thread sits in a call that swapped in a temporary signal mask
    (sigsuspend, ppoll, pselect6 ...): the mask it returns to is held where ptrace cannot
    read it, and setting any mask through ptrace would make the kernel forget it.
    *read(address, length)* reads the thread's memory."""
    regs = registers(raw)
    number = int(regs.orig_rax)
    if number == _SYS_RT_SIGSUSPEND:
        return True
    if number in _MASK_ARGUMENT:
        return int(getattr(regs, _MASK_ARGUMENT[number])) != 0
    pointer = 0
    if number in _MASK_STRUCT:
        pointer = int(getattr(regs, _MASK_STRUCT[number]))
    elif number == _SYS_IO_URING_ENTER:
        if not int(regs.rdx) & _IORING_ENTER_EXT_ARG:
            return int(regs.r8) != 0
        pointer = int(regs.r8)
    if not pointer:
        return False
    try:
        return int.from_bytes(read(pointer, 8), "little") != 0
    except OSError:
        return True  # unknown: assume the worst
