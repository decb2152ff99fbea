"""Which Windows interpreters the backend's declarations fit."""

from __future__ import annotations

import sysconfig

from .. import errors

# CONTEXT_ALL_AMD64 and the hand-written MSVC padding in _cdefs/dbghelp.h are x64's.
SUPPORTED = "win-amd64"
_NAMES = {"win32": "32-bit x86", "win-arm64": "ARM64", "win-arm32": "ARM"}


def interpreter() -> str:
    """The platform this Python was built for (win-amd64, win32, win-arm64)."""
    return sysconfig.get_platform()


def check() -> None:
    """Raise SnapshotUnsupportedError, naming the architecture, unless Python is x64."""
    platform = interpreter()
    if platform == SUPPORTED:
        return
    name = _NAMES.get(platform, platform)
    raise errors.SnapshotUnsupportedError(
        f"snapshotdump's Windows backend supports x64 (win-amd64) Python only; this Python is "
        f"{name} ({platform}), whose CONTEXT and DbgHelp callback layouts differ: run it "
        "from a 64-bit x64 Python", function="capture")
