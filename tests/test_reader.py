"""The public reader (open_dump) and `snapshotdump info`, on our dumps and on foreign ones."""

from __future__ import annotations

import gzip
import json
import lzma
import os
import pathlib
import signal
import struct
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import snapshotdump
from snapshotdump.cli import main as cli_main

from .conftest import require_tool
from .stack_support import build_c, dump, parked, wait_parked

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux targets")


@pytest.fixture(scope="module")
def target_binary(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return build_c(tmp_path_factory.mktemp("reader"), "fp")


@pytest.fixture(scope="module")
def dumps(target_binary: pathlib.Path, tmp_path_factory: pytest.TempPathFactory
          ) -> dict[str, pathlib.Path]:
    """A normal and a full dump of one parked target, taken while it ran."""
    out = tmp_path_factory.mktemp("reader-dumps")
    with parked([str(target_binary)]) as process:
        wait_parked(process.pid, 4)
        normal = dump(process.pid, out / "normal.dmp")
        full = dump(process.pid, out / "full.dmp", snapshotdump.MiniDumpType.WITH_FULL_MEMORY)
    return {"normal": normal, "full": full}


def test_reader_matches_skelsec_minidump(dumps: dict[str, pathlib.Path]) -> None:
    minidumpfile = pytest.importorskip("minidump.minidumpfile")
    theirs = minidumpfile.MinidumpFile.parse(str(dumps["full"]))
    with snapshotdump.open_dump(dumps["full"]) as ours:
        assert [t.thread_id for t in ours.threads] == [t.ThreadId for t in theirs.threads.threads]
        assert [t.teb for t in ours.threads] == [t.Teb for t in theirs.threads.threads]
        assert [(m.base, m.size, m.path) for m in ours.modules] == [
            (m.baseaddress, m.size, m.name) for m in theirs.modules.modules]
        reader = theirs.get_reader()
        for thread in ours.threads:
            # Teb is fs_base: glibc's thread control block starts with a pointer to itself.
            assert thread.teb != 0
            assert ours.read_pointer(thread.teb) == thread.teb
            assert reader.read(thread.teb, 8) == ours.read(thread.teb, 8)
            assert thread.stack is not None
            assert ours.read(thread.registers["rsp"], 64) == reader.read(
                thread.registers["rsp"], 64)
        assert ours.read(0, 8) is None


def test_registers_and_names_match_lldb(dumps: dict[str, pathlib.Path]) -> None:
    lldb = require_tool("lldb", "lldb-14")
    env = {**os.environ, "PYTHONPATH": "/usr/lib/llvm-14/lib/python3.11/dist-packages"}
    result = subprocess.run([lldb, "-b", "-c", str(dumps["normal"]), "-o", "thread list",
                             "-o", "register read rip rsp rbp"], capture_output=True, text=True,
                            env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    with snapshotdump.open_dump(dumps["normal"]) as ours:
        first = ours.threads[0]
        for name in ("rip", "rsp", "rbp"):
            assert f"{name} = {first.registers[name]:#018x}" in result.stdout
        for thread in ours.threads:
            assert f"tid = {thread.thread_id}," in result.stdout
        assert {t.name for t in ours.threads} >= {"sleeper", "locker", "reader"}


def test_info_reads_compressed_dumps_alike(dumps: dict[str, pathlib.Path],
                                           tmp_path: pathlib.Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    plain = dumps["normal"].read_bytes()
    (tmp_path / "a.dmp.gz").write_bytes(gzip.compress(plain))
    (tmp_path / "a.dmp.xz").write_bytes(lzma.compress(plain))
    views = []
    for path in (dumps["normal"], tmp_path / "a.dmp.gz", tmp_path / "a.dmp.xz"):
        assert cli_main(["info", str(path), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["size"] == len(plain)
        info.pop("path")
        views.append(info)
    assert views[0] == views[1] == views[2]
    (tmp_path / "bad.dmp.xz").write_bytes(lzma.compress(plain)[:100])
    assert cli_main(["info", str(tmp_path / "bad.dmp.xz")]) == 1
    assert "cannot decompress" in capsys.readouterr().err


def test_info_text_puts_threads_first(dumps: dict[str, pathlib.Path],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["info", str(dumps["normal"])]) == 0
    text = capsys.readouterr().out
    assert text.index("threads (4):") < text.index("modules (") < text.index("streams:")
    assert "sleep_inner_nanosleep" in text and "[context]" in text and "[cfi]" in text
    assert "in a system call: clock_nanosleep (" in text and "in a system call: read (" in text
    with snapshotdump.open_dump(dumps["normal"]) as opened:
        locker = next(t for t in opened.threads if t.name == "locker")
    assert cli_main(["info", str(dumps["normal"]), "--thread", str(locker.thread_id)]) == 0
    narrowed = capsys.readouterr().out
    assert "threads (1):" in narrowed and "lock_inner_futex" in narrowed
    assert "sleep_inner_nanosleep" not in narrowed
    assert cli_main(["info", str(dumps["normal"]), "--no-symbols"]) == 0
    bare = capsys.readouterr().out
    assert "threads (4):" in bare and "lock_inner_futex" not in bare and ", pc 0x" in bare
    assert cli_main(["info", str(dumps["normal"]), "--thread", "1"]) == 1
    assert "thread 1 is not in the dump" in capsys.readouterr().err


# The --json schema, checked with jsonschema: documented in docs/stacks.md.
FRAME = {"type": "object", "required": ["index", "pc", "sp", "trust", "module", "module_offset",
                                         "function", "function_offset", "module_problem",
                                         "symbol"],
         "properties": {"trust": {"enum": ["context", "cfi", "frame pointer", "scan"]},
                        "pc": {"type": "integer"}, "function": {"type": ["string", "null"]}}}
INFO_SCHEMA = {
    "type": "object",
    "required": ["schema", "path", "size", "os", "os_version", "cpu", "pid", "threads",
                 "python_stacks_error", "exception", "modules", "memory", "streams"],
    "properties": {
        "schema": {"const": 1},
        "threads": {"type": "array", "items": {
            "type": "object",
            "required": ["thread_id", "name", "state", "pc", "sp", "teb", "python", "frames"],
            "properties": {"frames": {"type": "array", "items": FRAME},
                           "python": {"type": ["object", "null"]}}}},
        "modules": {"type": "array", "items": {
            "type": "object", "required": ["base", "size", "path", "debug_id", "local_file"]}},
        "streams": {"type": "array", "items": {
            "type": "object", "required": ["type", "name", "count", "size"]}},
    },
}


def test_info_json_schema(dumps: dict[str, pathlib.Path],
                          capsys: pytest.CaptureFixture[str]) -> None:
    import jsonschema  # a test dependency ([test]): never skipped
    assert cli_main(["info", str(dumps["normal"]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    jsonschema.validate(info, INFO_SCHEMA)
    assert all(t["frames"] for t in info["threads"])
    assert {m["local_file"] for m in info["modules"]} <= {"matches", "file missing"}


def test_huge_stream_count_is_bounded(tmp_path: pathlib.Path) -> None:
    header = struct.pack("<IIIIIIQ", 0x504D444D, 0xA793, 1_000_000, 32, 0, 0, 0)
    short = tmp_path / "claims.dmp"
    short.write_bytes(header + bytes(64))
    with pytest.raises(snapshotdump.DumpFormatError, match="stream directory"):
        snapshotdump.open_dump(short)
    # A file that does hold a million (user) entries: read, summarized per type.
    real = tmp_path / "million.dmp"
    real.write_bytes(header + struct.pack("<III", 0x10001, 0, 0) * 1_000_000)
    result = subprocess.run([sys.executable, "-m", "snapshotdump", "info", str(real)],
                            capture_output=True, text=True, timeout=60, check=False,
                            cwd=pathlib.Path(__file__).parent.parent)
    assert result.returncode == 0, result.stderr
    assert "0x10001 x1000000 (0 B)" in result.stdout


def _windows_yaml(context: bytes) -> str:
    return f"""--- !minidump
Streams:
  - Type: SystemInfo
    Processor Arch: AMD64
    Platform ID: Win32NT
    CPU:
      Vendor ID: GenuineIntel
      Version Info: 0x0
      Feature Info: 0x0
  - Type: ThreadList
    Threads:
      - Thread Id: 0x1234
        Environment Block: 0x7FFDF000
        Context: {context.hex()}
        Stack:
          Start of Memory Range: 0x10000
          Content: {(b'S' * 64).hex()}
  - Type: ModuleList
    Modules:
      - Base of Image: 0x140000000
        Size of Image: 0x2000
        Module Name: 'C:\\app\\app.exe'
        CodeView Record: 52534453{'11' * 16}01000000{b'app.pdb'.hex()}00
  - Type: MemoryList
    Memory Ranges:
      - Start of Memory Range: 0x20000
        Content: DEADBEEF
"""


def test_windows_minidump_from_yaml2obj(tmp_path: pathlib.Path) -> None:
    yaml2obj = require_tool("yaml2obj", "/usr/lib/llvm-14/bin/yaml2obj")
    context = bytearray(1232)  # the x64 CONTEXT of winnt.h: Rsp at 0x98, Rip at 0xF8
    struct.pack_into("<Q", context, 0x98, 0x10008)
    struct.pack_into("<Q", context, 0xF8, 0x140001234)
    (tmp_path / "w.yaml").write_text(_windows_yaml(bytes(context)))
    subprocess.run([yaml2obj, str(tmp_path / "w.yaml"), "-o", str(tmp_path / "w.dmp")],
                   check=True)
    with snapshotdump.open_dump(tmp_path / "w.dmp") as opened:
        assert opened.system is not None and opened.system.os == "Windows NT"
        [thread] = opened.threads
        assert (thread.thread_id, thread.teb, thread.pc) == (0x1234, 0x7FFDF000, 0x140001234)
        assert opened.read(0x20000, 4) == bytes.fromhex("DEADBEEF")
        assert opened.read(0x10000, 64) == b"S" * 64 and opened.read(0x1003F, 2) is None
        [module] = opened.modules
        assert module.name == "app.exe" and module.debug_id == "11" * 16 + "1"
        frames = thread.frames
        assert frames[0].trust == "context" and frames[0].module == "app.exe"
        assert frames[0].module_problem == "file missing"


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Hang


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzzed_reader_raises_only_its_error(dumps: dict[str, pathlib.Path],
                                             tmp_path_factory: pytest.TempPathFactory,
                                             data: st.DataObject) -> None:
    mutated = bytearray(dumps["normal"].read_bytes())
    del mutated[data.draw(st.integers(0, len(mutated))):]
    for _ in range(data.draw(st.integers(0, 12))):
        if not mutated:
            break
        at = data.draw(st.integers(0, len(mutated) - 1))
        mutated[at] = data.draw(st.sampled_from([0, 0xFF, 0x7F, 0x80, 0x01]))
    path = tmp_path_factory.mktemp("fuzz") / "m.dmp"
    path.write_bytes(bytes(mutated))
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(30)  # a hang is a failure, not a slow example
    try:
        with snapshotdump.open_dump(path) as opened:
            for thread in opened.threads:
                assert len(thread.frames) <= 256
                _ = thread.python
            _ = opened.streams, opened.stream_counts(), opened.exception
    except snapshotdump.DumpFormatError as exc:
        assert "\n" not in str(exc)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_compare_snapshots_example_finds_stuck_threads(target_binary: pathlib.Path) -> None:
    example = pathlib.Path(__file__).parent.parent / "examples" / "compare_snapshots.py"
    with parked([str(target_binary)]) as process:
        wait_parked(process.pid, 4)
        result = subprocess.run([sys.executable, str(example), str(process.pid), "0.2"],
                                capture_output=True, text=True, timeout=120, check=False,
                                env={**os.environ, "PYTHONPATH": str(example.parent.parent)})
    assert result.returncode == 0, result.stderr
    assert "threads: 4 -> 4" in result.stdout
    assert "threads whose stack did not change: 4" in result.stdout
    # Each stuck thread is shown by its innermost frame: a blocking call in libc.
    assert result.stdout.count("libc.so.6!") == 4, result.stdout


def test_exception_is_shown_after_threads(target_binary: pathlib.Path, tmp_path: pathlib.Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "crash.dmp"
    with parked([str(target_binary)]) as process:
        wait_parked(process.pid, 4)
        with snapshotdump.capture(process.pid) as snap:
            tid = snap.threads()[1].thread_id
            snap.write_dump(path, exception=snapshotdump.ExceptionInfo(
                thread_id=tid, code=11, address=0xDEAD0))
    with snapshotdump.open_dump(path) as opened:
        assert opened.exception is not None
        assert (opened.exception.thread_id, opened.exception.code,
                opened.exception.address) == (tid, 11, 0xDEAD0)
        thread = opened.thread(tid)
        assert thread is not None and opened.exception.registers == thread.registers
    assert cli_main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    line = f"exception: SIGSEGV at 0xdead0 in thread {tid}"
    assert line in text and text.index("threads (4):") < text.index(line) < text.index("modules")


def test_bad_python_stream_keeps_native_stacks(dumps: dict[str, pathlib.Path],
                                               tmp_path: pathlib.Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # A real dump whose DSO-debug entry is retyped as a Python-stacks stream that is not JSON.
    path = tmp_path / "bad-python.dmp"
    data = bytearray(dumps["normal"].read_bytes())
    count, directory = struct.unpack_from("<II", data, 8)
    payload = b"not json"
    rva = len(data)
    data += payload
    for index in range(count):
        kind, = struct.unpack_from("<I", data, directory + 12 * index)
        if kind == snapshotdump.minidump.format.StreamType.LINUX_DSO_DEBUG:
            struct.pack_into("<III", data, directory + 12 * index,
                             snapshotdump.minidump.format.StreamType.PYTHON_STACKS,
                             len(payload), rva)
    path.write_bytes(bytes(data))
    with snapshotdump.open_dump(path) as opened, pytest.raises(snapshotdump.DumpFormatError):
        opened.python_threads()
    assert cli_main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert "python stacks: unreadable (the Python-stacks stream is malformed" in text
    assert "sleep_inner_nanosleep" in text
