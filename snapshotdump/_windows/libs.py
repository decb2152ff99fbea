"""The DLLs, opened on first use.  Tests may swap ``LIBRARIES`` for fakes at the cffi boundary."""

from __future__ import annotations

from typing import Any

from .._bindings import load

FILETIME_TICKS_PER_SECOND = 10_000_000
# 100-ns intervals between 1601-01-01 (FILETIME's epoch) and 1970-01-01.
FILETIME_UNIX_EPOCH = 116_444_736_000_000_000


def ffi() -> Any:
    return load("windows")


class Libraries:
    """kernel32, advapi32 and dbghelp, each opened the first time it is asked for."""

    def __init__(self) -> None:
        self._opened: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        lib = self._opened.get(name)
        if lib is None:
            try:
                lib = ffi().dlopen(f"{name}.dll")
            except OSError as exc:
                raise OSError(f"cannot load {name}.dll: {exc}; snapshotdump's Windows "
                              "backend needs it") from exc
            self._opened[name] = lib
        return lib

    @property
    def kernel32(self) -> Any:
        return self.get("kernel32")

    @property
    def advapi32(self) -> Any:
        return self.get("advapi32")

    @property
    def dbghelp(self) -> Any:
        return self.get("dbghelp")


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
