"""Two snapshots of a process a few seconds apart: what grew (threads, fds/handles, memory).

    python examples/compare_snapshots.py PID [SECONDS]
"""

import sys
import time

import snapshotdump


def census(pid: int) -> tuple[set[int], set[int], int]:
    with snapshotdump.capture(pid) as snap:
        threads = {t.thread_id for t in snap.threads()}
        handles = {h.handle for h in snap.handles()}
        mapped = sum(r.size for r in snap.regions())
    return threads, handles, mapped


def main(pid: int, seconds: float) -> None:
    threads_a, handles_a, mapped_a = census(pid)
    time.sleep(seconds)
    threads_b, handles_b, mapped_b = census(pid)
    print(f"threads: {len(threads_a)} -> {len(threads_b)} "
          f"(+{len(threads_b - threads_a)} new, -{len(threads_a - threads_b)} gone)")
    print(f"handles: {len(handles_a)} -> {len(handles_b)} (+{len(handles_b - handles_a)} new)")
    print(f"mapped memory: {mapped_a >> 10} KiB -> {mapped_b >> 10} KiB "
          f"({(mapped_b - mapped_a) >> 10:+d} KiB)")


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 3.0)
