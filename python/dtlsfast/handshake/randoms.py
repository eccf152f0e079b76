"""Hello randoms (RFC 5246 §7.4.1.2): 32 bytes from the operating system's
CSPRNG, drawn in blocks.

One ``getrandom`` call per hello costs a few microseconds, a noticeable share
of a server's full handshake; a block of 128 randoms costs about the same as
one. The bytes are the OS's, unchanged and never handed out twice; a forked
child starts with an empty block, so parent and child never share one.
"""

from __future__ import annotations

import os
import threading

RANDOM_LENGTH = 32
#: Randoms drawn from the OS at once.
BLOCK = 128


class _Pool:
    __slots__ = ("block", "lock", "offset")

    def __init__(self) -> None:
        self.block = b""
        self.offset = 0
        self.lock = threading.Lock()  # connections may live in several threads

    def reset(self) -> None:
        self.block = b""
        self.offset = 0
        self.lock = threading.Lock()


_pool = _Pool()
os.register_at_fork(after_in_child=_pool.reset)


def hello_random() -> bytes:
    """A fresh 32-byte random for a ClientHello or ServerHello."""
    pool = _pool
    with pool.lock:
        offset = pool.offset
        if offset >= len(pool.block):
            pool.block = os.urandom(RANDOM_LENGTH * BLOCK)
            offset = 0
        pool.offset = offset + RANDOM_LENGTH
        return pool.block[offset : offset + RANDOM_LENGTH]


__all__ = ["RANDOM_LENGTH", "hello_random"]
