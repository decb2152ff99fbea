"""MiscInfoStream: the pid and the process times."""

from __future__ import annotations

from ...minidump.file import DumpFile, Location
from ...minidump.format import MISC1_PROCESS_ID, MISC1_PROCESS_TIMES, ffi
from .. import procfs
from .plan import DumpPlan


def write(plan: DumpPlan, out: DumpFile) -> Location:
    data = plan.data
    info = out.new("MINIDUMP_MISC_INFO")
    info.SizeOfInfo = ffi().sizeof("MINIDUMP_MISC_INFO")
    info.Flags1 = MISC1_PROCESS_ID | MISC1_PROCESS_TIMES
    info.ProcessId = data.pid
    stat = procfs.parse_stat(data.stat)
    ticks = data.clock_ticks or 100
    info.ProcessUserTime = int(stat[procfs.STAT_UTIME]) // ticks
    info.ProcessKernelTime = int(stat[procfs.STAT_STIME]) // ticks
    started = data.boot_time + int(stat[procfs.STAT_STARTTIME]) / ticks
    info.ProcessCreateTime = int(started) & 0xFFFFFFFF
    return out.append_struct(info)
