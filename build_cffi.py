"""Declarations -> generated binding modules (cffi out-of-line ABI mode).

The cdefs in ``snapshotdump/_cdefs`` are parsed here, once, and turned into pure
Python modules under ``snapshotdump/_bindings``: they import on any OS with no
compiler, and the DLLs / libc are opened lazily by the code that needs them.

setuptools runs the three ``*_ffi`` objects below (see setup.py).  Run this file
directly to generate the modules in the source tree::

    python build_cffi.py
"""

from __future__ import annotations

import importlib.util
import pathlib

import cffi

HERE = pathlib.Path(__file__).resolve().parent
CDEFS = HERE / "snapshotdump" / "_cdefs"
PACKAGE = "snapshotdump._bindings"
_DIGEST_SPEC = importlib.util.spec_from_file_location(
    "_snapshotdump_digest", HERE / "snapshotdump" / "_bindings" / "digest.py")
assert _DIGEST_SPEC is not None and _DIGEST_SPEC.loader is not None
_digest = importlib.util.module_from_spec(_DIGEST_SPEC)
_DIGEST_SPEC.loader.exec_module(_digest)


def _read(name: str) -> str:
    return (CDEFS / name).read_text(encoding="utf-8")


def cdefs_digest() -> str:
    """A digest of every declaration file, compiled into the modules to detect stale builds."""
    return str(_digest.cdefs_digest(CDEFS))


def _stamp(ffi: cffi.FFI) -> None:
    # The digest becomes a type name, which any FFI can look up without opening a library.
    ffi.cdef(f"typedef int CDEFS_DIGEST_{cdefs_digest()};")


def _make_minidump_ffi() -> cffi.FFI:
    ffi = cffi.FFI()
    ffi.cdef(_read("minidump.h"), packed=True)
    _stamp(ffi)
    ffi.set_source(f"{PACKAGE}._minidump_ffi", None)
    return ffi


minidump_ffi = _make_minidump_ffi()


def _make_windows_ffi() -> cffi.FFI:
    ffi = cffi.FFI()
    ffi.include(minidump_ffi)
    ffi.cdef(_read("win32.h"))
    ffi.cdef(_read("pss.h"))
    ffi.cdef(_read("dbghelp.h"), packed=True)
    _stamp(ffi)
    ffi.set_source(f"{PACKAGE}._windows_ffi", None)
    return ffi


def _make_linux_ffi() -> cffi.FFI:
    ffi = cffi.FFI()
    ffi.cdef(_read("linux.h"))
    ffi.cdef(_read("linux_x86_64.h"))
    _stamp(ffi)
    ffi.set_source(f"{PACKAGE}._linux_ffi", None)
    return ffi


windows_ffi = _make_windows_ffi()
linux_ffi = _make_linux_ffi()


def main() -> None:
    out = HERE / "snapshotdump" / "_bindings"
    for name, ffi in (("_minidump_ffi", minidump_ffi), ("_windows_ffi", windows_ffi),
                      ("_linux_ffi", linux_ffi)):
        ffi.emit_python_code(str(out / f"{name}.py"))


if __name__ == "__main__":
    main()
