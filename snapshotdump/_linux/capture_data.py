"""What the tracer helper captured, handed to the dump writer."""

from __future__ import annotations

import dataclasses

from ..minidump.pystacks import PythonStacks


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
    # "all": the clone's (or the frozen target's) whole address space; "stacks": only the
    # ranges in `copied`, taken while the threads were stopped (see stack_capture).
    memory: str = "all"
    copied: list[tuple[int, bytes]] = dataclasses.field(default_factory=list)
    # The target's VmFlags by mapping start (see vm_flags), read just before the stop.
    vm_flags: dict[int, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    # The target's MADV_DONTFORK ranges; a clone is made to hold them (madvise DOFORK
    # around the clone), unless dont_fork_problem says why not.
    dont_fork: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    dont_fork_problem: str | None = None
    # Why a pre-copy capture was asked for but a clone was made (see precopy_arm).
    precopy_refused: str | None = None
    # A stack-only capture's walk of the CPython frames, made during its stop (its copy
    # holds no heap): (stacks, None), (None, why not), or (None, None) for no CPython.
    python_stacks: tuple[PythonStacks | None, str | None] | None = None

    @property
    def mode(self) -> str:
        """How memory was captured: "stacks", "precopy", "clone" or "frozen"."""
        if self.memory in ("stacks", "precopy"):
            return self.memory
        return "clone" if self.cloned else "frozen"

    @property
    def mode_reason(self) -> str:
        if self.mode == "stacks":
            return "memory=CaptureMemory.STACKS: only the stacks were asked for"
        if self.mode == "precopy":
            return "memory=CaptureMemory.PRECOPY: the target's writes are tracked (async " \
                "userfaultfd write-protect); a full dump copies memory while it runs"
        if self.precopy_refused:
            instead = "a fork clone was made instead" if self.cloned else \
                f"the target is held frozen instead: {self.fallback_reason or 'no clone'}"
            return f"pre-copy was asked for but cannot be used: {self.precopy_refused}; " \
                f"{instead}"
        if self.fallback_reason:
            return f"frozen, as the clone was refused: {self.fallback_reason}"
        return "a clone was asked for (VA_CLONE)" if self.cloned else \
            "no clone was asked for (no VA_CLONE): the target stays stopped until close()"

    @property
    def cloned(self) -> bool:
        """True when memory comes from a clone; False when the target is held frozen."""
        return self.clone_pid is not None
