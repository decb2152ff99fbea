"""The messages between the dumper and its tracer helper: one type per request and answer.

The dumper sends a request and reads answers with Helper.request / Helper.reply; the
helper answers each request with exactly one Reply or Failure, except a Stream, which
gets a Ring (or Declined), one Filled per piece, and a final Done or Failure.  Both ends
are this library, so the transport (channel) pickles these classes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import SnapshotError

# ---------------------------------------------------------------- requests (dumper -> helper)


@dataclasses.dataclass(frozen=True)
class Capture:
    """Stop and capture *pid*; *memory* is a CaptureMemory value ("all", "stacks"...)."""

    pid: int
    want_clone: bool
    live_fallback: bool
    memory: str


@dataclasses.dataclass(frozen=True)
class Release:
    """End the session: clone killed and reaped, threads detached, write tracking dropped."""


@dataclasses.dataclass(frozen=True)
class TakeUffd:
    """Hand over the pre-copy's userfaultfd of the target."""


@dataclasses.dataclass(frozen=True)
class FinishPrecopy:
    """Run a pre-copy's final stop on *state* (a precopy.State) into the fd sent along."""

    state: Any


@dataclasses.dataclass(frozen=True)
class Stream:
    """Have the clone copy *regions* ((address, size) pairs) into a shared ring."""

    regions: list[tuple[int, int]]


@dataclasses.dataclass(frozen=True)
class Free:
    """Ring slot *slot* is written out: the clone may fill it again."""

    slot: int


@dataclasses.dataclass(frozen=True)
class Abort:
    """Stop the clone's copy now; the helper answers with its last word."""


@dataclasses.dataclass(frozen=True)
class Reap:
    """Reap the zombies of ours that a helper which died left in *pid* (answer: Released)."""

    pid: int


Request = Capture | Release | Reap | TakeUffd | FinishPrecopy | Stream | Free | Abort

# ---------------------------------------------------------------- answers (helper -> dumper)


@dataclasses.dataclass(frozen=True)
class Reply:
    """The request was done; *value* is its result (fds travel beside the message)."""

    value: Any = None


@dataclasses.dataclass(frozen=True)
class Failure:
    """The request failed; the dumper raises *error*."""

    error: SnapshotError


@dataclasses.dataclass(frozen=True)
class Declined:
    """A Stream that cannot be done here, and why (the dumper then reads /proc itself)."""

    reason: str


@dataclasses.dataclass(frozen=True)
class Ring:
    """A Stream's shared ring: *slots* slots of *slot_size* bytes (its memfd sent along)."""

    slot_size: int
    slots: int


@dataclasses.dataclass(frozen=True)
class Filled:
    """Ring slot *slot* holds the next *length* bytes of the Stream."""

    slot: int
    length: int


@dataclasses.dataclass(frozen=True)
class Done:
    """A Stream is complete."""


@dataclasses.dataclass(frozen=True)
class Released:
    """A Release's or Reap's value: when the target ran again, what the reap stop cost
    it, what went wrong that the dumper should hear about (RuntimeWarnings), and whether
    this helper can serve again (not when a thread it seized never stopped: it must exit,
    which detaches that thread)."""

    resumed_ns: int | None = None
    reap_pause_ns: int = 0
    warnings: list[str] = dataclasses.field(default_factory=list)
    fit: bool = True


Answer = Reply | Failure
