"""Each mapping's VmFlags from /proc/PID/smaps: the kernel's own marks the dump must honour.

``dd`` (MADV_DONTDUMP) is left out of full dumps, as kernel cores leave it out;
``dc`` (MADV_DONTFORK) is absent from a fork, so a clone must be told to take it;
``io`` / ``pf`` (device memory) cannot be read at all.
"""

from __future__ import annotations

from . import procfs

DONT_DUMP = "dd"
DONT_FORK = "dc"
DEVICE = ("io", "pf")

VmFlags = dict[int, tuple[str, ...]]  # mapping start -> its flags


def parse(smaps: str) -> VmFlags:
    flags: VmFlags = {}
    start: int | None = None
    for line in smaps.splitlines():
        if line.startswith("VmFlags:"):
            if start is not None:
                flags[start] = tuple(line.split()[1:])
            continue
        head = line.split(None, 1)[0] if line else ""
        if "-" in head and ":" not in head:
            try:
                start = int(head.split("-", 1)[0], 16)
            except ValueError:
                continue
    return flags


def read(pid: int) -> VmFlags:
    """The flags of every mapping; empty if smaps cannot be read (the marks are then unknown)."""
    try:
        return parse(procfs.read_text(f"/proc/{pid}/smaps"))
    except OSError:
        return {}


def dont_fork_ranges(maps: list[procfs.Mapping], flags: VmFlags) -> list[tuple[int, int]]:
    """The MADV_DONTFORK mappings, adjacent ones joined: one madvise() per range."""
    ranges: list[tuple[int, int]] = []
    for mapping in maps:
        if DONT_FORK not in flags.get(mapping.start, ()):
            continue
        if ranges and ranges[-1][1] == mapping.start:
            ranges[-1] = (ranges[-1][0], mapping.end)
        else:
            ranges.append((mapping.start, mapping.end))
    return ranges
