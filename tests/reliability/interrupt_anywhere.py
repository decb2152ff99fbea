"""Ctrl-C PID's capture and full dump at a random moment, ROUNDS times; after each, a
fresh capture and dump must work (the channel to the helper stayed in step)."""

import os
import random
import signal
import sys
import threading
import time

import snapshotdump

pid, folder, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
chance = random.Random(int(sys.argv[4]))
full = snapshotdump.MiniDumpType.WITH_FULL_MEMORY
interrupted = 0
for _round in range(rounds):
    timer = threading.Timer(chance.random() * 0.25, os.kill, (os.getpid(), signal.SIGINT))
    try:
        timer.start()
        with snapshotdump.capture(pid) as snap:
            snap.write_dump(f"{folder}/full.dmp", full, overwrite=True)
        timer.join()
        time.sleep(0.01)  # a signal sent just now is delivered here, inside the try
    except KeyboardInterrupt:
        interrupted += 1
    while timer.is_alive():
        try:
            timer.join()
            time.sleep(0.01)
        except KeyboardInterrupt:
            interrupted += 1
    with snapshotdump.capture(pid) as snap:
        snap.write_dump(f"{folder}/after.dmp", overwrite=True)
print("OK", rounds, "interrupted", interrupted, flush=True)
