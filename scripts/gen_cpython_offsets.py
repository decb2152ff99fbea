"""Generate snapshotdump/_linux/dump/cpython_offsets.py from CPython's own headers.

For each CPython found (pyenv's by default), compile a small C program against its
headers (with Py_BUILD_CORE, for the internal ones) that prints every offset and size
the Python-stacks writer needs, so no offset is ever typed by hand:

- 3.10 to 3.12: the fields of _PyRuntimeState, PyInterpreterState, PyThreadState, the
  frame structs and the code, bytes and str objects.
- 3.13 and later: where each field of _Py_DebugOffsets sits (the offsets themselves are
  read from the target's own _PyRuntime), plus the str layout that it does not describe.

    python scripts/gen_cpython_offsets.py [--check[=MODULE_FILE]] [PYTHON_PREFIX ...]

--check writes nothing and exits 1 if the committed module (or MODULE_FILE: the tests name
the installed one) differs from what the headers give, so it is never edited by hand.

Needs gcc and each CPython's include/ directory.
"""

from __future__ import annotations

import glob
import json
import os
import pathlib
import pprint
import subprocess
import sys
import sysconfig
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "snapshotdump" / "_linux" / "dump" / "cpython_offsets.py"

# (key, C expression) printed for every version; str's state bits are found by setting
# each bit-field in a zeroed object and reading the word back.
COMMON = [
    ("object.ob_type", "offsetof(PyObject, ob_type)"),
    ("bytes.ob_size", "offsetof(PyVarObject, ob_size)"),
    ("bytes.ob_sval", "offsetof(PyBytesObject, ob_sval)"),
    ("unicode.length", "offsetof(PyASCIIObject, length)"),
    ("unicode.state", "offsetof(PyASCIIObject, state)"),
    ("unicode.ascii_size", "sizeof(PyASCIIObject)"),
    ("unicode.compact_size", "sizeof(PyCompactUnicodeObject)"),
    ("unicode.state_kind_mask", "STATE_MASK(kind, 7)"),
    ("unicode.state_compact_mask", "STATE_MASK(compact, 1)"),
    ("unicode.state_ascii_mask", "STATE_MASK(ascii, 1)"),
]
LEGACY = {
    (3, 10): [
        ("runtime.interpreters_head", "offsetof(_PyRuntimeState, interpreters.head)"),
        ("runtime.gil_locked", "offsetof(_PyRuntimeState, ceval.gil.locked)"),
        ("runtime.gil_holder", "offsetof(_PyRuntimeState, ceval.gil.last_holder)"),
        ("interp.next", "offsetof(PyInterpreterState, next)"),
        ("interp.threads_head", "offsetof(PyInterpreterState, tstate_head)"),
        ("tstate.next", "offsetof(PyThreadState, next)"),
        ("tstate.interp", "offsetof(PyThreadState, interp)"),
        ("tstate.frame", "offsetof(PyThreadState, frame)"),
        ("tstate.thread_id", "offsetof(PyThreadState, thread_id)"),
        ("frame.back", "offsetof(PyFrameObject, f_back)"),
        ("frame.code", "offsetof(PyFrameObject, f_code)"),
        ("frame.lasti", "offsetof(PyFrameObject, f_lasti)"),
        ("code.filename", "offsetof(PyCodeObject, co_filename)"),
        ("code.name", "offsetof(PyCodeObject, co_name)"),
        ("code.firstlineno", "offsetof(PyCodeObject, co_firstlineno)"),
        ("code.linetable", "offsetof(PyCodeObject, co_linetable)"),
    ],
    (3, 11): [
        ("runtime.interpreters_head", "offsetof(_PyRuntimeState, interpreters.head)"),
        ("runtime.gil_locked", "offsetof(_PyRuntimeState, ceval.gil.locked)"),
        ("runtime.gil_holder", "offsetof(_PyRuntimeState, ceval.gil.last_holder)"),
        ("interp.next", "offsetof(PyInterpreterState, next)"),
        ("interp.threads_head", "offsetof(PyInterpreterState, threads.head)"),
        ("tstate.next", "offsetof(PyThreadState, next)"),
        ("tstate.interp", "offsetof(PyThreadState, interp)"),
        ("tstate.cframe", "offsetof(PyThreadState, cframe)"),
        ("cframe.current_frame", "offsetof(_PyCFrame, current_frame)"),
        ("tstate.thread_id", "offsetof(PyThreadState, thread_id)"),
        ("tstate.native_thread_id", "offsetof(PyThreadState, native_thread_id)"),
        ("iframe.previous", "offsetof(_PyInterpreterFrame, previous)"),
        ("iframe.code", "offsetof(_PyInterpreterFrame, f_code)"),
        ("iframe.instr", "offsetof(_PyInterpreterFrame, prev_instr)"),
        ("iframe.owner", "offsetof(_PyInterpreterFrame, owner)"),
        ("code.filename", "offsetof(PyCodeObject, co_filename)"),
        ("code.name", "offsetof(PyCodeObject, co_qualname)"),
        ("code.firstlineno", "offsetof(PyCodeObject, co_firstlineno)"),
        ("code.linetable", "offsetof(PyCodeObject, co_linetable)"),
        ("code.code_adaptive", "offsetof(PyCodeObject, co_code_adaptive)"),
    ],
    (3, 12): [
        ("runtime.interpreters_head", "offsetof(_PyRuntimeState, interpreters.head)"),
        ("interp.ceval_gil", "offsetof(PyInterpreterState, ceval.gil)"),
        ("gil.locked", "offsetof(struct _gil_runtime_state, locked)"),
        ("gil.holder", "offsetof(struct _gil_runtime_state, last_holder)"),
        ("interp.next", "offsetof(PyInterpreterState, next)"),
        ("interp.threads_head", "offsetof(PyInterpreterState, threads.head)"),
        ("tstate.next", "offsetof(PyThreadState, next)"),
        ("tstate.interp", "offsetof(PyThreadState, interp)"),
        ("tstate.cframe", "offsetof(PyThreadState, cframe)"),
        ("cframe.current_frame", "offsetof(_PyCFrame, current_frame)"),
        ("tstate.thread_id", "offsetof(PyThreadState, thread_id)"),
        ("tstate.native_thread_id", "offsetof(PyThreadState, native_thread_id)"),
        ("iframe.previous", "offsetof(_PyInterpreterFrame, previous)"),
        ("iframe.code", "offsetof(_PyInterpreterFrame, f_code)"),
        ("iframe.instr", "offsetof(_PyInterpreterFrame, prev_instr)"),
        ("iframe.owner", "offsetof(_PyInterpreterFrame, owner)"),
        ("code.filename", "offsetof(PyCodeObject, co_filename)"),
        ("code.name", "offsetof(PyCodeObject, co_qualname)"),
        ("code.firstlineno", "offsetof(PyCodeObject, co_firstlineno)"),
        ("code.linetable", "offsetof(PyCodeObject, co_linetable)"),
        ("code.code_adaptive", "offsetof(PyCodeObject, co_code_adaptive)"),
    ],
}
# _Py_DebugOffsets fields (3.13+) this writer reads: key -> member path in the struct.
DEBUG_FIELDS = [
    ("version", "version"),
    ("free_threaded", "free_threaded"),
    ("runtime.interpreters_head", "runtime_state.interpreters_head"),
    ("interp.next", "interpreter_state.next"),
    ("interp.threads_head", "interpreter_state.threads_head"),
    ("interp.gil_locked", "interpreter_state.gil_runtime_state_locked"),
    ("interp.gil_holder", "interpreter_state.gil_runtime_state_holder"),
    ("tstate.next", "thread_state.next"),
    ("tstate.interp", "thread_state.interp"),
    ("tstate.current_frame", "thread_state.current_frame"),
    ("tstate.thread_id", "thread_state.thread_id"),
    ("tstate.native_thread_id", "thread_state.native_thread_id"),
    ("iframe.previous", "interpreter_frame.previous"),
    ("iframe.code", "interpreter_frame.executable"),
    ("iframe.instr", "interpreter_frame.instr_ptr"),
    ("iframe.owner", "interpreter_frame.owner"),
    ("code.filename", "code_object.filename"),
    ("code.name", "code_object.qualname"),
    ("code.firstlineno", "code_object.firstlineno"),
    ("code.linetable", "code_object.linetable"),
    ("code.code_adaptive", "code_object.co_code_adaptive"),
]

