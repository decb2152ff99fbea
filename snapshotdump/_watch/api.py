"""snapshotdump.watch(): wait for a condition on a process, then dump it (ProcDump's triggers)."""

from __future__ import annotations

import errno
import json
import os
import select
import signal as signal_module
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, NoReturn, Protocol

from .. import _spawn, errors
from ..flags import MiniDumpType, check_flags
from . import files
from .engine import Condition, TriggerEngine
from .files import TriggeredDump

FATAL_SIGNAL_NAMES = "SEGV, BUS, FPE, ILL, ABRT, TRAP, SYS"
HELPER_EXIT_TIMEOUT = 60.0
UNWATCHABLE_SIGNALS = (9, 19)  # SIGKILL, SIGSTOP (Linux numbers; Windows has neither)


class Sampler(Protocol):
    def sample(self) -> dict[str, float]: ...


def _sampler(pid: int) -> Sampler:
    if sys.platform == "win32":
        from .._windows.watch_sampler import ProcessSampler

        return ProcessSampler(pid)
    from .._linux.watch_sampler import ProcSampler

    return ProcSampler(pid)


def _find_by_name(name: str) -> list[int]:
    if sys.platform == "win32":
        from .._windows.watch_sampler import find_by_name as windows_find

        return windows_find(name)
    from .._linux.watch_sampler import find_by_name as linux_find

    return linux_find(name)


