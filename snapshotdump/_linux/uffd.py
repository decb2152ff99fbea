"""A userfaultfd in async write-protect mode, driven from outside the process it belongs to.

The fd is created inside the target (an injected userfaultfd() call) and taken with
pidfd_getfd.  Its ioctls act on the target's memory, whoever calls them.  In async
mode (UFFD_FEATURE_WP_ASYNC, kernel 6.7+) a write to a protected page never blocks
and never reaches us: the kernel lifts the protection and marks the page written,
which PAGEMAP_SCAN then reports (see pagemap).  Closing the last fd drops it all.
Declarations from the kernel's uapi <linux/userfaultfd.h> (Debian 12's predates some).
"""

from __future__ import annotations

import ctypes
import errno
import os

from .. import errors
from .procfs import Mapping

SYS_USERFAULTFD = {"x86_64": 323}
SYS_PIDFD_GETFD = {"x86_64": 438}
UFFD_USER_MODE_ONLY = 1  # enough for write tracking, and allowed without privilege
O_CLOEXEC = 0o2000000
O_NONBLOCK = 0o4000

UFFD_API = 0xAA
FEATURE_WP_HUGETLBFS_SHMEM = 1 << 12
FEATURE_WP_UNPOPULATED = 1 << 13
FEATURE_WP_ASYNC = 1 << 15
REGISTER_MODE_WP = 1 << 1
WRITEPROTECT_MODE_WP = 1 << 0


def _ioc(direction: int, kind: int, number: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (kind << 8) | number


class _Api(ctypes.Structure):
    _fields_ = [("api", ctypes.c_uint64), ("features", ctypes.c_uint64),
                ("ioctls", ctypes.c_uint64)]


class _Range(ctypes.Structure):
    _fields_ = [("start", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _Register(ctypes.Structure):
    _fields_ = [("range", _Range), ("mode", ctypes.c_uint64), ("ioctls", ctypes.c_uint64)]


class _WriteProtect(ctypes.Structure):
    _fields_ = [("range", _Range), ("mode", ctypes.c_uint64)]


UFFDIO_API = _ioc(3, 0xAA, 0x3F, ctypes.sizeof(_Api))
UFFDIO_REGISTER = _ioc(3, 0xAA, 0x00, ctypes.sizeof(_Register))
UFFDIO_UNREGISTER = _ioc(2, 0xAA, 0x01, ctypes.sizeof(_Range))
UFFDIO_WRITEPROTECT = _ioc(3, 0xAA, 0x06, ctypes.sizeof(_WriteProtect))

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.ioctl.restype = ctypes.c_int
_libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]


def ioctl(fd: int, request: int, argument: ctypes.Structure, what: str) -> int:
    """ioctl(2) with a struct argument; OSError (with the call named) on failure."""
    result = int(_libc.ioctl(fd, request, ctypes.addressof(argument)))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")
    return result


def take_fd(pid: int, target_fd: int, machine: str) -> int:
    """Our own copy of fd *target_fd* of process *pid* (pidfd_getfd), close-on-exec."""
    pidfd = os.pidfd_open(pid)
    try:
        number = SYS_PIDFD_GETFD[machine]
        fd = int(_libc.syscall(ctypes.c_long(number), ctypes.c_int(pidfd), ctypes.c_int(target_fd),
                               ctypes.c_uint(0)))
        if fd < 0:
            code = ctypes.get_errno()
            raise errors.from_errno(code, "pidfd_getfd", pid=pid)
        return fd
    finally:
        os.close(pidfd)


def enable_async_wp(fd: int) -> int:
    """UFFDIO_API asking for async write-protect; the features granted, or OSError."""
    api = _Api(UFFD_API, FEATURE_WP_ASYNC | FEATURE_WP_UNPOPULATED, 0)
    try:
        ioctl(fd, UFFDIO_API, api, "UFFDIO_API(WP_ASYNC|WP_UNPOPULATED)")
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise OSError(exc.errno, "the kernel has no async write-protect userfaultfd "
                          "(UFFD_FEATURE_WP_ASYNC needs Linux 6.7)") from exc
        raise
    return int(api.features)


def register(fd: int, start: int, size: int) -> None:
    """Register [start, start+size) for write-protect tracking (EBUSY: someone else's)."""
    ioctl(fd, UFFDIO_REGISTER, _Register(_Range(start, size), REGISTER_MODE_WP, 0),
          f"UFFDIO_REGISTER at {start:#x}+{size:#x}")


# The protect walk holds the target's mmap lock for reading: a thread of the target that
# maps or unmaps memory waits for it.  One call per chunk bounds that wait (about 1-2 ms).
PROTECT_CHUNK = 64 << 20


def write_protect(fd: int, start: int, size: int) -> None:
    for first in range(start, start + size, PROTECT_CHUNK):
        length = min(PROTECT_CHUNK, start + size - first)
        ioctl(fd, UFFDIO_WRITEPROTECT,
              _WriteProtect(_Range(first, length), WRITEPROTECT_MODE_WP),
              f"UFFDIO_WRITEPROTECT at {first:#x}+{length:#x}")


def create_here(machine: str) -> int:
    """A userfaultfd of this very process (for tests and probes of the kernel's support)."""
    fd = int(_libc.syscall(ctypes.c_long(SYS_USERFAULTFD[machine]),
                           ctypes.c_int(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY)))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"userfaultfd: {os.strerror(code)}")
    return fd


def trackable(mapping: Mapping, flags: tuple[str, ...]) -> bool:
    """Memory the target can write through its own page tables (device memory excluded)."""
    return (mapping.readable and mapping.writable and mapping.start < 1 << 63
            and not any(flag in flags for flag in ("io", "pf")))


def register_writable(fd: int, maps: list[Mapping], flags: dict[int, tuple[str, ...]],
                      strict: bool = True) -> list[tuple[int, int]]:
    """Register every trackable mapping (adjacent ones joined); the ranges registered.

    A mapping the kernel refuses (EINVAL, EPERM) stays untracked: the dump copies it
    while the target is stopped.  EBUSY (another userfaultfd owns it) is raised when
    *strict*, as write tracking cannot vouch for that memory; else it stays untracked.
    """
    ranges: list[tuple[int, int]] = []
    for mapping in maps:
        if not trackable(mapping, flags.get(mapping.start, ())):
            continue
        if ranges and ranges[-1][1] == mapping.start:
            ranges[-1] = (ranges[-1][0], mapping.end)
        else:
            ranges.append((mapping.start, mapping.end))
    registered = []
    for start, end in ranges:
        try:
            register(fd, start, end - start)
        except OSError as exc:
            if exc.errno == errno.EBUSY and strict:
                raise
            if exc.errno in (errno.EINVAL, errno.EPERM, errno.ENOMEM, errno.EBUSY):
                continue  # unmapped meanwhile, or a kind of memory it does not take
            raise
        registered.append((start, end))
    return registered
