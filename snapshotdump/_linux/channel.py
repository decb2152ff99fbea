"""Length-prefixed pickled messages between the dumper and its tracer helper, with fd passing.

Both ends are this library, started by the same user from the same install.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

_HEADER = struct.Struct("<Q")
MAX_FDS = 4


class MessageDropped(KeyboardInterrupt):
    """Ctrl-C came while a whole message was read: the message was consumed, then dropped."""


@contextlib.contextmanager
def interrupts_held() -> Iterator[list[Any]]:
    """Within the block Ctrl-C is only recorded (in the list it yields); when the block
    ends, the handler that was in place gets it (the default raises KeyboardInterrupt).

    A KeyboardInterrupt between two pieces of a message would leave the rest of it in
    the socket, and every later message would be misread.  Signal handlers run in the
    main thread only, so only there is there anything to hold back.
    """
    caught: list[Any] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    previous = signal.signal(signal.SIGINT, lambda _signum, frame: caught.append(frame))
    try:
        yield caught
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            if callable(previous):
                previous(signal.SIGINT, caught[0])
            elif previous == signal.SIG_DFL:
                signal.raise_signal(signal.SIGINT)


def send(sock: socket.socket, message: Any, fds: list[int] | None = None) -> None:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    header = _HEADER.pack(len(body))
    with interrupts_held():
        if fds:
            socket.send_fds(sock, [header], fds)
        else:
            sock.sendall(header)
        sock.sendall(body)


def _exactly(sock: socket.socket, size: int, first: bytes = b"") -> bytes:
    chunks = [first]
    have = len(first)
    while have < size:
        chunk = sock.recv(min(size - have, 1 << 20))
        if not chunk:
            raise EOFError("the other end of the snapshot channel closed")
        chunks.append(chunk)
        have += len(chunk)
    return b"".join(chunks)


def receive(sock: socket.socket) -> tuple[Any, list[int]]:
    """The next message and the fds that came with it.

    Waiting may be interrupted (nothing is consumed then); reading a message may not.
    Ctrl-C during the read raises MessageDropped once the whole message is consumed.
    """
    waiting = select.poll()  # not select(): the dumper may have more than 1024 fds open
    waiting.register(sock, select.POLLIN)
    waiting.poll()
    fds: list[int] = []
    try:
        with interrupts_held():
            data, fds, _flags, _addr = socket.recv_fds(sock, _HEADER.size, MAX_FDS)
            if not data:
                raise EOFError("the other end of the snapshot channel closed")
            header = _exactly(sock, _HEADER.size, data)
            (length,) = _HEADER.unpack(header)
            message = pickle.loads(_exactly(sock, length))
    except BaseException as exc:
        for fd in fds:
            os.close(fd)
        if isinstance(exc, KeyboardInterrupt):
            raise MessageDropped from None
        raise
    return message, list(fds)
