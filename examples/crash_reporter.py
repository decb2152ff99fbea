"""A crash reporter: dump the current process from sys.excepthook, with a JSON user stream.

    python examples/crash_reporter.py
"""

import json
import os
import sys
import time
import traceback

import snapshotdump

CRASH_STREAM = 0x10001  # above 0xFFFF: the range readers leave to applications


def dump_on_crash(kind: type[BaseException], value: BaseException, tb: object) -> None:
    report = {"type": kind.__name__, "message": str(value), "time": time.time(),
              "traceback": traceback.format_exception(kind, value, tb)}  # type: ignore[arg-type]
    path = f"crash_{os.getpid()}.dmp"
    with snapshotdump.capture(os.getpid()) as snap:  # the tracing happens in a helper process
        result = snap.write_dump(path, user_streams=[(CRASH_STREAM, json.dumps(report).encode())],
                                 overwrite=True)
    print(f"crashed with {kind.__name__}: {value}; wrote {result.path} ({result.threads} threads)",
          file=sys.stderr)


if __name__ == "__main__":
    sys.excepthook = dump_on_crash
    raise RuntimeError("something went wrong")
