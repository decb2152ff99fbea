"""A Windows test child: a marker at a known address and extra threads, then waits on stdin.

Prints "READY pid marker_address tid1 tid2".
"""

import ctypes
import sys
import threading

MARKER = ctypes.create_string_buffer(b"SNAPSHOTDUMP-WINE-MARKER-0123456789", 64)
ready = threading.Barrier(3)
stop = threading.Event()
ids = []


def worker() -> None:
    ids.append(threading.get_native_id())
    ready.wait()
    stop.wait()


for _ in range(2):
    threading.Thread(target=worker, daemon=True).start()
ready.wait()
print("READY", ctypes.windll.kernel32.GetCurrentProcessId(), hex(ctypes.addressof(MARKER)),
      *ids, flush=True)
sys.stdin.read()
stop.set()
