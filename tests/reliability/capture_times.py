"""Capture PID COUNT times, writing a dump each time, then print DONE (three of these race)."""

import sys

import snapshotdump

pid, count, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
for index in range(count):
    with snapshotdump.capture(pid) as snap:
        snap.write_dump(f"{folder}/{index}.dmp", overwrite=True)
print("DONE", flush=True)
