"""The Python-stacks stream: every CPython thread's frames at the snapshot instant.

They are read from the clone (or the frozen target, or a pre-copy's memory) while the dump
is written, or, for a stack-only capture, from the stopped target during its stop.

CPython 3.10 to 3.13 is found through its executable or libpython and the ``_PyRuntime``
symbol.  3.13 publishes where its fields are in ``_PyRuntime._Py_DebugOffsets``; for 3.10
to 3.12 the offsets come from each version's headers (cpython_offsets.py, generated).
Every object read is checked against its type (``PyCode_Type``, ``PyUnicode_Type``,
``PyBytes_Type``) and every thread state against its interpreter, so a build whose layout
differs is refused with a reason, never decoded into a wrong stack.
"""

from __future__ import annotations

import dataclasses
import os
import re
import struct
from collections.abc import Callable

from ...minidump.pystacks import PythonFrame, PythonStacks, PythonThread, encode
from .. import arch as arch_module
from ..procfs import Mapping
from .cpython_offsets import LAYOUTS
from .plan import DumpPlan

MAX_INTERPRETERS = 64
MAX_THREADS = 4096
MAX_FRAMES = 2048
MAX_STRING = 4096
MAX_LINETABLE = 1 << 20
_FRAME_OWNED_BY_CSTACK = 3
_DEBUG_COOKIE = b"xdebugpy"
_NAME = re.compile(r"^(?:lib)?python(\d+)\.(\d+)[a-z]*(?:\.so.*)?$")
_WANTED = (b"_PyRuntime", b"PyCode_Type", b"PyUnicode_Type", b"PyBytes_Type", b"Py_Version",
           b"_Py_NegativeRefcount")


class Undecodable(Exception):
    """This CPython cannot be decoded safely: the message says why, in one line."""


Read = Callable[[int, int], "bytes | None"]
# (stacks, None), (None, why not) for a CPython we cannot decode, (None, None) for no CPython.
Found = tuple["PythonStacks | None", "str | None"]


@dataclasses.dataclass(frozen=True)
class Runtime:
    """A CPython found in the target's modules: its version and its symbols' addresses.

    Finding it reads files on disk, so the stack-only capture does it before the stop.
    """

    version: tuple[int, int]
    symbols: dict[bytes, int]


def collect(plan: DumpPlan) -> tuple[bytes | None, str | None]:
    """(stream payload, None), or (None, why not) for a CPython we cannot decode.

    (None, None) when the target is not a CPython process at all.  A stack-only capture
    walked the frames during its stop (its copy holds no heap): that walk is used.
    """
    found = plan.data.python_stacks if plan.data.memory == "stacks" else None
    if found is None:
        runtime = find_runtime([(m.path, m.base) for m in plan.modules])
        if runtime is None:
            return None, None
        arch = arch_module.current()
        found = walk(runtime, plan.reader.read, {
            int(getattr(arch.registers(t.state.registers), "fs_base", 0)): t.state.tid
            for t in plan.threads})
    return finish(found, {t.state.tid: t.state.name for t in plan.threads})


def finish(found: Found, names: dict[int, str]) -> tuple[bytes | None, str | None]:
    """The stream payload of a walk, each thread named as in the dump's thread names."""
    stacks, reason = found
    if stacks is None:
        return None, reason
    return encode(dataclasses.replace(stacks, threads=[
        dataclasses.replace(t, name=names.get(t.thread_id)) for t in stacks.threads])), None


def walk(runtime: Runtime, read: Read, pthreads: dict[int, int]) -> Found:
    """Every thread's frames, read through *read* (the target stopped, or its clone).

    *pthreads* maps each thread's pthread_t (its fs_base) to its id, for 3.10.  Bounded
    by the MAX_ limits; never raises but for BaseException (the stop's own to handle).
    """
    try:
        return _Walker(runtime, read, pthreads).stacks(), None
    except Undecodable as exc:
        return None, f"Python stacks not recorded: {exc}"
    except Exception as exc:  # an optional stream never costs the user the dump
        return None, f"Python stacks not recorded: {type(exc).__name__}: {exc}"


def may_apply(maps: list[Mapping]) -> bool:
    """Whether a CPython executable or libpython is mapped: the stream gets a slot."""
    return any(m.path.startswith("/") and _NAME.match(os.path.basename(m.path)) for m in maps)


def modules_in_maps(maps: list[Mapping]) -> list[tuple[str, int]]:
    """(path, load base) of each CPython file mapped, from the maps alone."""
    bases: dict[str, int] = {}
    for m in maps:
        if m.path.startswith("/") and _NAME.match(os.path.basename(m.path)):
            bases[m.path] = min(bases.get(m.path, m.start), m.start)
    return list(bases.items())


