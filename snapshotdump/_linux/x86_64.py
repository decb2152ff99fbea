"""Everything x86_64-specific: the register sets, the CONTEXT they become, syscall injection code.

Another architecture is another module with the same names (see arch.py).
"""

from __future__ import annotations

from typing import Any

from .._bindings import load
from . import ptrace

MACHINE = "x86_64"
PROCESSOR_ARCHITECTURE = 9  # PROCESSOR_ARCHITECTURE_AMD64
REGS_SIZE = 27 * 8  # struct user_regs_struct
FPREGS_SIZE = 512  # struct user_fpregs_struct (the FXSAVE area)

SYS_CLOSE = 3
SYS_MMAP = 9
SYS_MUNMAP = 11
SYS_CLONE = 56
SYS_WAIT4 = 61
SYS_MEMFD_CREATE = 319
NO_SYSCALL = 0xFFFFFFFFFFFFFFFF  # orig_rax = -1: the kernel's restart logic leaves the thread alone

# CONTEXT_AMD64 | CONTROL | INTEGER | SEGMENTS | FLOATING_POINT
CONTEXT_FLAGS = 0x0010000F

# syscall; int3.  The tracer reads rax at the trap.
SYSCALL_TRAP = bytes.fromhex("0f05cc")
# syscall; test rax,rax; jnz trap; mov eax,231; xor edi,edi; syscall; trap: int3
# The parent (rax != 0) traps to the tracer.  The child (rax == 0) is never meant to run: if
# the tracer died before it could stop it, its first act is exit_group(0), so it can never run
# a single instruction of the target's own code.
CLONE_TRAP = bytes.fromhex("0f05" "4885c0" "7509" "b8e7000000" "31ff" "0f05" "cc")


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
