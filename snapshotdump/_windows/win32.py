"""kernel32 / advapi32 calls and the single funnel that turns their failures into exceptions."""

from __future__ import annotations

import contextlib
from typing import Any

from .. import errors
from . import libs

FORMAT_MESSAGE_FROM_SYSTEM = 0x00001000
FORMAT_MESSAGE_IGNORE_INSERTS = 0x00000200

PROCESS_VM_OPERATION = 0x0008
PROCESS_VM_READ = 0x0010
PROCESS_DUP_HANDLE = 0x0040
PROCESS_CREATE_PROCESS = 0x0080
PROCESS_QUERY_INFORMATION = 0x0400
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
# What PssCaptureSnapshot (VA clone, handles) and MiniDumpWriteDump need, and no more.
SNAPSHOT_ACCESS = (
    PROCESS_VM_OPERATION | PROCESS_VM_READ | PROCESS_DUP_HANDLE | PROCESS_CREATE_PROCESS
    | PROCESS_QUERY_INFORMATION | PROCESS_QUERY_LIMITED_INFORMATION
)

# An owner-only DACL, the counterpart of mode 0600: protected (nothing inherited from the
# folder) and one ACE, full access for OWNER RIGHTS (S-1-3-4), the file's current owner.
OWNER_ONLY_SDDL = "D:P(A;;FA;;;OW)"
SDDL_REVISION_1 = 1
SE_FILE_OBJECT = 1
DACL_SECURITY_INFORMATION = 0x00000004
PROTECTED_DACL_SECURITY_INFORMATION = 0x80000000
READ_CONTROL = 0x00020000
WRITE_DAC = 0x00040000
_NO_ACLS = frozenset({1, errors.ERROR_NOT_SUPPORTED})  # ERROR_INVALID_FUNCTION too
FILE_SHARE_ALL = 0x7  # read, write, delete: reopening must not conflict with the fd's handle

TOKEN_ADJUST_PRIVILEGES = 0x0020
TOKEN_QUERY = 0x0008
SE_PRIVILEGE_ENABLED = 0x00000002
ERROR_NOT_ALL_ASSIGNED = 1300


def format_message(code: int) -> str | None:
    """FormatMessageW's text for a Win32 code or HRESULT, or None if it has none."""
    ffi = libs.ffi()
    buffer = ffi.new("WCHAR[]", 512)
    flags = FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS
    try:
        length = libs.LIBRARIES.kernel32.FormatMessageW(
            flags, ffi.NULL, code & 0xFFFFFFFF, 0, buffer, 512, ffi.NULL)
    except (AttributeError, ffi.error):
        return None
    if not length:
        return None
    return str(ffi.string(buffer, length)).strip()


def error(code: int, function: str, *, pid: int | None = None) -> errors.SnapshotError:
    return errors.from_win32(code, function, pid=pid, message=format_message(code))


def last_error(function: str, *, pid: int | None = None) -> errors.SnapshotError:
    """The exception for a BOOL/HANDLE call that failed: reads GetLastError() once, now."""
    return error(int(libs.LIBRARIES.kernel32.GetLastError()), function, pid=pid)


def check(result: Any, function: str, *, pid: int | None = None) -> None:
    """Raise for a BOOL result of FALSE."""
    if not result:
        raise last_error(function, pid=pid)


def check_code(code: int, function: str, *, pid: int | None = None) -> None:
    """Raise for a nonzero Win32 result code (the PSS functions return one)."""
    if code != errors.ERROR_SUCCESS:
        raise error(int(code), function, pid=pid)


def handle_value(handle: Any) -> int:
    ffi = libs.ffi()
    return int(ffi.cast("uintptr_t", handle))


def open_process(pid: int) -> Any:
    kernel32 = libs.LIBRARIES.kernel32
    handle = kernel32.OpenProcess(SNAPSHOT_ACCESS, 0, pid)
    if handle == libs.ffi().NULL:
        raise last_error("OpenProcess", pid=pid)
    return handle


def close_handle(handle: Any) -> None:
    libs.LIBRARIES.kernel32.CloseHandle(handle)


