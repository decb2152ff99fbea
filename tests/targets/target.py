"""A Python test target: threads in time.sleep, os.read on a pipe, Condition.wait, and a ticker.

Prints "READY pid marker_address pipe_write_fd", then serves the same commands as target.c.
"""

import ctypes
import os
import sys
import threading
import time

MARKER = ctypes.create_string_buffer(b"SNAPSHOTDUMP-MARKER-0123456789abcdef", 64)
read_end, write_end = os.pipe()
condition = threading.Condition()
signalled = False
ticks = 0
max_gap_us = 0


def sleeper() -> None:
    while True:
        time.sleep(3600)


def reader() -> None:
    while True:
        try:
            data = os.read(read_end, 64)
            print(f"PIPE {len(data)} 0", flush=True)
        except OSError as exc:
            print(f"PIPE -1 {exc.errno}", flush=True)


def waiter() -> None:
    with condition:
        while not signalled:
            condition.wait()
    print("COND", flush=True)


def ticker() -> None:
    global ticks, max_gap_us
    last = time.monotonic()
    while True:
        time.sleep(0.0002)
        now = time.monotonic()
        max_gap_us = max(max_gap_us, int((now - last) * 1e6))
        last = now
        ticks += 1


for target, name in ((sleeper, "sleeper"), (reader, "reader"), (waiter, "waiter"),
                     (ticker, "ticker")):
    threading.Thread(target=target, name=name, daemon=True).start()
print(f"READY {os.getpid()} {hex(ctypes.addressof(MARKER))} {write_end}", flush=True)
for line in sys.stdin:
    if line.startswith("t"):
        print(f"TICKS {ticks} {max_gap_us}", flush=True)
    elif line.startswith("p"):
        os.write(write_end, b"hello")
    elif line.startswith("c"):
        with condition:
            signalled = True
            condition.notify()
    elif line.startswith("q"):
        break
