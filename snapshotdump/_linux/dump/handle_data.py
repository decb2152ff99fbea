"""HandleDataStream: the target's file descriptors, with a type and what they point to."""

from __future__ import annotations

from ...minidump.file import DumpFile, Location
from ...minidump.format import ffi
from .plan import DumpPlan


def fd_type(target: str) -> str:
    if target.startswith("socket:"):
        return "Socket"
    if target.startswith("pipe:"):
        return "Pipe"
    if target.startswith("anon_inode:"):
        return "AnonInode"
    if target.startswith("/dev/"):
        return "Device"
    return "File"


def write(plan: DumpPlan, out: DumpFile) -> Location:
    fds = plan.data.fds
    entries = out.new("MINIDUMP_HANDLE_DESCRIPTOR_2", max(len(fds), 1))
    for entry, (fd, target) in zip(entries, fds, strict=False):
        entry.Handle = fd
        entry.TypeNameRva = out.string(fd_type(target))
        entry.ObjectNameRva = out.string(target)
        entry.HandleCount = 1
    header = out.new("MINIDUMP_HANDLE_DATA_STREAM")
    header.SizeOfHeader = ffi().sizeof("MINIDUMP_HANDLE_DATA_STREAM")
    header.SizeOfDescriptor = ffi().sizeof("MINIDUMP_HANDLE_DESCRIPTOR_2")
    header.NumberOfDescriptors = len(fds)
    return out.append_list(header, entries, len(fds))
