"""The platform-neutral trigger engine: conditions, how long they hold, the gap between dumps."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class Condition:
    """``metric >= threshold`` (above) or ``metric < threshold`` (below), named as the trigger."""

    trigger: str
    metric: str
    threshold: float
    above: bool

    def holds(self, value: float) -> bool:
        return value >= self.threshold if self.above else value < self.threshold


class TriggerEngine:
    """Fed one sample at a time; says when a dump is due and which trigger made it so.

    A condition fires once it has held for *for_seconds* without a break, and never
    sooner than *for_seconds* after the previous dump.  CPU is a rate over the interval
    that ends at the sample, so a CPU condition counts as holding from that interval's
    start.  With no condition at all, a dump is due at once and then every *for_seconds*.
    """

    def __init__(self, conditions: list[Condition], for_seconds: float) -> None:
        self.conditions = conditions
        self.for_seconds = for_seconds
        self._since: dict[str, float] = {}
        self._last_dump: float | None = None

    def feed(self, now: float, values: Mapping[str, float],
             interval_start: float | None = None) -> tuple[str, float] | None:
        """The (trigger, value) due at *now*, or None."""
        gap_ok = self._last_dump is None or now - self._last_dump >= self.for_seconds
        if not self.conditions:
            return ("time", 0.0) if gap_ok else None
        due: tuple[str, float] | None = None
        for condition in self.conditions:
            value = values.get(condition.metric)
            if value is None or not condition.holds(value):
                self._since.pop(condition.trigger, None)
                continue
            start = interval_start if condition.metric == "cpu" and interval_start else now
            since = self._since.setdefault(condition.trigger, start)
            if due is None and gap_ok and now - since >= self.for_seconds:
                due = (condition.trigger, value)
        return due

    def dumped(self, now: float) -> None:
        """A dump was written at *now*: every condition must hold afresh for the next one."""
        self._last_dump = now
        self._since.clear()
