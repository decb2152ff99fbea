"""Restartable sequences (rseq): what the kernel promises a thread we make run injected code.

A thread preempted inside an rseq critical section must resume at the section's
abort handler; the kernel sees to that on its way back to user space.  But when we
run a system call in a stopped thread, the thread goes back to user space at our
trampoline, outside the section, and the kernel only clears the section pointer.
Putting the thread's own registers back afterwards would let it carry on inside the
section as if nothing had run: a per-CPU update (tcmalloc, for one) could then commit
on stale data.  So the thread is resumed where the kernel would have sent it.

The kernel also writes the CPU number into the area each time the thread returns to
user space, so code run inside the clone changes the clone's copy of it.
"""

from __future__ import annotations

from . import ptrace

_RSEQ_CS_FIELD = 8  # struct rseq: u32 cpu_id_start, u32 cpu_id, u64 rseq_cs, ...
# struct rseq_cs: u32 version, u32 flags, u64 start_ip, u64 post_commit_offset, u64 abort_ip
_DESCRIPTOR_SIZE = 32


def resume_address(tid: int, ip: int) -> int:
    """Where *tid*, stopped at *ip*, must resume: the abort handler when *ip* is inside the
    critical section its rseq area names, else *ip*.  Read before anything runs in the thread.
    """
    registered = ptrace.rseq_area(tid)
    if registered is None:
        return ip
    address, _size = registered
    descriptor = int.from_bytes(ptrace.read_words(tid, address + _RSEQ_CS_FIELD, 8), "little")
    if not descriptor:
        return ip
    fields = ptrace.read_words(tid, descriptor, _DESCRIPTOR_SIZE)
    start = int.from_bytes(fields[8:16], "little")
    length = int.from_bytes(fields[16:24], "little")
    abort = int.from_bytes(fields[24:32], "little")
    return abort if start <= ip < start + length else ip
