"""A Windows target for the watch tests: prints "READY pid", then serves stdin commands.

  threads N  -> N more threads that sleep; "THREADS"
  handles N  -> N more open files; "HANDLES"
  burn S     -> burns one core for S seconds; "BURNED"
"""

import os
import sys
import threading
import time

kept = []
print(f"READY {os.getpid()}", flush=True)
for line in sys.stdin:
    words = line.split()
    if words[:1] == ["threads"]:
        for _ in range(int(words[1])):
            threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
        print("THREADS", flush=True)
    elif words[:1] == ["handles"]:
        kept += [open(sys.executable, "rb") for _ in range(int(words[1]))]  # noqa: SIM115
        print("HANDLES", flush=True)
    elif words[:1] == ["burn"]:
        end = time.monotonic() + float(words[1])
        while time.monotonic() < end:
            pass
        print("BURNED", flush=True)
