"""Length-prefixed pickled messages between the dumper and its tracer helper, with fd passing.

Both ends are this library, started by the same user from the same install.
"""

from __future__ import annotations

import pickle
import socket
import struct
from typing import Any

_HEADER = struct.Struct("<Q")
MAX_FDS = 4


def send(sock: socket.socket, message: Any, fds: list[int] | None = None) -> None:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    header = _HEADER.pack(len(body))
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
    data, fds, _flags, _addr = socket.recv_fds(sock, _HEADER.size, MAX_FDS)
    if not data:
        raise EOFError("the other end of the snapshot channel closed")
    header = _exactly(sock, _HEADER.size, data)
    (length,) = _HEADER.unpack(header)
    return pickle.loads(_exactly(sock, length)), list(fds)
