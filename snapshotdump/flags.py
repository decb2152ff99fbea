"""IntFlag / IntEnum types shared by both operating systems.

Member names are the Windows SDK names without their common prefix, so
``PSS_CAPTURE_VA_CLONE`` is :attr:`CaptureFlags.VA_CLONE` and
``MiniDumpWithFullMemory`` is :attr:`MiniDumpType.WITH_FULL_MEMORY`.
"""

from __future__ import annotations

import enum


class CaptureFlags(enum.IntFlag):
    """PSS_CAPTURE_FLAGS: what :func:`snapshotdump.capture` takes from the target.

    On Linux only ``VA_CLONE`` changes behaviour (a copy-on-write clone instead of
    keeping the target stopped); the thread and handle flags are always honoured,
    the rest are accepted and ignored.
    """

    NONE = 0x00000000
    VA_CLONE = 0x00000001
    RESERVED_00000002 = 0x00000002
    HANDLES = 0x00000004
    HANDLE_NAME_INFORMATION = 0x00000008
    HANDLE_BASIC_INFORMATION = 0x00000010
    HANDLE_TYPE_SPECIFIC_INFORMATION = 0x00000020
    HANDLE_TRACE = 0x00000040
    THREADS = 0x00000080
    THREAD_CONTEXT = 0x00000100
    THREAD_CONTEXT_EXTENDED = 0x00000200
    RESERVED_00000400 = 0x00000400
    VA_SPACE = 0x00000800
    VA_SPACE_SECTION_INFORMATION = 0x00001000
    IPT_TRACE = 0x00002000
    RESERVED_00004000 = 0x00004000
    CREATE_BREAKAWAY_OPTIONAL = 0x04000000
    CREATE_BREAKAWAY = 0x08000000
    CREATE_FORCE_BREAKAWAY = 0x10000000
    CREATE_USE_VM_ALLOCATIONS = 0x20000000
    CREATE_MEASURE_PERFORMANCE = 0x40000000
    CREATE_RELEASE_SECTION = 0x80000000

    # The flag set of Microsoft's "Generate Dump File from a Process Snapshot" example.
    DEFAULT = (
        VA_CLONE
        | HANDLES
        | HANDLE_NAME_INFORMATION
        | HANDLE_BASIC_INFORMATION
        | HANDLE_TYPE_SPECIFIC_INFORMATION
        | HANDLE_TRACE
        | THREADS
        | THREAD_CONTEXT
        | THREAD_CONTEXT_EXTENDED
        | CREATE_BREAKAWAY
        | CREATE_BREAKAWAY_OPTIONAL
        | CREATE_USE_VM_ALLOCATIONS
        | CREATE_RELEASE_SECTION
    )


class MiniDumpType(enum.IntFlag):
    """MINIDUMP_TYPE: what :meth:`Snapshot.write_dump` puts in the file."""

    NORMAL = 0x00000000
    WITH_DATA_SEGS = 0x00000001
    WITH_FULL_MEMORY = 0x00000002
    WITH_HANDLE_DATA = 0x00000004
    FILTER_MEMORY = 0x00000008
    SCAN_MEMORY = 0x00000010
    WITH_UNLOADED_MODULES = 0x00000020
    WITH_INDIRECTLY_REFERENCED_MEMORY = 0x00000040
    FILTER_MODULE_PATHS = 0x00000080
    WITH_PROCESS_THREAD_DATA = 0x00000100
    WITH_PRIVATE_READ_WRITE_MEMORY = 0x00000200
    WITHOUT_OPTIONAL_DATA = 0x00000400
    WITH_FULL_MEMORY_INFO = 0x00000800
    WITH_THREAD_INFO = 0x00001000
    WITH_CODE_SEGS = 0x00002000
    WITHOUT_AUXILIARY_STATE = 0x00004000
    WITH_FULL_AUXILIARY_STATE = 0x00008000
    WITH_PRIVATE_WRITE_COPY_MEMORY = 0x00010000
    IGNORE_INACCESSIBLE_MEMORY = 0x00020000
    WITH_TOKEN_INFORMATION = 0x00040000
    WITH_MODULE_HEADERS = 0x00080000
    FILTER_TRIAGE = 0x00100000
    WITH_AVX_XSTATE_CONTEXT = 0x00200000
    WITH_IPT_TRACE = 0x00400000
    SCAN_INACCESSIBLE_PARTIAL_PAGES = 0x00800000
    FILTER_WRITE_COMBINED_MEMORY = 0x01000000
    VALID_TYPE_FLAGS = 0x01FFFFFF


class CaptureMemory(enum.Enum):
    """Which of the target's memory a snapshot holds: ``capture(pid, memory=...)``.

    On Linux the choice sets the pause.  ``ALL`` copies the whole address space
    (a copy-on-write clone: the pause grows with the target's resident size), so
    any dump type can be written.  ``STACKS`` copies only each thread's stack and
    the dynamic linker's list of modules while the threads are stopped, so the
    pause stays about a millisecond at any size; it is enough for the dump types
    that :func:`memory_needed` maps to STACKS (NORMAL among them), and
    :meth:`Snapshot.write_dump` refuses the others.  ``PRECOPY`` (Linux 6.7+) is
    for full dumps: capture() stops the target about as briefly as STACKS and arms
    write tracking; each full ``write_dump`` copies memory while the target runs,
    then stops it once more, only to copy what it wrote meanwhile.  Each full dump
    is then the target at its own final stop, and the snapshot's threads and stacks
    are those of the last stop.  It writes NORMAL-like and WITH_FULL_MEMORY dumps;
    where write tracking is not available it falls back to a clone (``snap.memory``
    is then ALL, and ``snap.performance`` says why).  On Windows every snapshot
    holds all memory, whatever is asked.
    """

    ALL = "all"
    STACKS = "stacks"
    PRECOPY = "precopy"


