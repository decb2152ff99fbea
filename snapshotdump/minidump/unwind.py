"""Native stacks from a dump: unwind each thread's registers through its stack memory.

Each caller frame is found by the first method that works, and says which, as
rust-minidump does: the module's call frame information ("cfi", from ``.eh_frame`` or
``.debug_frame`` of the local file whose build id matches the dump), the frame pointer
chain ("frame pointer"), or a scan of the stack for a return address just after a call
instruction ("scan").  The innermost frame comes from the thread's registers ("context").
x86_64 only: other dumps get the context frame alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Protocol

from .demangle import demangle
from .symbols import CfiRow, Resolved, resolve


# What the unwinder needs of a dump, so that it depends on no reader (the reader calls it).
class DumpModule(Protocol):
    @property
    def base(self) -> int: ...
    @property
    def path(self) -> str: ...
    @property
    def build_id(self) -> bytes | None: ...
    @property
    def name(self) -> str: ...


class StackRange(Protocol):
    @property
    def start(self) -> int: ...
    @property
    def size(self) -> int: ...


class DumpThread(Protocol):
    @property
    def registers(self) -> Mapping[str, int]: ...
    @property
    def stack(self) -> StackRange | None: ...


class Dump(Protocol):
    def module_at(self, address: int) -> DumpModule | None: ...
    def read_pointer(self, address: int) -> int | None: ...

MAX_FRAMES = 256
SCAN_WORDS = 1024
# DWARF register numbers of x86_64 (System V psABI, figure 3.36).
_DWARF = ("rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp",
          "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip")
_RA = 16
_CALLEE_SAVED = ("rbx", "rbp", "r12", "r13", "r14", "r15")


@dataclasses.dataclass(frozen=True)
class NativeFrame:
    """One native frame.  *pc* is the instruction (innermost) or return address."""

    index: int
    pc: int
    sp: int
    trust: str  # "context", "cfi", "frame pointer" or "scan"
    module: str | None
    module_offset: int | None
    function: str | None
    function_offset: int | None
    #: Why *function* is unknown when the module is known: "file missing", "build id differs".
    module_problem: str | None = None
    #: The symbol as the ELF file spells it (*function* is demangled).
    symbol: str | None = None

    def describe(self) -> str:
        if self.function is not None:
            where = f"{self.function}+{self.function_offset:#x}"
            return f"{self.module}!{where}" if self.module else where
        if self.module is not None:
            return f"{self.module}+{self.module_offset:#x}"
        return f"{self.pc:#x}"


class _Modules:
    """The dump's modules and their local files, resolved once per unwind."""

    def __init__(self, dump: Dump) -> None:
        self.dump = dump
        self._resolved: dict[int, Resolved] = {}

    def at(self, address: int) -> tuple[DumpModule | None, Resolved | None]:
        module = self.dump.module_at(address)
        if module is None:
            return None, None
        if module.base not in self._resolved:
            self._resolved[module.base] = resolve(module.path, module.build_id)
        return module, self._resolved[module.base]

    def vaddr(self, module: DumpModule, resolved: Resolved, address: int) -> int:
        assert resolved.file is not None
        return address - module.base + resolved.file.first_vaddr

    def is_return_address(self, address: int) -> bool:
        """A code address in a module that a call instruction just precedes."""
        module, resolved = self.at(address)
        if module is None or resolved is None:
            return False
        if resolved.file is None:
            return True  # no file to check against: any address inside the module
        vaddr = self.vaddr(module, resolved, address)
        if not resolved.file.is_code(vaddr):
            return False
        before = resolved.file.code(vaddr - 7, 7)
        return before is not None and _after_call(before)


def _after_call(before: bytes) -> bool:
    # call rel32 (e8 xx xx xx xx); call r/m64 (ff /2) in its 2-, 3-, 6- and 7-byte forms.
    if before[-5] == 0xE8:
        return True
    for length in (2, 3, 6, 7):
        opcode, modrm = before[-length], before[-length + 1]
        if opcode == 0xFF and (modrm >> 3) & 7 == 2:
            return True
        if length >= 3 and before[-length] & 0xF0 == 0x40 and before[-length + 1] == 0xFF \
                and (before[-length + 2] >> 3) & 7 == 2:
            return True
    return False


def unwind(dump: Dump, thread: DumpThread) -> list[NativeFrame]:
    """The thread's frames, innermost first."""
    registers = dict(thread.registers)
    if "rip" not in registers:
        return []
    modules = _Modules(dump)
    stack_end = thread.stack.start + thread.stack.size if thread.stack else 0
    frames = [_frame(modules, 0, registers["rip"], registers["rsp"], "context")]
    while len(frames) < MAX_FRAMES:
        caller = _step(dump, modules, registers, first=len(frames) == 1, stack_end=stack_end)
        if caller is None:
            break
        new_registers, trust = caller
        if new_registers["rsp"] <= registers["rsp"] or new_registers["rip"] < 0x1000:
            break
        registers = new_registers
        frames.append(_frame(modules, len(frames), registers["rip"], registers["rsp"], trust))
    names = demangle([f.symbol for f in frames if f.symbol is not None])
    return [dataclasses.replace(f, function=names[f.symbol]) if f.symbol is not None else f
            for f in frames]


