"""MiscInfoStream: the pid and the process times."""

from __future__ import annotations

from ...minidump.file import DumpFile, Location
from ...minidump.format import MISC1_PROCESS_ID, MISC1_PROCESS_TIMES
from .plan import DumpPlan


def write(plan: DumpPlan, out: DumpFile) -> Location:
    data = plan.data
    info = out.new("MINIDUMP_MISC_INFO")
    info.SizeOfInfo = 24
    info.Flags1 = MISC1_PROCESS_ID | MISC1_PROCESS_TIMES
    info.ProcessId = data.pid
    stat = data.stat.rsplit(")", 1)[-1].split()
    ticks = data.clock_ticks or 100
    # stat fields after the comm: state is [0], utime [11], stime [12], starttime [19].
    info.ProcessUserTime = int(stat[11]) // ticks
    info.ProcessKernelTime = int(stat[12]) // ticks
    info.ProcessCreateTime = int(data.boot_time + int(stat[19]) / ticks) & 0xFFFFFFFF
    return out.append_struct(info)
