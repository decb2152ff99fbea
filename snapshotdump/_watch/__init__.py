"""Triggered dumps: ProcDump's triggers over snapshotdump's snapshots."""

from .api import Watch, parse_signal, watch
from .files import TriggeredDump

__all__ = ["TriggeredDump", "Watch", "parse_signal", "watch"]
