"""Start a full dump of PID into FOLDER, survive a SIGINT during it, then dump again
with the same snapshot (for the interrupted-copy test)."""

import sys
import time

import snapshotdump

pid, folder = int(sys.argv[1]), sys.argv[2]
full = snapshotdump.MiniDumpType.WITH_FULL_MEMORY
with snapshotdump.capture(pid) as snap:
    finished = False
    try:
        print("write", flush=True)
        snap.write_dump(f"{folder}/full.dmp", full)
        finished = True
        print("FINISHED", flush=True)
        # The test's one SIGINT may come only after a fast dump: take it here, not in the
        # second dump below.
        time.sleep(60)
    except KeyboardInterrupt:
        if not finished:
            print("INTERRUPTED", flush=True)
    snap.write_dump(f"{folder}/after.dmp", full)
    print("RECOVERED", flush=True)
