"""ptrace(2), prctl(2) and pidfd_getfd(2) through cffi; errno becomes an exception in one place."""

from __future__ import annotations

import errno
import functools
import os
import time
from typing import Any

from .. import errors
from .._bindings import load

PTRACE_PEEKDATA = 2
PTRACE_POKEDATA = 5
PTRACE_CONT = 7
PTRACE_SYSCALL = 24
PTRACE_DETACH = 17
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETEVENTMSG = 0x4201
PTRACE_GETREGSET = 0x4204
PTRACE_SETREGSET = 0x4205
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_GETSIGMASK = 0x420A
PTRACE_SETSIGMASK = 0x420B
PTRACE_GET_RSEQ_CONFIGURATION = 0x420F
PTRACE_GETSIGINFO = 0x4202
PTRACE_LISTEN = 0x4208

PTRACE_O_TRACESYSGOOD = 0x00000001
PTRACE_O_TRACECLONE = 0x00000008
PTRACE_O_TRACEEXEC = 0x00000010
PTRACE_O_EXITKILL = 0x00100000

PTRACE_EVENT_CLONE = 3
PTRACE_EVENT_EXEC = 4
PTRACE_EVENT_STOP = 128

NT_PRSTATUS = 1
NT_PRFPREG = 2
NT_X86_XSTATE = 0x202

WALL = 0x40000000  # __WALL: wait for threads and clone children alike

PR_SET_PTRACER = 0x59616D61
SYS_PIDFD_GETFD = 438  # one number on every architecture
XSTATE_BUFFER = 16384


@functools.cache
def _lib() -> tuple[Any, Any]:
    ffi = load("linux")
    return ffi, ffi.dlopen(None)


def ffi() -> Any:
    return _lib()[0]


_TEST_DEATH = "SNAPSHOTDUMP_TEST_DIE_AT"  # "N:FLAG": tests/reliability/test_tracer_kill.py
_steps = 0


