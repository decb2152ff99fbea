"""What ``snapshotdump info`` shows: each thread and where it is stuck first, then the rest.

:func:`describe` turns an open :class:`~snapshotdump.minidump.reader.Dump` into plain
data (what ``--json`` prints); :func:`render` turns that data into text.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .minidump.reader import Dump, DumpFormatError, DumpModule, DumpThread
from .minidump.symbols import resolve
from .minidump.unwind import NativeFrame

# What the kernel leaves in rax for a thread stopped inside a blocking system call.
_INTERRUPTED_SYSCALL = {2**64 - 4, 2**64 - 512, 2**64 - 513, 2**64 - 514, 2**64 - 516}
_SIGNALS = {4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 11: "SIGSEGV"}
SCHEMA_VERSION = 1
# x86_64 numbers of the system calls a stuck thread usually sits in (asm/unistd_64.h).
_SYSCALLS = {0: "read", 1: "write", 7: "poll", 17: "pread64", 19: "readv", 23: "select",
             34: "pause", 35: "nanosleep", 43: "accept", 45: "recvfrom", 47: "recvmsg",
             61: "wait4", 202: "futex", 230: "clock_nanosleep", 232: "epoll_wait",
             247: "waitid", 270: "pselect6", 271: "ppoll", 281: "epoll_pwait",
             288: "accept4", 441: "epoll_pwait2"}


def describe(dump: Dump, thread_id: int | None = None, symbols: bool = True) -> dict[str, Any]:
    """The dump as JSON-ready data; *thread_id* narrows the threads; *symbols* unwinds."""
    threads = dump.threads
    if thread_id is not None:
        threads = [t for t in threads if t.thread_id == thread_id]
        if not threads:
            known = ", ".join(str(t.thread_id) for t in dump.threads[:20])
            raise ValueError(f"thread {thread_id} is not in the dump (threads: {known})")
    system = dump.system
    try:
        dump.python_threads()
        python_error = None
    except DumpFormatError as exc:  # a bad Python stream must not hide the native stacks
        python_error = str(exc)
    return {
        "schema": SCHEMA_VERSION,
        "path": dump.path,
        "size": dump.size,
        "os": system.os if system else None,
        "os_version": system.os_version if system else None,
        "cpu": system.cpu if system else None,
        "pid": dump.pid,
        "python_stacks_error": python_error,
        "threads": [_thread(dump, t, symbols, python_error is None) for t in threads],
        "exception": None if dump.exception is None else {
            **dataclasses.asdict(dump.exception),
            "signal": _SIGNALS.get(dump.exception.code)},
        "modules": [{"base": m.base, "size": m.size, "path": m.path, "debug_id": m.debug_id,
                     "local_file": _local_file(m) if symbols else None}
                    for m in dump.modules],
        "memory": {"ranges": len(dump.memory), "bytes": sum(m.size for m in dump.memory)},
        "streams": [{"type": kind, "name": name, "count": count, "size": size}
                    for kind, name, count, size in dump.stream_counts()],
    }


def _thread(dump: Dump, thread: DumpThread, symbols: bool, python_ok: bool) -> dict[str, Any]:
    frames = thread.frames if symbols else []
    python = thread.python if python_ok else None
    return {
        "thread_id": thread.thread_id,
        "name": thread.name,
        "state": _state(thread, frames, dump),
        "pc": thread.pc,
        "sp": thread.registers.get("rsp"),
        "teb": thread.teb,
        "python": None if python is None else {
            "holds_gil": python.holds_gil,
            "frames": [dataclasses.asdict(f) for f in python.frames]},
        "frames": [dataclasses.asdict(f) for f in frames],
    }


def _local_file(module: DumpModule) -> str:
    """"matches" when a file here has the dump's build id; else why symbols are missing."""
    return resolve(module.path, module.build_id).problem or "matches"