def parse_signal(value: int | str) -> int:
    """A signal number from 10, "USR1" or "SIGUSR1"."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    elif isinstance(value, str):
        name = value.strip().upper()
        name = name if name.startswith("SIG") else "SIG" + name
        try:
            number = int(signal_module.Signals[name])
        except KeyError:
            raise ValueError(f"unknown signal {value!r}: use a name such as USR1 or SIGTERM, "
                             "or a number") from None
    else:
        raise TypeError(f"a signal is a name or a number, not {type(value).__name__}")
    if number in UNWATCHABLE_SIGNALS or not 0 < number < 65:
        raise ValueError(f"signal {value!r} cannot be watched: SIGKILL and SIGSTOP never reach "
                         "a tracer before they act, and signals run from 1 to 64")
    return number


def _number(name: str, value: float | None, lowest: float = 0.0) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not value >= lowest:
        raise ValueError(f"{name}={value!r} must be at least {lowest}")
    return float(value)


class Watch(Iterator[TriggeredDump]):
    """An iterator of :class:`TriggeredDump`: one per dump, ``count`` in all.

    It ends early when the target exits (then ``target_exited`` is True) and releases
    everything when closed (use it as a context manager, or call :meth:`close`).
    """

    def __init__(self, target: int | None, name: str | None, conditions: list[Condition],
                 signals: frozenset[int], crash: bool, count: int, for_seconds: float,
                 interval: float, output_dir: str, dump_type: MiniDumpType,
                 compress: str | None, live_fallback: bool = False) -> None:
        self.pid = target
        self.name = name
        self.conditions = conditions
        self.signals = signals
        self.crash = crash
        self.count = count
        self.for_seconds = for_seconds
        self.interval = interval
        self.output_dir = output_dir
        self.dump_type = dump_type
        self.compress = compress
        self.live_fallback = live_fallback
        self.written = 0
        self.target_exited = False
        self.exit_status: int | None = None
        self._started = False
        self._closed = False
        self._helper: subprocess.Popen[bytes] | None = None
        self._debugger: Any = None  # Windows --crash: a CrashWatcher (a debugger thread)
        self._buffer = b""
        self._engine: TriggerEngine | None = None
        self._sampler: Sampler | None = None
        self._next_sample = 0.0
        self._last_sample: float | None = None

    # --- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> Watch:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> int:
        """Find the target (waiting for ``name`` to appear) and attach the watchers; the pid.

        Iterating starts the watch too; call this first to know the pid, or to be sure
        that the crash/signal watcher holds the target before you go on.
        """
        if self._closed:
            raise ValueError("this watch is closed; call snapshotdump.watch() again")
        if self._started:
            assert self.pid is not None
            return self.pid
        if self.pid is None:
            assert self.name is not None
            self.pid = self._wait_for_name(self.name)
        self._started = True
        if self.signals or self.crash:
            self._start_helper(self.pid)
        if self.conditions or not (self.signals or self.crash):
            self._engine = TriggerEngine(self.conditions, self.for_seconds)
            self._sampler = _sampler(self.pid)
            try:
                self._sampler.sample()  # the first CPU reading needs one before it
            except errors.ProcessNotFoundError:
                self.close()
                raise
            self._last_sample = time.monotonic()
            self._next_sample = self._last_sample + (
                self.interval if self.conditions else 0.0)
        return self.pid

    def _wait_for_name(self, name: str) -> int:
        while True:
            found = _find_by_name(name)
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise ValueError(f"--name {name!r} matches {len(found)} processes "
                                 f"(pids {', '.join(map(str, found))}): pass one pid instead")
            time.sleep(self.interval)

    def _start_helper(self, pid: int) -> None:
        if sys.platform == "win32" and not self.signals:
            self._start_debugger(pid)
            return
        if not sys.platform.startswith("linux"):
            raise errors.SnapshotUnsupportedError(
                "the signal trigger needs Linux (Windows has no signals to intercept); "
                "--crash and the polling triggers work here", function="watch")
        config = {"pid": pid, "signals": sorted(self.signals), "crash": self.crash,
                  "count": self.count, "for_seconds": self.for_seconds,
                  "folder": self.output_dir,
                  "dump_type": int(self.dump_type), "compress": self.compress}
        self._helper = subprocess.Popen(
            _spawn.python_argv("snapshotdump._linux.watch_tracer", json.dumps(config)),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
        event = self._helper_event(None)
        if event is None or event.get("event") != "ready":
            self.close()
            raise self._helper_error(event)

    def _start_debugger(self, pid: int) -> None:
        from .._windows.watch_debugger import CrashWatcher

        self._debugger = CrashWatcher(pid, self.output_dir, self.dump_type, self.compress)
        event = self._helper_event(None)
        if event is None or event.get("event") != "ready":
            self.close()
            raise self._helper_error(event)

    def close(self) -> None:
        """Stop watching: the crash/signal watcher lets go of the target, untouched."""
        if self._closed:
            return
        self._closed = True
        debugger, self._debugger = self._debugger, None
        if debugger is not None:
            debugger.close(HELPER_EXIT_TIMEOUT)
        helper, self._helper = self._helper, None
        if helper is not None:
            assert helper.stdin is not None and helper.stdout is not None
            helper.stdin.close()  # EOF: it detaches every thread and exits
            try:
                helper.wait(timeout=HELPER_EXIT_TIMEOUT)
            finally:
                helper.stdout.close()

    # --- iteration ------------------------------------------------------------------------
    def __iter__(self) -> Watch:
        return self

    def __next__(self) -> TriggeredDump:
        if self._closed or self.written >= self.count:
            self.close()
            raise StopIteration
        self.start()
        while True:
            now = time.monotonic()
            if self._helper is not None or self._debugger is not None:
                wait = max(0.0, self._next_sample - now) if self._engine else None
                event = self._helper_event(wait)
                if event is not None:
                    result = self._on_helper_event(event)
                    if result is not None:
                        return result
                    continue
            elif self._engine is not None:
                time.sleep(max(0.0, self._next_sample - now))
            if self._engine is not None and time.monotonic() >= self._next_sample:
                result = self._poll()
                if result is not None:
                    return result

    def _poll(self) -> TriggeredDump | None:
        assert self._engine is not None and self._sampler is not None and self.pid is not None
        try:
            values = self._sampler.sample()
        except errors.ProcessNotFoundError:
            self._target_gone(None)
        now = time.monotonic()
        started, self._last_sample = self._last_sample, now
        self._next_sample = max(self._next_sample + self.interval, now + self.interval / 4)
        due = self._engine.feed(now, values, started)
        if due is None:
            return None
        trigger, value = due
        self._engine.dumped(now)
        fired = time.time()
        if self._helper is not None:
            # The crash/signal watcher is the target's tracer: it takes this dump too.
            assert self._helper.stdin is not None
            self._helper.stdin.write(json.dumps({"trigger": trigger, "value": value,
                                                 "at": fired}).encode()
                                     + b"\n")
            self._helper.stdin.flush()
            return None
        from .._api import capture

        try:
            with capture(self.pid, live_fallback=self.live_fallback) as snap:
                result = files.write(snap, self.output_dir, trigger, value, self.dump_type,
                                     self.compress, triggered_at=fired)
        except (errors.ProcessNotFoundError, errors.TargetExitedError):
            self._target_gone(None)
        self.written += 1
        return result

    def _target_gone(self, status: int | None) -> NoReturn:
        self.target_exited = True
        self.exit_status = status
        self.close()
        raise StopIteration

    def _on_helper_event(self, event: dict[str, Any]) -> TriggeredDump | None:
        kind = event.get("event")
        if kind == "dump":
            raw = dict(event["result"])
            raw["dump_type"] = MiniDumpType(raw["dump_type"])
            self.written += 1
            return TriggeredDump(**raw)
        if kind == "exited":
            self._target_gone(event.get("status"))
        if kind == "done":
            self.close()
            raise StopIteration
        if kind == "error" and not event.get("fatal"):
            raise errors.SnapshotError(f"a triggered dump failed: {event.get('message')}",
                                       function="watch", pid=self.pid)
        self.close()
        raise self._helper_error(event)

    def _helper_event(self, timeout: float | None) -> dict[str, Any] | None:
        """The watcher's next report; None if none came within *timeout* seconds."""
        if self._debugger is not None:
            event: dict[str, Any] | None = self._debugger.event(timeout)
            return event
        assert self._helper is not None and self._helper.stdout is not None
        fd = self._helper.stdout.fileno()
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return {"event": "error", "fatal": True,
                        "message": f"the crash/signal watcher exited (status "
                                   f"{self._helper.wait()})"}
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        report: dict[str, Any] = json.loads(line)
        return report

    def _helper_error(self, event: dict[str, Any] | None) -> errors.SnapshotError:
        message = (event or {}).get("message") or "the crash/signal watcher failed to start"
        code = (event or {}).get("errno")
        if code in (1, 13):
            return errors.SnapshotPermissionError(
                f"cannot watch pid {self.pid} for signals or crashes: {message}",
                errno=code, function="watch", pid=self.pid)
        if code == 3:
            return errors.ProcessNotFoundError(f"pid {self.pid}: {message}", errno=errno.ESRCH,
                                               function="watch", pid=self.pid)
        return errors.SnapshotError(f"watching pid {self.pid}: {message}", errno=code,
                                    function="watch", pid=self.pid)


