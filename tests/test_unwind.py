"""Native unwinding and symbols of our dumps, checked against lldb's backtraces of the same file."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import time

import pytest

import snapshotdump
from snapshotdump.minidump.demangle import demangle
from snapshotdump.minidump.symbols import resolve

from .conftest import require_tool
from .stack_support import (
    C_VARIANTS,
    TARGETS,
    build_c,
    dump,
    lldb_backtraces,
    parked,
    physical_lldb_frames,
    symbol_aliases,
    wait_parked,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux targets")

# Each thread's own functions, innermost first, and where its stack must end up.
EXPECTED = {
    "sleeper": (["sleep_inner_nanosleep", "sleep_outer_thread"], "start_thread"),
    "locker": (["lock_inner_futex", "lock_outer_thread"], "start_thread"),
    "reader": (["read_inner_pipe", "read_outer_thread"], "start_thread"),
    None: (["main_waits_for_stdin"], "main"),  # the main thread, named after the binary
}


def _own_functions(frames: list[snapshotdump.NativeFrame], module: str) -> list[str]:
    return [f.function for f in frames if f.module == module and f.function is not None]


def _until(frames: list[snapshotdump.NativeFrame], last: str) -> list[snapshotdump.NativeFrame]:
    names = [f.function for f in frames]
    assert last in names, f"the unwind never reached {last}: {names}"
    return frames[:names.index(last) + 1]


@pytest.fixture(scope="module")
def binaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    out = tmp_path_factory.mktemp("stacks")
    return {variant: build_c(out, variant) for variant in C_VARIANTS}


@pytest.mark.parametrize("variant", list(C_VARIANTS))
def test_c_stacks_match_lldb(variant: str, binaries: dict[str, pathlib.Path],
                             tmp_path: pathlib.Path) -> None:
    binary = binaries[variant]
    with parked([str(binary)]) as process:
        wait_parked(process.pid, 4)
        path = dump(process.pid, tmp_path / "stacks.dmp")
    lldb = lldb_backtraces(path, binary)
    trusts: set[str] = set()
    with snapshotdump.open_dump(path) as opened:
        assert len(opened.threads) == 4
        for thread in opened.threads:
            name = thread.name if thread.name in EXPECTED else None
            own, last = EXPECTED[name]
            frames = _until(thread.frames, last)
            assert _own_functions(frames, binary.name)[:len(own)] == own, \
                [f.describe() for f in frames]
            assert frames[0].trust == "context"
            trusts |= {f.trust for f in frames[1:]}
            _assert_same_as_lldb(opened, frames, lldb[thread.thread_id])
    if "nocfi" not in variant:
        assert trusts == {"cfi"}
    elif variant.startswith("fp"):
        assert "frame pointer" in trusts
    else:
        assert "scan" in trusts


def _assert_same_as_lldb(opened: snapshotdump.Dump, frames: list[snapshotdump.NativeFrame],
                         lldb: list[object]) -> None:
    theirs = physical_lldb_frames([f.pc for f in frames], lldb)  # type: ignore[arg-type]
    for ours, their in zip(frames, theirs, strict=True):
        assert their is not None, (f"lldb has no frame at {ours.describe()} "
                                   f"({ours.pc:#x}): {lldb}")
        if their.function is None or their.function == ours.function:
            continue
        # The same code under another alias (lldb prefers DWARF names such as __GI___libc_read).
        module = opened.module_at(ours.pc - (ours.index > 0))
        assert module is not None and ours.function is not None, (ours, their)
        local = resolve(module.path, module.build_id).file
        assert local is not None
        start = local.first_vaddr + (ours.pc - module.base) - (ours.function_offset or 0)
        aliases = symbol_aliases(module.path, module.build_id).get(start, set())
        assert ours.symbol in aliases, (ours, their, aliases)
        assert their.function in aliases | set(demangle(sorted(aliases)).values()), \
            (ours, their, aliases)


def test_missing_and_rebuilt_module_files_keep_module_offsets(tmp_path: pathlib.Path,
                                                              binaries: dict[str, pathlib.Path]
                                                              ) -> None:
    binary = tmp_path / "moved-target"
    shutil.copy(binaries["fp"], binary)
    with parked([str(binary)]) as process:
        wait_parked(process.pid, 4)
        path = dump(process.pid, tmp_path / "moved.dmp")
    with snapshotdump.open_dump(path) as opened:
        reader = next(t for t in opened.threads if t.name == "reader")
        assert "read_inner_pipe" in [f.function for f in reader.frames]
    # Another build at the same path: its build id differs, so its symbols must not be used.
    subprocess.run([require_tool("gcc"), "-O0", "-pthread", "-DREBUILT", "-o", str(binary),
                    str(TARGETS / "stacks_target.c")], check=True)
    resolve.cache_clear()
    _assert_unsymbolized(path, binary.name, "build id differs")
    binary.unlink()
    resolve.cache_clear()
    _assert_unsymbolized(path, binary.name, "file missing")


def _assert_unsymbolized(path: pathlib.Path, module: str, problem: str) -> None:
    with snapshotdump.open_dump(path) as opened:
        reader = next(t for t in opened.threads if t.name == "reader")
        ours = [f for f in reader.frames if f.module == module]
        assert ours, [f.describe() for f in reader.frames]
        for frame in ours:
            assert frame.function is None and frame.module_problem == problem
            assert frame.module_offset == frame.pc - next(
                m.base for m in opened.modules if m.name == module)
        # libc still unwinds by CFI down to the first frame in the unsymbolized module.
        assert reader.frames[1].trust == "cfi"


def test_rust_target_stacks(tmp_path: pathlib.Path) -> None:
    rustc = require_tool("rustc", str(pathlib.Path.home() / ".cargo/bin/rustc"))
    binary = tmp_path / "rust-stacks"
    subprocess.run([rustc, "-O", "-g", "-o", str(binary), str(TARGETS / "stacks_target.rs")],
                   check=True)
    with parked([str(binary)]) as process:
        wait_parked(process.pid, 2)
        path = dump(process.pid, tmp_path / "rust.dmp")
    lldb = lldb_backtraces(path, binary)
    with snapshotdump.open_dump(path) as opened:
        parker = next(t for t in opened.threads if t.name == "rust-parker")
        frames = _until(parker.frames, "start_thread")
        names = " ".join(f.function or "" for f in frames)
        assert "rust_parks_in_sleep" in names, [f.describe() for f in frames]
        _assert_same_as_lldb(opened, frames, lldb[parker.thread_id])


def _outermost(frames: list[snapshotdump.NativeFrame]) -> str:
    return frames[-1].function or "" if frames else ""


def test_jvm_threads_unwind_to_their_start(tmp_path: pathlib.Path) -> None:
    javac, java = require_tool("javac"), require_tool("java")
    subprocess.run([javac, "-d", str(tmp_path), str(TARGETS / "Park.java")], check=True)
    with parked([java, "-cp", str(tmp_path), "Park"]) as process:
        wait_parked(process.pid, 25)
        path = dump(process.pid, tmp_path / "jvm.dmp")
    with snapshotdump.open_dump(path) as opened:
        assert len(opened.threads) >= 25
        sleepers = [t for t in opened.threads if (t.name or "").startswith("sleeper-")]
        assert sleepers, [t.name for t in opened.threads]
        for thread in opened.threads[1:]:
            # Through libjvm's C++ (demangled) and JIT code, down to the clone that made it.
            assert _outermost(thread.frames) in ("__clone3", "__clone"), \
                [f.describe() for f in thread.frames]
        names = {f.function for t in opened.threads for f in t.frames}
        assert "Thread::call_run()" in names and "start_thread" in names


def test_node_main_thread_unwinds_to_start(tmp_path: pathlib.Path) -> None:
    node = require_tool("node")
    with parked([node, str(TARGETS / "park.js")]) as process:
        time.sleep(0.5)  # past start-up: node compiles lazily on its main thread
        wait_parked(process.pid, 2, main=True)
        path = dump(process.pid, tmp_path / "node.dmp")
    with snapshotdump.open_dump(path) as opened:
        main = opened.threads[0]
        names = [f.function for f in main.frames]
        # node's main() tail-calls node::Start, so the C runtime's frames come next.
        assert "uv_run" in names and "__libc_start_call_main" in names, names
        assert _outermost(main.frames) == "_start", names