def _state(thread: DumpThread, frames: list[NativeFrame], dump: Dump) -> str | None:
    if thread.registers.get("rax") not in _INTERRUPTED_SYSCALL:
        return None
    number = _syscall_number(dump, thread.pc) if frames else None
    state = "in a system call"
    if number is not None:
        state += f": {_SYSCALLS.get(number, f'number {number}')}"
    if frames and frames[0].function:
        state += f" ({frames[0].function})"
    return state


def _syscall_number(dump: Dump, pc: int | None) -> int | None:
    """The number loaded into eax right before the ``syscall`` that *pc* follows, if plain.

    Only the two forms glibc puts immediately before it are read (``mov $n, %eax`` and
    ``xor %eax, %eax``): anything further back would need a disassembler to be sure of.
    """
    module = dump.module_at(pc) if pc else None
    if module is None or pc is None:
        return None
    local = resolve(module.path, module.build_id).file
    if local is None:
        return None
    code = local.code(pc - module.base + local.first_vaddr - 7, 7)
    if code is None or code[-2:] != b"\x0f\x05":
        return None
    if code[0] == 0xB8 and code[3:5] == b"\0\0":
        return int.from_bytes(code[1:5], "little")
    return 0 if code[3:5] == b"\x31\xc0" else None


def render(info: dict[str, Any]) -> str:
    lines = [f"{info['path']}: {human_size(info['size'])}, {info['os'] or 'unknown OS'} "
             f"{info['os_version'] or ''} on {info['cpu'] or 'unknown CPU'}"
             + (f", pid {info['pid']}" if info["pid"] is not None else "")]
    lines.append(f"threads ({len(info['threads'])}):")
    for thread in info["threads"]:
        lines += _render_thread(thread)
    if info["python_stacks_error"]:
        lines.append(f"python stacks: unreadable ({info['python_stacks_error']})")
    exception = info["exception"]
    if exception is not None:
        signal = exception["signal"] or f"code {exception['code']:#x}"
        lines.append(f"exception: {signal} at {exception['address']:#x} in thread "
                     f"{exception['thread_id']}")
    lines.append(f"modules ({len(info['modules'])}):")
    for module in info["modules"]:
        local = module["local_file"]
        note = f"  ({local})" if local not in (None, "matches") else ""
        lines.append(f"  {module['base']:#018x} {module['size']:>#10x}  "
                     f"{module['debug_id'] or '-':<40}  {module['path']}{note}")
    memory = info["memory"]
    lines.append(f"memory: {memory['ranges']} ranges, {human_size(memory['bytes'])}")
    lines.append("streams: " + ", ".join(
        f"{s['name']} ({s['size']} B)" if s["count"] == 1 else
        f"{s['name']} x{s['count']} ({s['size']} B)" for s in info["streams"]))
    return "\n".join(lines)


def _render_thread(thread: dict[str, Any]) -> list[str]:
    head = f"  thread {thread['thread_id']}"
    if thread["name"]:
        head += f" \"{thread['name']}\""
    if thread["state"]:
        head += f": {thread['state']}"
    if thread["pc"] is not None and not thread["frames"]:
        head += f", pc {thread['pc']:#x}"
    lines = [head]
    python = thread["python"]
    if python is not None:
        lines.append("    Python stack" + (" (holds the GIL)" if python["holds_gil"] else "")
                     + ":")
        for frame in python["frames"]:
            lines.append(f"      {frame['function']} ({frame['file']}:{frame['line']})")
    if thread["frames"]:
        indent = "    "
        if python is not None:
            lines.append("    native stack:")
            indent = "      "
        for frame in thread["frames"]:
            lines.append(f"{indent}#{frame['index']:<2} {frame['pc']:#018x} {_where(frame)}"
                         f"  [{frame['trust']}]")
    return lines


def _where(frame: dict[str, Any]) -> str:
    if frame["function"] is not None:
        return f"{frame['module']}!{frame['function']}+{frame['function_offset']:#x}"
    if frame["module"] is not None:
        problem = f" ({frame['module_problem']})" if frame["module_problem"] else ""
        return f"{frame['module']}+{frame['module_offset']:#x}{problem}"
    return "?"


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
