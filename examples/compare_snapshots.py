"""Two snapshots of a process a few seconds apart: what grew, and which threads did not move.

    python examples/compare_snapshots.py PID [SECONDS]    # dump twice, then compare
    python examples/compare_snapshots.py A.dmp B.dmp      # compare two dumps of one process

Threads whose stack is the same in both dumps (same native frames, same Python frames) are
the ones to look at in a hang.
"""

import os
import sys
import tempfile
import time

import snapshotdump


def stacks(path: str) -> dict[int, tuple[str, ...]]:
    """Each thread's stack as text, Python frames first, from the dump at *path*."""
    with snapshotdump.open_dump(path) as dump:
        result = {}
        for thread in dump.threads:
            python = thread.python
            frames = [f"{f.function} ({f.file}:{f.line})" for f in python.frames] \
                if python else []
            frames += [f.describe() for f in thread.frames]
            result[thread.thread_id] = tuple(frames)
        return result


def census(pid: int, folder: str, name: str) -> tuple[str, set[int], int]:
    path = os.path.join(folder, name)
    with snapshotdump.capture(pid) as snap:
        snap.write_dump(path)
        handles = {h.handle for h in snap.handles()}
        mapped = sum(r.size for r in snap.regions())
    return path, handles, mapped


def compare(before: str, after: str) -> None:
    stacks_a, stacks_b = stacks(before), stacks(after)
    threads_a, threads_b = set(stacks_a), set(stacks_b)
    print(f"threads: {len(threads_a)} -> {len(threads_b)} "
          f"(+{len(threads_b - threads_a)} new, -{len(threads_a - threads_b)} gone)")
    stuck = sorted(t for t in threads_a & threads_b if stacks_a[t] and stacks_a[t] == stacks_b[t])
    print(f"threads whose stack did not change: {len(stuck)}")
    for tid in stuck:
        top = stacks_a[tid][0] if stacks_a[tid] else "?"
        print(f"  {tid}: {top}")


def main(argv: list[str]) -> None:
    if len(argv) == 2 and all(a.endswith((".dmp", ".gz", ".xz")) for a in argv):
        compare(argv[0], argv[1])
        return
    pid, seconds = int(argv[0]), float(argv[1]) if len(argv) > 1 else 3.0
    with tempfile.TemporaryDirectory() as folder:
        path_a, handles_a, mapped_a = census(pid, folder, "a.dmp")
        time.sleep(seconds)
        path_b, handles_b, mapped_b = census(pid, folder, "b.dmp")
        compare(path_a, path_b)
    print(f"handles: {len(handles_a)} -> {len(handles_b)} (+{len(handles_b - handles_a)} new)")
    print(f"mapped memory: {mapped_a >> 10} KiB -> {mapped_b >> 10} KiB "
          f"({(mapped_b - mapped_a) >> 10:+d} KiB)")


if __name__ == "__main__":
    main(sys.argv[1:])
