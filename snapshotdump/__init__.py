"""snapshotdump: a near-instant snapshot of a running process, written as a standard minidump.

    from snapshotdump import capture
    with capture(pid) as snap:
        snap.write_dump("app.dmp")
"""

import sys
from typing import TYPE_CHECKING

from ._api import capture, enable_debug_privilege
from ._dest import DestinationExistsError, DestinationNotFoundError
from ._version import __version__
from ._watch import TriggeredDump, Watch, watch
from .callbacks import CallbackEvent, CallbackResult, DumpCallback
from .errors import (
    DumpCancelledError,
    ProcessNotFoundError,
    SnapshotError,
    SnapshotPermissionError,
    SnapshotUnsupportedError,
    TargetExitedError,
)
from .flags import (
    CallbackType,
    CaptureFlags,
    CaptureMemory,
    DuplicateFlags,
    HandleFlags,
    MiniDumpType,
    ModuleWriteFlags,
    ObjectType,
    ProcessFlags,
    QueryInformationClass,
    ThreadFlags,
    ThreadWriteFlags,
    WalkInformationClass,
)
from .minidump.pystacks import PythonFrame, PythonThread
from .minidump.reader import (
    Dump,
    DumpFormatError,
    DumpModule,
    DumpStream,
    DumpSystemInfo,
    DumpThread,
    ExceptionRecord,
    MemoryRange,
    open_dump,
)
from .minidump.unwind import NativeFrame
from .snapshot import (
    DumpResult,
    ExceptionInfo,
    HandleInfo,
    Performance,
    ProcessInfo,
    RegionInfo,
    SkippedRegion,
    Snapshot,
    ThreadInfo,
    UserStream,
)

if TYPE_CHECKING:
    from ._windows.handle import ProcessHandle as ProcessHandle

__all__ = [
    "CallbackEvent",
    "CallbackResult",
    "CallbackType",
    "CaptureFlags",
    "CaptureMemory",
    "DestinationExistsError",
    "DestinationNotFoundError",
    "Dump",
    "DumpCallback",
    "DumpCancelledError",
    "DumpFormatError",
    "DumpModule",
    "DumpResult",
    "DumpStream",
    "DumpSystemInfo",
    "DumpThread",
    "DuplicateFlags",
    "ExceptionInfo",
    "ExceptionRecord",
    "HandleFlags",
    "HandleInfo",
    "MemoryRange",
    "MiniDumpType",
    "ModuleWriteFlags",
    "NativeFrame",
    "ObjectType",
    "Performance",
    "ProcessFlags",
    "ProcessInfo",
    "ProcessNotFoundError",
    "PythonFrame",
    "PythonThread",
    "QueryInformationClass",
    "RegionInfo",
    "SkippedRegion",
    "Snapshot",
    "SnapshotError",
    "SnapshotPermissionError",
    "SnapshotUnsupportedError",
    "TargetExitedError",
    "ThreadFlags",
    "ThreadInfo",
    "ThreadWriteFlags",
    "TriggeredDump",
    "UserStream",
    "WalkInformationClass",
    "Watch",
    "__version__",
    "capture",
    "enable_debug_privilege",
    "open_dump",
    "watch",
]

if sys.platform == "win32":
    __all__.append("ProcessHandle")


def __getattr__(name: str) -> object:
    # ProcessHandle is Windows-only: loaded on first use, so that importing snapshotdump on
    # Linux imports nothing of the Windows backend.
    if name == "ProcessHandle":
        from ._windows.handle import ProcessHandle as ProcessHandle

        return ProcessHandle
    raise AttributeError(f"module 'snapshotdump' has no attribute {name!r}")
