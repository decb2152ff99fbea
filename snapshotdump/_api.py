"""capture(): argument checks, then the backend of this operating system."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

from .flags import CaptureFlags, CaptureMemory, check_flags
from .snapshot import Snapshot


def _windows_capture(target: Any, flags: CaptureFlags, thread_context_flags: int | None,
                     live_fallback: bool, memory: CaptureMemory) -> Snapshot:
    # A PSS clone holds all memory at no extra pause: *memory* asks for nothing less.
    from ._windows.snapshot import capture as windows_capture

    return windows_capture(target, flags, thread_context_flags, live_fallback)


def _windows_privilege() -> bool:
    from ._windows.win32 import enable_debug_privilege as enable

    return enable()


def _linux_capture(target: Any, flags: CaptureFlags, thread_context_flags: int | None,
                   live_fallback: bool, memory: CaptureMemory) -> Snapshot:
    from ._linux.snapshot import capture as linux_capture

    return linux_capture(target, flags, live_fallback, memory)


@dataclasses.dataclass(frozen=True)
class Backend:
    """One operating system's implementation; its modules are imported on first use."""

    name: str
    capture: Callable[[Any, CaptureFlags, int | None, bool, CaptureMemory], Snapshot]
    enable_debug_privilege: Callable[[], bool]
    takes_process_handles: bool


WINDOWS = Backend("windows", _windows_capture, _windows_privilege, True)
LINUX = Backend("linux", _linux_capture, lambda: False, False)


def _select(platform: str) -> Backend | None:
    if platform == "win32":
        return WINDOWS
    if platform.startswith("linux"):
        return LINUX
    return None


# Chosen once, here, from the platform alone.  Tests that exercise the Windows glue on Linux
# replace it from outside (tests/conftest.py), together with the DLL table.
BACKEND = _select(sys.platform)


def _check_target(target: Any) -> None:
    if isinstance(target, bool):
        raise TypeError("target must be a pid (int) or a ProcessHandle, not a bool")
    if isinstance(target, int):
        if target <= 0:
            raise ValueError(f"pid {target} is not a valid process id; pids are positive")
        if target > 0xFFFFFFFF:
            raise ValueError(f"pid {target} is out of range (at most 0xFFFFFFFF)")
        return
    if BACKEND is not None and BACKEND.takes_process_handles:
        from ._windows.handle import ProcessHandle

        if isinstance(target, ProcessHandle):
            return
    elif type(target).__name__ == "ProcessHandle":
        raise TypeError("a ProcessHandle target exists only on Windows; pass a pid")
    raise TypeError(f"target must be a pid (int) or a ProcessHandle, not {type(target).__name__}")


def capture(
    target: Any,
    flags: CaptureFlags = CaptureFlags.DEFAULT,
    *,
    thread_context_flags: int | None = None,
    live_fallback: bool = False,
    memory: CaptureMemory = CaptureMemory.ALL,
) -> Snapshot:
    """Snapshot a running process: *target* is a pid, or (Windows) a :class:`ProcessHandle`.

    The target is paused only while it is cloned (``CaptureFlags.VA_CLONE``, in
    DEFAULT); without VA_CLONE on Linux it stays frozen until the snapshot is
    closed.  Use the result as a context manager::

        with capture(pid) as snap:
            snap.write_dump("app.dmp")

    Where no snapshot can be made (no PSS on Windows before 8.1 or Wine; a
    refused clone on Linux) it raises :class:`SnapshotUnsupportedError`, unless
    ``live_fallback=True``, which dumps the live (Windows) or frozen (Linux)
    process instead and sets ``snap.is_live``.

    *memory* says which memory the snapshot must hold (see :class:`CaptureMemory`):
    on Linux ``CaptureMemory.STACKS`` pauses the target about a millisecond at any
    size, and is enough for a NORMAL dump (``flags.memory_needed(dump_type)``).
    """
    _check_target(target)
    check_flags(flags, CaptureFlags, "flags")
    if thread_context_flags is not None and (
        isinstance(thread_context_flags, bool) or not isinstance(thread_context_flags, int)
        or not 0 <= thread_context_flags <= 0xFFFFFFFF
    ):
        raise ValueError(
            f"thread_context_flags={thread_context_flags!r} must be None or a 32-bit "
            "CONTEXT_* mask")
    if not isinstance(live_fallback, bool):
        raise TypeError(f"live_fallback must be True or False, not {live_fallback!r}")
    if not isinstance(memory, CaptureMemory):
        raise TypeError(f"memory must be a CaptureMemory (ALL or STACKS), not {memory!r}")
    flags = CaptureFlags(flags)
    if BACKEND is None:
        raise NotImplementedError(f"snapshotdump supports Windows and Linux, not {sys.platform}")
    return BACKEND.capture(target, flags, thread_context_flags, live_fallback, memory)


def enable_debug_privilege() -> bool:
    """Windows: enable SeDebugPrivilege for this process (needs an elevated token).

    Returns True if the privilege is now enabled, False if the token does not hold
    it.  On Linux it returns False: there, tracing rights come from CAP_SYS_PTRACE
    and kernel.yama.ptrace_scope.
    """
    if BACKEND is None:
        return False
    return BACKEND.enable_debug_privilege()