PROGRAM = """
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "internal/pycore_runtime.h"
#include "internal/pycore_interp.h"
%(extra)s
static unsigned long state_mask_of(PyASCIIObject *o) {
    unsigned int word = 0;
    memcpy(&word, (char *)o + offsetof(PyASCIIObject, state), sizeof word);
    return word;
}
#define STATE_MASK(field, all) ({ PyASCIIObject o; memset(&o, 0, sizeof o); \\
                                   o.state.field = all; state_mask_of(&o); })
int main(void) {
    printf("{\\n");
%(lines)s
    printf("\\"_end\\": 0}\\n");
    return 0;
}
"""


def _version(prefix: pathlib.Path) -> tuple[int, int] | None:
    includes = sorted(glob.glob(str(prefix / "include" / "python3.*")))
    for include in includes:
        name = os.path.basename(include).removeprefix("python")
        if name.count(".") == 1 and name.replace(".", "").isdigit():
            major, minor = name.split(".")
            return int(major), int(minor)
    return None


def _measure(prefix: pathlib.Path, version: tuple[int, int]) -> dict[str, int]:
    include = prefix / "include" / f"python{version[0]}.{version[1]}"
    if version >= (3, 13):
        pairs = [(f"debug.{k}", f"offsetof(_Py_DebugOffsets, {m})") for k, m in DEBUG_FIELDS]
        pairs.append(("debug.cookie", "offsetof(_Py_DebugOffsets, cookie)"))
    else:
        pairs = list(LEGACY[version])
    pairs += COMMON
    lines = "\n".join(f'    printf("\\"{key}\\": %lu,\\n", (unsigned long)({expr}));'
                      for key, expr in pairs)
    extra = "\n".join(f'#include "internal/{name}.h"' for name in (
        ["pycore_frame", "pycore_code"] if version >= (3, 11) else ["pycore_code"])
        + (["pycore_tstate"] if version >= (3, 13) else []))
    if version == (3, 10):
        extra += '\n#include "frameobject.h"'  # PyFrameObject, whose frames 3.10 walks
    with tempfile.TemporaryDirectory() as work:
        source = pathlib.Path(work) / "offsets.c"
        binary = pathlib.Path(work) / "offsets"
        source.write_text(PROGRAM % {"extra": extra, "lines": lines})
        subprocess.run(["gcc", "-w", "-I", str(include), "-o", str(binary), str(source)],
                       check=True)
        values = json.loads(subprocess.run([str(binary)], capture_output=True, text=True,
                                           check=True).stdout)
    values.pop("_end")
    return values


