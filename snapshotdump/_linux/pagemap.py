"""PAGEMAP_SCAN on /proc/PID/pagemap (Linux 6.7+): which pages were written, in one ioctl.

Declarations from the kernel's uapi <linux/fs.h> (Debian 12's headers predate them).
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

from .uffd import ioctl

PAGE_IS_WPALLOWED = 1 << 0
PAGE_IS_WRITTEN = 1 << 1
PAGE_IS_FILE = 1 << 2
PAGE_IS_PRESENT = 1 << 3
PAGE_IS_SWAPPED = 1 << 4
PAGE_IS_PFNZERO = 1 << 5
PAGE_IS_HUGE = 1 << 6

PM_SCAN_WP_MATCHING = 1 << 0  # write-protect again what is reported, atomically with the scan
PM_SCAN_CHECK_WPASYNC = 1 << 1

VECTOR = 4096  # regions returned per ioctl; a longer answer takes more calls


class _ScanArg(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "size", "flags", "start", "end", "walk_end", "vec", "vec_len", "max_pages",
        "category_inverted", "category_mask", "category_anyof_mask", "return_mask")]


class _Region(ctypes.Structure):
    _fields_ = [("start", ctypes.c_uint64), ("end", ctypes.c_uint64),
                ("categories", ctypes.c_uint64)]


PAGEMAP_SCAN = (3 << 30) | (ctypes.sizeof(_ScanArg) << 16) | (ord("f") << 8) | 16


class Scanner:
    """Scans one process's pagemap through one reusable result vector."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._vector = (_Region * VECTOR)()

    def scan(self, start: int, end: int, *, mask: int, inverted: int = 0, anyof: int = 0,
             flags: int = 0, returned: int = 0) -> Iterator[tuple[int, int, int]]:
        """(start, end, categories) of the pages in [start, end) whose categories, after
        flipping *inverted*, include all of *mask* (and one of *anyof*, if given).
        Categories reported: those of *mask*, *anyof* and *returned*."""
        arg = _ScanArg(size=ctypes.sizeof(_ScanArg), flags=flags, start=start, end=end,
                       vec=ctypes.addressof(self._vector), vec_len=VECTOR,
                       category_inverted=inverted, category_mask=mask,
                       category_anyof_mask=anyof, return_mask=mask | anyof | returned)
        while arg.start < end:
            count = ioctl(self.fd, PAGEMAP_SCAN, arg, f"PAGEMAP_SCAN at {arg.start:#x}")
            for index in range(count):
                region = self._vector[index]
                yield int(region.start), int(region.end), int(region.categories)
            if arg.walk_end <= arg.start or arg.walk_end >= end:
                return
            arg.start = arg.walk_end

    def written(self, start: int, end: int, rearm: bool) -> Iterator[tuple[int, int]]:
        """Runs of tracked pages written since they were last protected; *rearm* protects
        them again.  Untracked mappings are not looked at (see untracked())."""
        for first, last, _categories in self.scan(
                start, end, mask=PAGE_IS_WRITTEN | PAGE_IS_WPALLOWED,
                flags=PM_SCAN_WP_MATCHING if rearm else 0):
            yield first, last

    def tracked(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """Runs of [start, end) in mappings registered for write-protect tracking."""
        for first, last, _categories in self.scan(start, end, mask=PAGE_IS_WPALLOWED):
            yield first, last

    def untracked(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """Runs of [start, end) in mappings not write-protect tracked (mapped since, or moved)."""
        for first, last, _categories in self.scan(
                start, end, mask=PAGE_IS_WPALLOWED, inverted=PAGE_IS_WPALLOWED):
            yield first, last

    def changed(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """written() and dropped() together, from one walk of the page tables (the final
        scan, inside the pause): every tracked run's categories, filtered here."""
        both = PAGE_IS_PRESENT | PAGE_IS_SWAPPED
        for first, last, categories in self.scan(
                start, end, mask=PAGE_IS_WPALLOWED, anyof=0,
                returned=PAGE_IS_WRITTEN | both):
            if categories & PAGE_IS_WRITTEN or not categories & both:
                yield first, last

    def dropped(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """Runs of tracked pages that are neither present nor swapped: emptied since they were
        protected (MADV_DONTNEED drops an anonymous page's protection with it); they read 0."""
        both = PAGE_IS_PRESENT | PAGE_IS_SWAPPED
        for first, last, _categories in self.scan(
                start, end, mask=both | PAGE_IS_WPALLOWED, inverted=both):
            yield first, last
