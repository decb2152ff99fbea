"""The architecture module of this machine (x86_64 today; aarch64 would be one more module)."""

from __future__ import annotations

import platform
from types import ModuleType

from .. import errors


def current() -> ModuleType:
    machine = platform.machine()
    if machine in ("x86_64", "AMD64"):
        from . import x86_64

        return x86_64
    raise errors.SnapshotUnsupportedError(
        f"snapshotdump's Linux backend supports x86_64; this machine is {machine}",
        function="capture")
