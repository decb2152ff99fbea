"""The exception hierarchy, and the one place Win32 codes, HRESULTs and errnos become exceptions.

Every exception the library raises for a failed system call is a
:class:`SnapshotError`, itself an :class:`OSError`.  Access denied is also a
:class:`PermissionError`, a vanished process also a :class:`ProcessLookupError`,
so ``except PermissionError`` works as users expect.
"""

from __future__ import annotations

import errno as _errno

# Win32 error codes the library names in its messages and hints.
ERROR_SUCCESS = 0
ERROR_FILE_NOT_FOUND = 2
ERROR_PATH_NOT_FOUND = 3
ERROR_ACCESS_DENIED = 5
ERROR_INVALID_HANDLE = 6
ERROR_NOT_ENOUGH_MEMORY = 8
ERROR_NOT_SUPPORTED = 50
ERROR_FILE_EXISTS = 80
ERROR_INVALID_PARAMETER = 87
ERROR_DISK_FULL = 112
ERROR_CALL_NOT_IMPLEMENTED = 120
ERROR_PARTIAL_COPY = 299
ERROR_NO_MORE_ITEMS = 259
ERROR_NOT_FOUND = 1168
ERROR_CANCELLED = 1223

S_OK = 0
S_FALSE = 1
FACILITY_WIN32 = 7

# FormatMessage is only on Windows; these texts stand in for it elsewhere (and in fakes).
_FALLBACK_MESSAGES = {
    ERROR_FILE_NOT_FOUND: "The system cannot find the file specified.",
    ERROR_PATH_NOT_FOUND: "The system cannot find the path specified.",
    ERROR_ACCESS_DENIED: "Access is denied.",
    ERROR_INVALID_HANDLE: "The handle is invalid.",
    ERROR_NOT_ENOUGH_MEMORY: "Not enough memory resources are available to process this command.",
    ERROR_NOT_SUPPORTED: "The request is not supported.",
    ERROR_FILE_EXISTS: "The file exists.",
    ERROR_INVALID_PARAMETER: "The parameter is incorrect.",
    ERROR_DISK_FULL: "There is not enough space on the disk.",
    ERROR_CALL_NOT_IMPLEMENTED: "This function is not supported on this system.",
    ERROR_PARTIAL_COPY: (
        "Only part of a ReadProcessMemory or WriteProcessMemory request was completed."),
    ERROR_CANCELLED: "The operation was canceled by the user.",
}

_HINTS = {
    ERROR_ACCESS_DENIED: (
        "run from an elevated prompt and call snapshotdump.enable_debug_privilege() first (the "
        "CLI: --enable-debug-privilege) to enable SeDebugPrivilege; protected processes (PPL, "
        "antimalware) cannot be snapshotted at all"
    ),
    ERROR_PARTIAL_COPY: (
        "part of the target's memory could not be read: it was released, or its protection "
        "changed, while it was read"
    ),
    ERROR_INVALID_HANDLE: "the process handle was closed or is not a process handle",
    ERROR_DISK_FULL: "free space on the destination volume",
}

# Added by the Windows backend only when IsWow64Process shows that the bitness really differs.
BITNESS_HINT = (
    "the target is a 32-bit (WoW64) process and this Python is 64-bit: DbgHelp in a 64-bit "
    "process cannot read all of a 32-bit one; dump it with a 32-bit tool (snapshotdump's "
    "Windows backend is x64 only)"
)

# NTSTATUS values (raw, or as HRESULT_FROM_NT with FACILITY_NT_BIT) that mean what the
# Win32 path reports as access denied or a vanished process.
FACILITY_NT_BIT = 0x10000000
STATUS_ACCESS_DENIED = 0xC0000022
STATUS_PRIVILEGE_NOT_HELD = 0xC0000061
STATUS_INVALID_CID = 0xC000000B
STATUS_PROCESS_IS_TERMINATING = 0xC000010A
_NTSTATUS_DENIED = frozenset({STATUS_ACCESS_DENIED, STATUS_PRIVILEGE_NOT_HELD})
_NTSTATUS_GONE = frozenset({STATUS_INVALID_CID, STATUS_PROCESS_IS_TERMINATING})

