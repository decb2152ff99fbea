"""What the dump and watch commands share: the --type presets and parser, the usage error."""

from __future__ import annotations

from .flags import MiniDumpType

# ProcDump's presets, by the same names where it has them (-mp, -mt, -ma).
TYPE_PRESETS = {
    "normal": MiniDumpType.NORMAL,
    "mini-plus": MiniDumpType.WITH_PRIVATE_READ_WRITE_MEMORY | MiniDumpType.WITH_DATA_SEGS
    | MiniDumpType.WITH_HANDLE_DATA | MiniDumpType.WITH_FULL_MEMORY_INFO
    | MiniDumpType.WITH_THREAD_INFO | MiniDumpType.WITH_UNLOADED_MODULES,
    "triage": MiniDumpType.FILTER_TRIAGE | MiniDumpType.IGNORE_INACCESSIBLE_MEMORY
    | MiniDumpType.WITHOUT_OPTIONAL_DATA | MiniDumpType.WITH_PROCESS_THREAD_DATA
    | MiniDumpType.FILTER_MODULE_PATHS | MiniDumpType.WITH_UNLOADED_MODULES
    | MiniDumpType.FILTER_MEMORY | MiniDumpType.WITH_HANDLE_DATA,
    "full": MiniDumpType.WITH_FULL_MEMORY | MiniDumpType.WITH_FULL_MEMORY_INFO
    | MiniDumpType.WITH_HANDLE_DATA | MiniDumpType.WITH_UNLOADED_MODULES
    | MiniDumpType.WITH_THREAD_INFO,
}


class UsageError(Exception):
    """Bad command-line input: exit status 2."""


def parse_type(text: str) -> MiniDumpType:
    """A preset, a comma-separated list of MiniDumpType names, or a hex mask."""
    value = text.strip().lower()
    if value in TYPE_PRESETS:
        return TYPE_PRESETS[value]
    if value.startswith("0x"):
        try:
            mask = int(value, 16)
        except ValueError:
            raise UsageError(f"--type {text!r} is not a hex mask") from None
        if mask & ~MiniDumpType.VALID_TYPE_FLAGS:
            raise UsageError(f"--type {text}: bits 0x{mask & ~MiniDumpType.VALID_TYPE_FLAGS:x} "
                             "are not MiniDumpType flags")
        return MiniDumpType(mask)
    result = MiniDumpType.NORMAL
    for name in value.split(","):
        key = name.strip().upper().replace("-", "_")
        if key.startswith("MINIDUMP"):
            key = key[len("MINIDUMP"):].lstrip("_")
        try:
            result |= MiniDumpType[key]
        except KeyError:
            presets = ", ".join(TYPE_PRESETS)
            raise UsageError(f"--type: unknown dump type {name.strip()!r}; use {presets}, "
                             "MiniDumpType names (with_full_memory,with_handle_data) "
                             "or a hex mask") from None
    return result
