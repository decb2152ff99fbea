"""A Python target whose threads park in distinctively named functions (any CPython 3.10+).

Prints "READY pid"; exits at end of input.  Lines marked "# AT:name" are where each
function must be seen.
"""

import sys
import threading
import time

lock = threading.Lock()
lock.acquire()
started = threading.Barrier(4)


def py_sleeps_here():
    started.wait()
    while True:
        time.sleep(3600)  # AT:sleep


def py_waits_on_lock():
    started.wait()
    lock.acquire()  # AT:lock


def py_computes_here():
    started.wait()
    total = 0
    while True: total += 1  # AT:compute  # noqa: E701


def py_outer_calls(inner):
    inner()  # AT:outer


def py_main_waits():
    sys.stdin.read()  # AT:main


for name, target in (("sleeper", py_sleeps_here), ("locker", py_waits_on_lock),
                     ("computer", py_computes_here)):
    threading.Thread(target=py_outer_calls, args=(target,), name=name, daemon=True).start()
started.wait()
print("READY", threading.get_native_id(), flush=True)
py_main_waits()