# The dump types that read memory beyond the threads' stacks (and so need CaptureMemory.ALL).
NEEDS_ALL_MEMORY = (
    MiniDumpType.WITH_FULL_MEMORY
    | MiniDumpType.WITH_DATA_SEGS
    | MiniDumpType.WITH_PRIVATE_READ_WRITE_MEMORY
    | MiniDumpType.WITH_INDIRECTLY_REFERENCED_MEMORY
)


def memory_needed(dump_type: MiniDumpType) -> CaptureMemory:
    """The cheapest :class:`CaptureMemory` from which a dump of *dump_type* can be written:
    STACKS, PRECOPY for a full dump, ALL (a clone) for the other memory-reading types."""
    if dump_type & MiniDumpType.WITH_FULL_MEMORY:
        return CaptureMemory.PRECOPY
    return CaptureMemory.ALL if dump_type & NEEDS_ALL_MEMORY else CaptureMemory.STACKS


class QueryInformationClass(enum.IntEnum):
    """PSS_QUERY_INFORMATION_CLASS."""

    PROCESS_INFORMATION = 0
    VA_CLONE_INFORMATION = 1
    AUXILIARY_PAGES_INFORMATION = 2
    VA_SPACE_INFORMATION = 3
    HANDLE_INFORMATION = 4
    THREAD_INFORMATION = 5
    HANDLE_TRACE_INFORMATION = 6
    PERFORMANCE_COUNTERS = 7


class WalkInformationClass(enum.IntEnum):
    """PSS_WALK_INFORMATION_CLASS."""

    AUXILIARY_PAGES = 0
    VA_SPACE = 1
    HANDLES = 2
    THREADS = 3


class CallbackType(enum.IntEnum):
    """MINIDUMP_CALLBACK_TYPE: which question MiniDumpWriteDump is asking."""

    MODULE = 0
    THREAD = 1
    THREAD_EX = 2
    INCLUDE_THREAD = 3
    INCLUDE_MODULE = 4
    MEMORY = 5
    CANCEL = 6
    WRITE_KERNEL_MINIDUMP = 7
    KERNEL_MINIDUMP_STATUS = 8
    REMOVE_MEMORY = 9
    INCLUDE_VM_REGION = 10
    IO_START = 11
    IO_WRITE_ALL = 12
    IO_FINISH = 13
    READ_MEMORY_FAILURE = 14
    SECONDARY_FLAGS = 15
    IS_PROCESS_SNAPSHOT = 16
    VM_START = 17
    VM_QUERY = 18
    VM_PRE_READ = 19
    VM_POST_READ = 20


class ModuleWriteFlags(enum.IntFlag):
    """MODULE_WRITE_FLAGS."""

    NONE = 0x0000
    MODULE = 0x0001
    DATA_SEG = 0x0002
    MISC_RECORD = 0x0004
    CV_RECORD = 0x0008
    REFERENCED_BY_MEMORY = 0x0010
    TLS_DATA = 0x0020
    CODE_SEGS = 0x0040


class ThreadWriteFlags(enum.IntFlag):
    """THREAD_WRITE_FLAGS."""

    NONE = 0x0000
    THREAD = 0x0001
    STACK = 0x0002
    CONTEXT = 0x0004
    BACKING_STORE = 0x0008
    INSTRUCTION_WINDOW = 0x0010
    THREAD_DATA = 0x0020
    THREAD_INFO = 0x0040


class ProcessFlags(enum.IntFlag):
    """PSS_PROCESS_FLAGS."""

    NONE = 0
    PROTECTED = 1
    WOW64 = 2
    RESERVED_03 = 4
    RESERVED_04 = 8
    FROZEN = 16


class ThreadFlags(enum.IntFlag):
    """PSS_THREAD_FLAGS."""

    NONE = 0
    TERMINATED = 1


class HandleFlags(enum.IntFlag):
    """PSS_HANDLE_FLAGS."""

    NONE = 0
    HAVE_TYPE = 1
    HAVE_NAME = 2
    HAVE_BASIC_INFORMATION = 4
    HAVE_TYPE_SPECIFIC_INFORMATION = 8


class ObjectType(enum.IntEnum):
    """PSS_OBJECT_TYPE."""

    UNKNOWN = 0
    PROCESS = 1
    THREAD = 2
    MUTANT = 3
    EVENT = 4
    SECTION = 5
    SEMAPHORE = 6


class DuplicateFlags(enum.IntFlag):
    """PSS_DUPLICATE_FLAGS."""

    NONE = 0
    CLOSE_SOURCE = 1


def check_flags(value: int, kind: type[enum.IntFlag], argument: str) -> None:
    """Reject bits *kind* does not define, naming the argument and the bad bits."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{argument} must be a {kind.__name__} (an int), not {type(value).__name__}")
    known = 0
    for member in kind:
        known |= member.value
    if value < 0 or value & ~known:
        unknown = (value & ~known) if value >= 0 else value
        raise ValueError(
            f"{argument}=0x{value:x} has bits {kind.__name__} does not define: 0x{unknown:x}; "
            f"combine {kind.__name__} members instead"
        )
