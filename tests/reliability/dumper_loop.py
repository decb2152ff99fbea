"""Capture/dump/close PID forever, announcing each phase, until killed (for the SIGKILL tests)."""

import sys

import snapshotdump

pid, folder = int(sys.argv[1]), sys.argv[2]
full = snapshotdump.MiniDumpType.WITH_FULL_MEMORY
index = 0
while True:
    print("capture", flush=True)
    with snapshotdump.capture(pid) as snap:
        print("write", flush=True)
        snap.write_dump(f"{folder}/{index}.dmp", full if index % 2 else 0)
        print("close", flush=True)
    index += 1