def watch(
    target: int | None = None,
    *,
    name: str | None = None,
    cpu: float | None = None,
    cpu_below: float | None = None,
    memory: float | None = None,
    memory_below: float | None = None,
    threads: int | None = None,
    fds: int | None = None,
    signals: Iterable[int | str] = (),
    crash: bool = False,
    count: int = 1,
    for_seconds: float = 10.0,
    interval_ms: float = 1000.0,
    output_dir: str = ".",
    dump_type: MiniDumpType = MiniDumpType.NORMAL,
    compress: str | None = None,
    live_fallback: bool = False,
) -> Watch:
    """Watch a process and dump it when a trigger fires, as ProcDump does.

    ``snapshotdump.watch(pid, cpu=90, for_seconds=5, count=1)`` returns a :class:`Watch`,
    an iterator that yields a :class:`TriggeredDump` per dump written into
    *output_dir* as ``IMAGE_PID_YYYYmmdd_HHMMSS_TRIGGER.dmp``.

    - *cpu* / *cpu_below*: CPU use >= / < this percent of one core (0..100 * ncpu),
      measured as top does, over each *interval_ms*.
    - *memory* / *memory_below*: resident memory >= / < this many MiB.
    - *threads*, *fds*: thread count, open fds (Windows: handles) >= this.
    - *signals*: dump when the target receives one of these (Linux), then deliver it.
    - *crash*: dump when a fatal signal (SEGV, BUS, FPE, ILL, ABRT, TRAP, SYS) meets its
      default action, with the exception stream; then the target dies as it would have.
      On Windows: a second-chance (unhandled) exception, caught through the debug API.
    - A polling condition must hold for *for_seconds* without a break, which is also the
      least time between two dumps (a listed signal that comes sooner is delivered
      without a dump; a crash is always dumped).  With no trigger at all, *count* dumps are
      written *for_seconds* apart.

    The polling triggers read /proc (Windows: process counters) and never stop the
    target; only the dump pauses it.  The crash and signal triggers trace the target
    with PTRACE_SEIZE, which stops nothing until a signal comes; a process already being
    debugged cannot be watched for them.  Pass *name* instead of *target* to wait for a
    process whose executable name (comm or argv[0] basename) is *name*.  *live_fallback*
    is :func:`capture`'s: dump the live (Windows) or frozen (Linux) process where no
    snapshot can be made.
    """
    if (target is None) == (name is None):
        raise ValueError("give either a pid or name=..., not both and not neither")
    if target is not None and (isinstance(target, bool) or not isinstance(target, int)
                               or target <= 0):
        raise ValueError(f"target {target!r} is not a pid (a positive int)")
    if name is not None and (not isinstance(name, str) or not name or "/" in name):
        raise ValueError(f"name={name!r} must be an executable name such as 'myapp', "
                         "without a folder")
    conditions = []
    for trigger, metric, value, above, lowest in (
            ("cpu", "cpu", cpu, True, 0.0), ("cpu-below", "cpu", cpu_below, False, 0.0),
            ("memory", "memory", memory, True, 0.0),
            ("memory-below", "memory", memory_below, False, 0.0),
            ("threads", "threads", threads, True, 1.0), ("fds", "fds", fds, True, 0.0)):
        threshold = _number(trigger.replace("-", "_"), value, lowest)
        if threshold is not None:
            conditions.append(Condition(trigger, metric, threshold, above))
    if isinstance(signals, (str, int)):
        signals = [signals]
    wanted = frozenset(parse_signal(s) for s in signals)
    if not isinstance(crash, bool):
        raise TypeError(f"crash must be True or False, not {crash!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count={count!r} must be a whole number of dumps, 1 or more")
    seconds = _number("for_seconds", for_seconds)
    interval = _number("interval_ms", interval_ms, 1.0)
    assert seconds is not None and interval is not None
    if not os.path.isdir(output_dir):
        raise ValueError(f"output_dir {output_dir!r} is not a folder: create it first")
    check_flags(dump_type, MiniDumpType, "dump_type")
    if compress not in files.SUFFIXES:
        raise ValueError(f"compress={compress!r} must be None, 'gzip' or 'xz'")
    if not isinstance(live_fallback, bool):
        raise TypeError(f"live_fallback must be True or False, not {live_fallback!r}")
    return Watch(target, name, conditions, wanted, crash, count, seconds, interval / 1000.0,
                 output_dir, MiniDumpType(dump_type), compress, live_fallback)
