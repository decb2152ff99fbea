"""ThreadListStream: every thread with its full CONTEXT and its stack memory."""

from __future__ import annotations

from ...minidump.file import DumpFile, Location
from .. import arch as arch_module
from .plan import DumpPlan


def stack_location(plan: DumpPlan, out: DumpFile, blocks: dict[tuple[int, int], int],
                   start: int, end: int) -> int:
    """The RVA of [start, end): inside a MemoryList block if one holds it, else a fresh copy."""
    for (block_start, block_end), rva in blocks.items():
        if block_start <= start and end <= block_end:
            return rva + (start - block_start)
    rva = out.reserve(end - start)
    plan.reader.copy(out, start, end - start, rva)
    blocks[(start, end)] = rva
    return rva


def write(plan: DumpPlan, out: DumpFile, blocks: dict[tuple[int, int], int],
          contexts: dict[int, Location]) -> Location:
    """*contexts* receives each thread's CONTEXT location (the ExceptionStream points at one)."""
    count = len(plan.threads)
    arch = arch_module.current()
    entries = out.new("MINIDUMP_THREAD", max(count, 1))
    for entry, thread in zip(entries, plan.threads, strict=False):
        context = out.append(thread.context)
        contexts[thread.state.tid] = context
        start, end = thread.stack
        entry.ThreadId = thread.state.tid
        # Crashpad's convention: Teb holds the thread-specific data address (fs_base on
        # x86_64), which readers such as skelsec's minidump dereference.
        entry.Teb = int(getattr(arch.registers(thread.state.registers), "fs_base", 0))
        entry.Stack.StartOfMemoryRange = start
        entry.Stack.Memory.DataSize = end - start
        entry.Stack.Memory.Rva = stack_location(plan, out, blocks, start, end) if end > start else 0
        entry.ThreadContext.DataSize = context.size
        entry.ThreadContext.Rva = context.rva
    return out.append_list(count.to_bytes(4, "little"), entries, count)
