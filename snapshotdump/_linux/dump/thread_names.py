"""ThreadNamesStream: each thread's comm."""

from __future__ import annotations

from ...minidump.file import DumpFile, Location
from .plan import DumpPlan


def write(plan: DumpPlan, out: DumpFile) -> Location:
    count = len(plan.threads)
    entries = out.new("MINIDUMP_THREAD_NAME", max(count, 1))
    for entry, thread in zip(entries, plan.threads, strict=False):
        entry.ThreadId = thread.state.tid
        entry.RvaOfThreadName = out.string(thread.state.name)
    return out.append_list(count.to_bytes(4, "little"), entries, count)
