"""Minidump constants: stream types, signatures, protection and state values."""

from __future__ import annotations

import enum
from typing import Any

from .._bindings import load

SIGNATURE = 0x504D444D  # 'MDMP'
VERSION = 0xA793
MD_CV_SIGNATURE_ELF = 0x4270454C  # 'BpEL', Breakpad's CodeView record for an ELF build id
PLATFORM_LINUX = 0x8201  # Breakpad's MD_OS_LINUX

# FILETIME: 100-ns ticks since 1601-01-01.
FILETIME_TICKS_PER_SECOND = 10_000_000
FILETIME_UNIX_EPOCH = 116_444_736_000_000_000  # 1970-01-01 as a FILETIME

MISC1_PROCESS_ID = 0x1
MISC1_PROCESS_TIMES = 0x2

MEM_COMMIT = 0x1000
MEM_PRIVATE = 0x20000
MEM_MAPPED = 0x40000
MEM_IMAGE = 0x1000000

PAGE_NOACCESS = 0x01
PAGE_READONLY = 0x02
PAGE_READWRITE = 0x04
PAGE_EXECUTE = 0x10
PAGE_EXECUTE_READ = 0x20
PAGE_EXECUTE_READWRITE = 0x40


class StreamType(enum.IntEnum):
    """MINIDUMP_STREAM_TYPE, plus Breakpad's Linux streams (0x4767xxxx)."""

    UNUSED = 0  # a directory slot left empty (UnusedStream); readers skip it
    THREAD_LIST = 3
    MODULE_LIST = 4
    MEMORY_LIST = 5
    EXCEPTION = 6
    SYSTEM_INFO = 7
    MEMORY64_LIST = 9
    HANDLE_DATA = 12
    MISC_INFO = 15
    MEMORY_INFO_LIST = 16
    THREAD_INFO_LIST = 17
    THREAD_NAMES = 24
    LINUX_CPU_INFO = 0x47670003
    LINUX_PROC_STATUS = 0x47670004
    LINUX_LSB_RELEASE = 0x47670005
    LINUX_CMD_LINE = 0x47670006
    LINUX_ENVIRON = 0x47670007
    LINUX_AUXV = 0x47670008
    LINUX_MAPS = 0x47670009
    LINUX_DSO_DEBUG = 0x4767000A
    #: snapshotdump's Python stacks (compact UTF-8 JSON; see docs/stacks.md and pystacks.py).
    PYTHON_STACKS = 0x534E5001


def ffi() -> Any:
    """The FFI of the shared MINIDUMP_* declarations (snapshotdump/_cdefs/minidump.h)."""
    return load("minidump")


def protection(perms: str) -> int:
    """A PAGE_* value for /proc/PID/maps permissions such as 'r-xp'."""
    readable, writable, executable = perms[0] == "r", perms[1] == "w", perms[2] == "x"
    if executable:
        if writable:
            return PAGE_EXECUTE_READWRITE
        return PAGE_EXECUTE_READ if readable else PAGE_EXECUTE
    if writable:
        return PAGE_READWRITE
    return PAGE_READONLY if readable else PAGE_NOACCESS


class DumpFormatError(ValueError):
    """The file is not a well-formed minidump (truncated, corrupt, or not a minidump)."""
