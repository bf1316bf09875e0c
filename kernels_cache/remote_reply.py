"""A cap on the bytes one Redis reply may bring into memory.

GETRANGE asks for at most the size limit, but whatever answers at the URL decides
what it sends: `$1073741824` followed by a gigabyte, or nested arrays of a
hundred million integers, which redis-py would read into memory before any
check of ours could run (3.4 GB of RSS, measured, for a 1 GiB claim).  So the
socket under redis-py's reader counts what it hands over and refuses more than
`cap` bytes for one reply: the read fails, like any other fault of the tier.
Memory for one reply stays within a small multiple of `cap`.

This subclasses redis-py's RESP parser (`redis._parsers`, there since redis 5):
its reader is the one place every reply passes through.
"""

from __future__ import annotations

from redis._parsers import _RESP3Parser
from redis._parsers.socket import SocketBuffer
from redis.exceptions import ConnectionError as RedisConnectionError


class _CountingSocket:
    """The socket as SocketBuffer uses it (recv, settimeout), refusing to read
    more than `cap` bytes until the buffer is purged after a whole reply."""

    def __init__(self, sock, cap: int):
        self._sock = sock
        self.cap = cap
        self.left = cap

    def recv(self, size: int) -> bytes:
        if self.left <= 0:
            raise RedisConnectionError(f"a reply larger than {self.cap} bytes; not read further")
        data = self._sock.recv(min(size, self.left))
        self.left -= len(data)
        return data

    def settimeout(self, timeout) -> None:
        self._sock.settimeout(timeout)


class _CappedBuffer(SocketBuffer):
    def __init__(self, sock, socket_read_size: int, socket_timeout, cap: int):
        super().__init__(_CountingSocket(sock, cap), socket_read_size, socket_timeout)

    def purge(self) -> None:  # redis-py purges after each whole reply: a new budget
        super().purge()
        self._sock.left = self._sock.cap


class _CappedParser(_RESP3Parser):  # RESP3 reads RESP2 replies too (a subset)
    cap = 1 << 26

    def on_connect(self, connection) -> None:
        super().on_connect(connection)
        self._buffer = _CappedBuffer(
            self._sock, self.socket_read_size, connection.socket_timeout, self.cap
        )


def capped_parser(cap: int) -> type:
    """A parser_class for redis.Redis whose replies are at most `cap` bytes each."""
    return type("CappedParser", (_CappedParser,), {"cap": cap})
