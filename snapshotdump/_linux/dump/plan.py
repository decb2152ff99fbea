"""What a Linux dump will hold: threads, modules and memory ranges, after the user callback."""

from __future__ import annotations

import dataclasses
import struct
from types import ModuleType

from ...callbacks import CallbackEvent, DumpCallback, ask
from ...flags import CallbackType, MiniDumpType, ModuleWriteFlags, ThreadWriteFlags
from ...minidump import elf
from ...minidump.memory import MemoryReader, merge
from ...snapshot import SkippedRegion
from ..capture_data import CaptureData, ThreadState
from ..procfs import Mapping, parse_maps
from ..vm_flags import DEVICE, DONT_DUMP

RED_ZONE = 128
MAX_STACK = 4 << 20
POINTER_WINDOW = 256
MAX_INDIRECT_RANGES = 4096
_SKIPPED = ("[vvar]", "[vvar_vclock]", "[vsyscall]")

DEFAULT_MODULE_FLAGS = ModuleWriteFlags.MODULE | ModuleWriteFlags.DATA_SEG | \
    ModuleWriteFlags.CV_RECORD
DEFAULT_THREAD_FLAGS = ThreadWriteFlags.THREAD | ThreadWriteFlags.STACK | ThreadWriteFlags.CONTEXT


@dataclasses.dataclass
class Module:
    base: int
    size: int
    path: str
    build_id: bytes | None
    flags: int


@dataclasses.dataclass
class Thread:
    state: ThreadState
    flags: int
    stack: tuple[int, int]  # (start, end); empty when the stack is excluded or unmapped
    context: bytes


@dataclasses.dataclass
class DumpPlan:
    data: CaptureData
    reader: MemoryReader
    dump_type: MiniDumpType
    maps: list[Mapping]
    threads: list[Thread]
    modules: list[Module]
    memory: list[tuple[int, int]]  # MemoryList ranges, or Memory64List regions for full memory
    full_memory: bool
    skipped: list[SkippedRegion] = dataclasses.field(default_factory=list)
    python_stacks_skipped: str | None = None  # why a CPython's stacks are not in the dump

    def wants(self, flag: MiniDumpType) -> bool:
        return bool(self.dump_type & flag)


def _dumpable(mapping: Mapping) -> bool:
    return mapping.readable and mapping.path not in _SKIPPED and mapping.start < 1 << 63


def _mapping_at(maps: list[Mapping], address: int) -> Mapping | None:
    for mapping in maps:
        if mapping.start <= address < mapping.end:
            return mapping
    return None


def stack_range(maps: list[Mapping], sp: int) -> tuple[int, int]:
    mapping = _mapping_at(maps, sp) or _mapping_at(maps, sp - RED_ZONE)
    if mapping is None or not _dumpable(mapping):
        return (sp, sp)
    start = max(mapping.start, (sp - RED_ZONE) & ~0xF)
    return (start, min(mapping.end, start + MAX_STACK))


def find_modules(maps: list[Mapping], reader: MemoryReader) -> list[Module]:
    """Every mapped ELF image: base at its offset-0 mapping, size to its last mapping."""
    modules: list[Module] = []
    index = 0
    while index < len(maps):
        mapping = maps[index]
        named = mapping.path.startswith("/") or mapping.path == "[vdso]"
        if not named or mapping.offset != 0 or not mapping.readable:
            index += 1
            continue
        if not elf.is_elf(reader.read(mapping.start, 5)):
            index += 1
            continue
        end = mapping.end
        following = index + 1
        while following < len(maps) and maps[following].path == mapping.path and \
                maps[following].inode == mapping.inode:
            end = maps[following].end
            following += 1
        build_id = elf.build_id(reader.read, mapping.start)
        if build_id is None and mapping.path.startswith("/"):
            build_id = elf.build_id_from_file(mapping.path)
        path = "linux-gate.so" if mapping.path == "[vdso]" else mapping.path
        modules.append(Module(mapping.start, end - mapping.start, path, build_id,
                              int(DEFAULT_MODULE_FLAGS)))
        index = following
    return modules


def _data_segments(maps: list[Mapping], module: Module) -> list[tuple[int, int]]:
    ranges = []
    inside = [m for m in maps if module.base <= m.start < module.base + module.size]
    for position, mapping in enumerate(maps):
        if mapping not in inside or not mapping.writable or not _dumpable(mapping):
            continue
        ranges.append((mapping.start, mapping.end))
        # The .bss that follows a data segment is an anonymous mapping right after it.
        if position + 1 < len(maps):
            after = maps[position + 1]
            if after.start == mapping.end and not after.path and after.writable:
                ranges.append((after.start, after.end))
    return ranges


def _indirect(reader: MemoryReader, maps: list[Mapping], stacks: list[tuple[int, int]]) -> list[
        tuple[int, int]]:
    """Small windows of writable memory that stack words point to (bounded in number)."""
    targets = [m for m in maps if _dumpable(m) and m.writable]
    ranges: list[tuple[int, int]] = []
    for start, end in stacks:
        data = reader.read(start, end - start) or b""
        for (word,) in struct.iter_unpack("<Q", data[:len(data) & ~7]):
            if len(ranges) >= MAX_INDIRECT_RANGES:
                return ranges
            for mapping in targets:
                if mapping.start <= word < mapping.end:
                    ranges.append((max(mapping.start, word - POINTER_WINDOW),
                                   min(mapping.end, word + POINTER_WINDOW)))
                    break
    return ranges


