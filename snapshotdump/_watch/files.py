"""Where a triggered dump goes: IMAGE_PID_YYYYmmdd_HHMMSS_TRIGGER.dmp, never over another file."""

from __future__ import annotations

import dataclasses
import gzip
import lzma
import os
import tempfile
import time
from typing import IO

from .. import _dest
from .._dest import DestinationExistsError
from ..flags import MiniDumpType
from ..snapshot import DumpResult, ExceptionInfo, Snapshot

SUFFIXES = {None: ".dmp", "gzip": ".dmp.gz", "xz": ".dmp.xz"}


@dataclasses.dataclass(frozen=True)
class TriggeredDump(DumpResult):
    """A dump written by :func:`snapshotdump.watch`: what fired, the value seen, the pause.

    ``trigger`` is ``cpu``, ``cpu-below``, ``memory``, ``memory-below``, ``threads``,
    ``fds``, ``signal``, ``crash`` or ``time`` (no trigger: a dump every ``for_seconds``).
    ``value`` is the measured figure (percent, MiB, count) or the signal number.
    ``pause_seconds`` is how long the target was held still for this dump.
    ``triggered_at`` is when the trigger fired (``time.time()``), before the dump.
    """

    trigger: str = ""
    value: float = 0.0
    pause_seconds: float | None = None
    triggered_at: float = 0.0


def image_stem(image_path: str | None) -> str:
    stem = os.path.basename((image_path or "").replace("\\", "/")) or "process"
    return stem[:-4] if stem.lower().endswith(".exe") else stem


def write(snap: Snapshot, folder: str, trigger: str, value: float, dump_type: MiniDumpType,
          compress: str | None, exception: ExceptionInfo | None = None,
          pause_seconds: float | None = None, triggered_at: float = 0.0) -> TriggeredDump:
    """Write *snap* into *folder* under the next free name for this second and trigger."""
    stem = f"{image_stem(snap.process.image_path)}_{snap.pid}_{time.strftime('%Y%m%d_%H%M%S')}"
    suffix = SUFFIXES[compress]
    for attempt in range(1000):
        extra = f"-{attempt}" if attempt else ""
        dest = os.path.join(folder, f"{stem}_{trigger}{extra}{suffix}")
        try:
            result = _write_one(snap, dest, dump_type, compress, exception)
        except DestinationExistsError:
            continue
        if pause_seconds is None and snap.performance is not None:
            pause_seconds = snap.performance.pause_seconds
        return TriggeredDump(**{f.name: getattr(result, f.name)
                                for f in dataclasses.fields(DumpResult)},
                             trigger=trigger, value=value, pause_seconds=pause_seconds,
                             triggered_at=triggered_at or time.time())
    raise DestinationExistsError(f"{folder}: a thousand dumps named {stem}_{trigger} exist "
                                 "already; clean the folder or choose another with -o")


def _write_one(snap: Snapshot, dest: str, dump_type: MiniDumpType, compress: str | None,
               exception: ExceptionInfo | None) -> DumpResult:
    if compress is None:
        return snap.write_dump(dest, dump_type, exception=exception)
    # Compress only a complete dump: a crash cut short must not leave half an archive.
    with tempfile.TemporaryFile(dir=os.path.dirname(os.path.abspath(dest))) as raw:
        result = snap.write_dump(raw, dump_type, exception=exception)
        raw.seek(0)
        with _dest.open_destination(dest, False) as out, \
                os.fdopen(out.fd, "wb", closefd=False) as sink:
            with _packer(sink, compress) as packed:
                while chunk := raw.read(1 << 20):
                    packed.write(chunk)
            sink.flush()
            out.size = sink.tell()
    return dataclasses.replace(result, path=out.path, size=out.size)


def _packer(sink: IO[bytes], compress: str) -> gzip.GzipFile | lzma.LZMAFile:
    if compress == "gzip":
        return gzip.GzipFile(filename="", mode="wb", fileobj=sink)
    return lzma.LZMAFile(sink, mode="wb")