def find_runtime(modules: list[tuple[str, int]]) -> Runtime | None:
    """The CPython among *modules* ((path, load base)): reads their files, not the target."""
    for path, base in modules:
        match = _NAME.match(os.path.basename(path))
        if match is None or not path.startswith("/"):
            continue
        try:
            symbols, bias = _elf_symbols(path, base)
        except (OSError, ValueError, struct.error):
            continue
        if b"_PyRuntime" in symbols:
            version = (int(match.group(1)), int(match.group(2)))
            return Runtime(version, {name: value + bias for name, value in symbols.items()})
    return None


def _elf_symbols(path: str, base: int) -> tuple[dict[bytes, int], int]:
    """The addresses of the _WANTED symbols in an ELF64 file, and its load bias at *base*."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:5] != b"\x7fELF\x02":
        raise ValueError("not ELF64")
    phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 0x36)
    loads = [struct.unpack_from("<IIQQ", data, phoff + i * phentsize) for i in range(phnum)]
    first = min((vaddr - offset for kind, _f, offset, vaddr in loads if kind == 1), default=0)
    sections = [struct.unpack_from("<IIQQQQII", data, shoff + i * shentsize)
                for i in range(shnum)]
    found: dict[bytes, int] = {}
    for _name, kind, _flags, _addr, offset, size, link, _info in sections:
        if kind not in (2, 11) or link >= len(sections):  # SHT_SYMTAB, SHT_DYNSYM
            continue
        strings = data[sections[link][4]:sections[link][4] + sections[link][5]]
        wanted = {}
        for name in _WANTED:
            at = strings.find(b"\0" + name + b"\0")
            if at >= 0:
                wanted[at + 1] = name
        for st_name, _i, _o, shndx, value, _s in struct.iter_unpack(
                "<IBBHQQ", data[offset:offset + size - size % 24]):
            if st_name in wanted and shndx and value:
                found[wanted[st_name]] = value
    return found, base - first


class _Walker:
    def __init__(self, runtime: Runtime, read: Read, pthreads: dict[int, int]) -> None:
        self._read = read
        self.pthreads = pthreads
        self.symbols = symbols = runtime.symbols
        self.version = version = runtime.version
        self.release = f"{version[0]}.{version[1]}"
        if b"_Py_NegativeRefcount" in symbols:
            raise Undecodable(f"CPython {self.release} is a debug build (Py_DEBUG), whose "
                              "layouts differ from the release builds this knows")
        if b"Py_Version" in symbols:
            hexversion = self.u32(symbols[b"Py_Version"])
            if (hexversion >> 24, (hexversion >> 16) & 0xFF) != version:
                raise Undecodable(f"Py_Version {hexversion:#x} disagrees with the file name "
                                  f"(python{self.release})")
            self.release = _release(hexversion)
        self.layout = self._layout()
        self.codes: dict[int, tuple[str, str, int, bytes]] = {}

    # -- memory -----------------------------------------------------------------------

    def read(self, address: int, size: int) -> bytes:
        data = self._read(address, size) if address > 0 else None
        if data is None or len(data) < size:
            raise Undecodable(f"address {address:#x} ({size} bytes) is not readable")
        return data

    def u64(self, address: int) -> int:
        return int.from_bytes(self.read(address, 8), "little")

    def u32(self, address: int) -> int:
        return int.from_bytes(self.read(address, 4), "little")

    def i64(self, address: int) -> int:
        return int.from_bytes(self.read(address, 8), "little", signed=True)

    # -- layout -------------------------------------------------------------------------

    def _layout(self) -> dict[str, int]:
        generated = LAYOUTS.get(self.version)
        if generated is None:
            known = ", ".join(f"{a}.{b}" for a, b in sorted(LAYOUTS))
            raise Undecodable(f"CPython {self.release} has no known layout (known: {known}; "
                              "run scripts/gen_cpython_offsets.py with its headers)")
        if self.version < (3, 13):
            return dict(generated)
        runtime = self.symbols[b"_PyRuntime"]
        if self.read(runtime + generated["debug.cookie"], 8) != _DEBUG_COOKIE:
            raise Undecodable("_PyRuntime does not start with _Py_DebugOffsets' cookie")
        layout = {key: value for key, value in generated.items() if not key.startswith("debug.")}
        for key, at in generated.items():
            if key.startswith("debug.") and key != "debug.cookie":
                layout[key.removeprefix("debug.")] = self.u64(runtime + at)
        hexversion = layout.pop("version")
        if (hexversion >> 24, (hexversion >> 16) & 0xFF) != self.version:
            raise Undecodable(f"_Py_DebugOffsets.version {hexversion:#x} is not {self.release}")
        self.release = _release(hexversion)
        if layout.pop("free_threaded"):
            raise Undecodable(f"CPython {self.release} is free-threaded, whose layouts differ")
        return layout

    # -- objects ------------------------------------------------------------------------

    def check_type(self, obj: int, type_symbol: bytes, what: str) -> None:
        if self.u64(obj + self.layout["object.ob_type"]) != self.symbols.get(type_symbol):
            raise Undecodable(f"a {what} at {obj:#x} does not have the type "
                              f"{type_symbol.decode()}: this build's layout is not the one known")

    def string(self, obj: int) -> str:
        self.check_type(obj, b"PyUnicode_Type", "str")
        layout = self.layout
        state = self.u32(obj + layout["unicode.state"])
        length = self.i64(obj + layout["unicode.length"])
        if not state & layout["unicode.state_compact_mask"] or not 0 <= length <= MAX_STRING:
            raise Undecodable(f"a str at {obj:#x} is not a compact string of sane length")
        kind_mask = layout["unicode.state_kind_mask"]
        kind = (state & kind_mask) >> ((kind_mask & -kind_mask).bit_length() - 1)
        if state & layout["unicode.state_ascii_mask"]:
            return self.read(obj + layout["unicode.ascii_size"], length).decode("ascii",
                                                                                "replace")
        codec = {1: "latin-1", 2: "utf-16-le", 4: "utf-32-le"}.get(kind)
        if codec is None:
            raise Undecodable(f"a str at {obj:#x} has kind {kind}")
        return self.read(obj + layout["unicode.compact_size"], length * kind).decode(codec,
                                                                                     "replace")

    def bytes_object(self, obj: int) -> bytes:
        self.check_type(obj, b"PyBytes_Type", "bytes")
        size = self.i64(obj + self.layout["bytes.ob_size"])
        if not 0 <= size <= MAX_LINETABLE:
            raise Undecodable(f"a bytes object at {obj:#x} claims {size} bytes")
        return self.read(obj + self.layout["bytes.ob_sval"], size)

    def frame(self, code: int, byte_offset: int) -> PythonFrame:
        name, file, first_line, table = self.code(code)
        line = (_line_310 if self.version == (3, 10) else _line_311)(table, first_line,
                                                                      byte_offset)
        return PythonFrame(name, file, line)

    def code(self, code: int) -> tuple[str, str, int, bytes]:
        """A code object's name, file, first line and line table, each decoded once a walk:
        the walk may run inside the stop, and a stack repeats its functions."""
        known = self.codes.get(code)
        if known is not None:
            return known
        self.check_type(code, b"PyCode_Type", "code object")
        layout = self.layout
        first_line = int.from_bytes(self.read(code + layout["code.firstlineno"], 4), "little",
                                    signed=True)
        table = self.bytes_object(self.u64(code + layout["code.linetable"]))
        decoded = (self.string(self.u64(code + layout["code.name"])),
                   self.string(self.u64(code + layout["code.filename"])), first_line, table)
        if len(self.codes) < MAX_FRAMES:
            self.codes[code] = decoded
        return decoded

    # -- the walk -----------------------------------------------------------------------

    def stacks(self) -> PythonStacks:
        layout = self.layout
        runtime = self.symbols[b"_PyRuntime"]
        threads: list[PythonThread] = []
        states: dict[int, int] = {}
        interp = self.u64(runtime + layout["runtime.interpreters_head"])
        seen: set[int] = set()
        for _ in range(MAX_INTERPRETERS):
            if not interp:
                break
            tstate = self.u64(interp + layout["interp.threads_head"])
            holder = self._gil_holder(runtime, interp)
            for _ in range(MAX_THREADS):
                if not tstate:
                    break
                if tstate in seen:
                    raise Undecodable("the thread-state list loops")
                seen.add(tstate)
                if self.u64(tstate + layout["tstate.interp"]) != interp:
                    raise Undecodable(f"thread state {tstate:#x} belongs to another "
                                      "interpreter: this build's layout is not the one known")
                tid = self._native_id(tstate)
                states[tstate] = tid
                threads.append(PythonThread(tid, None, holder == tstate,
                                            self._frames(tstate)))
                tstate = self.u64(tstate + layout["tstate.next"])
            interp = self.u64(interp + layout["interp.next"])
        holders = [t.thread_id for t in threads if t.holds_gil]
        return PythonStacks(self.release, holders[0] if holders else None, threads)

    def _native_id(self, tstate: int) -> int:
        if "tstate.native_thread_id" in self.layout:
            return self.u64(tstate + self.layout["tstate.native_thread_id"])
        pthread = self.u64(tstate + self.layout["tstate.thread_id"])
        if pthread not in self.pthreads:
            raise Undecodable(f"thread state {tstate:#x} names pthread {pthread:#x}, which is "
                              "no thread of the dump")
        return self.pthreads[pthread]

    def _gil_holder(self, runtime: int, interp: int) -> int | None:
        layout = self.layout
        if "runtime.gil_locked" in layout:
            locked_at, holder_at = (runtime + layout["runtime.gil_locked"],
                                    runtime + layout["runtime.gil_holder"])
        elif "interp.ceval_gil" in layout:
            gil = self.u64(interp + layout["interp.ceval_gil"])
            locked_at, holder_at = gil + layout["gil.locked"], gil + layout["gil.holder"]
        else:
            locked_at, holder_at = (interp + layout["interp.gil_locked"],
                                    interp + layout["interp.gil_holder"])
        return self.u64(holder_at) if self.u32(locked_at) else None

    def _frames(self, tstate: int) -> list[PythonFrame]:
        layout = self.layout
        frames: list[PythonFrame] = []
        if self.version == (3, 10):
            frame = self.u64(tstate + layout["tstate.frame"])
            while frame and len(frames) < MAX_FRAMES:
                lasti = int.from_bytes(self.read(frame + layout["frame.lasti"], 4), "little",
                                       signed=True)
                frames.append(self.frame(self.u64(frame + layout["frame.code"]),
                                         lasti * 2 if lasti >= 0 else -1))
                frame = self.u64(frame + layout["frame.back"])
            return frames
        if "tstate.cframe" in layout:
            frame = self.u64(self.u64(tstate + layout["tstate.cframe"])
                             + layout["cframe.current_frame"])
        else:
            frame = self.u64(tstate + layout["tstate.current_frame"])
        # One read a frame, of exactly the bytes of its four fields (fewer reads, a shorter
        # pause when the walk runs inside the stop).
        owner_at, code_at, instr_at, previous_at = (
            layout[f"iframe.{name}"] for name in ("owner", "code", "instr", "previous"))
        low = min(owner_at, code_at, instr_at, previous_at)
        span = max(owner_at + 1, code_at + 8, instr_at + 8, previous_at + 8) - low

        def field(raw: bytes, at: int) -> int:
            return int.from_bytes(raw[at - low:at - low + 8], "little")

        while frame and len(frames) < MAX_FRAMES:
            raw = self.read(frame + low, span)
            owner = raw[owner_at - low]
            if self.version < (3, 12) or owner != _FRAME_OWNED_BY_CSTACK:
                code, instr = field(raw, code_at), field(raw, instr_at)
                start = code + layout["code.code_adaptive"]
                frames.append(self.frame(code, max(instr - start, -2) // 2 * 2))
            frame = field(raw, previous_at)
        return frames


def _release(hexversion: int) -> str:
    return f"{hexversion >> 24}.{(hexversion >> 16) & 0xFF}.{(hexversion >> 8) & 0xFF}"


def _line_310(table: bytes, first_line: int, offset: int) -> int:
    """PEP 626's co_linetable (3.10): (bytecode delta, line delta) pairs."""
    if offset < 0:
        return first_line
    line, end = first_line, 0
    for index in range(0, len(table) - 1, 2):
        start, end = end, end + table[index]
        delta = table[index + 1] - 256 if table[index + 1] > 127 else table[index + 1]
        if delta != -128:
            line += delta
        if start <= offset < end:
            return line if delta != -128 else -1
    return -1


def _line_311(table: bytes, first_line: int, offset: int) -> int:
    """The location table of 3.11+ (Objects/locations.md): entries of code units."""
    if offset < 0:
        return first_line
    line, start, at = first_line, 0, 0
    while at < len(table):
        head = table[at]
        code, length = (head >> 3) & 15, (head & 7) + 1
        at += 1
        if code in (13, 14):
            delta, at = _signed_varint(table, at)
        elif code in (10, 11, 12):
            delta = code - 10
        else:
            delta = 0
        line += delta
        end = start + length * 2
        if start <= offset < end:
            return -1 if code == 15 else line
        start = end
        while at < len(table) and not table[at] & 0x80:
            at += 1
    return -1


def _signed_varint(table: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while at < len(table):
        byte = table[at]
        at += 1
        value |= (byte & 63) << shift
        shift += 6
        if not byte & 64:
            break
    return (-(value >> 1) if value & 1 else value >> 1), at
