"""ThreadInfoListStream: each thread's start time and user/kernel times (FILETIME units)."""

from __future__ import annotations

from ...minidump.file import DumpFile, Location
from .plan import DumpPlan

_FILETIME_PER_SECOND = 10_000_000
_FILETIME_UNIX_EPOCH = 116_444_736_000_000_000


def write(plan: DumpPlan, out: DumpFile) -> Location:
    data = plan.data
    ticks = data.clock_ticks or 100
    count = len(plan.threads)
    entries = out.new("MINIDUMP_THREAD_INFO", max(count, 1))
    for entry, thread in zip(entries, plan.threads, strict=False):
        stat = thread.state.stat  # [pid, comm, state, ...]: utime [13], stime [14], start [21]
        entry.ThreadId = thread.state.tid
        entry.UserTime = int(stat[13]) * _FILETIME_PER_SECOND // ticks
        entry.KernelTime = int(stat[14]) * _FILETIME_PER_SECOND // ticks
        started = data.boot_time + int(stat[21]) / ticks
        entry.CreateTime = int(started * _FILETIME_PER_SECOND) + _FILETIME_UNIX_EPOCH
    header = out.new("MINIDUMP_THREAD_INFO_LIST")
    header.SizeOfHeader = 12
    header.SizeOfEntry = 64
    header.NumberOfEntries = count
    return out.append_list(header, entries, count)
