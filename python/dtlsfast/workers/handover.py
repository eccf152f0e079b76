"""Handing a CID record to the worker that owns it, when the kernel cannot steer.

Without the steering program (:mod:`dtlsfast.workers.steering`) the kernel
picks a worker by flow hash, so a client that moved to a new address (RFC
9146 §6) may reach a worker that does not hold its session. That worker reads
the owner's index from the CID's first byte and passes the datagram, with its
source address, over a Unix datagram socket to the owner, which handles it as
if it had read it itself; its answers leave through the owner's share of the
same port, so the client sees the same source address.

The supervisor creates one socket pair per worker and keeps both ends, so a
restarted worker finds datagrams waiting for it. A datagram that does not fit
the owner's queue is dropped and counted, as UDP would drop it.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from typing import Any

from dtlsfast.workers.steering import owner_of

#: Handed-over datagrams read per wake-up of the loop.
READS_PER_WAKEUP = 64
#: A datagram and its address header.
MAX_MESSAGE = 65_536 + 64
_HEADER = struct.Struct("!BHII")  # family, port, flowinfo, scope_id; then host length, host


def encode(data: bytes, addr: Any) -> bytes:
    """``addr`` (asyncio's tuple) and ``data`` as one handover message."""
    host = str(addr[0]).encode()
    six = len(addr) == 4
    head = _HEADER.pack(6 if six else 4, addr[1], addr[2] if six else 0, addr[3] if six else 0)
    return head + bytes([len(host)]) + host + data


def decode(message: bytes) -> tuple[bytes, Any] | None:
    """The datagram and its address; None for a message that is not one."""
    if len(message) < _HEADER.size + 1:
        return None
    family, port, flowinfo, scope = _HEADER.unpack_from(message)
    length = message[_HEADER.size]
    start = _HEADER.size + 1
    if len(message) < start + length:
        return None
    host = message[start : start + length].decode("ascii", "replace")
    data = message[start + length :]
    if family == 6:
        return data, (host, port, flowinfo, scope)
    return data, (host, port)


class Handover:
    """One worker's side: forwards foreign CID records, feeds received ones."""

    def __init__(
        self,
        index: int,
        senders: list[socket.socket],
        receiver: socket.socket,
        deliver: Callable[[bytes, Any], None],
    ) -> None:
        self.index = index
        self._senders = senders
        self._receiver = receiver
        self._deliver = deliver
        self.handed_over = 0
        """Datagrams passed to their owner."""
        self.received = 0
        """Datagrams other workers passed here."""
        self.dropped = 0
        """Datagrams the owner's queue had no room for."""
        for sock in (*senders, receiver):
            sock.setblocking(False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(receiver.fileno(), self._read_ready)

    def forward(self, data: bytes, addr: Any) -> bool:
        """The server's ``foreign_cid`` hook: True if the datagram's CID names
        another worker (it was passed on, or dropped if its queue was full)."""
        owner = owner_of(data, len(self._senders))
        if owner is None or owner == self.index:
            return False
        try:
            self._senders[owner].send(encode(data, addr))
            self.handed_over += 1
        except OSError:  # the queue is full (the owner is slow or restarting)
            self.dropped += 1
        return True

    def _read_ready(self) -> None:
        for _ in range(READS_PER_WAKEUP):
            try:
                message = self._receiver.recv(MAX_MESSAGE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            decoded = decode(message)
            if decoded is None:
                continue
            self.received += 1
            self._deliver(*decoded)

    @property
    def counters(self) -> dict[str, int]:
        return {
            "handover_sent": self.handed_over,
            "handover_received": self.received,
            "handover_dropped": self.dropped,
        }

    def close(self) -> None:
        self._loop.remove_reader(self._receiver.fileno())


__all__ = ["Handover", "decode", "encode"]
