"""The DLLs, opened on first use from System32 only, and the fd -> HANDLE conversion.

``LIBRARIES`` is the whole boundary between this backend and Windows: the tests
replace it (tests/conftest.py) with fakes that follow the documented protocol.
"""

from __future__ import annotations

import threading
from typing import Any

from .._bindings import load

FILETIME_TICKS_PER_SECOND = 10_000_000
# 100-ns intervals between 1601-01-01 (FILETIME's epoch) and 1970-01-01.
FILETIME_UNIX_EPOCH = 116_444_736_000_000_000
# LoadLibraryExW: search System32 only, for the DLL and for its dependencies.
LOAD_LIBRARY_SEARCH_SYSTEM32 = 0x00000800


def ffi() -> Any:
    return load("windows")


class Libraries:
    """kernel32, advapi32 and dbghelp, each opened from System32 the first time it is asked for.

    A bare-name load searches the application's folder (next to python.exe, or a frozen
    app's folder) before System32, so a dbghelp.dll planted there would run in our process.
    """

    def __init__(self) -> None:
        self._opened: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Any:
        with self._lock:
            lib = self._opened.get(name)
            if lib is None:
                lib = self._open(name)
                self._opened[name] = lib
            return lib

    def _open(self, name: str) -> Any:
        # kernel32 is a KnownDLL, mapped into every process before Python starts: this
        # bare-name load can only return that copy.  It is used just to reach LoadLibraryExW.
        loader = self._opened.get("kernel32") or ffi().dlopen("kernel32.dll")
        handle = loader.LoadLibraryExW(f"{name}.dll", ffi().NULL, LOAD_LIBRARY_SEARCH_SYSTEM32)
        if handle == ffi().NULL:
            code = int(loader.GetLastError())
            raise OSError(f"cannot load {name}.dll from System32 (WinError {code}); "
                          "snapshotdump's Windows backend needs it")
        return ffi().dlopen(handle)

    @property
    def kernel32(self) -> Any:
        return self.get("kernel32")

    @property
    def advapi32(self) -> Any:
        return self.get("advapi32")

    @property
    def dbghelp(self) -> Any:
        return self.get("dbghelp")

    def os_handle(self, fd: int) -> Any:
        """The Win32 file HANDLE behind a C runtime fd (the fd keeps owning it)."""
        import msvcrt

        get_osfhandle: Any = getattr(msvcrt, "get_osfhandle")  # noqa: B009 (Windows-only)
        return ffi().cast("HANDLE", get_osfhandle(fd))


LIBRARIES: Any = Libraries()


def filetime_seconds(filetime: Any) -> float:
    """A FILETIME duration (kernel or user time) in seconds."""
    ticks = (int(filetime.dwHighDateTime) << 32) | int(filetime.dwLowDateTime)
    return ticks / FILETIME_TICKS_PER_SECOND


def filetime_to_unix(filetime: Any) -> float | None:
    """A FILETIME instant as a Unix timestamp (None for the zero FILETIME)."""
    ticks = (int(filetime.dwHighDateTime) << 32) | int(filetime.dwLowDateTime)
    if ticks == 0:
        return None
    return (ticks - FILETIME_UNIX_EPOCH) / FILETIME_TICKS_PER_SECOND