def _step() -> None:
    """Count ptrace requests and memory writes; for the kill tests, die at the Nth.

    Only the first process to create FLAG dies (the helper that a test meant), so the
    helpers started afterwards, to clean up, run normally.
    """
    global _steps
    setting = os.environ.get(_TEST_DEATH)
    if not setting:
        return
    _steps += 1
    point, flag, *stall = setting.split(":")
    if _steps != int(point):
        return
    try:
        os.close(os.open(flag, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        return
    if stall:  # "N:FLAG:SECONDS": stall there instead (tests/reliability/test_pause.py)
        time.sleep(float(stall[0]))
    else:
        os.kill(os.getpid(), 9)


def _call(request: int, tid: int, addr: int, data: Any, name: str) -> int:
    _step()
    ffi_, libc = _lib()
    ffi_.errno = 0
    result = int(libc.ptrace(ffi_.cast("int", request), ffi_.cast("pid_t", tid),
                             ffi_.cast("void *", addr), ffi_.cast("void *", data)))
    if result == -1 and ffi_.errno:
        raise errors.from_errno(ffi_.errno, name, pid=tid)
    return result


def seize(tid: int, options: int = 0) -> None:
    _call(PTRACE_SEIZE, tid, 0, options, "ptrace(PTRACE_SEIZE)")


def interrupt(tid: int) -> None:
    _call(PTRACE_INTERRUPT, tid, 0, 0, "ptrace(PTRACE_INTERRUPT)")


def set_options(tid: int, options: int) -> None:
    _call(PTRACE_SETOPTIONS, tid, 0, options, "ptrace(PTRACE_SETOPTIONS)")


def cont(tid: int, signal: int = 0) -> None:
    _call(PTRACE_CONT, tid, 0, signal, "ptrace(PTRACE_CONT)")


def resume_to_syscall(tid: int, signal: int = 0) -> None:
    """PTRACE_SYSCALL: run until the next syscall-entry or syscall-exit stop."""
    _call(PTRACE_SYSCALL, tid, 0, signal, "ptrace(PTRACE_SYSCALL)")


SIGSET_SIZE = 8  # the kernel's sigset_t on 64-bit
ALL_SIGNALS = 0xFFFFFFFFFFFFFFFF


def get_sigmask(tid: int) -> int:
    ffi_ = ffi()
    out = ffi_.new("unsigned long *")
    _call(PTRACE_GETSIGMASK, tid, SIGSET_SIZE, out, "ptrace(PTRACE_GETSIGMASK)")
    return int(out[0])


def set_sigmask(tid: int, mask: int) -> None:
    """Set the blocked mask (SIGKILL and SIGSTOP stay unblockable whatever it says)."""
    ffi_ = ffi()
    value = ffi_.new("unsigned long *", mask & ALL_SIGNALS)
    _call(PTRACE_SETSIGMASK, tid, SIGSET_SIZE, value, "ptrace(PTRACE_SETSIGMASK)")


SIGINFO_SIZE = 128  # siginfo_t


def siginfo(tid: int) -> bytes:
    """The raw siginfo_t of the signal *tid* is stopped for (in signal-delivery-stop)."""
    buffer = ffi().new("unsigned char[]", SIGINFO_SIZE)
    _call(PTRACE_GETSIGINFO, tid, 0, buffer, "ptrace(PTRACE_GETSIGINFO)")
    return bytes(ffi().buffer(buffer))


def listen(tid: int) -> None:
    """Leave a thread in its group-stop (job control) while still being told of signals."""
    _call(PTRACE_LISTEN, tid, 0, 0, "ptrace(PTRACE_LISTEN)")


def detach(tid: int, signal: int = 0) -> None:
    """Detach; a thread that is already gone counts as detached once its exit is collected.

    A traced thread that died is reported to its tracer first: until the tracer collects
    it, the target's real parent cannot reap the process.
    """
    try:
        _call(PTRACE_DETACH, tid, 0, signal, "ptrace(PTRACE_DETACH)")
    except errors.ProcessNotFoundError:
        _collect_exit(tid)


def _collect_exit(tid: int, attempts: int = 200) -> None:
    for _ in range(attempts):
        try:
            waited, _status = os.waitpid(tid, WALL | os.WNOHANG)
        except ChildProcessError:
            return  # not ours to collect (any more)
        if waited:
            return
        time.sleep(0.005)


def event_message(tid: int) -> int:
    ffi_ = ffi()
    out = ffi_.new("unsigned long *")
    _call(PTRACE_GETEVENTMSG, tid, 0, out, "ptrace(PTRACE_GETEVENTMSG)")
    return int(out[0])


def peek(tid: int, address: int) -> int:
    return _call(PTRACE_PEEKDATA, tid, address, 0, "ptrace(PTRACE_PEEKDATA)") & 0xFFFFFFFFFFFFFFFF


def poke(tid: int, address: int, word: int) -> None:
    signed = word - (1 << 64) if word >= 1 << 63 else word
    _call(PTRACE_POKEDATA, tid, address, signed, "ptrace(PTRACE_POKEDATA)")


def read_words(tid: int, address: int, length: int) -> bytes:
    start = address & ~7
    end = (address + length + 7) & ~7
    data = b"".join(peek(tid, a).to_bytes(8, "little") for a in range(start, end, 8))
    return data[address - start:address - start + length]


def write_bytes(tid: int, address: int, payload: bytes) -> None:
    """Write *payload* word by word (read-modify-write at both ends)."""
    start = address & ~7
    end = (address + len(payload) + 7) & ~7
    current = bytearray(read_words(tid, start, end - start))
    current[address - start:address - start + len(payload)] = payload
    for offset in range(0, len(current), 8):
        poke(tid, start + offset, int.from_bytes(current[offset:offset + 8], "little"))


def read_memory(tid: int, address: int, length: int) -> bytes:
    """*length* bytes of the tracee's memory: one pread of /proc/TID/mem (words as a fallback)."""
    try:
        fd = os.open(f"/proc/{tid}/mem", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return read_words(tid, address, length)
    try:
        data = os.pread(fd, length, address)
    except OSError:
        data = b""
    finally:
        os.close(fd)
    return data if len(data) == length else read_words(tid, address, length)


def write_memory(tid: int, address: int, payload: bytes) -> None:
    """Write into the stopped tracee, read-only code pages included (FOLL_FORCE, as a
    debugger does): one pwrite of /proc/TID/mem, or word by word where that is refused."""
    _step()
    try:
        fd = os.open(f"/proc/{tid}/mem", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        write_bytes(tid, address, payload)
        return
    try:
        written = os.pwrite(fd, payload, address)
    except OSError:
        written = -1
    finally:
        os.close(fd)
    if written != len(payload):
        write_bytes(tid, address, payload)


def get_regset(tid: int, kind: int, size: int) -> bytes:
    ffi_ = ffi()
    buffer = ffi_.new("char[]", size)
    iov = ffi_.new("struct iovec *")
    iov.iov_base = buffer
    iov.iov_len = size
    _call(PTRACE_GETREGSET, tid, kind, iov, "ptrace(PTRACE_GETREGSET)")
    return bytes(ffi_.buffer(buffer, int(iov.iov_len)))


def set_regset(tid: int, kind: int, data: bytes) -> None:
    ffi_ = ffi()
    buffer = ffi_.new("char[]", data)
    iov = ffi_.new("struct iovec *")
    iov.iov_base = buffer
    iov.iov_len = len(data)
    _call(PTRACE_SETREGSET, tid, kind, iov, "ptrace(PTRACE_SETREGSET)")


def xstate(tid: int) -> bytes | None:
    try:
        return get_regset(tid, NT_X86_XSTATE, XSTATE_BUFFER)
    except errors.SnapshotError as exc:
        if exc.errno in (errno.EINVAL, errno.ENODEV, errno.EIO):
            return None
        raise


def stop_event(status: int) -> int:
    return (status >> 16) & 0xFF


def allow_tracer(pid: int) -> None:
    """Let *pid* trace us under Yama ptrace_scope=1 (it is our child, not our ancestor)."""
    ffi_, libc = _lib()
    libc.prctl(ffi_.cast("int", PR_SET_PTRACER), ffi_.cast("unsigned long", pid))


def pidfd_getfd(pidfd: int, fd: int) -> int:
    """A copy of the tracee's *fd* in this process (ptrace access rules, Linux 5.6+)."""
    ffi_, libc = _lib()
    ffi_.errno = 0
    result = int(libc.syscall(ffi_.cast("long", SYS_PIDFD_GETFD), ffi_.cast("int", pidfd),
                              ffi_.cast("int", fd), ffi_.cast("unsigned int", 0)))
    if result < 0:
        raise errors.from_errno(ffi_.errno, "pidfd_getfd")
    return result


def rseq_area(tid: int) -> tuple[int, int] | None:
    """(address, size) of the rseq area *tid* registered; None without one (or before 5.13)."""
    ffi_ = ffi()
    out = ffi_.new("char[]", 32)  # struct ptrace_rseq_configuration: u64, u32, u32, u32, u32
    try:
        _call(PTRACE_GET_RSEQ_CONFIGURATION, tid, 32, out, "ptrace(PTRACE_GET_RSEQ_CONFIGURATION)")
    except errors.SnapshotError:
        return None
    raw = bytes(ffi_.buffer(out, 16))
    address = int.from_bytes(raw[:8], "little")
    if not address:
        return None
    return address, int.from_bytes(raw[8:12], "little")
