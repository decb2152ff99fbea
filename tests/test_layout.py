"""Every struct the Windows binding declares has MSVC's x64 layout.

clang implements MSVC's record layout.  tests/abi/sdk_reference.h declares the
structs the way the Windows SDK does (native types, #pragma pack(4),
DECLSPEC_ALIGN(16) on CONTEXT); clang computes every sizeof and offsetof, and
each must equal what cffi computes from snapshotdump/_cdefs.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
from typing import Any

import pytest

from snapshotdump._bindings import load

from .conftest import require_tool

REFERENCE = pathlib.Path(__file__).parent / "abi" / "sdk_reference.h"
# Our hand-written padding has no counterpart in the SDK: the compiler inserts it there.
_OUR_PADDING = ("_msvc_",)
_SKIP_TYPES = re.compile(r"^(CDEFS_DIGEST_|MINIDUMP_CALLBACK_ROUTINE$)")


def _windows_structs(ffi: Any) -> list[str]:
    names = []
    for name in ffi.list_types()[0]:
        if _SKIP_TYPES.match(name):
            continue
        if ffi.typeof(name).kind in ("struct", "union"):
            names.append(name)
    return sorted(names)


def _cffi_layout(ffi: Any) -> dict[str, int]:
    layout: dict[str, int] = {}
    for name in _windows_structs(ffi):
        ctype = ffi.typeof(name)
        layout[f"sizeof({name})"] = ffi.sizeof(ctype)
        for field, info in ctype.fields:
            if field is None or field.startswith(_OUR_PADDING):
                continue
            layout[f"offsetof({name}, {field})"] = info.offset
            if info.type.kind in ("struct", "union") and info.type.fields:
                for sub, subinfo in info.type.fields:
                    if sub is None or sub.startswith(_OUR_PADDING):
                        continue
                    layout[f"offsetof({name}, {field}.{sub})"] = info.offset + subinfo.offset
    return layout


def _msvc_layout(expressions: list[str], tmp_path: pathlib.Path) -> dict[str, int]:
    clang = require_tool("clang", "clang-14")
    source = tmp_path / "layout.c"
    lines = ["#include <stddef.h>", f'#include "{REFERENCE}"']
    for index, expression in enumerate(expressions):
        lines.append(f"unsigned long long L{index} = {expression};")
    source.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [clang, "-target", "x86_64-pc-windows-msvc", "-fms-extensions", "-S", "-emit-llvm",
         "-o", "-", str(source)],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    values = dict(re.findall(r"^@L(\d+) = .*global i64 (\d+)", result.stdout, re.M))
    assert len(values) == len(expressions), "clang did not emit every layout value"
    return {expression: int(values[str(i)]) for i, expression in enumerate(expressions)}


def test_every_struct_matches_msvc_x64(tmp_path: pathlib.Path) -> None:
    ffi = load("windows")
    ours = _cffi_layout(ffi)
    assert len(ours) > 400, "the layout walk missed most of the declarations"
    msvc = _msvc_layout(sorted(ours), tmp_path)
    mismatches = {k: (ours[k], msvc[k]) for k in ours if ours[k] != msvc[k]}
    assert not mismatches, f"cffi != MSVC (cffi, msvc): {mismatches}"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # Reference figures measured with MSVC's layout (shared/notes/abi.md).
        ("sizeof(MINIDUMP_CALLBACK_INPUT)", 1312),
        ("offsetof(MINIDUMP_CALLBACK_INPUT, Thread.Context)", 32),
        ("sizeof(MINIDUMP_CALLBACK_OUTPUT)", 52),
        ("offsetof(MINIDUMP_CALLBACK_OUTPUT, Status)", 0),
        ("sizeof(MINIDUMP_CALLBACK_INFORMATION)", 16),
        ("sizeof(MINIDUMP_EXCEPTION_INFORMATION)", 16),
        ("offsetof(MINIDUMP_EXCEPTION_INFORMATION, ExceptionPointers)", 4),
        ("offsetof(MINIDUMP_EXCEPTION_INFORMATION, ClientPointers)", 12),
        ("sizeof(MINIDUMP_USER_STREAM)", 16),
        ("sizeof(MINIDUMP_USER_STREAM_INFORMATION)", 12),
        ("sizeof(PSS_VA_CLONE_INFORMATION)", 8),
        ("sizeof(PSS_THREAD_INFORMATION)", 8),
        ("sizeof(PSS_PROCESS_INFORMATION)", 704),
        ("sizeof(CONTEXT)", 1232),
        ("sizeof(MINIDUMP_MODULE)", 108),
        # The watch's sampler and crash trigger (x64 sizes in Microsoft's documentation).
        ("sizeof(PROCESS_MEMORY_COUNTERS)", 72),
        ("sizeof(PROCESSENTRY32W)", 568),
        ("sizeof(DEBUG_EVENT)", 176),
        ("offsetof(DEBUG_EVENT, u.Exception)", 16),
    ],
)
def test_known_msvc_figures(expression: str, expected: int) -> None:
    ffi = load("windows")
    ours = _cffi_layout(ffi)
    if expression.startswith("offsetof(MINIDUMP_CALLBACK_INPUT, Thread.Context)"):
        value = ffi.offsetof("MINIDUMP_CALLBACK_INPUT", "Thread") + ffi.offsetof(
            "MINIDUMP_THREAD_CALLBACK", "Context")
    else:
        value = ours[expression]
    assert value == expected
