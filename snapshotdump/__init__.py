"""snapshotdump: a near-instant snapshot of a running process, written as a standard minidump.

    from snapshotdump import capture
    with capture(pid) as snap:
        snap.write_dump("app.dmp")
"""

from ._api import capture, enable_debug_privilege
from ._dest import DestinationExistsError, DestinationNotFoundError
from ._windows.snapshot import ProcessHandle
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

__version__ = "0.1.0"

__all__ = [
    "CallbackEvent",
    "CallbackResult",
    "CallbackType",
    "CaptureFlags",
    "CaptureMemory",
    "DestinationExistsError",
    "DestinationNotFoundError",
    "DumpCallback",
    "DumpCancelledError",
    "DumpResult",
    "DuplicateFlags",
    "ExceptionInfo",
    "HandleFlags",
    "HandleInfo",
    "MiniDumpType",
    "ModuleWriteFlags",
    "ObjectType",
    "Performance",
    "ProcessFlags",
    "ProcessHandle",
    "ProcessInfo",
    "ProcessNotFoundError",
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
    "UserStream",
    "WalkInformationClass",
    "__version__",
    "capture",
    "enable_debug_privilege",
]
