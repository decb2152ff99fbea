"""The small multi-threaded process ``snapshotdump demo`` snapshots: it works until stdin closes."""

import sys
import threading
import time

counter = [0]


def worker() -> None:
    while True:
        counter[0] += 1
        time.sleep(0.001)


def sleeper() -> None:
    time.sleep(3600)


for index in range(3):
    threading.Thread(target=worker if index else sleeper, name=f"demo-{index}",
                     daemon=True).start()
print("READY", flush=True)
sys.stdin.read()
