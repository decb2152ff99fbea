"""``snapshotdump watch``: ProcDump's triggers on the command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import traceback
from collections.abc import Sequence

from . import errors
from ._cli_types import UsageError, parse_type
from ._watch import TriggeredDump, watch
from ._watch.api import FATAL_SIGNAL_NAMES, Watch

USAGE = ("snapshotdump watch (PID | --name NAME) [trigger ...] [-n COUNT] [--for SECONDS] "
         "[--interval MS] [-o DIR] [--type TYPE] [--compress ...] [--json] [-q]")
UNITS = {"cpu": "%", "cpu-below": "%", "memory": " MiB", "memory-below": " MiB"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="snapshotdump watch", usage=USAGE,
        description="Wait for a condition on a process, then dump it (ProcDump's triggers). "
                    "Any trigger fires a dump; with none, COUNT dumps are written --for "
                    "seconds apart.")
    p.add_argument("pid", nargs="?", type=int, help="the process to watch")
    p.add_argument("--name", help="wait for a process whose executable name (comm or argv[0] "
                                  "basename) is NAME; an ambiguous match is refused")
    t = p.add_argument_group("triggers")
    t.add_argument("--cpu", type=float, metavar="PCT",
                   help="CPU use >= PCT (percent of one core, as ProcDump: 0..100*ncpu)")
    t.add_argument("--cpu-below", type=float, metavar="PCT", help="CPU use < PCT")
    t.add_argument("--memory", type=float, metavar="MIB", help="resident memory >= MIB")
    t.add_argument("--memory-below", type=float, metavar="MIB", help="resident memory < MIB")
    t.add_argument("--threads", type=int, metavar="N", help="thread count >= N")
    t.add_argument("--fds", type=int, metavar="N", help="open fds (Windows: handles) >= N")
    t.add_argument("--signal", metavar="SIG[,SIG]",
                   help="when the target receives one of these signals (Linux): dump, then "
                        "deliver it")
    t.add_argument("--crash", action="store_true",
                   help=f"when the target gets a fatal signal ({FATAL_SIGNAL_NAMES}) it does "
                        "not handle, or an unhandled exception (Windows): dump with the "
                        "exception stream, then let it die exactly as it would have")
    p.add_argument("-n", type=int, default=1, dest="count", metavar="COUNT",
                   help="dumps to write before exiting (default 1)")
    p.add_argument("--for", type=float, default=10.0, dest="for_seconds", metavar="SECONDS",
                   help="consecutive seconds a condition must hold (default 10), and the least "
                        "time between two dumps")
    p.add_argument("--interval", type=float, default=1000.0, metavar="MS",
                   help="polling interval in milliseconds (default 1000)")
    p.add_argument("-o", "--output", default=".", metavar="DIR",
                   help="folder for the dumps (default: the current folder)")
    p.add_argument("--type", default="normal",
                   help="normal, mini-plus, triage, full, MiniDumpType names or a hex mask")
    p.add_argument("--compress", choices=["gzip", "xz"], help="write .dmp.gz or .dmp.xz")
    p.add_argument("--live-fallback", action="store_true",
                   help="dump the live/frozen process if no snapshot can be made (polling "
                        "triggers)")
    p.add_argument("--json", action="store_true", help="one JSON object per dump")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the dumps' paths")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def _line(result: TriggeredDump, number: int, count: int) -> str:
    unit = UNITS.get(result.trigger, "")
    value = (f"{result.value:.1f}{unit}" if unit else f"{result.value:g}")
    pause = ("not measured" if result.pause_seconds is None
             else f"{result.pause_seconds * 1000:.1f} ms")
    return (f"dump {number}/{count}: {result.trigger} {value} -> {result.path} "
            f"({result.size} bytes); target paused {pause}")


def _json(result: TriggeredDump) -> str:
    payload = dataclasses.asdict(result)
    payload["dump_type"] = int(result.dump_type)
    return json.dumps(payload)


def _describe(w: Watch) -> str:
    parts = [f"{c.trigger} {'>=' if c.above else '<'} {c.threshold:g}" for c in w.conditions]
    if w.signals:
        parts.append("signal " + ",".join(str(s) for s in sorted(w.signals)))
    if w.crash:
        parts.append("crash")
    what = ", ".join(parts) if parts else f"every {w.for_seconds:g} s"
    hold = f" held {w.for_seconds:g} s" if w.conditions else ""
    return f"watching pid {w.pid}: {what}{hold}; {w.count} dump(s) into {w.output_dir}"


def main(argv: Sequence[str]) -> int:
    p = parser()
    args = p.parse_args(list(argv))
    if (args.pid is None) == (args.name is None):
        p.error("give a PID or --name NAME (one of them)")
    try:
        dump_type = parse_type(args.type)
        signals = [s for s in (args.signal or "").split(",") if s.strip()]
        w = watch(args.pid, name=args.name, cpu=args.cpu, cpu_below=args.cpu_below,
                  memory=args.memory, memory_below=args.memory_below, threads=args.threads,
                  fds=args.fds, signals=signals, crash=args.crash, count=args.count,
                  for_seconds=args.for_seconds, interval_ms=args.interval,
                  output_dir=args.output, dump_type=dump_type, compress=args.compress,
                  live_fallback=args.live_fallback)
    except (UsageError, ValueError, TypeError) as exc:
        p.error(str(exc))
    try:
        with w:
            w.start()
            if not args.quiet:
                print(f"snapshotdump: {_describe(w)}", file=sys.stderr, flush=True)
            for number, result in enumerate(w, 1):
                if args.json:
                    print(_json(result), flush=True)
                elif args.quiet:
                    print(result.path, flush=True)
                else:
                    print(_line(result, number, w.count), flush=True)
    except KeyboardInterrupt:
        print("snapshotdump: interrupted; the target was let go untouched", file=sys.stderr)
        return 130
    except (OSError, ValueError, RuntimeError) as exc:
        if args.debug:
            traceback.print_exc()
        if isinstance(exc, errors.TargetExitedError) and w.written:
            return 0
        print(f"snapshotdump: error: {str(exc).splitlines()[0] if str(exc) else exc!r}",
              file=sys.stderr)
        return 1
    if w.target_exited:
        # Linux reports the raw wait status; Windows, the process's exit code (an NTSTATUS
        # after a crash).
        kind = "exit code" if sys.platform == "win32" else "wait status"
        status = "" if w.exit_status is None else f" ({kind} {w.exit_status:#x})"
        print(f"snapshotdump: pid {w.pid} exited{status} after {w.written} dump(s)",
              file=sys.stderr)
        return 0 if w.written else 1
    return 0
