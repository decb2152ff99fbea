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
    cloned: bool
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