_PTRACE_HINT = (
    "tracing another process needs CAP_SYS_PTRACE (run as root) or, for a process of the same "
    "user, kernel.yama.ptrace_scope <= 1 with the dumper as an ancestor (see "
    "/proc/sys/kernel/yama/ptrace_scope); in a container, add --cap-add=SYS_PTRACE"
)


def hresult_from_win32(code: int) -> int:
    """HRESULT_FROM_WIN32, as a signed 32-bit value like the SDK's HRESULT."""
    if code <= 0:
        return code
    value = (code & 0xFFFF) | (FACILITY_WIN32 << 16) | 0x80000000
    return value - (1 << 32)


def win32_from_hresult(hresult: int) -> int | None:
    """The Win32 code inside a FACILITY_WIN32 HRESULT, or None for any other HRESULT."""
    unsigned = hresult & 0xFFFFFFFF
    if unsigned & 0xFFFF0000 == 0x80070000:
        return unsigned & 0xFFFF
    return None


class SnapshotError(OSError):
    """A snapshot or dump failed in the operating system.

    Attributes beyond :class:`OSError`'s: ``winerror`` (Win32 code, or None),
    ``hresult`` (where the failing call reports one), ``function`` (the system
    call or API that failed) and ``pid`` (the target, when known).
    """

    def __init__(
        self,
        message: str,
        *,
        errno: int | None = None,
        winerror: int | None = None,
        hresult: int | None = None,
        function: str | None = None,
        pid: int | None = None,
    ) -> None:
        super().__init__(errno if errno is not None else 0, message)
        self._winerror = winerror
        self.hresult = hresult
        self.function = function
        self.pid = pid

    @property
    def winerror(self) -> int | None:
        return self._winerror

    def __str__(self) -> str:
        return str(self.strerror)

    def __reduce__(self) -> tuple[object, ...]:
        # Keeps the keyword attributes across pickling (multiprocessing, the Linux helper).
        return (_rebuild, (type(self), self.strerror, self.errno, self._winerror,
                           self.hresult, self.function, self.pid))


def _rebuild(
    cls: type[SnapshotError], message: str, errno: int, winerror: int | None,
    hresult: int | None, function: str | None, pid: int | None,
) -> SnapshotError:
    return cls(message, errno=errno, winerror=winerror, hresult=hresult, function=function, pid=pid)


class SnapshotPermissionError(SnapshotError, PermissionError):
    """The caller may not open, trace or snapshot the target."""


class ProcessNotFoundError(SnapshotError, ProcessLookupError):
    """No process has that pid (or it exited, or it is a zombie)."""


class TargetExitedError(ProcessNotFoundError):
    """The target exited (or exec'd) while it was being captured or dumped."""


class SnapshotUnsupportedError(SnapshotError):
    """This system cannot make the kind of snapshot asked for.

    Windows before 8.1 and Wine have no PSS; on Linux the clone can be refused
    (seccomp, memory limits).  ``live_fallback=True`` dumps the live or frozen
    process instead.
    """


class DumpCancelledError(SnapshotError):
    """A user callback cancelled the dump; the partial file was removed."""


def _describe(function: str, message: str, pid: int | None) -> str:
    target = f" (pid {pid})" if pid is not None else ""
    return f"{function} failed{target}: {message}"