def main(prefixes: list[str]) -> int:
    checks = [p for p in prefixes if p == "--check" or p.startswith("--check=")]
    check = bool(checks)
    target = pathlib.Path(checks[-1].partition("=")[2] or OUTPUT) if checks else OUTPUT
    prefixes = [p for p in prefixes if p not in checks]
    if not prefixes:
        prefixes = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[0-9]*")))
        prefixes = prefixes or [sysconfig.get_config_var("prefix")]
    layouts: dict[tuple[int, int], dict[str, int]] = {}
    sources: dict[tuple[int, int], str] = {}
    for prefix in map(pathlib.Path, prefixes):
        version = _version(prefix)
        if version is None or version < (3, 10) or version in layouts:
            continue
        if version > (3, 13):
            print(f"skipping {prefix}: no field list for {version} yet", file=sys.stderr)
            continue
        layouts[version] = _measure(prefix, version)
        sources[version] = prefix.name
        print(f"{prefix}: {len(layouts[version])} values", file=sys.stderr)
    text = (
        '"""CPython struct layouts for the Python-stacks writer.\n\n'
        "GENERATED by scripts/gen_cpython_offsets.py from each version's own headers: do "
        "not edit.\nFrom: " + ", ".join(f"{v[0]}.{v[1]} ({s})" for v, s in sources.items())
        + '.\n"""\n\nLAYOUTS: dict[tuple[int, int], dict[str, int]] = '
        + pprint.pformat(layouts, width=96, sort_dicts=True) + "\n")
    if check:
        same = target.read_text() == text
        print(f"{target} is {'up to date' if same else 'STALE: run this script'}",
              file=sys.stderr)
        return 0 if same else 1
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
