"""Just enough ELF to name a module: its build id, and the dynamic linker's r_debug list."""

from __future__ import annotations

import struct
from collections.abc import Callable

Read = Callable[[int, int], "bytes | None"]

PT_LOAD = 1
PT_DYNAMIC = 2
PT_NOTE = 4
PT_PHDR = 6
NT_GNU_BUILD_ID = 3
DT_NULL = 0
DT_DEBUG = 21
AT_PHDR = 3
AT_PHNUM = 5
AT_BASE = 7

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_NOTE = struct.Struct("<III")
_MAX_NOTES = 64 * 1024


def is_elf(header: bytes | None) -> bool:
    """An ELF64 image (class 2): the only kind this x86_64/aarch64 backend maps."""
    return header is not None and len(header) >= 5 and header[:4] == b"\x7fELF" and header[4] == 2


def program_headers(read: Read, base: int) -> list[tuple[int, int, int, int, int]]:
    """(type, offset, vaddr, filesz, memsz) of each program header of the ELF image at *base*."""
    header = read(base, _EHDR.size)
    if not header or len(header) < _EHDR.size or not is_elf(header):
        return []
    fields = _EHDR.unpack(header)
    phoff, phentsize, phnum = fields[5], fields[9], fields[10]
    if phentsize != _PHDR.size or not 0 < phnum < 256:
        return []
    table = read(base + phoff, phentsize * phnum)
    if not table or len(table) < phentsize * phnum:
        return []
    result = []
    for index in range(phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _align = _PHDR.unpack_from(
            table, index * phentsize)
        result.append((p_type, p_offset, p_vaddr, p_filesz, p_memsz))
    return result


def load_bias(headers: list[tuple[int, int, int, int, int]], base: int) -> int:
    """Where the image's vaddr 0 lies: *base* minus the first PT_LOAD's page-aligned vaddr."""
    loads = [vaddr for p_type, _o, vaddr, _f, _m in headers if p_type == PT_LOAD]
    return base - (min(loads) & ~0xFFF) if loads else base


def build_id(read: Read, base: int) -> bytes | None:
    """The NT_GNU_BUILD_ID note of the ELF image mapped at *base*, read from memory."""
    headers = program_headers(read, base)
    bias = load_bias(headers, base)
    for p_type, _offset, vaddr, filesz, _memsz in headers:
        if p_type != PT_NOTE or not 0 < filesz <= _MAX_NOTES:
            continue
        notes = read(bias + vaddr, filesz)
        if not notes:
            continue
        found = _find_build_id(notes)
        if found:
            return found
    return None


def build_id_from_file(path: str) -> bytes | None:
    """The build id read from the file on disk (for images whose notes are not mapped)."""
    try:
        with open(path, "rb") as f:
            def read(offset: int, size: int) -> bytes | None:
                f.seek(offset)
                return f.read(size)

            headers = program_headers(read, 0)
            for p_type, offset, _vaddr, filesz, _memsz in headers:
                if p_type == PT_NOTE and 0 < filesz <= _MAX_NOTES:
                    found = _find_build_id(read(offset, filesz) or b"")
                    if found:
                        return found
    except OSError:
        return None
    return None


def _find_build_id(notes: bytes) -> bytes | None:
    position = 0
    while position + _NOTE.size <= len(notes):
        namesz, descsz, n_type = _NOTE.unpack_from(notes, position)
        name_at = position + _NOTE.size
        desc_at = name_at + ((namesz + 3) & ~3)
        end = desc_at + ((descsz + 3) & ~3)
        if end > len(notes) + 3:
            return None
        if n_type == NT_GNU_BUILD_ID and notes[name_at:name_at + namesz].rstrip(b"\0") == b"GNU":
            return notes[desc_at:desc_at + descsz]
        position = end
    return None


def auxv_entries(auxv: bytes) -> dict[int, int]:
    entries = {}
    for offset in range(0, len(auxv) - 15, 16):
        key, value = struct.unpack_from("<QQ", auxv, offset)
        if key == 0:
            break
        entries[key] = value
    return entries


def debug_address(read: Read, auxv: bytes) -> tuple[int, int] | None:
    """(address of r_debug, address of the main program's _DYNAMIC), via AT_PHDR and DT_DEBUG."""
    entries = auxv_entries(auxv)
    phdr, phnum = entries.get(AT_PHDR), entries.get(AT_PHNUM)
    if not phdr or not phnum or phnum > 256:
        return None
    table = read(phdr, phnum * _PHDR.size)
    if not table or len(table) < phnum * _PHDR.size:
        return None
    headers = [_PHDR.unpack_from(table, i * _PHDR.size) for i in range(phnum)]
    bias = None
    for p_type, _f, _o, vaddr, *_rest in headers:
        if p_type == PT_PHDR:
            bias = phdr - vaddr
    if bias is None:
        return None
    for p_type, _f, _o, vaddr, _p, filesz, *_rest in headers:
        if p_type != PT_DYNAMIC:
            continue
        dynamic = bias + vaddr
        data = read(dynamic, min(filesz, 16 * 512)) or b""
        for offset in range(0, len(data) - 15, 16):
            tag, value = struct.unpack_from("<qQ", data, offset)
            if tag == DT_NULL:
                break
            if tag == DT_DEBUG and value:
                return value, dynamic
    return None


def link_maps(read: Read, r_debug: int, limit: int = 4096) -> tuple[
        tuple[int, int, int, int], list[tuple[int, str, int]]]:
    """r_debug's (version, r_map, r_brk, r_ldbase) and each link_map's (l_addr, l_name, l_ld)."""
    raw = read(r_debug, 40)
    if not raw or len(raw) < 40:
        return (0, 0, 0, 0), []
    version, r_map, r_brk, _state, r_ldbase = struct.unpack("<i4xQQi4xQ", raw)
    entries: list[tuple[int, str, int]] = []
    node = r_map
    seen = set()
    while node and node not in seen and len(entries) < limit:
        seen.add(node)
        link = read(node, 40)
        if not link or len(link) < 40:
            break
        l_addr, l_name, l_ld, l_next, _prev = struct.unpack("<QQQQQ", link)
        name = b""
        if l_name:
            name = (read(l_name, 4096) or b"").split(b"\0", 1)[0]
        entries.append((l_addr, name.decode("utf-8", "replace"), l_ld))
        node = l_next
    return (version, r_map, r_brk, r_ldbase), entries
