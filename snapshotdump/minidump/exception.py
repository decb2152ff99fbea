"""ExceptionStream: the signal (code), address and thread the user names, with its context."""

from __future__ import annotations

from ..snapshot import ExceptionInfo
from .file import DumpFile, Location


def write(out: DumpFile, info: ExceptionInfo, context: Location | None) -> Location:
    stream = out.new("MINIDUMP_EXCEPTION_STREAM")
    stream.ThreadId = info.thread_id
    stream.ExceptionRecord.ExceptionCode = info.code & 0xFFFFFFFF
    stream.ExceptionRecord.ExceptionFlags = info.flags & 0xFFFFFFFF
    stream.ExceptionRecord.ExceptionAddress = info.address & 0xFFFFFFFFFFFFFFFF
    if context is not None:
        stream.ThreadContext.DataSize = context.size
        stream.ThreadContext.Rva = context.rva
    return out.append_struct(stream)
