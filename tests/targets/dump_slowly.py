"""Capture PID and write a full dump slowly, so a test can SIGKILL this process mid-dump."""

import sys
import time

import snapshotdump

pid, dest, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
flags = snapshotdump.CaptureFlags.DEFAULT
if mode == "freeze":
    flags &= ~snapshotdump.CaptureFlags.VA_CLONE
with snapshotdump.capture(pid, flags) as snap:
    print("CAPTURED", flush=True)
    snap.write_dump(dest, snapshotdump.MiniDumpType.WITH_FULL_MEMORY,
                    callback=lambda event: time.sleep(0.2))
print("DONE", flush=True)
