"""What the tracer helper captured, handed to the dump writer."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class ThreadState:
    tid: int
    name: str
    registers: bytes
    fp_registers: bytes
    xstate: bytes | None
    stat: list[str]


@dataclasses.dataclass
class CaptureData:
    pid: int
    clone_pid: int | None
    threads: list[ThreadState]
    maps: str
    status: str
    stat: str
    cmdline: bytes
    environ: bytes
    auxv: bytes
    fds: list[tuple[int, str]]
    exe: str
    cpuinfo: bytes
    lsb_release: bytes
    captured_at: float
    first_stop_ns: int
    resumed_ns: int | None
    finished_ns: int
    clone_ns: int | None
    boot_time: float
    clock_ticks: int
    fallback_reason: str | None = None

    @property
    def cloned(self) -> bool:
        """True when memory comes from a clone; False when the target is held frozen."""
        return self.clone_pid is not None