def process_id(handle: Any) -> int:
    pid = int(libs.LIBRARIES.kernel32.GetProcessId(handle))
    if pid == 0:
        raise last_error("GetProcessId")
    return pid


def image_path(handle: Any) -> str | None:
    ffi = libs.ffi()
    size = ffi.new("DWORD *", 32768)
    buffer = ffi.new("WCHAR[]", 32768)
    if not libs.LIBRARIES.kernel32.QueryFullProcessImageNameW(handle, 0, buffer, size):
        return None
    return str(ffi.string(buffer, size[0]))


def is_wow64(process: Any) -> bool:
    """True if *process* is a 32-bit process on 64-bit Windows; False if unsure."""
    flag = libs.ffi().new("BOOL *")
    if not libs.LIBRARIES.kernel32.IsWow64Process(process, flag):
        return False
    return bool(flag[0])


def handle_count(handle: Any) -> int:
    ffi = libs.ffi()
    count = ffi.new("DWORD *")
    check(libs.LIBRARIES.kernel32.GetProcessHandleCount(handle, count), "GetProcessHandleCount")
    return int(count[0])


def make_private(file: Any) -> None:
    """Give the open *file* an owner-only DACL (its handle lacks WRITE_DAC, so reopen it)."""
    ffi = libs.ffi()
    kernel32, advapi32 = libs.LIBRARIES.kernel32, libs.LIBRARIES.advapi32
    handle = kernel32.ReOpenFile(file, WRITE_DAC | READ_CONTROL, FILE_SHARE_ALL, 0)
    if handle == ffi.cast("HANDLE", -1):
        raise last_error("ReOpenFile")
    try:
        descriptor = ffi.new("void **")
        check(advapi32.ConvertStringSecurityDescriptorToSecurityDescriptorW(
            OWNER_ONLY_SDDL, SDDL_REVISION_1, descriptor, ffi.NULL),
            "ConvertStringSecurityDescriptorToSecurityDescriptorW")
        try:
            present, dacl, defaulted = ffi.new("BOOL *"), ffi.new("void **"), ffi.new("BOOL *")
            check(advapi32.GetSecurityDescriptorDacl(descriptor[0], present, dacl, defaulted),
                  "GetSecurityDescriptorDacl")
            code = advapi32.SetSecurityInfo(
                handle, SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                ffi.NULL, ffi.NULL, dacl[0], ffi.NULL)
            # A file system without ACLs (FAT, some shares) has nothing to protect with,
            # as chmod does nothing there on Linux; anything else is an error.
            if code not in _NO_ACLS:
                check_code(code, "SetSecurityInfo")
        finally:
            kernel32.LocalFree(descriptor[0])
    finally:
        close_handle(handle)


def enable_debug_privilege() -> bool:
    """Enable SeDebugPrivilege in this process's token; True if it is now enabled."""
    ffi = libs.ffi()
    kernel32, advapi32 = libs.LIBRARIES.kernel32, libs.LIBRARIES.advapi32
    token = ffi.new("HANDLE *")
    check(advapi32.OpenProcessToken(kernel32.GetCurrentProcess(),
                                    TOKEN_ADJUST_PRIVILEGES | TOKEN_QUERY, token),
          "OpenProcessToken")
    try:
        privileges = ffi.new("TOKEN_PRIVILEGES *")
        check(advapi32.LookupPrivilegeValueW(ffi.NULL, "SeDebugPrivilege",
                                             ffi.addressof(privileges.Privileges[0].Luid)),
              "LookupPrivilegeValueW")
        privileges.PrivilegeCount = 1
        privileges.Privileges[0].Attributes = SE_PRIVILEGE_ENABLED
        check(advapi32.AdjustTokenPrivileges(token[0], 0, privileges, 0, ffi.NULL, ffi.NULL),
              "AdjustTokenPrivileges")
        # AdjustTokenPrivileges succeeds without assigning what the token does not hold.
        return int(kernel32.GetLastError()) != ERROR_NOT_ALL_ASSIGNED
    finally:
        with contextlib.suppress(Exception):
            close_handle(token[0])
