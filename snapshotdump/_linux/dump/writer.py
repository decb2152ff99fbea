"""Write a Linux minidump from a capture: the driver that runs each stream's module in turn.

The directory is sized from the list of streams below (nothing counted by hand)
and each entry is written the moment its stream is complete, so a dump cut
short still reads up to that point.  Full memory goes last, streamed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ...callbacks import DumpCallback
from ...flags import MiniDumpType
from ...minidump import exception
from ...minidump.file import DumpFile, Location
from ...minidump.format import StreamType
from ...minidump.memory import BulkCopy, MemoryReader
from ...snapshot import ExceptionInfo, UserStream
from .. import arch as arch_module
from ..capture_data import CaptureData
from ..procfs import parse_maps
from ..stack_capture import CopiedMemory
from . import (
    handle_data,
    linux_streams,
    memory_info_list,
    memory_list,
    misc_info,
    module_list,
    python_stacks,
    system_info,
    thread_info_list,
    thread_list,
    thread_names,
)
from .plan import DumpPlan, make_plan


def write(fd: int, data: CaptureData, mem_fd: int, dump_type: MiniDumpType,
          exception_info: ExceptionInfo | None, user_streams: Sequence[UserStream],
          callback: DumpCallback | None, bulk: BulkCopy | None = None,
          include_dont_dump: bool = False) -> tuple[int, DumpPlan]:
    """Write the dump to *fd*; return the file size and the plan it followed.

    *bulk*, when given, is offered a full dump's memory first (see MemoryReader.copy_all).
    """
    arch = arch_module.current()
    reader = (CopiedMemory(mem_fd, data.copied, parse_maps(data.maps))
              if data.memory in ("stacks", "precopy") else MemoryReader(mem_fd, bulk))
    plan = make_plan(data, reader, dump_type, callback, arch, include_dont_dump)
    blocks: dict[tuple[int, int], int] = {}
    steps = stream_steps(lambda: plan, data, dump_type, exception_info, user_streams, blocks)
    if plan.full_memory:
        steps.append((StreamType.MEMORY64_LIST, lambda out: memory_list.write_list64(plan, out)))
    out = DumpFile(fd, len(steps), int(data.captured_at))
    add_streams(out, steps)
    out.finish()
    return out.end, plan


# A step returns None when its stream turns out to have nothing to hold: its slot in the
# directory, sized before any stream was written, then stays an UnusedStream entry.
Step = tuple[int, Callable[[DumpFile], "Location | None"]]


def add_streams(out: DumpFile, steps: Sequence[Step]) -> None:
    for stream_type, step in steps:
        location = step(out)
        if location is None:
            out.add_stream(StreamType.UNUSED, Location(0, 0))
        else:
            out.add_stream(stream_type, location)


def stream_steps(plan_of: Callable[[], DumpPlan], data: CaptureData, dump_type: MiniDumpType,
                 exception_info: ExceptionInfo | None, user_streams: Sequence[UserStream],
                 blocks: dict[tuple[int, int], int]) -> list[Step]:
    """Every stream but the memory of a full dump, in order.  Which streams there are
    depends on the dump type alone, so the list (and the directory's size) is known
    before the plan: a pre-copy builds its plan only after its memory is written."""
    arch = arch_module.current()
    contexts: dict[int, Location] = {}
    full = bool(dump_type & MiniDumpType.WITH_FULL_MEMORY)
    steps: list[Step] = [
        (StreamType.SYSTEM_INFO,
         lambda out: system_info.write(plan_of(), out, arch.cpu_information(data.cpuinfo),
                                       arch.PROCESSOR_ARCHITECTURE)),
        (StreamType.MISC_INFO, lambda out: misc_info.write(plan_of(), out)),
    ]
    if not full:
        steps.append((StreamType.MEMORY_LIST,
                      lambda out: memory_list.write_list(plan_of(), out, blocks)))
    steps += [
        (StreamType.THREAD_LIST, lambda out: thread_list.write(plan_of(), out, blocks, contexts)),
        (StreamType.MODULE_LIST, lambda out: module_list.write(plan_of(), out)),
        (StreamType.THREAD_NAMES, lambda out: thread_names.write(plan_of(), out)),
    ]
    if exception_info is not None:
        steps.append((StreamType.EXCEPTION, lambda out: exception.write(
            out, exception_info, contexts.get(exception_info.thread_id))))
    if dump_type & MiniDumpType.WITH_THREAD_INFO:
        steps.append((StreamType.THREAD_INFO_LIST,
                      lambda out: thread_info_list.write(plan_of(), out)))
    if dump_type & MiniDumpType.WITH_HANDLE_DATA:
        steps.append((StreamType.HANDLE_DATA, lambda out: handle_data.write(plan_of(), out)))
    if full or dump_type & MiniDumpType.WITH_FULL_MEMORY_INFO:
        steps.append((StreamType.MEMORY_INFO_LIST,
                      lambda out: memory_info_list.write(plan_of(), out)))
    for kind in linux_streams.text_stream_types(dump_type):
        steps.append((int(kind), _text(plan_of, kind)))
    if python_stacks.may_apply(parse_maps(data.maps)):
        steps.append((StreamType.PYTHON_STACKS, _python_stacks(plan_of)))
    steps.append((StreamType.LINUX_DSO_DEBUG,
                  lambda out: linux_streams.write_dso_debug(plan_of(), out)))
    steps += [(stream.type, _raw(stream.data)) for stream in user_streams]
    return steps


def _text(plan_of: Callable[[], DumpPlan], kind: StreamType) -> Callable[[DumpFile], Location]:
    def step(out: DumpFile) -> Location:
        payload = dict(linux_streams.text_streams(plan_of()))[kind]
        out.align(4)
        return out.append(payload)

    return step


def _python_stacks(plan_of: Callable[[], DumpPlan]) -> Callable[[DumpFile], Location | None]:
    def step(out: DumpFile) -> Location | None:
        plan = plan_of()
        payload, plan.python_stacks_skipped = python_stacks.collect(plan)
        return None if payload is None else _raw(payload)(out)

    return step


def _raw(payload: bytes) -> Callable[[DumpFile], Location]:
    def step(out: DumpFile) -> Location:
        out.align(4)
        return out.append(payload)

    return step


__all__ = ["DumpPlan", "MemoryReader", "write"]
