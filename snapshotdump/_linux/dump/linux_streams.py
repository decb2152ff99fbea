"""Breakpad's Linux streams: /proc files as they were, and the dynamic linker's DSO list."""

from __future__ import annotations

from ... import flags
from ...minidump import elf
from ...minidump.file import DumpFile, Location
from ...minidump.format import StreamType
from .plan import DumpPlan


def text_streams(plan: DumpPlan) -> list[tuple[StreamType, bytes]]:
    data = plan.data
    streams = [
        (StreamType.LINUX_CPU_INFO, data.cpuinfo),
        (StreamType.LINUX_PROC_STATUS, data.status.encode()),
        (StreamType.LINUX_LSB_RELEASE, data.lsb_release),
        (StreamType.LINUX_CMD_LINE, data.cmdline),
        (StreamType.LINUX_AUXV, data.auxv),
        (StreamType.LINUX_MAPS, data.maps.encode()),
    ]
    if not plan.wants(flags.MiniDumpType.WITHOUT_OPTIONAL_DATA):
        # The environment often holds secrets; WITHOUT_OPTIONAL_DATA leaves it out.
        streams.insert(4, (StreamType.LINUX_ENVIRON, data.environ))
    return streams


def text_stream_types(dump_type: flags.MiniDumpType) -> list[StreamType]:
    """The /proc streams text_streams() gives for *dump_type*, in the same order."""
    kinds = [StreamType.LINUX_CPU_INFO, StreamType.LINUX_PROC_STATUS,
             StreamType.LINUX_LSB_RELEASE, StreamType.LINUX_CMD_LINE, StreamType.LINUX_AUXV,
             StreamType.LINUX_MAPS]
    if not dump_type & flags.MiniDumpType.WITHOUT_OPTIONAL_DATA:
        kinds.insert(4, StreamType.LINUX_ENVIRON)
    return kinds


def write_dso_debug(plan: DumpPlan, out: DumpFile) -> Location:
    """MD_RAW_DEBUG64 and its MD_RAW_LINK_MAP64 array (empty for a static program)."""
    found = elf.debug_address(plan.reader.read, plan.data.auxv)
    header, entries = ((0, 0, 0, 0), []) if found is None else \
        elf.link_maps(plan.reader.read, found[0])
    dynamic = found[1] if found else 0
    maps = out.new("MD_RAW_LINK_MAP64", max(len(entries), 1))
    for link, (l_addr, name, l_ld) in zip(maps, entries, strict=False):
        link.Addr = l_addr
        link.Name = out.string(name)
        link.Ld = l_ld
    array = out.append_list(b"", maps, len(entries)) if entries else None
    debug = out.new("MD_RAW_DEBUG64")
    debug.Version = header[0]
    debug.Map = array.rva if array else 0
    debug.DsoCount = len(entries)
    debug.Brk = header[2]
    debug.LdBase = header[3]
    debug.Dynamic = dynamic
    return out.append_struct(debug)
