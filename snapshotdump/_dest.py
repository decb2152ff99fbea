"""Where a dump goes: created 0600, never through a symlink, never over a file unless asked.

A path destination is written to a hidden temporary file beside it and moved
into place only when the dump is complete, so a failed or interrupted dump never
leaves a half-written file under the name the user asked for.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import sys
from collections.abc import Iterator
from typing import IO, Any, TypeAlias

from .errors import (
    ERROR_FILE_EXISTS,
    ERROR_PATH_NOT_FOUND,
    SnapshotError,
    SnapshotPermissionError,
)

Dest: TypeAlias = str | os.PathLike[str] | IO[bytes]

_IS_WINDOWS = sys.platform == "win32"


class DestinationNotFoundError(SnapshotError, FileNotFoundError):
    """The folder of the destination path does not exist."""


class DestinationExistsError(SnapshotError, FileExistsError):
    """The destination exists and ``overwrite=True`` was not given (or it is a symlink)."""


class Output:
    """An open destination: ``fd`` to write to; ``path`` once committed (None for a file object)."""

    def __init__(self, fd: int, path: str | None) -> None:
        self.fd = fd
        self.path = path
        self.size = 0


def _check_path(path: str, overwrite: bool) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is not None:
        if stat.S_ISLNK(info.st_mode):
            raise DestinationExistsError(
                f"dest {path!r} is a symbolic link; refusing to write through it (dumps hold "
                "secrets): give the real path", errno=errno.EEXIST,
                winerror=ERROR_FILE_EXISTS if _IS_WINDOWS else None, function="open")
        if stat.S_ISDIR(info.st_mode):
            raise ValueError(f"dest {path!r} is a directory; give a file name inside it")
        if not overwrite:
            raise DestinationExistsError(
                f"dest {path!r} already exists; pass overwrite=True to replace it",
                errno=errno.EEXIST, winerror=ERROR_FILE_EXISTS if _IS_WINDOWS else None,
                function="open")
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"dest {path!r} is not a regular file; refusing to replace it")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise DestinationNotFoundError(
            f"the folder of dest {path!r} does not exist: create {folder!r} first",
            errno=errno.ENOENT, winerror=ERROR_PATH_NOT_FOUND if _IS_WINDOWS else None,
            function="open")


def _create_private(temporary: str, dest: str) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    folder = os.path.dirname(temporary) or "."
    try:
        return os.open(temporary, flags, 0o600)
    except PermissionError as exc:
        raise SnapshotPermissionError(
            f"cannot write dest {dest!r}: no permission to create a file in {folder!r} "
            f"({exc.strerror}); choose a writable folder", errno=exc.errno,
            function="open") from None
    except OSError as exc:
        # The message names the user's path: the hidden temporary name means nothing to them.
        raise SnapshotError(
            f"cannot write dest {dest!r}: a file cannot be created in {folder!r} "
            f"({exc.strerror}); choose a folder on an ordinary file system",
            errno=exc.errno, function="open") from None


def _temporary_name(folder: str, name: str) -> str:
    """A hidden name beside *name* that fits the file system's name limit when *name* does."""
    tag = f".{secrets.token_hex(6)}.partial"
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        limit = 255
    room = limit - 1 - len(tag.encode())
    stem = name
    while len(stem.encode("utf-8", "surrogateescape")) > room:
        stem = stem[:-1]
    return f".{stem}{tag}"


def _commit(temporary: str, final: str, overwrite: bool) -> None:
    if overwrite:
        os.replace(temporary, final)
        return
    try:
        # link() refuses an existing name atomically, where rename() would replace it.
        os.link(temporary, final)
    except FileExistsError as exc:
        raise DestinationExistsError(
            f"dest {final!r} appeared while the dump was written; pass overwrite=True to "
            "replace it",
            errno=errno.EEXIST, function="link") from exc
    except OSError:
        if os.path.lexists(final):
            raise
        os.rename(temporary, final)  # file systems without hard links
        return
    os.unlink(temporary)


def _check_file_object(dest: Any, fileno: Any) -> None:
    """Refuse a file object a minidump cannot be written to, before anything is written."""
    if getattr(dest, "closed", False):
        raise ValueError("dest file object is closed; pass an open file (open(path, 'wb'))")
    if hasattr(dest, "mode") and "b" not in str(dest.mode):
        raise TypeError(f"dest file object must be opened in binary mode, not mode {dest.mode!r}")
    try:
        fd = fileno()
    except (OSError, ValueError) as exc:
        raise ValueError(f"dest file object has no usable file descriptor ({exc}); pass a "
                         "file opened with open(path, 'wb')") from None
    if not _IS_WINDOWS:
        import fcntl

        mode = fcntl.fcntl(fd, fcntl.F_GETFL)
        if mode & os.O_ACCMODE == os.O_RDONLY:
            raise ValueError("dest file object is open read-only; open it with mode 'wb'")
        if mode & os.O_APPEND:
            # Every write would land at the end: the directory after the data, offsets wrong.
            raise ValueError("dest file object is open in append mode ('ab' or O_APPEND); a "
                             "minidump is written at fixed offsets: open it with mode 'wb'")
    dest.flush()  # bytes still buffered would count in the offset
    try:
        start = os.lseek(fd, 0, os.SEEK_CUR)
    except OSError as exc:
        raise ValueError(f"dest file object is not seekable ({exc.strerror}: a pipe, socket "
                         "or terminal?); a minidump is written at fixed offsets: give a "
                         "regular file") from None
    if start != 0:
        raise ValueError(
            f"dest file object is at offset {start}; a minidump starts at offset 0 "
            "(open a fresh file with mode 'wb')")


@contextlib.contextmanager
def open_destination(dest: Any, overwrite: bool) -> Iterator[Output]:
    """Yield an :class:`Output`; on any exception, remove (or truncate) what was written."""
    if isinstance(dest, (str, os.PathLike)):
        path = os.fspath(dest)
        if not isinstance(path, str):
            raise TypeError(f"dest must be a str path or a binary file object, not bytes {path!r}")
        if not path:
            raise ValueError("dest is an empty path; give a file name")
        _check_path(path, overwrite)
        folder, name = os.path.split(os.path.abspath(path))
        temporary = os.path.join(folder, _temporary_name(folder, name))
        fd = -1
        ours = True  # the temporary name is ours to remove unless os.open says it failed
        committed = False
        # The file is created inside the try: a Ctrl-C (or SIGTERM) that lands just after
        # os.open must not leave it behind.
        try:
            try:
                fd = _create_private(temporary, path)
            except SnapshotError:
                ours = False  # nothing was created (O_EXCL: a clash is not our file)
                raise
            out = Output(fd, None)
            yield out
            os.close(fd)
            fd = -1
            _commit(temporary, path, overwrite)
            committed = True
            out.path = os.path.abspath(path)
        finally:
            if fd >= 0:
                os.close(fd)
            if ours and not committed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
        return
    fileno = getattr(dest, "fileno", None)
    if fileno is None or not callable(fileno):
        raise TypeError(
            f"dest must be a path (str or os.PathLike) or a binary file object with fileno(), "
            f"not {type(dest).__name__}")
    _check_file_object(dest, fileno)
    fd = fileno()
    label: object = getattr(dest, "name", None)
    out = Output(fd, label if isinstance(label, str) else None)
    try:
        yield out
    except BaseException:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        raise
    os.lseek(fd, out.size, os.SEEK_SET)
