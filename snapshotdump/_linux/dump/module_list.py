"""ModuleListStream: every mapped ELF image, with its build id in a Breakpad CodeView record."""

from __future__ import annotations

from ...flags import ModuleWriteFlags
from ...minidump.file import DumpFile, Location
from ...minidump.format import MD_CV_SIGNATURE_ELF
from .plan import DumpPlan


def write(plan: DumpPlan, out: DumpFile) -> Location:
    count = len(plan.modules)
    entries = out.new("MINIDUMP_MODULE", max(count, 1))
    for entry, module in zip(entries, plan.modules, strict=False):
        entry.BaseOfImage = module.base
        entry.SizeOfImage = module.size & 0xFFFFFFFF
        entry.ModuleNameRva = out.string(module.path)
        if module.build_id and module.flags & ModuleWriteFlags.CV_RECORD:
            cv = out.append(MD_CV_SIGNATURE_ELF.to_bytes(4, "little") + module.build_id)
            entry.CvRecord.DataSize = cv.size
            entry.CvRecord.Rva = cv.rva
    out.align(4)
    return out.append_list(count.to_bytes(4, "little"), entries, count)
