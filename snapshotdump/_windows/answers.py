"""How the library answers each MiniDumpCallback, and where it hands over to the user.

The rules come from the sdk-api pages MINIDUMP_CALLBACK_TYPE and MINIDUMP_CALLBACK_OUTPUT:
https://learn.microsoft.com/windows/win32/api/minidumpapiset/ne-minidumpapiset-minidump_callback_type
https://learn.microsoft.com/windows/win32/api/minidumpapiset/ns-minidumpapiset-minidump_callback_output
"""

from __future__ import annotations

from typing import Any

from .. import errors
from ..callbacks import (
    USER_EVENT_TYPES,
    CallbackEvent,
    CancelledByCallback,
    Decision,
    DumpCallback,
    ask,
)
from ..flags import CallbackType, ModuleWriteFlags, ThreadWriteFlags
from . import libs

# At most this many unreadable blocks are listed by address; all of them are counted.
MAX_SKIPPED_LISTED = 1024


class CallbackState:
    """The Python side of one MiniDumpWriteDump call: the user callback and what it decided."""

    def __init__(self, user: DumpCallback | None, from_snapshot: bool) -> None:
        self.user = user
        self.from_snapshot = from_snapshot
        self.cancelled: CancelledByCallback | None = None
        self.modules = 0
        self.threads = 0
        self.excluded = False
        self.skipped_count = 0
        self.skipped: list[tuple[int, int]] = []
        # IncludeVmRegionCallback comes twice per region: the user decides once.
        self._regions: dict[tuple[int, int], bool] = {}

    def answer(self, callback_input: Any, callback_output: Any) -> int:
        try:
            return self._answer(callback_input, callback_output)
        except BaseException as exc:  # nothing may unwind through dbghelp's frames
            self.cancelled = self.cancelled or CancelledByCallback(exc)
            return 0

    def _answer(self, callback_input: Any, out: Any) -> int:
        try:
            kind = CallbackType(int(callback_input.CallbackType))
        except ValueError:
            return 0
        if kind is CallbackType.IS_PROCESS_SNAPSHOT:
            # S_FALSE: "the handle is a PSS snapshot handle, not a process handle".
            out.Status = errors.S_FALSE if self.from_snapshot else errors.S_OK
            return 1
        if kind is CallbackType.CANCEL:
            # CheckCancel FALSE on the first call stops these calls for good.
            out.Cancel = 1 if self.cancelled else 0
            out.CheckCancel = 1 if self.user is not None else 0
            return 1
        if kind in (CallbackType.IO_START, CallbackType.VM_START):
            # S_OK: DbgHelp does its own I/O and memory reads (S_FALSE would hand them to us).
            out.Status = errors.S_OK
            return 1
        if kind is CallbackType.READ_MEMORY_FAILURE:
            return self._skip_unreadable(callback_input.ReadMemoryFailure, out)
        if kind is CallbackType.INCLUDE_VM_REGION:
            return self._region(out)
        if kind not in USER_EVENT_TYPES:
            return 0
        if self.cancelled is not None:
            # Once cancelled, include nothing more so the writer reaches CancelCallback quickly.
            _exclude(kind, out)
            return 0 if kind in (CallbackType.INCLUDE_THREAD, CallbackType.INCLUDE_MODULE) else 1
        event = _event(kind, callback_input, out)
        try:
            decision = ask(self.user, event)
        except CancelledByCallback as cancel:
            self.cancelled = cancel
            _exclude(kind, out)
            return 1
        return self._apply(kind, decision, out)

    def _skip_unreadable(self, failure: Any, out: Any) -> int:
        # TRUE with S_OK: "the memory failure is ignored and the block is omitted";
        # anything else fails the whole dump.
        self.skipped_count += 1
        if len(self.skipped) < MAX_SKIPPED_LISTED:
            self.skipped.append((int(failure.Offset), int(failure.Bytes)))
        out.Status = errors.S_OK
        return 1

    def _region(self, out: Any) -> int:
        # Leaving a region out is RegionSize = 0 with TRUE; a FALSE return, or Continue =
        # FALSE, stops the region callbacks and fails MiniDumpWriteDump.
        region = out.VmRegion
        key = (int(region.BaseAddress), int(region.RegionSize))
        if self.cancelled is not None:
            out.Continue = 0  # fail fast: the dump is discarded anyway
            return 1
        include = self._regions.get(key)
        if include is None:
            event = CallbackEvent(CallbackType.INCLUDE_VM_REGION, memory_base=key[0],
                                  memory_size=key[1])
            try:
                include = ask(self.user, event).include
            except CancelledByCallback as cancel:
                self.cancelled = cancel
                out.Continue = 0
                return 1
            self._regions[key] = include
        if not include:
            region.RegionSize = 0
            self.excluded = True
        out.Continue = 1
        return 1

    def _apply(self, kind: CallbackType, decision: Decision, out: Any) -> int:
        self.excluded = self.excluded or not decision.include or decision.write_flags is not None
        if kind is CallbackType.MODULE:
            if decision.write_flags is not None:
                out.ModuleWriteFlags = decision.write_flags
            if out.ModuleWriteFlags & ModuleWriteFlags.MODULE:
                self.modules += 1
            return 1
        if kind in (CallbackType.THREAD, CallbackType.THREAD_EX):
            if decision.write_flags is not None:
                out.ThreadWriteFlags = decision.write_flags
            if out.ThreadWriteFlags & ThreadWriteFlags.THREAD:
                self.threads += 1
            return 1
        # IncludeThreadCallback / IncludeModuleCallback: FALSE excludes.
        return 1 if decision.include else 0


def _exclude(kind: CallbackType, out: Any) -> None:
    if kind is CallbackType.MODULE:
        out.ModuleWriteFlags = 0
    elif kind in (CallbackType.THREAD, CallbackType.THREAD_EX):
        out.ThreadWriteFlags = 0


def _event(kind: CallbackType, callback_input: Any, out: Any) -> CallbackEvent:
    ffi = libs.ffi()
    if kind is CallbackType.MODULE:
        module = callback_input.Module
        path = ffi.string(module.FullPath) if module.FullPath != ffi.NULL else None
        return CallbackEvent(
            kind, module_path=path, module_base=int(module.BaseOfImage),
            module_size=int(module.SizeOfImage),
            write_flags=ModuleWriteFlags(int(out.ModuleWriteFlags) & 0x7F))
    if kind in (CallbackType.THREAD, CallbackType.THREAD_EX):
        thread = callback_input.Thread
        low, high = int(thread.StackEnd), int(thread.StackBase)
        # Wine's dbghelp (built by mingw) lays this struct out without MSVC's 16-byte CONTEXT
        # alignment, so its stack fields land elsewhere: report them only when they make sense.
        plausible = 0 < low < high and high - low < 1 << 32
        return CallbackEvent(kind, thread_id=int(thread.ThreadId),
                             memory_base=low if plausible else None,
                             memory_size=high - low if plausible else None,
                             write_flags=ThreadWriteFlags(int(out.ThreadWriteFlags) & 0x7F))
    if kind is CallbackType.INCLUDE_THREAD:
        return CallbackEvent(kind, thread_id=int(callback_input.IncludeThread.ThreadId))
    return CallbackEvent(kind, module_base=int(callback_input.IncludeModule.BaseOfImage))
