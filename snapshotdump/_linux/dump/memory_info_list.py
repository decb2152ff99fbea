"""MemoryInfoListStream: every mapping with its protection, state and type."""

from __future__ import annotations

from ...minidump.file import DumpFile, Location
from ...minidump.format import MEM_COMMIT, MEM_IMAGE, MEM_MAPPED, MEM_PRIVATE, ffi, protection
from .plan import DumpPlan


def write(plan: DumpPlan, out: DumpFile) -> Location:
    images = {m.path for m in plan.modules}
    maps = plan.maps
    entries = out.new("MINIDUMP_MEMORY_INFO", max(len(maps), 1))
    for entry, mapping in zip(entries, maps, strict=False):
        entry.BaseAddress = mapping.start
        entry.AllocationBase = mapping.start
        entry.AllocationProtect = protection(mapping.perms)
        entry.RegionSize = mapping.size
        entry.State = MEM_COMMIT
        entry.Protect = protection(mapping.perms)
        if mapping.path in images:
            entry.Type = MEM_IMAGE
        elif mapping.path.startswith("/"):
            entry.Type = MEM_MAPPED
        else:
            entry.Type = MEM_PRIVATE
    header = out.new("MINIDUMP_MEMORY_INFO_LIST")
    header.SizeOfHeader = ffi().sizeof("MINIDUMP_MEMORY_INFO_LIST")
    header.SizeOfEntry = ffi().sizeof("MINIDUMP_MEMORY_INFO")
    header.NumberOfEntries = len(maps)
    return out.append_list(header, entries, len(maps))
