"""Local module files for a dump's modules: build id check, symbols, call frame information.

pyelftools parses the ELF and DWARF (sections, notes, CIEs, FDEs and their rules).  Two
things are done here on its raw section bytes, for speed: the ``Elf64_Sym`` array is
unpacked in bulk (pyelftools' per-symbol objects take seconds for a 50,000-symbol
libjvm), and the ``.eh_frame_hdr`` search table is binary-searched to find one FDE, which
pyelftools then parses alone (parsing all of libjvm's 44,000 FDEs takes 6 s).
pyelftools is imported on first use: capture never needs it.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import mmap
import os
import struct
from typing import Any

_SYM = struct.Struct("<IBBHQQ")
_STT_FUNC, _STT_GNU_IFUNC = 2, 10
_PT_LOAD, _PF_X = 1, 1
_DEBUG_ROOT = "/usr/lib/debug/.build-id"
# .eh_frame_hdr encodings this reader binary-searches (what every GNU/LLVM linker emits).
_EH_PE_UDATA4, _EH_PE_DATAREL_SDATA4, _EH_PE_PCREL_SDATA4 = 0x03, 0x3B, 0x1B


class ElfMissing(RuntimeError):
    """pyelftools (a dependency of snapshotdump) is not importable."""


def _elftools() -> Any:
    try:
        from elftools.elf.elffile import ELFFile
    except ImportError as exc:
        raise ElfMissing("unwinding and symbols need pyelftools: pip install pyelftools "
                         "(or pass --no-symbols)") from exc
    return ELFFile


@dataclasses.dataclass(frozen=True)
class CfiRow:
    """The unwind rule at one address: CFA = register + offset; saved registers by rule."""

    cfa_register: int
    cfa_offset: int
    rules: dict[int, tuple[str, int]]  # DWARF register -> (rule type, argument)


class ModuleFile:
    """One ELF file on this machine, opened once, read lazily."""

    def __init__(self, path: str) -> None:
        self.path = path
        # A read-only mapping, not an open file: a cache of these holds no descriptors.
        self._map = _map(path)
        self.elf = _elftools()(self._map)
        loads = [s for s in self.elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        self.first_vaddr = min((s["p_vaddr"] - s["p_offset"] for s in loads), default=0)
        self.executable = [(s["p_vaddr"], s["p_vaddr"] + s["p_memsz"], s["p_offset"])
                           for s in loads if s["p_flags"] & _PF_X]
        self.build_id = self._build_id()
        self._symbols: tuple[list[int], list[int], list[tuple[int, int]]] | None = None
        self._fdes: dict[int, Any] = {}
        self._cfi: Any = None

    def close(self) -> None:
        self._map.close()

    def _build_id(self) -> bytes | None:
        for section in self.elf.iter_sections():
            if section["sh_type"] != "SHT_NOTE":
                continue
            for note in section.iter_notes():
                if note["n_type"] == "NT_GNU_BUILD_ID" and note["n_name"] == "GNU":
                    return bytes.fromhex(note["n_desc"])
        return None

    # -- code bytes ---------------------------------------------------------------------

    def is_code(self, vaddr: int) -> bool:
        return any(start <= vaddr < end for start, end, _ in self.executable)

    def code(self, vaddr: int, size: int) -> bytes | None:
        for start, end, offset in self.executable:
            if start <= vaddr and vaddr + size <= end:
                at = offset + vaddr - start
                return self._map[at:at + size]
        return None

    # -- symbols ------------------------------------------------------------------------

    def symbol(self, vaddr: int) -> tuple[str, int] | None:
        """(function name, offset in it) for an address (file's own vaddr), or None."""
        starts, ends, names = self._symbol_table()
        index = bisect.bisect_right(starts, vaddr) - 1
        while index >= 0 and starts[index] <= vaddr:
            if vaddr < ends[index]:
                return self._name(names[index]), vaddr - starts[index]
            # A smaller symbol may sit at the same address as a larger one that covers vaddr.
            if index and starts[index - 1] == starts[index]:
                index -= 1
                continue
            break
        return None

    def _symbol_table(self) -> tuple[list[int], list[int], list[tuple[int, int]]]:
        if self._symbols is None:
            # Names stay as string-table offsets until a frame asks for one.
            found: dict[int, tuple[int, int, int]] = {}
            self._strings: list[bytes] = []
            sources = [self.elf]
            debug = _debug_file(self.build_id)
            if debug is not None:
                sources.insert(0, debug)
            for elf in sources:
                for name in (".symtab", ".dynsym"):
                    section = elf.get_section_by_name(name)
                    if section is not None and section["sh_entsize"] == _SYM.size \
                            and section["sh_type"] in ("SHT_SYMTAB", "SHT_DYNSYM"):
                        self._strings.append(elf.get_section(section["sh_link"]).data())
                        _add_symbols(found, len(self._strings) - 1, section)
            ordered = sorted(found.items())
            self._symbols = ([a for a, _ in ordered], [a + s for a, (s, _, _) in ordered],
                             [(t, o) for _, (_, t, o) in ordered])
        return self._symbols

    def _name(self, entry: tuple[int, int]) -> str:
        strings = self._strings[entry[0]]
        end = strings.find(b"\0", entry[1])
        return strings[entry[1]:end if end >= 0 else None].decode("utf-8", "replace")

    # -- call frame information ---------------------------------------------------------

    def cfi_row(self, vaddr: int) -> CfiRow | None:
        fde = self._find_fde(vaddr)
        if fde is None:
            return None
        try:
            table = fde.get_decoded().table
        except Exception:  # a malformed FDE: pyelftools raises assorted errors
            return None
        row = None
        for candidate in table:
            if candidate["pc"] <= vaddr:
                row = candidate
        if row is None or row["cfa"].expr is not None or row["cfa"].reg is None:
            return None
        rules = {reg: (rule.type, rule.arg if isinstance(rule.arg, int) else 0)
                 for reg, rule in row.items() if isinstance(reg, int)}
        return CfiRow(row["cfa"].reg, row["cfa"].offset, rules)

    def _find_fde(self, vaddr: int) -> Any:
        offset = self._hdr_lookup(vaddr)
        if offset is not None:
            if offset not in self._fdes:
                self._fdes[offset] = self._eh_frame_info()._parse_entry_at(offset)
            fde = self._fdes[offset]
        else:
            fde = self._slow_lookup(vaddr)
        if fde is None or "initial_location" not in getattr(fde, "header", {}):
            return None
        start = fde.header["initial_location"]
        return fde if start <= vaddr < start + fde.header["address_range"] else None

    def _eh_frame_info(self) -> Any:
        from elftools.dwarf.callframe import CallFrameInfo

        if self._cfi is None:
            dwarf = self.elf.get_dwarf_info(relocate_dwarf_sections=False)
            section = dwarf.eh_frame_sec
            self._cfi = CallFrameInfo(stream=section.stream, size=section.size,
                                      address=section.address, base_structs=dwarf.structs,
                                      for_eh_frame=True)
        return self._cfi

    @functools.cached_property
    def _hdr_table(self) -> tuple[list[int], list[int]] | None:
        hdr = self.elf.get_section_by_name(".eh_frame_hdr")
        frame = self.elf.get_section_by_name(".eh_frame")
        if hdr is None or frame is None:
            return None
        data = hdr.data()
        if len(data) < 12 or data[0] != 1 or data[1] != _EH_PE_PCREL_SDATA4 \
                or data[2] != _EH_PE_UDATA4 or data[3] != _EH_PE_DATAREL_SDATA4:
            return None
        (count,) = struct.unpack_from("<I", data, 8)
        if 12 + 8 * count > len(data):
            return None
        pairs = struct.unpack_from(f"<{2 * count}i", data, 12)
        base = hdr["sh_addr"]
        return ([base + p for p in pairs[0::2]],
                [base + p - frame["sh_addr"] for p in pairs[1::2]])

    def _hdr_lookup(self, vaddr: int) -> int | None:
        table = self._hdr_table
        if table is None:
            return None
        index = bisect.bisect_right(table[0], vaddr) - 1
        return table[1][index] if index >= 0 else None

    @functools.cached_property
    def _all_fdes(self) -> tuple[list[int], list[Any]]:
        # No usable .eh_frame_hdr: parse every FDE once (.eh_frame, else .debug_frame).
        dwarf = self.elf.get_dwarf_info(relocate_dwarf_sections=False)
        entries: list[Any] = []
        try:
            if dwarf.has_EH_CFI():
                entries = dwarf.EH_CFI_entries()
            elif dwarf.has_CFI():
                entries = dwarf.CFI_entries()
        except Exception:
            entries = []
        fdes = sorted((e for e in entries if "initial_location" in getattr(e, "header", {})),
                      key=lambda e: e.header["initial_location"])
        return [f.header["initial_location"] for f in fdes], fdes

    def _slow_lookup(self, vaddr: int) -> Any:
        starts, fdes = self._all_fdes
        index = bisect.bisect_right(starts, vaddr) - 1
        return fdes[index] if index >= 0 else None


def _add_symbols(found: dict[int, tuple[int, int, int]], table: int, section: Any) -> None:
    data = section.data()
    for name_offset, info, _other, shndx, value, size in _SYM.iter_unpack(
            data[:len(data) - len(data) % _SYM.size]):
        if info & 0xF not in (_STT_FUNC, _STT_GNU_IFUNC) or not value or not shndx:
            continue
        if value in found and found[value][0] >= size:
            continue
        found[value] = (size or 1, table, name_offset)


def _map(path: str) -> mmap.mmap:
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _debug_file(build_id: bytes | None) -> Any:
    if not build_id or len(build_id) < 2:
        return None
    path = os.path.join(_DEBUG_ROOT, build_id[:1].hex(), build_id[1:].hex() + ".debug")
    if not os.path.exists(path):
        return None
    try:
        return _elftools()(_map(path))
    except Exception:
        return None


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A dump module's local file, or why there is none."""

    file: ModuleFile | None
    problem: str | None  # "file missing", "build id differs", "not an ELF file"


@functools.lru_cache(maxsize=256)
def resolve(path: str, build_id: bytes | None) -> Resolved:
    """The local file of a dump's module, when its build id matches the dump's."""
    if not path.startswith("/") or not os.path.isfile(path):
        return Resolved(None, "file missing")
    try:
        module = ModuleFile(path)
    except ElfMissing:
        raise
    except Exception:
        return Resolved(None, "not an ELF file")
    if build_id and module.build_id and not _same_id(build_id, module.build_id):
        module.close()
        return Resolved(None, "build id differs")
    return Resolved(module, None)


def _same_id(recorded: bytes, local: bytes) -> bool:
    # Breakpad writers pad or cut the build id to 16 or 20 bytes; compare what both hold.
    length = min(len(recorded), len(local))
    return length >= 8 and recorded[:length] == local[:length]
