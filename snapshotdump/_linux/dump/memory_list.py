"""MemoryListStream (stacks and chosen ranges) and Memory64ListStream (full memory)."""

from __future__ import annotations

from ...minidump.file import DumpFile, Location
from .plan import DumpPlan


def write_list(plan: DumpPlan, out: DumpFile, blocks: dict[tuple[int, int], int]) -> Location:
    """A MemoryList; records each range's RVA in *blocks* for the ThreadList to point into."""
    count = len(plan.memory)
    header = out.new("MINIDUMP_MEMORY_LIST")
    header.NumberOfMemoryRanges = count
    descriptors = out.new("MINIDUMP_MEMORY_DESCRIPTOR", max(count, 1))
    list_size = 4 + 16 * count
    list_rva = out.reserve(list_size)
    out.align(16)
    for descriptor, (start, end) in zip(descriptors, plan.memory, strict=False):
        rva = out.reserve(end - start)
        plan.reader.copy(out, start, end - start, rva)
        descriptor.StartOfMemoryRange = start
        descriptor.Memory.DataSize = end - start
        descriptor.Memory.Rva = rva
        blocks[(start, end)] = rva
    out.write_at(list_rva, out.bytes_of(header, 4) + out.bytes_of(descriptors, 16 * count))
    return Location(list_rva, list_size)


def write_list64(plan: DumpPlan, out: DumpFile) -> Location:
    """A Memory64List: descriptors, then every region's bytes back to back, streamed."""
    count = len(plan.memory)
    list_size = 16 + 16 * count
    list_rva = out.reserve(list_size)
    base_rva = out.end
    header = out.new("MINIDUMP_MEMORY64_LIST")
    header.NumberOfMemoryRanges = count
    header.BaseRva = base_rva
    descriptors = out.new("MINIDUMP_MEMORY_DESCRIPTOR64", max(count, 1))
    for descriptor, (start, end) in zip(descriptors, plan.memory, strict=False):
        descriptor.StartOfMemoryRange = start
        descriptor.DataSize = end - start
    out.write_at(list_rva, out.bytes_of(header, 16) + out.bytes_of(descriptors, 16 * count))
    jobs = [(start, end - start, out.reserve(end - start)) for start, end in plan.memory]
    plan.reader.copy_all(out, jobs)
    return Location(list_rva, list_size)