def _step(dump: Dump, modules: _Modules, registers: dict[str, int], first: bool,
          stack_end: int) -> tuple[dict[str, int], str] | None:
    # A return address points after the call: look up the call itself (pc - 1).
    lookup = registers["rip"] if first else registers["rip"] - 1
    module, resolved = modules.at(lookup)
    if module is not None and resolved is not None and resolved.file is not None:
        row = resolved.file.cfi_row(modules.vaddr(module, resolved, lookup))
        if row is not None:
            if _RA in row.rules and row.rules[_RA][0] == "UNDEFINED":
                return None  # the outermost frame (_start, clone's child) says so
            caller = _apply_cfi(dump, registers, row)
            if caller is not None:
                return caller, "cfi"
    caller = _frame_pointer(dump, modules, registers, stack_end)
    if caller is not None:
        return caller, "frame pointer"
    caller = _scan(dump, modules, registers, stack_end)
    return (caller, "scan") if caller is not None else None


def _apply_cfi(dump: Dump, registers: dict[str, int], row: CfiRow) -> dict[str, int] | None:
    if row.cfa_register >= len(_DWARF) or _DWARF[row.cfa_register] not in registers:
        return None
    cfa = (registers[_DWARF[row.cfa_register]] + row.cfa_offset) & 0xFFFFFFFFFFFFFFFF
    caller = {name: registers[name] for name in _CALLEE_SAVED if name in registers}
    for number, (kind, argument) in row.rules.items():
        if number >= len(_DWARF):
            continue
        name = _DWARF[number]
        if kind == "OFFSET":
            value = dump.read_pointer(cfa + argument)
            if value is None:
                return None
            caller[name] = value
        elif kind == "VAL_OFFSET":
            caller[name] = cfa + argument
        elif kind == "REGISTER" and argument < len(_DWARF) and _DWARF[argument] in registers:
            caller[name] = registers[_DWARF[argument]]
        elif kind == "UNDEFINED":
            caller.pop(name, None)
        elif kind in ("EXPRESSION", "VAL_EXPRESSION"):
            return None
    if "rip" not in caller:
        return None
    caller["rsp"] = cfa
    return caller


def _frame_pointer(dump: Dump, modules: _Modules, registers: dict[str, int],
                   stack_end: int) -> dict[str, int] | None:
    rbp = registers.get("rbp", 0)
    if not registers["rsp"] <= rbp < stack_end or rbp % 8:
        return None
    saved_rbp, return_address = dump.read_pointer(rbp), dump.read_pointer(rbp + 8)
    if saved_rbp is None or return_address is None:
        return None
    if not modules.is_return_address(return_address):
        # Code outside every module (a JIT's) keeps frame pointers: follow a chain that
        # climbs the stack, but never into a module at an address no call precedes.
        chained = rbp < saved_rbp < stack_end or saved_rbp == 0
        if dump.module_at(return_address) is not None or not chained \
                or return_address < 0x10000:
            return None
    caller = {name: registers[name] for name in _CALLEE_SAVED if name in registers}
    caller.update(rbp=saved_rbp, rip=return_address, rsp=rbp + 16)
    return caller


def _scan(dump: Dump, modules: _Modules, registers: dict[str, int],
          stack_end: int) -> dict[str, int] | None:
    slot = registers["rsp"]
    for _ in range(SCAN_WORDS):
        if slot + 8 > stack_end:
            return None
        value = dump.read_pointer(slot)
        if value is None:
            return None
        if value > 0x1000 and modules.is_return_address(value):
            caller = {name: registers[name] for name in _CALLEE_SAVED if name in registers}
            caller.update(rip=value, rsp=slot + 8)
            return caller
        slot += 8
    return None


def _frame(modules: _Modules, index: int, pc: int, sp: int, trust: str) -> NativeFrame:
    lookup = pc if index == 0 else pc - 1
    module, resolved = modules.at(lookup)
    if module is None or resolved is None:
        return NativeFrame(index, pc, sp, trust, None, None, None, None)
    offset = pc - module.base
    if resolved.file is None:
        return NativeFrame(index, pc, sp, trust, module.name, offset, None, None, resolved.problem)
    symbol = resolved.file.symbol(modules.vaddr(module, resolved, lookup))
    if symbol is None:
        return NativeFrame(index, pc, sp, trust, module.name, offset, None, None)
    name, at = symbol
    return NativeFrame(index, pc, sp, trust, module.name, offset, name, at + (pc - lookup),
                       symbol=name)
