"""ThreadInfoListStream: each thread's start time and user/kernel times (FILETIME units)."""

from __future__ import annotations

from ...minidump.file import DumpFile, Location
from ...minidump.format import FILETIME_TICKS_PER_SECOND, FILETIME_UNIX_EPOCH, ffi
from ..procfs import STAT_STARTTIME, STAT_STIME, STAT_UTIME
from .plan import DumpPlan


def write(plan: DumpPlan, out: DumpFile) -> Location:
    data = plan.data
    ticks = data.clock_ticks or 100
    count = len(plan.threads)
    entries = out.new("MINIDUMP_THREAD_INFO", max(count, 1))
    for entry, thread in zip(entries, plan.threads, strict=False):
        stat = thread.state.stat  # procfs.parse_stat()'s list
        entry.ThreadId = thread.state.tid
        entry.UserTime = int(stat[STAT_UTIME]) * FILETIME_TICKS_PER_SECOND // ticks
        entry.KernelTime = int(stat[STAT_STIME]) * FILETIME_TICKS_PER_SECOND // ticks
        started = data.boot_time + int(stat[STAT_STARTTIME]) / ticks
        entry.CreateTime = int(started * FILETIME_TICKS_PER_SECOND) + FILETIME_UNIX_EPOCH
    header = out.new("MINIDUMP_THREAD_INFO_LIST")
    header.SizeOfHeader = ffi().sizeof("MINIDUMP_THREAD_INFO_LIST")
    header.SizeOfEntry = ffi().sizeof("MINIDUMP_THREAD_INFO")
    header.NumberOfEntries = count
    return out.append_list(header, entries, count)
