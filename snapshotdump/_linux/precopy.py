"""A full dump by pre-copy: memory copied while the target runs, then only what it wrote.

1. Every writable mapping is write-protected through the target's userfaultfd in async
   mode (precopy_arm made it).  The target keeps running: a write to a protected page
   costs it a minor fault, never a block, and never a copy.
2. All memory is copied into the dump file while the target runs.
3. Rounds: PAGEMAP_SCAN finds the pages written since they were protected, protects
   them again in the same call (PM_SCAN_WP_MATCHING), and they are copied again; new
   mappings are registered, protected and copied.  Rounds end when little was written,
   or after MAX_ROUNDS.
4. The final stop (by the tracer helper): threads, registers and stacks, then the pages
   written since the last scan, mappings that are new, replaced or untracked, and
   anonymous pages dropped since (MADV_DONTNEED) are copied.  Then the target resumes.
   The dump is the target's memory at that stop: one cut.
5. Bytes of mappings gone by the stop are squeezed out of the file, and the dump's
   other streams are written from what the stop took.
"""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..callbacks import CallbackEvent, DumpCallback, ask
from ..flags import CallbackType, MiniDumpType
from ..minidump.file import DumpFile, Location, pwrite_all
from ..minidump.format import StreamType
from ..minidump.memory import CHUNK, MemoryReader
from ..snapshot import ExceptionInfo, SkippedRegion, UserStream
from . import arch as arch_module
from . import procfs, stack_capture, uffd, vm_flags
from .capture_data import CaptureData
from .dump.plan import DumpPlan, left_out, make_plan, unreadable
from .dump.writer import add_streams, stream_steps
from .pagemap import Scanner
from .procfs import Mapping, parse_maps
from .stack_capture import CopiedMemory

if TYPE_CHECKING:
    from .session import Session

MAX_ROUNDS = 4
SETTLED_BYTES = 2 << 20  # a round that finds less than this written leaves the rest to the stop
SCAN_CHUNK = 256 << 20
_ALL_MEMORY_TYPES = (MiniDumpType.WITH_FULL_MEMORY | MiniDumpType.WITH_DATA_SEGS
                     | MiniDumpType.WITH_PRIVATE_READ_WRITE_MEMORY
                     | MiniDumpType.WITH_INDIRECTLY_REFERENCED_MEMORY)


@dataclass
class Statistics:
    """What one pre-copy did: rounds and bytes, the final stop's share apart."""

    rounds: int = 0
    precopied_bytes: int = 0
    round_bytes: tuple[int, ...] = ()
    final_bytes: int = 0
    final_scan_seconds: float = 0.0


@dataclass
class _Extent:
    address: int
    size: int
    rva: int


