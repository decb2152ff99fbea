"""A test harness that dumps a child which exceeded its timeout, then kills it.

    python examples/dump_hung_subprocess.py [TIMEOUT_SECONDS]
"""

import subprocess
import sys

import snapshotdump

HUNG_CHILD = "import threading; threading.Event().wait()"  # stands in for a deadlocked test


def run_with_dump_on_timeout(argv: list[str], timeout: float, dump_path: str) -> int:
    child = subprocess.Popen(argv)
    try:
        return child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        # Snapshot first: the dump shows where it hung, then the child is killed.
        with snapshotdump.capture(child.pid) as snap:
            result = snap.write_dump(dump_path, overwrite=True)
        print(f"child {child.pid} hung for {timeout}s: dumped {result.threads} threads to "
              f"{result.path} ({result.size} bytes)")
        child.kill()
        return child.wait()


if __name__ == "__main__":
    timeout = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    status = run_with_dump_on_timeout([sys.executable, "-c", HUNG_CHILD], timeout, "hung.dmp")
    print(f"child exit status {status}")