def from_win32(
    code: int,
    function: str,
    *,
    pid: int | None = None,
    message: str | None = None,
    hresult: int | None = None,
    hint: str | None = None,
) -> SnapshotError:
    """The exception for a failed Win32 call: FormatMessage's *message* plus a hint.

    *hint*, when given, replaces the generic hint for *code*.
    """
    text = (message or "").strip() or _FALLBACK_MESSAGES.get(code, f"Win32 error {code}.")
    hint = hint or _HINTS.get(code)
    if function == "OpenProcess" and code == ERROR_INVALID_PARAMETER:
        # OpenProcess reports a pid that no longer exists as an invalid parameter.
        text = f"no process has pid {pid} ({text.rstrip('.')})"
        hint = None
    detail = _describe(function, text, pid) + (f" - {hint}" if hint else "")
    if hresult is not None:
        detail += f" [HRESULT 0x{hresult & 0xFFFFFFFF:08X}]"
    else:
        detail += f" [WinError {code}]"
    cls: type[SnapshotError] = SnapshotError
    errno_value = None
    if code == ERROR_ACCESS_DENIED:
        cls, errno_value = SnapshotPermissionError, _errno.EACCES
    elif function == "OpenProcess" and code == ERROR_INVALID_PARAMETER:
        cls, errno_value = ProcessNotFoundError, _errno.ESRCH
    elif code in (ERROR_CALL_NOT_IMPLEMENTED, ERROR_NOT_SUPPORTED):
        cls = SnapshotUnsupportedError
    elif code == ERROR_CANCELLED:
        cls = DumpCancelledError
    return cls(detail, errno=errno_value, winerror=code, hresult=hresult, function=function,
               pid=pid)


def from_hresult(
    hresult: int, function: str, *, pid: int | None = None, message: str | None = None,
    hint: str | None = None,
) -> SnapshotError:
    """The exception for an HRESULT, such as the one MiniDumpWriteDump leaves in GetLastError.

    FACILITY_WIN32 HRESULTs map as their Win32 code does; NTSTATUS values (raw or
    HRESULT_FROM_NT) for access denied and for a vanished process map to
    SnapshotPermissionError and ProcessNotFoundError, as the Win32 path does.
    """
    signed = hresult - (1 << 32) if hresult & 0x80000000 else hresult
    unsigned = signed & 0xFFFFFFFF
    code = win32_from_hresult(signed)
    if code is not None:
        return from_win32(code, function, pid=pid, message=message, hresult=signed, hint=hint)
    text = (message or "").strip() or f"HRESULT 0x{unsigned:08X}."
    ntstatus = unsigned & ~FACILITY_NT_BIT
    cls: type[SnapshotError] = SnapshotError
    errno_value = winerror = None
    if ntstatus in _NTSTATUS_DENIED:
        cls, errno_value, winerror = SnapshotPermissionError, _errno.EACCES, ERROR_ACCESS_DENIED
        hint = hint or _HINTS[ERROR_ACCESS_DENIED]
    elif ntstatus in _NTSTATUS_GONE:
        cls, errno_value = ProcessNotFoundError, _errno.ESRCH
        text = f"the process is gone ({text.rstrip('.')})"
    detail = _describe(function, text, pid) + (f" - {hint}" if hint else "")
    return cls(detail + f" [HRESULT 0x{unsigned:08X}]", errno=errno_value, winerror=winerror,
               hresult=signed, function=function, pid=pid)


def describe_process(pid: int) -> str:
    """``PID (NAME)`` for a message, NAME from /proc/PID/comm when it can be read."""
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
            return f"{pid} ({f.read().strip()})"
    except OSError:
        return str(pid)


def _tracer_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def from_errno(
    code: int, function: str, *, pid: int | None = None, detail: str = ""
) -> SnapshotError:
    """The exception for a failed Linux system call."""
    import os

    text = os.strerror(code) + (f"; {detail}" if detail else "")
    cls: type[SnapshotError] = SnapshotError
    if code in (_errno.EPERM, _errno.EACCES):
        cls = SnapshotPermissionError
        tracer = _tracer_of(pid) if pid is not None and function.startswith("ptrace") else 0
        if tracer and tracer != os.getpid():
            # Another tracer got there first: privileges would not help.
            text += (f" - pid {pid} is already traced by {describe_process(tracer)}; a "
                     "process has one tracer at a time: detach it first")
        elif function.startswith("ptrace") and not detail:
            text += f" - {_PTRACE_HINT}"
    elif code == _errno.ESRCH:
        cls = ProcessNotFoundError
    return cls(_describe(function, text, pid), errno=code, function=function, pid=pid)