class Layout:
    """The dump's memory as it is copied: extents at file offsets, found by address.

    It travels to the tracer helper for the final stop (pickled, fd excepted).
    """

    def __init__(self, fd: int, base_rva: int) -> None:
        self.fd = fd
        self.base_rva = base_rva
        self.end = base_rva
        self._extents: list[_Extent] = []  # by address; they never overlap
        self._starts: list[int] = []

    def write_at(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        pwrite_all(self.fd, data, offset)

    def uncovered(self, start: int, end: int) -> list[tuple[int, int]]:
        parts = []
        position = start
        for extent in self.covering(start, end):
            if extent.address > position:
                parts.append((position, extent.address))
            position = max(position, extent.address + extent.size)
        if position < end:
            parts.append((position, end))
        return parts

    def add(self, start: int, end: int) -> list[tuple[int, int, int]]:
        """Room for the parts of [start, end) not yet held; their (address, size, rva) jobs."""
        jobs = []
        for first, last in self.uncovered(start, end):
            extent = _Extent(first, last - first, self.end)
            self.end += last - first
            index = bisect.bisect_left(self._starts, first)
            self._extents.insert(index, extent)
            self._starts.insert(index, first)
            jobs.append((extent.address, extent.size, extent.rva))
        return jobs

    def covering(self, start: int, end: int) -> list[_Extent]:
        index = max(bisect.bisect_right(self._starts, start) - 1, 0)
        found = []
        while index < len(self._extents) and self._extents[index].address < end:
            extent = self._extents[index]
            if extent.address + extent.size > start:
                found.append(extent)
            index += 1
        return found

    def jobs(self, start: int, end: int) -> list[tuple[int, int, int]]:
        """(address, size, rva) of the held parts of [start, end)."""
        jobs = []
        for extent in self.covering(start, end):
            first, last = max(start, extent.address), min(end, extent.address + extent.size)
            jobs.append((first, last - first, extent.rva + first - extent.address))
        return jobs

    def keep_only(self, regions: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
        """Squeeze out every byte outside *regions*; the (address, size, rva) pieces left,
        in file order and back to back from base_rva, as a Memory64List needs them."""
        pieces = []
        for start, end in regions:
            pieces += self.jobs(start, end)
        pieces.sort(key=lambda piece: piece[2])
        # Fill each gap with the last bytes of the file's last piece: moves stay no larger
        # than the gaps, instead of shifting everything after the first one.
        result: list[tuple[int, int, int]] = []
        cursor = self.base_rva
        while pieces:
            _address, size, rva = pieces[0]
            if rva == cursor:
                result.append(pieces.pop(0))
                cursor += size
                continue
            gap = rva - cursor
            last_address, last_size, last_rva = pieces[-1]
            moved = min(gap, last_size)
            source = last_rva + last_size - moved
            _move(self.fd, source, cursor, moved)
            result.append((last_address + last_size - moved, moved, cursor))
            cursor += moved
            if moved == last_size:
                pieces.pop()
            else:
                pieces[-1] = (last_address, last_size - moved, last_rva)
        return result


def _overlaps(runs: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(first < end and start < last for first, last in runs)


def _clip(runs: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    return [(max(first, start), min(last, end)) for first, last in runs
            if first < end and start < last]


def _move(fd: int, source: int, destination: int, size: int) -> None:
    done = 0
    while done < size:
        data = os.pread(fd, min(CHUNK, size - done), source + done)
        if not data:
            data = bytes(min(CHUNK, size - done))  # past the end: a hole not yet filled
        written = 0
        while written < len(data):
            written += os.pwrite(fd, data[written:], destination + done + written)
        done += len(data)


@dataclass
class State:
    """What one pre-copy knows, handed to the tracer helper for the final stop and back."""

    layout: Layout
    flags: dict[int, tuple[str, ...]]
    include_dont_dump: bool
    # By region start: included (True), left out by the callback (False), unreadable.
    decided: dict[int, SkippedRegion | bool]
    identity: dict[int, Mapping]  # each region's mapping when it was copied
    stats: Statistics
    unasked: list[int]  # regions first seen in the final stop: the callback is asked after


# Has the tracer helper run final_stop() on a State: the State back, and the stop's capture.
Finisher = Callable[[State], tuple[State, CaptureData]]


class PreCopy:
    """One full dump of a pre-copy snapshot, in the dumper (run) or, for the final stop,
    in the tracer helper (final_copy, with no callback and no userfaultfd)."""

    def __init__(self, pid: int, uffd_fd: int | None, mem_fd: int, state: State,
                 callback: DumpCallback | None) -> None:
        self.pid = pid
        self.uffd = uffd_fd
        self.reader = MemoryReader(mem_fd)
        self.state = state
        self.layout = state.layout
        self.callback = callback
        self.skipped: list[SkippedRegion] = []
        self._pagemap = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY | os.O_CLOEXEC)
        self.scanner = Scanner(self._pagemap)

    def close(self) -> None:
        os.close(self._pagemap)

    def _maps(self) -> list[Mapping]:
        return parse_maps(procfs.read_text(f"/proc/{self.pid}/maps"))

    def _regions(self, maps: list[Mapping], probe: bool = False) -> list[Mapping]:
        """The mappings the dump writes; the others recorded in self.skipped (on *probe*)."""
        chosen = []
        skipped = []
        decided = self.state.decided
        for mapping in maps:
            verdict: SkippedRegion | bool | None = left_out(
                mapping, self.state.flags, self.state.include_dont_dump)
            if verdict is None:
                if mapping.start not in decided:
                    decided[mapping.start] = self._decide(mapping)
                verdict = decided[mapping.start]
            if isinstance(verdict, SkippedRegion):
                skipped.append(verdict)
            elif verdict is True:
                chosen.append(mapping)
        if probe:
            self.skipped = skipped
        return chosen

    def _decide(self, mapping: Mapping) -> SkippedRegion | bool:
        """Unreadable (why), or whether the callback lets the region in (asked later when
        there is no callback here: inside the final stop)."""
        if not self.reader.readable(mapping.start):
            return unreadable(mapping, self.state.flags, mapping.start, mapping.end)
        if self.uffd is None:
            self.state.unasked.append(mapping.start)
            return True
        return ask(self.callback, CallbackEvent(
            CallbackType.INCLUDE_VM_REGION, memory_base=mapping.start,
            memory_size=mapping.size)).include

    def _span(self, maps: list[Mapping]) -> tuple[int, int]:
        user = [m for m in maps if m.start < 1 << 63]
        return (user[0].start, user[-1].end) if user else (0, 0)

    def _protect_untracked(self, maps: list[Mapping], everything: bool = False) -> None:
        """Register and write-protect what is not tracked yet; with *everything*, protect
        every tracked page too (a new dump starts from a clean slate)."""
        assert self.uffd is not None
        start, end = self._span(maps)
        untracked = list(self.scanner.untracked(start, end))
        flags = self.state.flags
        fresh = [m for m in maps if uffd.trackable(m, flags.get(m.start, ()))
                 and _overlaps(untracked, m.start, m.end)]
        registered = uffd.register_writable(self.uffd, fresh, flags, strict=False)
        for first, last in list(self.scanner.tracked(start, end)) if everything else registered:
            uffd.write_protect(self.uffd, first, last - first)

    def _copy(self, jobs: Iterable[tuple[int, int, int]]) -> int:
        total = 0
        for address, size, rva in jobs:
            self.reader.copy(self.layout, address, size, rva)  # type: ignore[arg-type]
            total += size
        return total

    def _held(self, runs: Iterable[tuple[int, int]]) -> list[tuple[int, int, int]]:
        jobs = []
        for start, end in runs:
            jobs += self.layout.jobs(start, end)
        return jobs

    def _changed(self, regions: list[Mapping]) -> list[tuple[int, int]]:
        """Held ranges whose mapping is not the one copied, or that are not write-tracked."""
        start, end = self._span(regions)
        untracked = list(self.scanner.untracked(start, end))
        ranges = []
        for mapping in regions:
            before = self.state.identity.get(mapping.start)
            if before is not None and before != mapping:
                ranges.append((mapping.start, mapping.end))
            elif mapping.writable:
                ranges += _clip(untracked, mapping.start, mapping.end)
        return ranges

    def _written_in_chunks(self, maps: list[Mapping]) -> Iterable[tuple[int, int]]:
        """Pages written since the last scan, protected again.  While the target runs, a
        scan holds its mmap lock for reading: one call per chunk of tracked memory bounds
        how long a thread that maps or unmaps memory waits."""
        ranges: list[tuple[int, int]] = []
        for mapping in maps:
            if uffd.trackable(mapping, self.state.flags.get(mapping.start, ())):
                if ranges and ranges[-1][1] == mapping.start:
                    ranges[-1] = (ranges[-1][0], mapping.end)
                else:
                    ranges.append((mapping.start, mapping.end))
        for start, end in ranges:
            for first in range(start, end, SCAN_CHUNK):
                yield from self.scanner.written(first, min(end, first + SCAN_CHUNK),
                                                rearm=True)

    def _new(self, regions: list[Mapping]) -> list[tuple[int, int, int]]:
        jobs = []
        for mapping in regions:
            fresh = self.layout.add(mapping.start, mapping.end)
            if fresh:
                self.state.identity.setdefault(mapping.start, mapping)
            jobs += fresh
        return jobs

    def run(self, out: DumpFile) -> None:
        """Protect, copy everything, then copy rounds of what was written, while it runs."""
        stats = self.state.stats
        maps = self._maps()
        self._protect_untracked(maps, everything=True)
        jobs = self._new(self._regions(maps))
        self.reader.copy_all(out, jobs)
        stats.precopied_bytes = sum(size for _a, size, _r in jobs)
        round_bytes = []
        for _round in range(MAX_ROUNDS):
            maps = self._maps()
            self._protect_untracked(maps)
            regions = self._regions(maps)
            copied = self._copy(self._held(self._written_in_chunks(maps)))
            copied += self._copy(self._new(regions))
            round_bytes.append(copied)
            if copied < SETTLED_BYTES:
                break
        stats.rounds = len(round_bytes)
        stats.round_bytes = tuple(round_bytes)

    def final_copy(self, maps: list[Mapping]) -> None:
        """Inside the final stop: what was written, dropped, mapped anew or replaced."""
        started = time.perf_counter()
        regions = self._regions(maps)
        start, end = self._span(maps)
        jobs = self._held(self.scanner.changed(start, end))
        for first, last in self._changed(regions):
            jobs += self.layout.jobs(first, last)
        self.state.stats.final_scan_seconds = time.perf_counter() - started
        jobs += self._new(regions)
        self.state.stats.final_bytes = self._copy(jobs)

    def finish(self, maps: list[Mapping]) -> list[tuple[int, int, int]]:
        """After the final stop: ask the callback about regions first seen there, and keep
        only the stop's regions in the file; the Memory64List's pieces."""
        for start in self.state.unasked:
            mapping = next((m for m in maps if m.start == start), None)
            if mapping is not None and self.state.decided.get(start) is True:
                self.state.decided[start] = ask(self.callback, CallbackEvent(
                    CallbackType.INCLUDE_VM_REGION, memory_base=start,
                    memory_size=mapping.size)).include
        self.state.unasked = []
        regions = self._regions(maps, probe=True)
        return self.layout.keep_only([(m.start, m.end) for m in regions])


def final_stop(session: Session, state: State, dump_fd: int) -> tuple[State, CaptureData]:
    """The tracer helper's final stop: stop, copy what changed into the dump, resume.

    Nothing crosses between processes inside the pause.
    """
    mem_fd = os.open(f"/proc/{session.pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
    state.layout.fd = dump_fd
    precopy = PreCopy(session.pid, None, mem_fd, state, None)
    try:
        stopped = stack_capture.stop(session, mem_fd, fresh_maps=True)
        try:
            precopy.final_copy(parse_maps(stopped.maps_text))
        finally:
            data = stack_capture.resume(session, stopped)
    finally:
        precopy.close()
        os.close(mem_fd)
    data.memory = "precopy"
    return state, data


def write(fd: int, pid: int, uffd_fd: int, mem_fd: int, finish: Finisher,
          started: CaptureData, dump_type: MiniDumpType, exception_info: ExceptionInfo | None,
          user_streams: Sequence[UserStream], callback: DumpCallback | None,
          include_dont_dump: bool) -> tuple[int, DumpPlan, CaptureData, Statistics]:
    """Write a full dump of *pid* by pre-copy; (size, plan, the stop's capture, figures).

    *finish* has the tracer helper run final_stop() on the state.
    """
    arch = arch_module.current()
    holder: list[DumpPlan] = []
    blocks: dict[tuple[int, int], int] = {}
    steps = stream_steps(lambda: holder[0], started, dump_type, exception_info, user_streams,
                         blocks)
    out = DumpFile(fd, len(steps) + 1, int(time.time()))
    state = State(Layout(fd, out.end), vm_flags.read(pid), include_dont_dump, {}, {},
                  Statistics(), [])
    precopy = PreCopy(pid, uffd_fd, mem_fd, state, callback)
    try:
        precopy.run(out)
        precopy.state, data = finish(precopy.state)
        precopy.state.layout.fd = fd
        precopy.layout = precopy.state.layout
        pieces = precopy.finish(parse_maps(data.maps))
    finally:
        precopy.close()
    out.end = max(out.end, precopy.layout.end)
    data.vm_flags = state.flags
    reader = CopiedMemory(mem_fd, data.copied, parse_maps(data.maps))
    # Threads and modules from the stop; memory is what was copied above, not a plan's.
    plan = make_plan(data, reader, dump_type & ~_ALL_MEMORY_TYPES, callback, arch)
    plan.dump_type = dump_type
    plan.full_memory = True
    plan.memory = [(address, address + size) for address, size, _rva in pieces]
    plan.skipped = sorted(precopy.skipped, key=lambda region: region.base)
    holder.append(plan)
    for address, size, rva in pieces:
        blocks[(address, address + size)] = rva
    add_streams(out, steps)
    out.add_stream(StreamType.MEMORY64_LIST,
                   _memory64(out, pieces, precopy.layout.base_rva))
    out.finish()
    return out.end, plan, data, precopy.state.stats


def _memory64(out: DumpFile, pieces: list[tuple[int, int, int]], base_rva: int) -> Location:
    """The Memory64List of bytes already in place: back to back from *base_rva*."""
    count = len(pieces)
    header = out.new("MINIDUMP_MEMORY64_LIST")
    header.NumberOfMemoryRanges = count
    header.BaseRva = base_rva
    descriptors = out.new("MINIDUMP_MEMORY_DESCRIPTOR64", max(count, 1))
    for descriptor, (address, size, _rva) in zip(descriptors, pieces, strict=False):
        descriptor.StartOfMemoryRange = address
        descriptor.DataSize = size
    return out.append(out.bytes_of(header, 16) + out.bytes_of(descriptors, 16 * count))
