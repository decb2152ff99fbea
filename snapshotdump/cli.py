"""The command line: ``snapshotdump PID``, ``snapshotdump demo``, ``snapshotdump info DUMP``."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gzip
import json
import lzma
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Sequence
from types import FrameType
from typing import IO, Any

from typing_extensions import Self  # typing.Self is 3.11+; the floor is 3.10

from . import _dest, _info_view, _spawn
from ._api import capture, enable_debug_privilege
from ._cli_types import UsageError, parse_type
from ._info_view import human_size
from .flags import CaptureFlags, CaptureMemory, MiniDumpType, memory_needed
from .minidump.reader import DumpFormatError, open_dump
from .snapshot import DumpResult, Performance, Snapshot, UserStream


def parse_user_stream(text: str) -> UserStream:
    kind, sep, path = text.partition("=")
    if not sep or not path:
        raise UsageError(f"--user-stream {text!r}: expected TYPE=FILE, e.g. 0x10001=notes.json")
    try:
        stream_type = int(kind, 0)
    except ValueError:
        raise UsageError(f"--user-stream: {kind!r} is not a number (try 0x10001)") from None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UsageError(f"--user-stream: cannot read {path!r}: {exc.strerror}") from None
    try:
        return UserStream(stream_type, data)
    except ValueError as exc:
        raise UsageError(f"--user-stream: {exc}") from None


COMPRESSED_SUFFIXES = {"gzip": ".gz", "xz": ".xz"}


def compressed_name(output: str, compress: str | None) -> str:
    """-o as given, with the compression's suffix added; another codec's suffix is refused."""
    if compress is None:
        for codec, ending in COMPRESSED_SUFFIXES.items():
            if output.lower().endswith(ending):
                raise UsageError(f"-o {output!r} ends in {ending}, but the dump would not be "
                                 f"compressed: add --compress {codec}, or drop the suffix")
        return output
    wanted = COMPRESSED_SUFFIXES[compress]
    for codec, ending in COMPRESSED_SUFFIXES.items():
        if codec != compress and output.lower().endswith(ending):
            raise UsageError(f"-o {output!r} ends in {ending}, but --compress {compress} "
                             f"writes {wanted} data: name it ...{wanted}")
    return output if output.lower().endswith(wanted) else output + wanted


def default_name(snap: Snapshot, suffix: str) -> str:
    image = snap.process.image_path or "process"
    stem = os.path.basename(image.replace("\\", "/")) or "process"
    if stem.lower().endswith(".exe"):
        stem = stem[:-4]
    return f"{stem}_{snap.pid}_{time.strftime('%Y%m%d_%H%M%S')}{suffix}"


class Progress:
    """Bytes written and the rate, on stderr, once a dump to a terminal takes over half a second."""

    DELAY = 0.5
    INTERVAL = 0.2

    def __init__(self, fd: int, enabled: bool) -> None:
        self.fd = fd
        self.enabled = enabled
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="snapshotdump-progress",
                                        daemon=True)
        self._shown = False

    def __enter__(self) -> Self:
        if self.enabled:
            self._started = time.monotonic()
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join()
            if self._shown:
                sys.stderr.write("\r\x1b[K")
                sys.stderr.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.INTERVAL):
            elapsed = time.monotonic() - self._started
            if elapsed < self.DELAY:
                continue
            try:
                written = os.fstat(self.fd).st_size
            except OSError:
                return
            sys.stderr.write(f"\r\x1b[Kwriting: {human_size(written)} written, "
                             f"{human_size(written / elapsed)}/s")
            sys.stderr.flush()
            self._shown = True


def _write(snap: Snapshot, dest: str, dump_type: MiniDumpType, streams: list[UserStream],
           overwrite: bool, compress: str | None, progress: bool,
           include_dont_dump: bool = False) -> DumpResult:
    if compress is None:
        # Open the destination here (same 0600 / no-symlink / atomic rules) to watch it grow.
        with _dest.open_destination(dest, overwrite) as out, \
                os.fdopen(out.fd, "wb", closefd=False) as sink, Progress(out.fd, progress):
            result = snap.write_dump(sink, dump_type, user_streams=streams,
                                     include_dont_dump=include_dont_dump)
            out.size = result.size
        return dataclasses.replace(result, path=out.path)
    folder = os.path.dirname(os.path.abspath(dest))
    with tempfile.TemporaryFile(dir=folder) as raw:
        with Progress(raw.fileno(), progress):
            result = snap.write_dump(raw, dump_type, user_streams=streams,
                                     include_dont_dump=include_dont_dump)
        raw.seek(0)
        with _dest.open_destination(dest, overwrite) as out, \
                os.fdopen(out.fd, "wb", closefd=False) as sink:
            codec: Any = gzip.GzipFile if compress == "gzip" else lzma.LZMAFile
            with codec(filename=None, mode="wb", fileobj=sink) if codec is gzip.GzipFile \
                    else codec(sink, mode="wb") as packed:
                while chunk := raw.read(1 << 20):
                    packed.write(chunk)
            sink.flush()
            out.size = sink.tell()
    return dataclasses.replace(result, path=out.path, size=out.size)


def _summary_line(result: DumpResult, performance: Performance | None, is_live: bool) -> str:
    pause = f"{performance.pause_seconds * 1000:.1f} ms" if performance else "not measured"
    mode = " (live: no snapshot)" if is_live else ""
    python = f"; {result.python_stacks_skipped}" if result.python_stacks_skipped else ""
    return (f"wrote {result.path} ({human_size(result.size)}): {result.threads} threads, "
            f"{result.modules} modules; target paused {pause}{mode}; "
            f"written in {result.seconds:.2f} s{python}")


def _as_json(result: DumpResult, performance: Performance | None, is_live: bool) -> str:
    payload = dataclasses.asdict(result)
    payload["dump_type"] = int(result.dump_type)
    payload["pause_seconds"] = performance.pause_seconds if performance else None
    payload["capture_mode"] = performance.capture_mode if performance else None
    payload["is_live"] = is_live
    return json.dumps(payload)


def _final_performance(snap: Snapshot, while_open: Performance | None) -> Performance | None:
    """The pause as it ended: a frozen (Linux) target is held until the snapshot is closed."""
    try:
        return snap.performance
    except ValueError:  # a closed Windows snapshot: its pause ended at the capture anyway
        return while_open


def cmd_dump(args: argparse.Namespace) -> int:
    dump_type = parse_type(args.type)
    streams = [parse_user_stream(s) for s in args.user_stream]
    if args.enable_debug_privilege and not enable_debug_privilege():
        print("snapshotdump: warning: SeDebugPrivilege was not enabled: this process's token "
              "does not hold it (run from an elevated prompt as an administrator), or this is "
              "not Windows; continuing without it", file=sys.stderr)
    flags = CaptureFlags.DEFAULT
    # The cheapest capture the dump type allows: a NORMAL dump needs only the stacks.
    memory = memory_needed(dump_type)
    if args.no_clone:
        flags &= ~CaptureFlags.VA_CLONE
        memory = CaptureMemory.ALL
    suffix = {None: ".dmp", "gzip": ".dmp.gz", "xz": ".dmp.xz"}[args.compress]
    output = compressed_name(args.output, args.compress) if args.output else None
    with capture(args.pid, flags, live_fallback=args.live_fallback, memory=memory) as snap:
        dest = output or default_name(snap, suffix)
        result = _write(snap, dest, dump_type, streams, args.overwrite, args.compress,
                        progress=sys.stderr.isatty() and not args.quiet and not args.json,
                        include_dont_dump=args.include_dont_dump)
        while_open = snap.performance
    performance = _final_performance(snap, while_open)
    if args.json:
        print(_as_json(result, performance, snap.is_live))
    elif not args.quiet:
        print(_summary_line(result, performance, snap.is_live))
    return 0


def print_info(path: str, out: IO[str], thread_id: int | None = None, symbols: bool = True,
               as_json: bool = False) -> None:
    with open_dump(path) as dump:
        info = _info_view.describe(dump, thread_id, symbols)
    print(json.dumps(info) if as_json else _info_view.render(info), file=out)


def cmd_info(args: argparse.Namespace) -> int:
    print_info(args.dump, sys.stdout, args.thread, not args.no_symbols, args.json)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    # Isolated like the tracer helper: a snapshotdump/ folder here must not run instead.
    target = subprocess.Popen(_spawn.python_argv("snapshotdump._demo_target"),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert target.stdout is not None
        if target.stdout.readline().strip() != "READY":
            raise RuntimeError("the demo target did not start")
        print(f"demo: started a 4-thread target, pid {target.pid}")
        full = MiniDumpType.WITH_FULL_MEMORY
        with capture(target.pid, live_fallback=True, memory=memory_needed(full)) as snap:
            dest = os.path.join(args.output, default_name(snap, ".dmp"))
            result = snap.write_dump(dest, full)
            while_open = snap.performance
        print("demo: " + _summary_line(result, _final_performance(snap, while_open),
                                       snap.is_live))
        print(f"demo: the target ran on (exit status {target.poll()} means still running)")
        print_info(result.path or dest, sys.stdout)
    finally:
        with contextlib.suppress(Exception):
            if target.stdin:
                target.stdin.close()
        target.wait(timeout=30)
        if target.stdout:
            target.stdout.close()
    return 0


def _pid(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a pid (a positive number)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a pid (pids are positive)")
    return value


def _dump_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snapshotdump",
        description="Snapshot a running process and write a minidump; the process pauses only "
                    "while it is cloned.  Also: 'snapshotdump demo', 'snapshotdump info DUMP', "
                    "'snapshotdump watch PID --cpu 90' (see 'snapshotdump watch -h').")
    parser.add_argument("pid", type=_pid, help="the process to dump")
    parser.add_argument("-o", "--output", help="dump file (default IMAGE_PID_YYYYmmdd_HHMMSS.dmp)")
    parser.add_argument("--type", default="normal",
                        help="normal, mini-plus, triage, full, MiniDumpType names joined by "
                             "commas, or a hex mask (default: normal)")
    parser.add_argument("--no-clone", action="store_true",
                        help="freeze the target for the whole dump instead of cloning it")
    parser.add_argument("--include-dont-dump", action="store_true",
                        help="full dumps: also write memory the target marked MADV_DONTDUMP")
    parser.add_argument("--live-fallback", action="store_true",
                        help="dump the live/frozen process if no snapshot can be made")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    parser.add_argument("--user-stream", action="append", default=[], metavar="TYPE=FILE",
                        help="add FILE as a stream of TYPE (above 0xFFFF); repeatable")
    parser.add_argument("--compress", choices=["gzip", "xz"], help="write .dmp.gz or .dmp.xz")
    parser.add_argument("--enable-debug-privilege", action="store_true",
                        help="Windows: enable SeDebugPrivilege first")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.set_defaults(handler=cmd_dump)
    return parser


def _command_parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"snapshotdump {command}")
    if command == "info":
        parser.description = ("Show where each thread of any minidump is: its state, Python "
                              "stack and native frames; then the exception, modules, streams.")
        parser.add_argument("dump", help="a .dmp, .dmp.gz or .dmp.xz file")
        parser.add_argument("--json", action="store_true", help="print the same as JSON")
        parser.add_argument("--thread", type=int, metavar="TID", help="only this thread")
        parser.add_argument("--no-symbols", action="store_true",
                            help="do not unwind or symbolize (no local module files read)")
        parser.set_defaults(handler=cmd_info)
    else:
        parser.description = "Snapshot a small bundled target, dump it here and show the dump."
        parser.add_argument("-o", "--output", default=".", help="folder for the dump")
        parser.set_defaults(handler=cmd_demo)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


# The library's advice names its keyword arguments; on the command line they are flags.
_ARGUMENT_FLAGS = {
    "overwrite=True": "--overwrite",
    "live_fallback=True": "--live-fallback",
    "enable_debug_privilege=True": "--enable-debug-privilege",
    "capture without VA_CLONE": "--no-clone",
}


def as_flags(message: str) -> str:
    for argument, flag in _ARGUMENT_FLAGS.items():
        message = message.replace(argument, flag)
    return message


class _Interrupts:
    """SIGTERM and SIGHUP handled as Ctrl-C is: the partial file removed, the target released.

    The signal is passed to the current SIGINT handler, not raised from here: while the
    library holds Ctrl-C back (mid-message to the tracer helper) it holds these back too.
    A signal the caller ignores (nohup ignores SIGHUP) stays ignored.
    """

    SIGNALS = ("SIGTERM", "SIGHUP")

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Self:
        if threading.current_thread() is not threading.main_thread():
            return self
        for name in self.SIGNALS:
            number = getattr(signal, name, None)
            if number is not None and signal.getsignal(number) == signal.SIG_DFL:
                self._previous[number] = signal.signal(number, self._handle)
        if self._previous and signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
            # Ctrl-C stays ignored, but the library must have a handler to hand ours back to.
            self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._ours_only)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.received is not None:
            return  # already on the way out: let the cleanup finish
        self.received = number
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    def _ours_only(self, number: int, frame: FrameType | None) -> None:
        if self.received is not None:
            raise KeyboardInterrupt

    def exit_status(self) -> int:
        return 128 + (self.received or signal.SIGINT)

    def name(self) -> str:
        return signal.Signals(self.received or signal.SIGINT).name


def main(argv: Sequence[str] | None = None) -> int:
    with _Interrupts() as interrupts:
        return _main(argv, interrupts)


def _main(argv: Sequence[str] | None, interrupts: _Interrupts) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] == "watch":
        from ._watch_cli import main as watch_main

        return watch_main(arguments[1:])
    if arguments and arguments[0] in ("info", "demo"):
        parser = _command_parser(arguments[0])
        arguments = arguments[1:]
    else:
        parser = _dump_parser()
    args = parser.parse_args(arguments)
    try:
        status = int(args.handler(args))
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return status
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"snapshotdump: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (info X | head): stop quietly, as Unix tools do.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            print(f"snapshotdump: interrupted ({interrupts.name()}); nothing was left behind",
                  file=sys.stderr)
        return interrupts.exit_status()
    except (OSError, ValueError, DumpFormatError, RuntimeError) as exc:
        if args.debug:
            traceback.print_exc()
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"snapshotdump: error: {as_flags(message)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