def _unreadable_reason(mapping: Mapping | None, flags: tuple[str, ...]) -> str:
    if mapping is not None and not mapping.readable:
        return "no access (PROT_NONE, a guard region)"
    if mapping is not None and mapping.path in _SKIPPED:
        return f"kernel page {mapping.path}, not readable through /proc"
    if any(flag in flags for flag in DEVICE):
        return "device memory (VM_IO / VM_PFNMAP), not readable"
    if mapping is not None and mapping.path.startswith("/secretmem"):
        return "memfd_secret memory, hidden from every other process"
    return "unreadable"


def left_out(mapping: Mapping, flags: dict[int, tuple[str, ...]],
             include_dont_dump: bool) -> SkippedRegion | None:
    """Why an all-memory dump leaves *mapping* out; None if it is written."""
    if not _dumpable(mapping) or mapping.path.startswith("/secretmem"):
        # memfd_secret memory is VM_DONTDUMP too, but no opt-in could ever read it.
        return SkippedRegion(mapping.start, mapping.size, _unreadable_reason(mapping, ()))
    if DONT_DUMP in flags.get(mapping.start, ()) and not include_dont_dump:
        return SkippedRegion(mapping.start, mapping.size,
                             "MADV_DONTDUMP (write_dump(include_dont_dump=True) writes it)")
    return None


def unreadable(mapping: Mapping | None, flags: dict[int, tuple[str, ...]],
               start: int, end: int) -> SkippedRegion:
    return SkippedRegion(start, end - start, _unreadable_reason(
        mapping, flags.get(mapping.start, ()) if mapping else ()))


def _missing_dont_fork(data: CaptureData, maps: list[Mapping]) -> list[SkippedRegion]:
    """MADV_DONTFORK mappings of the target that the clone does not hold: say so."""
    if not data.cloned:
        return []
    why = data.dont_fork_problem or "the clone was made without them"
    return [SkippedRegion(start, end - start, f"MADV_DONTFORK, not in the clone: {why}")
            for start, end in data.dont_fork
            if not any(m.start <= start < m.end for m in maps)]


def make_plan(data: CaptureData, reader: MemoryReader, dump_type: MiniDumpType,
              callback: DumpCallback | None, arch: ModuleType,
              include_dont_dump: bool = False) -> DumpPlan:
    maps = parse_maps(data.maps)
    full = bool(dump_type & MiniDumpType.WITH_FULL_MEMORY)

    threads = []
    for state in data.threads:
        flags = int(DEFAULT_THREAD_FLAGS)
        sp = arch.stack_pointer(state.registers)
        stack = stack_range(maps, sp)
        decision = ask(callback, CallbackEvent(
            CallbackType.THREAD, thread_id=state.tid, memory_base=stack[0],
            memory_size=stack[1] - stack[0], write_flags=ThreadWriteFlags(flags)))
        if decision.write_flags is not None:
            flags = decision.write_flags
        if not decision.include or not flags & ThreadWriteFlags.THREAD:
            continue
        if not flags & ThreadWriteFlags.STACK:
            stack = (sp, sp)
        threads.append(Thread(state, flags, stack, arch.context(state.registers,
                                                                state.fp_registers)))

    modules = []
    for module in find_modules(maps, reader):
        decision = ask(callback, CallbackEvent(
            CallbackType.MODULE, module_path=module.path, module_base=module.base,
            module_size=module.size, write_flags=ModuleWriteFlags(module.flags)))
        if decision.write_flags is not None:
            module.flags = decision.write_flags
        if decision.include and module.flags & ModuleWriteFlags.MODULE:
            modules.append(module)

    skipped: list[SkippedRegion] = []
    flags_at = data.vm_flags
    all_memory = full or bool(dump_type & MiniDumpType.WITH_PRIVATE_READ_WRITE_MEMORY)

    def dumped(mapping: Mapping) -> bool:
        """Whether a mapping of an all-memory dump is written; if not, it is recorded why."""
        reason = left_out(mapping, flags_at, include_dont_dump)
        if reason is not None:
            skipped.append(reason)
        return reason is None

    if full:
        candidates = [(m.start, m.end) for m in maps if dumped(m)]
    else:
        candidates = [t.stack for t in threads]
        if dump_type & MiniDumpType.WITH_DATA_SEGS:
            for module in modules:
                if module.flags & ModuleWriteFlags.DATA_SEG:
                    candidates += _data_segments(maps, module)
        if dump_type & MiniDumpType.WITH_PRIVATE_READ_WRITE_MEMORY:
            candidates += [(m.start, m.end) for m in maps
                           if m.writable and not m.shared
                           and (not m.path or m.path.startswith("[")) and dumped(m)]
        if dump_type & MiniDumpType.WITH_INDIRECTLY_REFERENCED_MEMORY and \
                not dump_type & MiniDumpType.WITHOUT_OPTIONAL_DATA:
            candidates += _indirect(reader, maps, [t.stack for t in threads])
    memory = []
    ignore_inaccessible = bool(dump_type & MiniDumpType.IGNORE_INACCESSIBLE_MEMORY)
    for start, end in (candidates if full else merge(candidates)):
        if end <= start:
            continue
        if not ignore_inaccessible and not reader.readable(start):
            if all_memory:
                mapping = _mapping_at(maps, start)
                skipped.append(SkippedRegion(start, end - start, _unreadable_reason(
                    mapping, flags_at.get(mapping.start, ()) if mapping else ())))
            continue
        decision = ask(callback, CallbackEvent(CallbackType.INCLUDE_VM_REGION, memory_base=start,
                                               memory_size=end - start))
        if decision.include:
            memory.append((start, end))
    if all_memory:
        skipped += _missing_dont_fork(data, maps)
    return DumpPlan(data, reader, dump_type, maps, threads, modules, memory, full,
                    sorted(skipped, key=lambda region: region.base))
