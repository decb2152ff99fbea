"""The helper's answer to a release (in its own module: the helper runs as __main__)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Released:
    """The release's answer: when the target ran again, what the reap cost it, what went
    wrong that the dumper should hear about, and whether this helper can serve again."""

    resumed_ns: int | None = None
    reap_pause_ns: int = 0
    warnings: list[str] = dataclasses.field(default_factory=list)
    fit: bool = True
