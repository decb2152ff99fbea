"""The installed `snapshotdump` command, run as a user would, against real processes."""

from __future__ import annotations

import gzip
import io
import json
import lzma
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading

import pytest

from .conftest import require
from .support import Target, obj2yaml, running

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux CLI tests")


def console_script() -> str:
    """The `snapshotdump` command installed with the Python running the tests."""
    beside = pathlib.Path(sys.executable).parent / "snapshotdump"
    command = str(beside) if beside.exists() else shutil.which("snapshotdump")
    require(command is not None, "the console script is not installed (pip install .)")
    assert command is not None
    return command


def run(*args: str, cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([console_script(), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, check=False)


@pytest.fixture
def target(c_target: Target) -> Target:
    return c_target


def test_dump_by_pid_with_default_name(target: Target, tmp_path: pathlib.Path) -> None:
    result = run(str(target.pid), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [dump] = list(tmp_path.iterdir())
    assert re.fullmatch(rf"target_{target.pid}_\d{{8}}_\d{{6}}\.dmp", dump.name)
    assert dump.stat().st_mode & 0o777 == 0o600
    assert re.match(rf"wrote {re.escape(str(dump))} \(.*\): 5 threads, \d+ modules; target "
                    r"paused [\d.]+ ms; written in [\d.]+ s$", result.stdout.strip())
    obj2yaml(dump)


@pytest.mark.parametrize("kind", ["normal", "mini-plus", "triage", "full",
                                  "with_handle_data,WITH-THREAD-INFO", "0x1806"])
def test_dump_types(target: Target, tmp_path: pathlib.Path, kind: str) -> None:
    result = run(str(target.pid), "-o", str(tmp_path / "a.dmp"), "--type", kind, "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["path"] == str(tmp_path / "a.dmp") and payload["pid"] == target.pid
    assert payload["size"] == (tmp_path / "a.dmp").stat().st_size
    assert payload["pause_seconds"] > 0 and payload["is_live"] is False
    obj2yaml(tmp_path / "a.dmp")


def test_compression_user_streams_no_clone_quiet(target: Target, tmp_path: pathlib.Path) -> None:
    note = tmp_path / "note.json"
    note.write_text('{"why": "cli test"}')
    for codec, opener in (("gzip", gzip.open), ("xz", lzma.open)):
        out = tmp_path / f"a.dmp.{'gz' if codec == 'gzip' else 'xz'}"
        result = run(str(target.pid), "-o", str(out), "--compress", codec, "--no-clone", "-q",
                     "--user-stream", f"0x10001={note}")
        assert result.returncode == 0 and result.stdout == "", result.stderr
        assert out.stat().st_mode & 0o777 == 0o600
        with opener(out) as packed:
            raw = packed.read()
        assert raw.startswith(b"MDMP") and b'{"why": "cli test"}' in raw
        (tmp_path / "plain.dmp").write_bytes(raw)
        obj2yaml(tmp_path / "plain.dmp")


def test_errors_are_one_line_with_status_1(target: Target, tmp_path: pathlib.Path) -> None:
    missing = run("4194000")
    assert missing.returncode == 1
    assert missing.stderr.startswith("snapshotdump: error: no process has pid 4194000")
    assert len(missing.stderr.strip().splitlines()) == 1
    existing = tmp_path / "x.dmp"
    existing.write_bytes(b"keep")
    clash = run(str(target.pid), "-o", str(existing))
    assert clash.returncode == 1 and "--overwrite" not in clash.stdout
    # The advice names the flag the user types, not the Python argument.
    assert "pass --overwrite" in clash.stderr and "overwrite=True" not in clash.stderr
    assert existing.read_bytes() == b"keep"
    debug = run("4194000", "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    replaced = run(str(target.pid), "-o", str(existing), "--overwrite")
    assert replaced.returncode == 0 and existing.read_bytes().startswith(b"MDMP")


@pytest.mark.parametrize("args", [["notapid"], ["-3"], ["1", "--type", "bogus"],
                                  ["1", "--user-stream", "5=x"], ["1", "--compress", "zip"]])
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == 2, result
    assert "usage: snapshotdump" in result.stderr and "Traceback" not in result.stderr


def test_demo_is_the_main_job_with_no_setup(tmp_path: pathlib.Path) -> None:
    result = run("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    dumps = list(tmp_path.glob("*.dmp"))
    assert len(dumps) == 1
    assert "target paused" in result.stdout and "threads (4):" in result.stdout
    obj2yaml(dumps[0])


def test_info_summarises_and_rejects_damage(target: Target, tmp_path: pathlib.Path) -> None:
    dump = tmp_path / "a.dmp"
    assert run(str(target.pid), "-o", str(dump), "--type", "full").returncode == 0
    info = run("info", str(dump))
    assert info.returncode == 0, info.stderr
    assert "Linux" in info.stdout and "AMD64" in info.stdout and f"pid {target.pid}" in info.stdout
    assert "threads (5):" in info.stdout and "libc.so.6" in info.stdout
    assert "MEMORY64_LIST" in info.stdout and re.search(r"memory: \d+ ranges", info.stdout)
    data = dump.read_bytes()
    for name, damaged in (("truncated", data[:len(data) // 3]), ("header", data[:20]),
                          ("garbage", os.urandom(4096)),
                          ("huge-count", data[:8] + (10**6).to_bytes(4, "little") + data[12:])):
        bad = tmp_path / f"{name}.dmp"
        bad.write_bytes(damaged)
        result = run("info", str(bad))
        assert result.returncode == 1, (name, result.stdout)
        assert result.stderr.startswith("snapshotdump: error:"), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_module_entry_point() -> None:
    result = subprocess.run([sys.executable, "-m", "snapshotdump", "--help"], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0 and "snapshotdump demo" in result.stdout


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal(target: Target, tmp_path: pathlib.Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    from snapshotdump import cli

    monkeypatch.setattr(cli.Progress, "DELAY", 0.0)
    monkeypatch.setattr(cli.Progress, "INTERVAL", 0.001)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    status = cli.main([str(target.pid), "-o", str(tmp_path / "p.dmp"), "--type", "full"])
    assert status == 0
    shown = terminal.getvalue()
    assert re.search(r"writing: [\d.]+ (KiB|MiB) written, [\d.]+ (KiB|MiB|GiB)/s", shown), shown
    assert shown.endswith("\r\x1b[K")  # the line is cleared before the summary
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert cli.main([str(target.pid), "-o", str(tmp_path / "q.dmp"), "-q"]) == 0
    assert sys.stderr.getvalue() == ""


def _mid_dump(folder: pathlib.Path, dumper: subprocess.Popen[str]) -> None:
    """Return once the dumper has written its first MiB into the hidden partial file."""
    while dumper.poll() is None:
        if any(p.stat().st_size > 1 << 20 for p in folder.glob(".*.partial")
               if p.exists()):
            return
        threading.Event().wait(0.005)
    raise AssertionError(f"the dump ended (status {dumper.returncode}) before it was seen "
                         "half-written")


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_termination_signal_mid_dump_removes_the_partial_file(
        c_binary: pathlib.Path, tmp_path: pathlib.Path, name: str) -> None:
    """Killed politely mid-dump, the CLI removes its partial file, releases the target (running,
    untraced, no clone, no zombie: checked by running()) and exits 128+n."""
    number = getattr(signal, name)
    out = tmp_path / "out"
    out.mkdir()
    with running([str(c_binary)], {"TARGET_MIB": "256"}) as target:
        dumper = subprocess.Popen(
            [console_script(), str(target.pid), "--type", "full", "-o", str(out / "big.dmp")],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _mid_dump(out, dumper)
            # Stopped, the dumper gets the signal at a point this test has seen: mid-dump.
            os.kill(dumper.pid, signal.SIGSTOP)
            assert dumper.poll() is None and list(out.glob(".*.partial"))
            os.kill(dumper.pid, number)
            os.kill(dumper.pid, signal.SIGCONT)
            _stdout, stderr = dumper.communicate(timeout=120)
        finally:
            if dumper.poll() is None:
                dumper.kill()
            dumper.wait()
        assert dumper.returncode == 128 + number, stderr
        assert f"interrupted ({name})" in stderr
        assert os.listdir(out) == []


def test_unwritable_destination_is_named_as_given(target: Target) -> None:
    result = run(str(target.pid), "-o", "/proc/version", "--overwrite")
    assert result.returncode == 1
    assert "'/proc/version'" in result.stderr and ".partial" not in result.stderr, result.stderr


def test_longest_valid_file_name(target: Target, tmp_path: pathlib.Path) -> None:
    """A name of 255 bytes is valid: the hidden temporary name must not push it over."""
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    for length in (234, limit):
        name = tmp_path / ("n" * (length - 4) + ".dmp")
        result = run(str(target.pid), "-o", str(name))
        assert result.returncode == 0, result.stderr
        obj2yaml(name)
    assert sorted(len(p.name) for p in tmp_path.iterdir()) == [234, limit]


def test_compressed_output_gets_its_suffix(target: Target, tmp_path: pathlib.Path) -> None:
    result = run(str(target.pid), "--compress", "xz", "-o", str(tmp_path / "z.dmp"))
    assert result.returncode == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["z.dmp.xz"]
    assert str(tmp_path / "z.dmp.xz") in result.stdout
    with lzma.open(tmp_path / "z.dmp.xz") as packed:
        assert packed.read(4) == b"MDMP"
    for args in (["--compress", "xz", "-o", "y.dmp.gz"], ["-o", "y.dmp.xz"]):
        refused = run(str(target.pid), *args, cwd=tmp_path)
        assert refused.returncode == 2 and "ends in" in refused.stderr, refused.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["z.dmp.xz"]


def test_info_into_a_closed_pipe_exits_quietly(target: Target, tmp_path: pathlib.Path) -> None:
    """`snapshotdump info X | head -1`: no Broken pipe error, the status of a SIGPIPE."""
    dump = tmp_path / "a.dmp"
    assert run(str(target.pid), "-o", str(dump)).returncode == 0
    reader, writer = os.pipe()
    os.close(reader)  # head has already read its line and gone
    try:
        result = subprocess.run([console_script(), "info", str(dump)], stdout=writer,
                                stderr=subprocess.PIPE, text=True, timeout=120, check=False)
    finally:
        os.close(writer)
    assert result.returncode == 128 + signal.SIGPIPE
    assert result.stderr == ""


def test_sighup_under_nohup_is_still_ignored(c_binary: pathlib.Path,
                                             tmp_path: pathlib.Path) -> None:
    """A caller that ignores SIGHUP (nohup) keeps it ignored: the dump completes."""
    out = tmp_path / "out"
    out.mkdir()
    with running([str(c_binary)], {"TARGET_MIB": "256"}) as target:
        dumper = subprocess.Popen(
            [console_script(), str(target.pid), "--type", "full", "-o", str(out / "big.dmp")],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
        try:
            _mid_dump(out, dumper)
            os.kill(dumper.pid, signal.SIGHUP)
            _stdout, stderr = dumper.communicate(timeout=120)
        finally:
            if dumper.poll() is None:
                dumper.kill()
            dumper.wait()
        assert dumper.returncode == 0, stderr
    assert [p.name for p in out.iterdir()] == ["big.dmp"]
    obj2yaml(out / "big.dmp")
