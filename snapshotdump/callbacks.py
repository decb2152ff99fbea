"""What a user callback sees during :meth:`Snapshot.write_dump`, and what it may answer."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable

from .flags import CallbackType, ModuleWriteFlags, ThreadWriteFlags


class CallbackResult(enum.Enum):
    """An answer to a :class:`CallbackEvent`.

    ``None`` and ``True`` mean INCLUDE, ``False`` means EXCLUDE.
    """

    INCLUDE = "include"
    EXCLUDE = "exclude"
    CANCEL = "cancel"


@dataclasses.dataclass(frozen=True)
class CallbackEvent:
    """One question the dump writer asks: include this module, thread or memory range?

    ``type`` says which; the other fields are filled where that type has them.
    ``write_flags`` are the flags the writer intends to use for a MODULE or
    THREAD event: return a narrower set to drop parts (a module's data
    segments, a thread's stack).
    """

    type: CallbackType
    thread_id: int | None = None
    module_path: str | None = None
    module_base: int | None = None
    module_size: int | None = None
    memory_base: int | None = None
    memory_size: int | None = None
    write_flags: ModuleWriteFlags | ThreadWriteFlags | None = None


CallbackAnswer = CallbackResult | ModuleWriteFlags | ThreadWriteFlags | bool | None
DumpCallback = Callable[[CallbackEvent], CallbackAnswer]

# The event types a user callback is shown; the writer answers the others itself.
USER_EVENT_TYPES = frozenset(
    {
        CallbackType.MODULE,
        CallbackType.THREAD,
        CallbackType.THREAD_EX,
        CallbackType.INCLUDE_THREAD,
        CallbackType.INCLUDE_MODULE,
        CallbackType.INCLUDE_VM_REGION,
    }
)


@dataclasses.dataclass(frozen=True)
class Decision:
    """A callback's answer, checked: include or not, new write flags, or cancel."""

    include: bool = True
    write_flags: int | None = None
    cancel: bool = False


INCLUDE = Decision()
CANCEL = Decision(include=False, cancel=True)


class CancelledByCallback(Exception):
    """Internal: carries the user's exception (or None for CANCEL) out of the writer.

    ``function`` and ``winerror`` describe the cancelled call for DumpCancelledError.
    """

    def __init__(self, cause: BaseException | None, *, function: str = "write_dump",
                 winerror: int | None = None) -> None:
        super().__init__("cancelled by the dump callback")
        self.cause = cause
        self.function = function
        self.winerror = winerror


def decide(event: CallbackEvent, answer: object) -> Decision:
    """Turn what a user callback returned into a :class:`Decision`, or raise TypeError."""
    if answer is None or answer is True or answer is CallbackResult.INCLUDE:
        return INCLUDE
    if answer is False or answer is CallbackResult.EXCLUDE:
        return Decision(include=False, write_flags=0)
    if answer is CallbackResult.CANCEL:
        return CANCEL
    expected: type[enum.IntFlag] | None = None
    if event.type is CallbackType.MODULE:
        expected = ModuleWriteFlags
    elif event.type in (CallbackType.THREAD, CallbackType.THREAD_EX):
        expected = ThreadWriteFlags
    if expected is not None and isinstance(answer, expected):
        offered = int(event.write_flags or 0)
        return Decision(include=bool(int(answer) & offered), write_flags=int(answer) & offered)
    allowed = "None, True/False or a CallbackResult"
    if expected is not None:
        allowed += f", or {expected.__name__}"
    raise TypeError(
        f"the dump callback returned {answer!r} for a {event.type.name} event; return {allowed}"
    )


def ask(callback: DumpCallback | None, event: CallbackEvent) -> Decision:
    """Call the user's callback.

    A CANCEL answer, or any exception the callback raises (KeyboardInterrupt too),
    becomes :class:`CancelledByCallback`, which carries that exception out of the writer.
    """
    if callback is None:
        return INCLUDE
    try:
        decision = decide(event, callback(event))
    except BaseException as exc:
        raise CancelledByCallback(exc) from exc
    if decision.cancel:
        raise CancelledByCallback(None)
    return decision
