"""Start a full dump of PID into FOLDER, survive a SIGINT during it, then dump again
with the same snapshot (for the interrupted-copy test)."""

import sys

import snapshotdump

pid, folder = int(sys.argv[1]), sys.argv[2]
full = snapshotdump.MiniDumpType.WITH_FULL_MEMORY
with snapshotdump.capture(pid) as snap:
    try:
        print("write", flush=True)
        snap.write_dump(f"{folder}/full.dmp", full)
        print("FINISHED", flush=True)
    except KeyboardInterrupt:
        print("INTERRUPTED", flush=True)
    snap.write_dump(f"{folder}/after.dmp", full)
    print("RECOVERED", flush=True)
