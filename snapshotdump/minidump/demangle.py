"""C++ and Rust symbol names as a person reads them, through binutils' c++filt when present.

Rust names are shown as lldb shows them: v0 names without their crate disambiguator
(``std[e28293b1aa0f68bd]::``), legacy names with their ``::h0123...`` hash.
Without c++filt the names stay mangled.
"""

from __future__ import annotations

import re
import shutil
import subprocess

_CACHE: dict[str, str] = {}
_CRATE_HASH = re.compile(r"\[[0-9a-f]{1,16}\]")


def _mangled(name: str) -> bool:
    return name.startswith(("_Z", "_R"))


def demangle(names: list[str]) -> dict[str, str]:
    """Each name to its demangled form (itself when it is not mangled or cannot be)."""
    wanted = sorted({n for n in names if _mangled(n) and n not in _CACHE and "\n" not in n})
    tool = shutil.which("c++filt") if wanted else None
    if wanted and tool:
        try:
            result = subprocess.run([tool], input="\n".join(wanted) + "\n", capture_output=True,
                                    text=True, timeout=30, check=False)
            lines = result.stdout.splitlines()
        except (OSError, subprocess.SubprocessError):
            lines = []
        if len(lines) == len(wanted):
            for name, plain in zip(wanted, lines, strict=True):
                _CACHE[name] = _tidy(name, plain)
    return {n: _CACHE.get(n, n) for n in names}


def _tidy(name: str, plain: str) -> str:
    return _CRATE_HASH.sub("", plain) if name.startswith("_R") else plain
